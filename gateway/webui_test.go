package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/webui"
	"golang.org/x/net/html"
)

func httpGet(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func checkUIHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": webui.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", path, k, got, v)
		}
	}
	// The policy itself: no inline code, nothing from other hosts.
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self';",
		"img-src 'self' data:", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: CSP %q lacks %q", path, csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "*") || strings.Contains(csp, "ws:") || strings.Contains(csp, "wss:") {
		t.Errorf("%s: CSP %q is not strict", path, csp)
	}
}

// TestWebUIPage fetches the page the way a browser does and checks it holds
// up under its own CSP: scripts and styles only by reference, no inline
// handlers, and every referenced file served with the right type.
func TestWebUIPage(t *testing.T) {
	ts := startServer(t)
	resp, body := httpGet(t, http.MethodGet, ts.http+"/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	checkUIHeaders(t, "/", resp.Header)

	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string // URLs the page loads
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s> has an inline handler %s", n.Data, a.Key)
				}
				if a.Key == "style" {
					t.Errorf("<%s> has an inline style attribute", n.Data)
				}
			}
			switch n.Data {
			case "script":
				if attrs["src"] == "" {
					t.Error("a <script> without src (inline script)")
				}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if strings.TrimSpace(c.Data) != "" {
						t.Errorf("<script> has inline content %q", c.Data)
					}
				}
				refs = append(refs, attrs["src"])
			case "style":
				t.Error("an inline <style> element")
			case "link":
				if attrs["rel"] == "stylesheet" {
					refs = append(refs, attrs["href"])
				}
			}
			for _, k := range []string{"src", "href"} {
				if v, ok := attrs[k]; ok && (strings.Contains(v, "//") || strings.HasPrefix(strings.ToLower(v), "javascript:")) {
					t.Errorf("<%s %s=%q> points outside the page", n.Data, k, v)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if len(refs) < 2 {
		t.Fatalf("the page references %v; want its script and stylesheet", refs)
	}

	// Follow the references and the modules' own imports.
	importRE := regexp.MustCompile(`(?m)^\s*import\s[^"']*["']([^"']+)["']`)
	seen := map[string]bool{}
	for len(refs) > 0 {
		ref := refs[0]
		refs = refs[1:]
		path := "/" + strings.TrimPrefix(strings.TrimPrefix(ref, "./"), "/")
		if seen[path] {
			continue
		}
		seen[path] = true
		r, b := httpGet(t, http.MethodGet, ts.http+path, nil)
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", path, r.StatusCode)
			continue
		}
		checkUIHeaders(t, path, r.Header)
		if strings.HasSuffix(path, ".js") {
			for _, m := range importRE.FindAllStringSubmatch(b, -1) {
				refs = append(refs, m[1])
			}
		}
	}
	if !seen["/markdown.js"] {
		t.Errorf("followed %v; app.js should import markdown.js", seen)
	}
}

func TestWebUIAssets(t *testing.T) {
	ts := startServer(t)
	for _, tc := range []struct {
		path, ctype string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/app.js", "text/javascript; charset=utf-8"},
		{"/markdown.js", "text/javascript; charset=utf-8"},
		{"/style.css", "text/css; charset=utf-8"},
	} {
		resp, body := httpGet(t, http.MethodGet, ts.http+tc.path, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.ctype || body == "" {
			t.Errorf("GET %s = %d %q (%d bytes)", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
			continue
		}
		checkUIHeaders(t, tc.path, resp.Header)
		// no-cache with an ETag: a browser revalidates cheaply and never runs
		// a page older than the gateway behind it.
		etag := resp.Header.Get("ETag")
		if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: ETag %q Cache-Control %q", tc.path, etag, resp.Header.Get("Cache-Control"))
		}
		if r, _ := httpGet(t, http.MethodGet, ts.http+tc.path, map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified {
			t.Errorf("%s: revalidation = %d, want 304", tc.path, r.StatusCode)
		}
		if r, b := httpGet(t, http.MethodHead, ts.http+tc.path, nil); r.StatusCode != http.StatusOK || b != "" {
			t.Errorf("HEAD %s = %d with %d bytes", tc.path, r.StatusCode, len(b))
		}
		// Nothing from another host: no CDN, no web fonts, no analytics.
		if m := regexp.MustCompile(`(?i)https?://|@import|url\(\s*['"]?//`).FindString(body); m != "" {
			t.Errorf("%s refers to another host (%q)", tc.path, m)
		}
		// Model text reaches the DOM only through text nodes.
		if strings.Contains(body, "innerHTML") || strings.Contains(body, "outerHTML") || strings.Contains(body, "insertAdjacentHTML") ||
			strings.Contains(body, "document.write") || strings.Contains(body, "eval(") {
			t.Errorf("%s uses an HTML-string or eval API", tc.path)
		}
	}
	if r, _ := httpGet(t, http.MethodPost, ts.http+"/app.js", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /app.js = %d, want 405", r.StatusCode)
	}
	for _, p := range []string{"/nope.js", "/index.html", "/static/app.js", "/app.js/", "/%2e%2e/webui.go", "/webui.go"} {
		resp, body := httpGet(t, http.MethodGet, ts.http+p, nil)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s = %d %q %s, want a JSON 404", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// The HTTP routes next to the page are unchanged.
	if resp, body := httpGet(t, http.MethodGet, ts.http+"/healthz", nil); resp.StatusCode != 200 || !strings.Contains(body, `"live"`) {
		t.Errorf("/healthz = %d %s", resp.StatusCode, body)
	}
	if resp, _ := httpGet(t, http.MethodGet, ts.http+"/readyz", nil); resp.StatusCode != 200 {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}
}

// TestWebUIHandlerAlone covers the handler as a library: unknown paths are
// 404 and carry the security headers too.
func TestWebUIHandlerAlone(t *testing.T) {
	h := webui.Handler()
	for _, tc := range []struct {
		path string
		code int
	}{{"/", 200}, {"/app.js", 200}, {"/index.html", 404}, {"/missing.css", 404}, {"/../go.mod", 404}} {
		req, _ := http.NewRequest(http.MethodGet, "http://koi"+tc.path, nil)
		req.URL.Path = tc.path
		rec := &recorder{h: http.Header{}}
		h.ServeHTTP(rec, req)
		if rec.code != tc.code {
			t.Errorf("%s = %d, want %d", tc.path, rec.code, tc.code)
		}
		if rec.h.Get("Content-Security-Policy") != webui.ContentSecurityPolicy {
			t.Errorf("%s without CSP", tc.path)
		}
		if h.Serves(tc.path) != (tc.code == 200) {
			t.Errorf("Serves(%q) = %v", tc.path, h.Serves(tc.path))
		}
	}
}

// recorder is the least of an http.ResponseWriter, without httptest's
// defaults getting in the way of checking ours.
type recorder struct {
	h    http.Header
	code int
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return len(p), nil
}
func (r *recorder) WriteHeader(code int) { r.code = code }

func TestWebUIDisabled(t *testing.T) {
	ts := startServer(t, withConfig("gateway.controlUi.enabled", false))
	for _, p := range []string{"/", "/app.js"} {
		resp, body := httpGet(t, http.MethodGet, ts.http+p, nil)
		var v map[string]any
		if resp.StatusCode != http.StatusNotFound || json.Unmarshal([]byte(body), &v) != nil || v["ok"] != false {
			t.Errorf("GET %s with the UI off = %d %s, want a JSON 404", p, resp.StatusCode, body)
		}
	}
	// WebSocket upgrades on "/" work whether or not the page is served.
	dialConnected(t, ts)
}

// TestWebUIReloadToggles turns the page off and on with config.set: the
// route reads the running config on every request.
func TestWebUIReloadToggles(t *testing.T) {
	ts := startServer(t)
	c := adminClient(t, ts)
	set := func(enabled bool) {
		t.Helper()
		cur := unmarshal[configGet](t, c.call("config.get", nil).Payload)
		raw := fmt.Sprintf(`{gateway: {mode: "local", auth: {tokenSha256: %q}, controlUi: {enabled: %v}}}`,
			configgen.HashSecret(testToken), enabled)
		res := c.call("config.set", map[string]any{"raw": raw, "baseHash": cur.Hash})
		if !res.OK {
			t.Fatalf("config.set: %+v", res.Error)
		}
	}
	status := func() int {
		resp, _ := httpGet(t, http.MethodGet, ts.http+"/", nil)
		return resp.StatusCode
	}
	if got := status(); got != 200 {
		t.Fatalf("GET / = %d before the change", got)
	}
	set(false)
	waitFor(t, "the page to be turned off", func() bool { return status() == http.StatusNotFound })
	set(true)
	waitFor(t, "the page to be turned on", func() bool { return status() == http.StatusOK })
}

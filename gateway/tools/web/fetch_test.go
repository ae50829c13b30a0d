package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const articleHTML = `<!doctype html><html><head><title>Koi ponds &amp; care</title>
<style>body { color: red }</style><script>var secret = "do-not-show";</script></head>
<body><nav><a href="/">Home</a></nav>
<article><h1>Keeping koi</h1>
<p>Koi are ornamental carp. They need a pond at least a metre deep, with filtered water that stays between 15 and 25 degrees.</p>
<p>Feed them twice a day in summer, and not at all when the water is below 10 degrees. A good pellet floats, so uneaten food can be removed.</p>
<p>Read <a href="/guide/water">the water guide</a> for testing ammonia, nitrite and nitrate.</p>
<ul><li>Test weekly</li><li>Change 10% of the water</li></ul>
</article></body></html>`

// page serves h on 127.0.0.1 and counts the requests it gets, so a refusal
// test can show the connection was never made.
func page(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func html200(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, body)
	}
}

func fetcher(t *testing.T, allow []string, mod func(*FetchOptions)) *Fetcher {
	t.Helper()
	g, err := NewGuard(allow)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultFetchOptions()
	o.Guard = g
	o.Timeout = testTimeout(t)
	if mod != nil {
		mod(&o)
	}
	f := NewFetcher(o)
	t.Cleanup(f.Close)
	return f
}

// testTimeout is generous: only the timeout test wants a short one.
func testTimeout(t *testing.T) time.Duration {
	return min(5*time.Minute, max(time.Until(deadline(t)), time.Minute))
}

func deadline(t *testing.T) time.Time {
	if d, ok := t.Deadline(); ok {
		return d
	}
	return time.Now().Add(10 * time.Minute)
}

func fetchErr(t *testing.T, f *Fetcher, req FetchRequest) *Error {
	t.Helper()
	res, err := f.Fetch(context.Background(), req)
	if err == nil {
		t.Fatalf("Fetch(%s) succeeded: %+v", req.URL, res)
	}
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("Fetch(%s) error %T %v; want *Error", req.URL, err, err)
	}
	return we
}

func TestFetchReturnsText(t *testing.T) {
	srv, _ := page(t, html200(articleHTML))
	tests := []struct {
		name        string
		mode        string
		readability bool
		want        []string
		wantNot     []string
		extractor   string
	}{
		{"markdown with readability", ModeMarkdown, true,
			[]string{"Koi are ornamental carp", "- Test weekly", "[the water guide](" + srv.URL + "/guide/water)"},
			[]string{"do-not-show", "color: red", "<p>"}, "readability"},
		{"markdown, whole page", ModeMarkdown, false,
			[]string{"# Keeping koi", "Koi are ornamental carp", "[Home](" + srv.URL + "/)"},
			[]string{"do-not-show", "color: red"}, "html"},
		{"text", ModeText, true,
			[]string{"Koi are ornamental carp", "Test weekly"},
			[]string{"do-not-show", "](", "<"}, "readability"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fetcher(t, []string{"127.0.0.1"}, func(o *FetchOptions) { o.Readability = tt.readability })
			res, err := f.Fetch(context.Background(), FetchRequest{URL: srv.URL + "/koi#care", ExtractMode: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, res.Text)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(res.Text, w) {
					t.Errorf("text has %q:\n%s", w, res.Text)
				}
			}
			if res.Title != "Koi ponds & care" || res.Status != 200 || res.Extractor != tt.extractor || res.Truncated ||
				res.URL != srv.URL+"/koi" || res.FinalURL != srv.URL+"/koi" || !res.ExternalContent.Untrusted || res.Length != len([]rune(res.Text)) {
				t.Errorf("result metadata: %+v", res)
			}
		})
	}
}

func TestFetchPassesTextThrough(t *testing.T) {
	tests := []struct {
		name, ct, body, want string
	}{
		{"json", "application/json", `{"koi": 3, "<b>": "raw"}`, `{"koi": 3, "<b>": "raw"}`},
		{"plain", "text/plain; charset=utf-8", "line one\n<not html>\n", "line one\n<not html>\n"},
		{"markdown unlabelled", "application/octet-stream", "# Notes\n\nplain words\n", "# Notes\n\nplain words\n"},
		{"latin-1", "text/plain; charset=iso-8859-1", "caf\xe9 cr\xe8me", "café crème"},
		{"problem+json", "application/problem+json", `{"title":"x"}`, `{"title":"x"}`},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := page(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.ct != "" {
					w.Header().Set("Content-Type", tt.ct)
				}
				fmt.Fprint(w, tt.body)
			})
			res, err := fetcher(t, []string{"127.0.0.1"}, nil).Fetch(context.Background(), FetchRequest{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != tt.want || res.Extractor != "raw" {
				t.Errorf("text %q (extractor %s); want %q raw", res.Text, res.Extractor, tt.want)
			}
		})
	}
}

func TestFetchRefusesBinary(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
	tests := []struct{ name, ct, body, want string }{
		{"image", "image/png", png, "image/png, not a web page or text"},
		{"pdf", "application/pdf", "%PDF-1.7\n...", "application/pdf, not a web page or text"},
		{"octet-stream that is a PNG", "application/octet-stream", png, "not a web page or text"},
		{"text that is not", "text/plain", "abc\x00\x01\x02def", "its bytes are binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := page(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ct)
				fmt.Fprint(w, tt.body)
			})
			e := fetchErr(t, fetcher(t, []string{"127.0.0.1"}, nil), FetchRequest{URL: srv.URL + "/f"})
			if e.Kind != KindBinary || !strings.Contains(e.Msg, tt.want) || !strings.Contains(e.Msg, "returns only HTML and text") {
				t.Errorf("error %s: %s; want %s saying %q", e.Kind, e.Msg, KindBinary, tt.want)
			}
		})
	}
}

// dnsServer answers every A query with addr: a hostname whose DNS points
// at an internal address, as a rebinding attacker's would.
func dnsServer(t *testing.T, addr netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if q.Type == dnsmessage.TypeA && addr.Is4() {
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}, dnsmessage.AResource{A: addr.As4()})
			}
			msg, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(msg, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// TestFetchRefusesInternalAddresses is the list: 127.0.0.1,
// 169.254.169.254, a redirect to it, and hostnames that resolve to it, all
// refused by the dial-time check with the address and the key in the
// error, and no request reaching the internal server.
func TestFetchRefusesInternalAddresses(t *testing.T) {
	internal, hits := page(t, html200("<p>internal secret</p>"))
	port := internal.Listener.Addr().(*net.TCPAddr).Port

	// The redirecting server listens on 127.0.0.2, which the guard is told
	// to allow; the place it sends the client, 127.0.0.1, is not.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.2 (all of 127/8 is loopback on Linux): %v", err)
	}
	redir := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})}}
	redir.Start()
	t.Cleanup(redir.Close)

	tests := []struct {
		name     string
		url      string
		resolver *net.Resolver
		addr     string // the address the error must name
	}{
		{"loopback literal", internal.URL + "/", nil, "127.0.0.1"},
		{"metadata service", "http://169.254.169.254/latest/meta-data/iam/security-credentials/", nil, "169.254.169.254"},
		{"IPv6 metadata service", "http://[fd00:ec2::254]/latest/meta-data/", nil, "fd00:ec2::254"},
		{"mapped loopback", fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port), nil, "127.0.0.1"},
		{"redirect to loopback", redir.URL + "/?to=" + internal.URL + "/", nil, "127.0.0.1"},
		{"redirect to the metadata service", redir.URL + "/?to=http://169.254.169.254/latest/meta-data/", nil, "169.254.169.254"},
		{"localhost", fmt.Sprintf("http://localhost:%d/", port), nil, "127."},
		{"a DNS name that resolves to loopback", fmt.Sprintf("http://rebind.example:%d/", port), dnsServer(t, netip.MustParseAddr("127.0.0.1")), "127.0.0.1"},
		{"a DNS name that resolves to the metadata service", "http://metadata.example/latest/meta-data/", dnsServer(t, netip.MustParseAddr("169.254.169.254")), "169.254.169.254"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fetcher(t, []string{"127.0.0.2"}, func(o *FetchOptions) { o.Resolver = tt.resolver })
			before := hits.Load()
			e := fetchErr(t, f, FetchRequest{URL: tt.url})
			if e.Kind != KindBlocked {
				t.Fatalf("error kind %s: %s; want %s", e.Kind, e.Msg, KindBlocked)
			}
			if !strings.Contains(e.Msg, "refused to connect to "+tt.addr) || !strings.Contains(e.Msg, AllowPrivateKey) {
				t.Errorf("the error does not name %s and %s: %s", tt.addr, AllowPrivateKey, e.Msg)
			}
			if hits.Load() != before {
				t.Error("the internal server got a request")
			}
		})
	}

	// The same name, listed in allowPrivate, is fetched: the check judged
	// the address, not the name.
	f := fetcher(t, []string{"127.0.0.1"}, func(o *FetchOptions) { o.Resolver = dnsServer(t, netip.MustParseAddr("127.0.0.1")) })
	res, err := f.Fetch(context.Background(), FetchRequest{URL: fmt.Sprintf("http://rebind.example:%d/", port)})
	if err != nil || !strings.Contains(res.Text, "internal secret") {
		t.Fatalf("with 127.0.0.1 allowed: %v %+v", err, res)
	}
}

func TestFetchCaps(t *testing.T) {
	big := "<html><body><pre>" + strings.Repeat("koi ", 25000) + "</pre></body></html>" // 100 kB
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	srv, _ := page(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/big":
			html200(big)(w, r)
		case r.URL.Path == "/hang":
			select { // never answers; the fetch's own timeout must end it
			case <-hang:
			case <-r.Context().Done():
			}
		case strings.HasPrefix(r.URL.Path, "/r/"):
			var n int
			fmt.Sscanf(r.URL.Path, "/r/%d", &n)
			if n == 0 {
				html200("<p>arrived</p>")(w, r)
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
		case r.URL.Path == "/ftp":
			http.Redirect(w, r, "ftp://example.com/file", http.StatusFound)
		case r.URL.Path == "/missing":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "<h1>No such koi</h1>")
		default:
			html200(articleHTML)(w, r)
		}
	})
	allow := []string{"127.0.0.1"}

	t.Run("response size", func(t *testing.T) {
		f := fetcher(t, allow, func(o *FetchOptions) { o.MaxResponseBytes = 32000; o.MaxChars, o.MaxCharsCap = 1_000_000, 1_000_000 })
		res, err := f.Fetch(context.Background(), FetchRequest{URL: srv.URL + "/big"})
		if err != nil {
			t.Fatal(err)
		}
		if res.BodyBytes != 32000 || !res.Truncated || !strings.Contains(res.Warning, "maxResponseBytes") || len(res.Text) > 32000 {
			t.Errorf("bytes %d truncated %v warning %q text %d; want 32000 bytes read and a warning", res.BodyBytes, res.Truncated, res.Warning, len(res.Text))
		}
	})
	t.Run("maxChars", func(t *testing.T) {
		f := fetcher(t, allow, func(o *FetchOptions) { o.MaxChars, o.MaxCharsCap = 500, 1000 })
		for _, tc := range []struct{ ask, want int }{{0, 500}, {100, 100}, {5000, 1000}} {
			res, err := f.Fetch(context.Background(), FetchRequest{URL: srv.URL + "/big", MaxChars: tc.ask})
			if err != nil {
				t.Fatal(err)
			}
			if res.Length != tc.want || len([]rune(res.Text)) != tc.want || !res.Truncated || res.RawLength <= tc.want {
				t.Errorf("maxChars %d: length %d raw %d truncated %v; want %d", tc.ask, res.Length, res.RawLength, res.Truncated, tc.want)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		f := fetcher(t, allow, func(o *FetchOptions) { o.Timeout = 100 * time.Millisecond })
		e := fetchErr(t, f, FetchRequest{URL: srv.URL + "/hang"})
		if e.Kind != KindTimeout || !strings.Contains(e.Msg, "timeoutSeconds") {
			t.Errorf("%s: %s; want a timeout naming tools.web.fetch.timeoutSeconds", e.Kind, e.Msg)
		}
	})
	t.Run("redirects within the limit", func(t *testing.T) {
		res, err := fetcher(t, allow, func(o *FetchOptions) { o.MaxRedirects = 3 }).Fetch(context.Background(), FetchRequest{URL: srv.URL + "/r/3"})
		if err != nil || !strings.Contains(res.Text, "arrived") || res.FinalURL != srv.URL+"/r/0" {
			t.Fatalf("%v %+v", err, res)
		}
	})
	t.Run("redirects over the limit", func(t *testing.T) {
		e := fetchErr(t, fetcher(t, allow, func(o *FetchOptions) { o.MaxRedirects = 3 }), FetchRequest{URL: srv.URL + "/r/4"})
		if e.Kind != KindRedirects || !strings.Contains(e.Msg, "stopped after 3 redirects") || !strings.Contains(e.Msg, "maxRedirects") {
			t.Errorf("%s: %s", e.Kind, e.Msg)
		}
	})
	t.Run("no redirects", func(t *testing.T) {
		e := fetchErr(t, fetcher(t, allow, func(o *FetchOptions) { o.MaxRedirects = 0 }), FetchRequest{URL: srv.URL + "/r/1"})
		if e.Kind != KindRedirects {
			t.Errorf("%s: %s", e.Kind, e.Msg)
		}
	})
	t.Run("redirect to another scheme", func(t *testing.T) {
		e := fetchErr(t, fetcher(t, allow, nil), FetchRequest{URL: srv.URL + "/ftp"})
		if e.Kind != KindRedirects || !strings.Contains(e.Msg, "only http and https") {
			t.Errorf("%s: %s", e.Kind, e.Msg)
		}
	})
	t.Run("HTTP error status", func(t *testing.T) {
		e := fetchErr(t, fetcher(t, allow, nil), FetchRequest{URL: srv.URL + "/missing"})
		if e.Kind != KindHTTPStatus || e.Status != 404 || !strings.Contains(e.Msg, "404") || !strings.Contains(e.Msg, "No such koi") {
			t.Errorf("%s %d: %s", e.Kind, e.Status, e.Msg)
		}
	})
}

func TestFetchRejectsBadRequests(t *testing.T) {
	f := fetcher(t, nil, nil)
	tests := []struct {
		req  FetchRequest
		want string
	}{
		{FetchRequest{URL: ""}, "url is empty"},
		{FetchRequest{URL: "ftp://example.com/x"}, "only http:// and https://"},
		{FetchRequest{URL: "file:///etc/passwd"}, "only http:// and https://"},
		{FetchRequest{URL: "http://"}, "has no host"},
		{FetchRequest{URL: "http://exa mple.com/"}, "does not parse"},
		{FetchRequest{URL: "https://example.com/", ExtractMode: "html"}, "extractMode must be"},
	}
	for _, tt := range tests {
		e := fetchErr(t, f, tt.req)
		if e.Kind != KindInvalidURL || !strings.Contains(e.Msg, tt.want) {
			t.Errorf("%+v: %s %s; want %q", tt.req, e.Kind, e.Msg, tt.want)
		}
	}
}

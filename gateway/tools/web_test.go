package tools

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/tools/web"
)

// webConfig is tools.web with the config's defaults, as the gateway
// resolves it.
func webConfig(t *testing.T, allow []string, braveKey, braveURL string) *web.Options {
	t.Helper()
	c := configgen.Web{AllowPrivate: allow,
		Fetch:  configgen.WebFetch{Enabled: true, MaxChars: 20000, MaxCharsCap: 20000, MaxResponseBytes: 2000000, TimeoutSeconds: 60, MaxRedirects: 3, Readability: true},
		Search: configgen.WebSearch{Enabled: true, Provider: "brave", BaseURL: braveURL, MaxResults: 5, TimeoutSeconds: 60}}
	o, err := web.FromConfig(c, func(k string) string {
		if k == configgen.EnvBraveAPIKey {
			return braveKey
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return &o
}

func specNames(s *Set) []string {
	var out []string
	for _, sp := range s.Specs() {
		out = append(out, sp.Name)
	}
	return out
}

func TestWebToolsOffered(t *testing.T) {
	tests := []struct {
		name       string
		mod        func(*Options)
		want, miss []string
	}{
		{"no web options", nil, nil, []string{"web_fetch", "web_search"}},
		{"defaults without a key", func(o *Options) { o.Web = webConfig(t, nil, "", "https://api.search.brave.com") },
			[]string{"web_fetch"}, []string{"web_search"}},
		{"with a key", func(o *Options) { o.Web = webConfig(t, nil, "BSA-k", "https://api.search.brave.com") },
			[]string{"web_fetch", "web_search"}, nil},
		{"denied", func(o *Options) {
			o.Web = webConfig(t, nil, "BSA-k", "https://api.search.brave.com")
			o.Deny = []string{"web_fetch", "web_search"}
		}, nil, []string{"web_fetch", "web_search"}},
		{"allow lists only web_search", func(o *Options) {
			o.Web = webConfig(t, nil, "BSA-k", "https://api.search.brave.com")
			o.Allow = []string{"web_search"}
		}, []string{"web_search"}, []string{"web_fetch", "read"}},
		{"fetch disabled", func(o *Options) {
			o.Web = webConfig(t, nil, "", "https://api.search.brave.com")
			o.Web.FetchEnabled = false
		}, nil, []string{"web_fetch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := specNames(newSet(t, tt.mod))
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("%s not offered: %v", w, got)
				}
			}
			for _, m := range tt.miss {
				if slices.Contains(got, m) {
					t.Errorf("%s offered: %v", m, got)
				}
			}
		})
	}
}

func TestWebToolsRun(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><head><title>Pond</title></head><body><h1>Pond log</h1><p>The heron came back on Tuesday.</p></body></html>")
	}))
	t.Cleanup(page.Close)
	brave := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Subscription-Token") != "BSA-k" {
			w.WriteHeader(401)
			return
		}
		fmt.Fprintf(w, `{"web":{"results":[{"title":"Herons","url":"https://birds.example/heron","description":"%s"}]}}`, r.URL.Query().Get("q"))
	}))
	t.Cleanup(brave.Close)

	s := newSet(t, func(o *Options) { o.Web = webConfig(t, []string{"127.0.0.1"}, "BSA-k", brave.URL) })
	r := mustOK(t, run(t, s, "web_fetch", map[string]any{"url": page.URL, "extractMode": "text"}))
	var fr web.FetchResult
	if err := json.Unmarshal([]byte(r.Text), &fr); err != nil || !strings.Contains(fr.Text, "The heron came back on Tuesday.") || fr.Title != "Pond" {
		t.Fatalf("web_fetch = %s (%v)", r.Text, err)
	}
	if r.Details["status"] != 200 {
		t.Errorf("details: %v", r.Details)
	}
	r = mustOK(t, run(t, s, "web_search", map[string]any{"query": "heron ponds", "count": 3}))
	if !strings.Contains(r.Text, `"url":"https://birds.example/heron"`) || !strings.Contains(r.Text, `"snippet":"heron ponds"`) {
		t.Errorf("web_search = %s", r.Text)
	}

	// Refusals and bad arguments come back as error results with a kind.
	blocked := run(t, newSet(t, func(o *Options) { o.Web = webConfig(t, nil, "", brave.URL) }), "web_fetch", map[string]any{"url": page.URL})
	mustFail(t, blocked, "refused to connect to 127.0.0.1", "tools.web.allowPrivate")
	if blocked.Details["error"] != web.KindBlocked {
		t.Errorf("kind %v", blocked.Details["error"])
	}
	for _, bad := range []map[string]any{{}, {"url": 5}, {"url": "https://x.example", "maxChars": 0}, {"url": "https://x.example", "maxChars": 20001},
		{"url": "https://x.example", "extractMode": "html"}, {"url": "https://x.example", "other": 1}} {
		r := run(t, s, "web_fetch", bad)
		mustFail(t, r, "invalid arguments for web_fetch")
	}
	for _, bad := range []map[string]any{{}, {"query": "x", "count": 11}, {"query": "x", "freshness": 3}, {"q": "x"}} {
		mustFail(t, run(t, s, "web_search", bad), "invalid arguments for web_search")
	}
	noKey := run(t, newSet(t, func(o *Options) { o.Web = webConfig(t, nil, "", brave.URL) }), "web_search", map[string]any{"query": "x"})
	mustFail(t, noKey, configgen.EnvBraveAPIKey, "tools.web.search.apiKeyFile")
	mustFail(t, run(t, newSet(t, nil), "web_fetch", map[string]any{"url": page.URL}), "web_fetch is off")
	denied := run(t, newSet(t, func(o *Options) {
		o.Web = webConfig(t, []string{"127.0.0.1"}, "", brave.URL)
		o.Deny = []string{"web_fetch"}
	}), "web_fetch", map[string]any{"url": page.URL})
	mustFail(t, denied, "not enabled")
}

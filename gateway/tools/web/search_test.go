package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

const testKey = "BSA-test-key-9f83d1c2"

// fakeBrave is a stand-in for api.search.brave.com: it checks the path,
// the key header and the parameters as Brave does, and answers what the
// test sets.
type fakeBrave struct {
	*httptest.Server
	mu      sync.Mutex
	queries []string
	status  int
	headers map[string]string
	body    string
}

func newFakeBrave(t *testing.T) *fakeBrave {
	fb := &fakeBrave{status: 200}
	fb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/res/v1/web/search" || r.Method != http.MethodGet {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"type":"ErrorResponse","error":{"code":"NOT_FOUND","detail":"no such endpoint","status":404}}`)
			return
		}
		if r.Header.Get("X-Subscription-Token") != testKey {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"type":"ErrorResponse","error":{"code":"SUBSCRIPTION_TOKEN_INVALID","detail":"The provided subscription token is invalid.","status":401}}`)
			return
		}
		if r.URL.Query().Get("q") == "" {
			w.WriteHeader(422)
			fmt.Fprint(w, `{"type":"ErrorResponse","error":{"code":"VALIDATION","detail":"Unable to validate request parameter(s)","status":422}}`)
			return
		}
		fb.queries = append(fb.queries, r.URL.RawQuery)
		for k, v := range fb.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(fb.status)
		fmt.Fprint(w, fb.body)
	}))
	t.Cleanup(fb.Close)
	return fb
}

func (fb *fakeBrave) answer(status int, headers map[string]string, body string) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.status, fb.headers, fb.body = status, headers, body
}

func (fb *fakeBrave) lastQuery() string {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.queries) == 0 {
		return ""
	}
	return fb.queries[len(fb.queries)-1]
}

const braveOK = `{"type":"search","query":{"original":"koi pond depth"},"web":{"type":"search","results":[
 {"title":"How deep should a <strong>koi pond</strong> be?","url":"https://ponds.example/depth","description":"At least <strong>1 metre</strong>, deeper in cold climates &amp; hot ones.","page_age":"2025-06-01T10:00:00","profile":{"name":"Pond Guide"},"meta_url":{"hostname":"ponds.example"}},
 {"title":"Koi care","url":"https://koi.example/care","description":"Feeding and water.","meta_url":{"hostname":"koi.example"}}]}}`

func searcher(t *testing.T, fb *fakeBrave, key string) *Searcher {
	t.Helper()
	s, err := NewSearcher(SearchOptions{APIKey: key, BaseURL: fb.URL, Timeout: testTimeout(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func searchErr(t *testing.T, s *Searcher, r SearchRequest) *Error {
	t.Helper()
	res, err := s.Search(context.Background(), r)
	if err == nil {
		t.Fatalf("Search(%+v) succeeded: %+v", r, res)
	}
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("Search error %T %v; want *Error", err, err)
	}
	if strings.Contains(we.Msg, testKey) {
		t.Fatalf("the error shows the API key: %s", we.Msg)
	}
	return we
}

func TestSearchResults(t *testing.T) {
	fb := newFakeBrave(t)
	fb.answer(200, nil, braveOK)
	s := searcher(t, fb, testKey)
	res, err := s.Search(context.Background(), SearchRequest{Query: "  koi pond depth ", Count: 2, Country: "de", Language: "EN", Freshness: "week"})
	if err != nil {
		t.Fatal(err)
	}
	want := []SearchHit{
		{Title: "How deep should a koi pond be?", URL: "https://ponds.example/depth", Snippet: "At least 1 metre, deeper in cold climates & hot ones.", Published: "2025-06-01T10:00:00", SiteName: "Pond Guide"},
		{Title: "Koi care", URL: "https://koi.example/care", Snippet: "Feeding and water.", SiteName: "koi.example"},
	}
	if fmt.Sprint(res.Results) != fmt.Sprint(want) || res.Count != 2 || res.Query != "koi pond depth" || res.Provider != "brave" || !res.ExternalContent.Untrusted {
		t.Errorf("got %+v\nwant results %+v", res, want)
	}
	if q := fb.lastQuery(); q != "count=2&country=DE&freshness=pw&q=koi+pond+depth&search_lang=en" {
		t.Errorf("query sent: %s", q)
	}

	// Defaults and a date range.
	fb.answer(200, nil, `{"web":{"results":[]}}`)
	res, err = s.Search(context.Background(), SearchRequest{Query: "koi", DateAfter: "2024-01-01", DateBefore: "2024-06-30"})
	if err != nil || res.Count != 0 || res.Results == nil {
		t.Fatalf("%v %+v", err, res)
	}
	if q := fb.lastQuery(); q != "count=5&freshness=2024-01-01to2024-06-30&q=koi" {
		t.Errorf("query sent: %s", q)
	}
}

func TestSearchErrors(t *testing.T) {
	fb := newFakeBrave(t)
	tests := []struct {
		name    string
		key     string
		status  int
		headers map[string]string
		body    string
		kind    string
		want    []string
	}{
		{"no key", "", 200, nil, braveOK, KindNoKey,
			[]string{"needs a Brave Search API key", configgen.EnvBraveAPIKey, "tools.web.search.apiKeyFile"}},
		{"wrong key", "BSA-wrong", 200, nil, braveOK, KindKeyRejected,
			[]string{"refused the API key (HTTP 401)", configgen.EnvBraveAPIKey, "The provided subscription token is invalid."}},
		{"monthly quota", testKey, 429, map[string]string{
			"X-RateLimit-Limit": "1, 2000", "X-RateLimit-Policy": "1;w=1, 2000;w=2592000",
			"X-RateLimit-Remaining": "1, 0", "X-RateLimit-Reset": "1, 1419704"},
			`{"type":"ErrorResponse","error":{"code":"RATE_LIMITED","detail":"Request rate limit exceeded for plan.","status":429}}`, KindQuota,
			[]string{"quota exhausted (HTTP 429)", "the limit of 2000 requests per 30 days is used up and resets in 16 days 10 hours", "Request rate limit exceeded for plan."}},
		{"per-second limit", testKey, 429, map[string]string{
			"X-RateLimit-Limit": "1, 2000", "X-RateLimit-Remaining": "0, 1500", "X-RateLimit-Reset": "1, 1419704"},
			"", KindQuota, []string{"the limit of 1 request is used up and resets in 1 second"}},
		{"429 without headers", testKey, 429, nil, "", KindQuota, []string{"quota exhausted", "dashboard"}},
		{"server error", testKey, 503, nil, "upstream down", KindSearch, []string{"HTTP 503", "try again later", "upstream down"}},
		{"not JSON", testKey, 200, nil, "<html>", KindSearch, []string{"not its JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb.answer(tt.status, tt.headers, tt.body)
			e := searchErr(t, searcher(t, fb, tt.key), SearchRequest{Query: "koi"})
			if e.Kind != tt.kind {
				t.Errorf("kind %s; want %s (%s)", e.Kind, tt.kind, e.Msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Msg, w) {
					t.Errorf("error lacks %q: %s", w, e.Msg)
				}
			}
		})
	}
}

func TestSearchRejectsBadArguments(t *testing.T) {
	fb := newFakeBrave(t)
	s := searcher(t, fb, testKey)
	tests := []struct {
		r    SearchRequest
		want string
	}{
		{SearchRequest{Query: "  "}, "query is empty"},
		{SearchRequest{Query: strings.Repeat("k", 401)}, "at most 400"},
		{SearchRequest{Query: "koi", Count: 11}, "count must be from 1 to 10"},
		{SearchRequest{Query: "koi", Country: "Germany"}, "2-letter code"},
		{SearchRequest{Query: "koi", Language: "english!"}, "language code"},
		{SearchRequest{Query: "koi", Freshness: "hour"}, "day, week, month or year"},
		{SearchRequest{Query: "koi", Freshness: "day", DateAfter: "2024-01-01"}, "not both"},
		{SearchRequest{Query: "koi", DateAfter: "2024-13-01"}, "date_after must be a date"},
		{SearchRequest{Query: "koi", DateAfter: "2024-06-01", DateBefore: "2024-01-01"}, "later than"},
	}
	for _, tt := range tests {
		e := searchErr(t, s, tt.r)
		if e.Kind != KindBadQuery || !strings.Contains(e.Msg, tt.want) {
			t.Errorf("%+v: %s %s; want %q", tt.r, e.Kind, e.Msg, tt.want)
		}
	}
	if q := fb.lastQuery(); q != "" {
		t.Errorf("a refused query reached Brave: %s", q)
	}
}

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    []RateWindow
	}{
		{"none", nil, nil},
		{"two windows", map[string]string{"X-RateLimit-Limit": "1, 15000", "X-RateLimit-Policy": "1;w=1, 15000;w=2592000",
			"X-RateLimit-Remaining": "0, 14000", "X-RateLimit-Reset": "1, 1419704"},
			[]RateWindow{{1, 0, time.Second, time.Second}, {15000, 14000, 1419704 * time.Second, 2592000 * time.Second}}},
		{"missing pieces", map[string]string{"X-RateLimit-Limit": "20", "X-RateLimit-Reset": "x"},
			[]RateWindow{{20, -1, -1, 0}}},
		{"garbage limit entry skipped", map[string]string{"X-RateLimit-Limit": "a, 5", "X-RateLimit-Remaining": "1, 2"},
			[]RateWindow{{5, 2, -1, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			if got := ParseRateLimit(h); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestFromConfigFindsTheKey(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "brave.key")
	if err := os.WriteFile(good, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	twoLines := filepath.Join(dir, "two.key")
	if err := os.WriteFile(twoLines, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, env, file string
		wantKey         string
		wantProblem     string
	}{
		{"env", "BSA-from-env", "", "BSA-from-env", ""},
		{"env wins over the file", "BSA-from-env", good, "BSA-from-env", ""},
		{"file", "", good, testKey, ""},
		{"missing file", "", filepath.Join(dir, "nope"), "", "no such file"},
		{"file with two lines", "", twoLines, "", "alone on one line"},
		{"nothing", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configgen.Web{Search: configgen.WebSearch{Enabled: true, APIKeyFile: tt.file}}
			o, err := FromConfig(c, func(k string) string {
				if k == configgen.EnvBraveAPIKey {
					return tt.env
				}
				return ""
			})
			if err != nil {
				t.Fatal(err)
			}
			if o.Search.APIKey != tt.wantKey || !strings.Contains(o.Search.KeyProblem, tt.wantProblem) || (tt.wantProblem == "") != (o.Search.KeyProblem == "") {
				t.Errorf("key %q problem %q; want %q / %q", o.Search.APIKey, o.Search.KeyProblem, tt.wantKey, tt.wantProblem)
			}
			if strings.Contains(o.Search.KeyProblem, testKey) {
				t.Error("the problem text shows the key")
			}
		})
	}
}

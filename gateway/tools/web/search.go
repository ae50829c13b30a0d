package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

// Brave Search API facts.
const (
	DefaultBraveBaseURL = "https://api.search.brave.com"
	bravePath           = "/res/v1/web/search"
	braveKeyHeader      = "X-Subscription-Token"
	// braveMaxCount is the most results Brave's web search gives per call
	// that web_search asks for.
	braveMaxCount        = 10
	braveMaxQueryChars   = 400
	DefaultMaxResults    = 5
	DefaultSearchTimeout = 30 * time.Second
)

// Search error kinds, for Details["error"].
const (
	KindNoKey       = "no_api_key"
	KindKeyRejected = "api_key_rejected"
	KindQuota       = "quota_exhausted"
	KindSearch      = "search_failed"
	KindBadQuery    = "invalid_arguments"
)

// SearchOptions configure a Searcher.
type SearchOptions struct {
	// APIKey is the Brave Search subscription token. Empty: every search
	// fails with NoKeyHelp.
	APIKey string
	// KeyProblem says why no key was found when a key file was named but
	// could not be read; it is added to the no-key error.
	KeyProblem string
	// BaseURL is the Brave endpoint's scheme and host (tests point it at a
	// local server); "/res/v1/web/search" is appended.
	BaseURL    string
	MaxResults int
	Timeout    time.Duration
	// Client makes the requests; nil is a client with no proxy from the
	// environment and Timeout.
	Client *http.Client
}

// Searcher calls Brave Search. It is safe for concurrent use.
type Searcher struct {
	o        SearchOptions
	endpoint string
}

// NewSearcher checks o and applies defaults.
func NewSearcher(o SearchOptions) (*Searcher, error) {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBraveBaseURL
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tools.web.search.baseUrl must be an http(s) URL, got %q", o.BaseURL)
	}
	if o.MaxResults <= 0 {
		o.MaxResults = DefaultMaxResults
	}
	o.MaxResults = min(o.MaxResults, braveMaxCount)
	if o.Timeout <= 0 {
		o.Timeout = DefaultSearchTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{Proxy: nil, ForceAttemptHTTP2: true, MaxIdleConns: 4, IdleConnTimeout: 90 * time.Second}}
	}
	o.APIKey = strings.TrimSpace(o.APIKey)
	return &Searcher{o: o, endpoint: strings.TrimRight(o.BaseURL, "/") + bravePath}, nil
}

// HasKey reports whether searches can be made at all.
func (s *Searcher) HasKey() bool { return s.o.APIKey != "" }

// MaxResults is the count a call gets when it names none.
func (s *Searcher) MaxResults() int { return s.o.MaxResults }

// NoKeyHelp is what to do when there is no key.
func (s *Searcher) NoKeyHelp() string {
	msg := fmt.Sprintf("web_search needs a Brave Search API key (https://brave.com/search/api/): set %s in the gateway's environment, or put the key in a file and name it in tools.web.search.apiKeyFile, then reload the config", configgen.EnvBraveAPIKey)
	if s.o.KeyProblem != "" {
		msg += " (" + s.o.KeyProblem + ")"
	}
	return msg
}

// SearchRequest is one web_search call.
type SearchRequest struct {
	Query string
	Count int
	// Country is a 2-letter code; Language a search language (en, de, …).
	Country, Language string
	// Freshness is day, week, month or year; DateAfter/DateBefore
	// (YYYY-MM-DD) give a range instead.
	Freshness, DateAfter, DateBefore string
}

// SearchResult is what web_search returns to the model (as JSON).
type SearchResult struct {
	Provider        string          `json:"provider"`
	Query           string          `json:"query"`
	Count           int             `json:"count"`
	TookMs          int64           `json:"tookMs"`
	Results         []SearchHit     `json:"results"`
	ExternalContent ExternalContent `json:"externalContent"`
}

// SearchHit is one result.
type SearchHit struct {
	Title     string `json:"title"`
	URL       string `json:"url"`
	Snippet   string `json:"snippet,omitempty"`
	Published string `json:"published,omitempty"`
	SiteName  string `json:"siteName,omitempty"`
}

var (
	countryRe = regexp.MustCompile(`^[A-Za-z]{2}$`)
	langRe    = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z]{2,4})?$`)
	dateRe    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

var freshnessCodes = map[string]string{"day": "pd", "week": "pw", "month": "pm", "year": "py"}

// query builds Brave's query string, refusing what Brave would.
func (s *Searcher) query(r SearchRequest) (url.Values, error) {
	q := strings.TrimSpace(r.Query)
	if q == "" {
		return nil, fail(KindBadQuery, "query is empty; say what to search for")
	}
	if n := len([]rune(q)); n > braveMaxQueryChars {
		return nil, fail(KindBadQuery, "query is %d characters; Brave Search takes at most %d", n, braveMaxQueryChars)
	}
	v := url.Values{"q": {q}}
	count := r.Count
	if count == 0 {
		count = s.o.MaxResults
	}
	if count < 1 || count > braveMaxCount {
		return nil, fail(KindBadQuery, "count must be from 1 to %d, got %d", braveMaxCount, r.Count)
	}
	v.Set("count", strconv.Itoa(count))
	if r.Country != "" {
		if !countryRe.MatchString(r.Country) {
			return nil, fail(KindBadQuery, "country must be a 2-letter code such as US or DE, got %q", r.Country)
		}
		v.Set("country", strings.ToUpper(r.Country))
	}
	if r.Language != "" {
		if !langRe.MatchString(r.Language) {
			return nil, fail(KindBadQuery, "language must be a language code such as en, de or en-gb, got %q", r.Language)
		}
		v.Set("search_lang", strings.ToLower(r.Language))
	}
	for _, d := range []struct{ name, v string }{{"date_after", r.DateAfter}, {"date_before", r.DateBefore}} {
		if d.v == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d.v); err != nil || !dateRe.MatchString(d.v) {
			return nil, fail(KindBadQuery, "%s must be a date like 2026-01-31, got %q", d.name, d.v)
		}
	}
	switch {
	case r.Freshness != "" && (r.DateAfter != "" || r.DateBefore != ""):
		return nil, fail(KindBadQuery, "give freshness or date_after/date_before, not both")
	case r.Freshness != "":
		code, ok := freshnessCodes[r.Freshness]
		if !ok {
			return nil, fail(KindBadQuery, "freshness must be day, week, month or year, got %q", r.Freshness)
		}
		v.Set("freshness", code)
	case r.DateAfter != "" || r.DateBefore != "":
		after, before := r.DateAfter, r.DateBefore
		if after == "" {
			after = "1970-01-01"
		}
		if before == "" {
			before = time.Now().UTC().Format(time.DateOnly)
		}
		if after > before {
			return nil, fail(KindBadQuery, "date_after %s is later than date_before %s", after, before)
		}
		v.Set("freshness", after+"to"+before)
	}
	return v, nil
}

// braveResponse is the part of Brave's answer web_search uses.
type braveResponse struct {
	Web struct {
		Results []struct {
			Title       string `json:"title"`
			URL         string `json:"url"`
			Description string `json:"description"`
			PageAge     string `json:"page_age"`
			Profile     struct {
				Name string `json:"name"`
			} `json:"profile"`
			MetaURL struct {
				Hostname string `json:"hostname"`
			} `json:"meta_url"`
		} `json:"results"`
	} `json:"web"`
}

// braveError is Brave's error body.
type braveError struct {
	Error struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"error"`
}

// maxSearchBody bounds what is read of an answer: ten results are a few
// tens of kilobytes.
const maxSearchBody = 4 << 20

// Search runs one query. Every failure is an *Error.
func (s *Searcher) Search(ctx context.Context, r SearchRequest) (*SearchResult, error) {
	if !s.HasKey() {
		return nil, fail(KindNoKey, "%s", s.NoKeyHelp())
	}
	v, err := s.query(r)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"?"+v.Encode(), nil)
	if err != nil {
		return nil, fail(KindSearch, "building the Brave Search request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(braveKeyHeader, s.o.APIKey)
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return nil, s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSearchBody))
	if err != nil {
		return nil, s.transportError(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp, body)
	}
	var br braveResponse
	if err := json.Unmarshal(body, &br); err != nil {
		return nil, fail(KindSearch, "Brave Search answered with something that is not its JSON (%v); try again later", err)
	}
	out := &SearchResult{Provider: "brave", Query: v.Get("q"), Results: []SearchHit{},
		ExternalContent: ExternalContent{Untrusted: true, Source: "web_search"}}
	for _, h := range br.Web.Results {
		site := h.Profile.Name
		if site == "" {
			site = h.MetaURL.Hostname
		}
		out.Results = append(out.Results, SearchHit{Title: stripTags(h.Title), URL: h.URL, Snippet: stripTags(h.Description),
			Published: h.PageAge, SiteName: site})
	}
	out.Count = len(out.Results)
	out.TookMs = time.Since(start).Milliseconds()
	return out, nil
}

func (s *Searcher) transportError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fail(KindSearch, "Brave Search did not answer within %s (tools.web.search.timeoutSeconds)", s.o.Timeout)
	}
	if ctx.Err() != nil {
		return fail(KindSearch, "the search was aborted")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL carries nothing secret, but says nothing useful either
	}
	return fail(KindSearch, "reaching Brave Search: %v", err)
}

// statusError explains a non-200 answer. The key is never in it: Brave's
// detail text does not echo it, and nothing here adds it.
func statusError(resp *http.Response, body []byte) error {
	var be braveError
	_ = json.Unmarshal(body, &be)
	detail := strings.TrimSpace(be.Error.Detail)
	if detail == "" {
		detail, _ = truncateRunes(strings.TrimSpace(stripTags(string(body))), 300)
	} else {
		detail, _ = truncateRunes(detail, 300)
	}
	suffix := ""
	if detail != "" {
		suffix = " Brave says: " + detail
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fail(KindKeyRejected, "Brave Search refused the API key (HTTP %d): check %s or tools.web.search.apiKeyFile, and that the key's plan includes web search.%s",
			resp.StatusCode, configgen.EnvBraveAPIKey, suffix)
	case http.StatusTooManyRequests:
		return fail(KindQuota, "Brave Search quota exhausted (HTTP 429): %s.%s", quotaHint(ParseRateLimit(resp.Header)), suffix)
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		return fail(KindBadQuery, "Brave Search refused the query (HTTP %d).%s", resp.StatusCode, suffix)
	}
	return fail(KindSearch, "Brave Search failed (HTTP %s); try again later.%s", resp.Status, suffix)
}

// RateWindow is one of Brave's rate-limit windows (per second, per month).
type RateWindow struct {
	Limit     int64
	Remaining int64 // -1: not given
	// Reset is how long until the window's allowance is back; -1 when not given.
	Reset time.Duration
	// Window is the window's length, from X-RateLimit-Policy; 0 when not given.
	Window time.Duration
}

// ParseRateLimit reads Brave's X-RateLimit-* headers: comma-separated
// lists with one entry per window, in the same order ("1, 15000" for the
// per-second and the monthly limit). Entries that do not parse are
// skipped; a window exists for each X-RateLimit-Limit entry.
func ParseRateLimit(h http.Header) []RateWindow {
	limits := splitInts(h.Get("X-RateLimit-Limit"))
	remaining := splitInts(h.Get("X-RateLimit-Remaining"))
	reset := splitInts(h.Get("X-RateLimit-Reset"))
	var windows []int64
	for _, p := range strings.Split(h.Get("X-RateLimit-Policy"), ",") {
		w := int64(0)
		for _, attr := range strings.Split(p, ";")[1:] {
			if k, val, ok := strings.Cut(strings.TrimSpace(attr), "="); ok && k == "w" {
				if n, err := strconv.ParseInt(val, 10, 64); err == nil && n > 0 {
					w = n
				}
			}
		}
		windows = append(windows, w)
	}
	const maxSec = int64(100 * 365 * 24 * 3600) // keeps Duration from overflowing
	var out []RateWindow
	for i, l := range limits {
		if l < 0 {
			continue
		}
		rw := RateWindow{Limit: l, Remaining: -1, Reset: -1}
		if i < len(remaining) && remaining[i] >= 0 {
			rw.Remaining = remaining[i]
		}
		if i < len(reset) && reset[i] >= 0 {
			rw.Reset = time.Duration(min(reset[i], maxSec)) * time.Second
		}
		if i < len(windows) {
			rw.Window = time.Duration(min(windows[i], maxSec)) * time.Second
		}
		out = append(out, rw)
	}
	return out
}

// splitInts parses "1, 15000"; an entry that is not a number becomes -1 so
// the positions of the others hold.
func splitInts(s string) []int64 {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []int64
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil {
			n = -1
		}
		out = append(out, n)
	}
	return out
}

// quotaHint says which allowance ran out and when it is back.
func quotaHint(ws []RateWindow) string {
	var parts []string
	for _, w := range ws {
		if w.Remaining != 0 {
			continue
		}
		what := fmt.Sprintf("the limit of %d requests", w.Limit)
		if w.Limit == 1 {
			what = "the limit of 1 request"
		}
		if w.Window > 0 {
			what += " per " + human(w.Window)
		}
		if w.Reset >= 0 {
			what += " is used up and resets in " + human(w.Reset)
		} else {
			what += " is used up"
		}
		parts = append(parts, what)
	}
	if len(parts) == 0 {
		for _, w := range ws {
			if w.Reset > 0 {
				return "too many requests; Brave allows more in " + human(w.Reset)
			}
		}
		return "too many requests, or the plan's quota is used up; check the Brave Search dashboard"
	}
	return strings.Join(parts, "; ")
}

// human writes a duration as "1 second", "16 days 10 hours".
func human(d time.Duration) string {
	s := int64(d / time.Second)
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return strconv.FormatInt(n, 10) + " " + name + "s"
	}
	switch {
	case s < 120:
		return unit(s, "second")
	case s < 2*3600:
		return unit(s/60, "minute")
	case s < 2*86400:
		return unit(s/3600, "hour")
	}
	days, hours := s/86400, s%86400/3600
	if hours == 0 {
		return unit(days, "day")
	}
	return unit(days, "day") + " " + unit(hours, "hour")
}

package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/skykoi/skykoi/gateway/tools/web"
)

// webTools are web_fetch and web_search as built from Options.Web.
type webTools struct {
	fetch  *web.Fetcher  // nil: tools.web.fetch.enabled is false
	search *web.Searcher // nil: tools.web.search.enabled is false
}

func newWebTools(o *web.Options) (webTools, error) {
	var w webTools
	if o == nil {
		return w, nil
	}
	if o.FetchEnabled {
		w.fetch = web.NewFetcher(o.Fetch)
	}
	if o.SearchEnabled {
		s, err := web.NewSearcher(o.Search)
		if err != nil {
			return w, fmt.Errorf("tools: %w", err)
		}
		w.search = s
	}
	return w, nil
}

// offered says whether a web tool goes in the spec list: web_search only
// with a key, since without one every call would fail.
func (w webTools) offered(name string) bool {
	switch name {
	case "web_fetch":
		return w.fetch != nil
	case "web_search":
		return w.search != nil && w.search.HasKey()
	}
	return false
}

func (w webTools) close() {
	if w.fetch != nil {
		w.fetch.Close()
	}
}

func (s *Set) webFetchTool(ctx context.Context, input json.RawMessage) Result {
	if s.web.fetch == nil {
		return failure("web_disabled", "web_fetch is off on this Koi: tools.web.fetch.enabled is false")
	}
	a, err := parseArgs("web_fetch", input, "url", "extractMode", "maxChars")
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	u, _ := a.str("url", true)
	mode, _ := a.str("extractMode", false)
	if mode != "" && mode != web.ModeMarkdown && mode != web.ModeText {
		a.problem("field %q: expected %q or %q, got %q", "extractMode", web.ModeMarkdown, web.ModeText, clip(mode, 40))
	}
	maxChars := a.integer("maxChars", 1, int64(s.web.fetch.MaxCharsCap()), int64(s.web.fetch.MaxChars()))
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	res, err := s.web.fetch.Fetch(ctx, web.FetchRequest{URL: u, ExtractMode: mode, MaxChars: int(maxChars)})
	if err != nil {
		return webFailure(err)
	}
	out, _ := json.Marshal(res)
	return Result{Text: string(out), Details: map[string]any{"url": res.URL, "finalUrl": res.FinalURL, "status": res.Status,
		"bytes": res.BodyBytes, "length": res.Length, "truncated": res.Truncated, "extractor": res.Extractor}}
}

func (s *Set) webSearchTool(ctx context.Context, input json.RawMessage) Result {
	if s.web.search == nil {
		return failure("web_disabled", "web_search is off on this Koi: tools.web.search.enabled is false")
	}
	if !s.web.search.HasKey() {
		return failure(web.KindNoKey, "%s", s.web.search.NoKeyHelp())
	}
	a, err := parseArgs("web_search", input, "query", "count", "country", "language", "freshness", "date_after", "date_before")
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	var r web.SearchRequest
	r.Query, _ = a.str("query", true)
	r.Count = int(a.integer("count", 1, 10, int64(s.web.search.MaxResults())))
	r.Country, _ = a.str("country", false)
	r.Language, _ = a.str("language", false)
	r.Freshness, _ = a.str("freshness", false)
	r.DateAfter, _ = a.str("date_after", false)
	r.DateBefore, _ = a.str("date_before", false)
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	res, err := s.web.search.Search(ctx, r)
	if err != nil {
		return webFailure(err)
	}
	out, _ := json.Marshal(res)
	return Result{Text: string(out), Details: map[string]any{"results": res.Count, "provider": res.Provider}}
}

func webFailure(err error) Result {
	var we *web.Error
	if errors.As(err, &we) {
		r := failure(we.Kind, "%s", we.Msg)
		if we.Status != 0 {
			r.Details["status"] = we.Status
		}
		return r
	}
	return failure("web_error", "%v", err)
}

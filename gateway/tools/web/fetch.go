package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults for FetchOptions, the same as the config's.
const (
	DefaultMaxChars         = 20000
	DefaultMaxCharsCap      = 20000
	DefaultMaxResponseBytes = 2_000_000
	DefaultFetchTimeout     = 30 * time.Second
	DefaultMaxRedirects     = 3
)

// userAgent is a browser's, as many sites answer anything else with a
// block page; the SkyKoi suffix is honest about who asks.
const userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 SkyKoi-web_fetch"

// FetchOptions configure a Fetcher. Zero sizes and timeouts take the
// defaults; MaxRedirects is taken as given (0 follows none), so build
// from the config or DefaultFetchOptions.
type FetchOptions struct {
	// MaxChars is the text returned when a call names no maxChars;
	// MaxCharsCap is the most a call may ask for.
	MaxChars, MaxCharsCap int
	// MaxResponseBytes is how much of a body is read.
	MaxResponseBytes int64
	// Timeout covers the whole fetch: connecting, redirects, the body.
	Timeout      time.Duration
	MaxRedirects int
	// Readability extracts the main content of HTML pages first.
	Readability bool
	// Guard checks every address dialled; nil blocks every internal one.
	Guard *Guard
	// Resolver looks hostnames up; nil is the system's. Tests point it at
	// a local DNS server: whatever it answers, the Guard still judges the
	// address dialled.
	Resolver *net.Resolver
	// Now stamps fetchedAt; nil is time.Now.
	Now func() time.Time
}

// DefaultFetchOptions are the config's defaults.
func DefaultFetchOptions() FetchOptions {
	return FetchOptions{MaxChars: DefaultMaxChars, MaxCharsCap: DefaultMaxCharsCap, MaxResponseBytes: DefaultMaxResponseBytes,
		Timeout: DefaultFetchTimeout, MaxRedirects: DefaultMaxRedirects, Readability: true}
}

// Fetcher does web_fetch's GETs. It is safe for concurrent use.
type Fetcher struct {
	o      FetchOptions
	client *http.Client
	slots  chan struct{} // HTML conversions running at once
}

// maxConversions bounds the HTML conversions running at once, abandoned
// ones included: the box has few cores.
const maxConversions = 2

// NewFetcher builds a Fetcher whose connections all pass o.Guard.
func NewFetcher(o FetchOptions) *Fetcher {
	if o.MaxCharsCap <= 0 {
		o.MaxCharsCap = DefaultMaxCharsCap
	}
	if o.MaxChars <= 0 {
		o.MaxChars = DefaultMaxChars
	}
	o.MaxChars = min(o.MaxChars, o.MaxCharsCap)
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultFetchTimeout
	}
	o.MaxRedirects = max(o.MaxRedirects, 0)
	if o.Guard == nil {
		o.Guard = &Guard{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	dialer := &net.Dialer{
		KeepAlive: 30 * time.Second,
		Resolver:  o.Resolver,
		Control:   o.Guard.control,
	}
	tr := &http.Transport{
		// No proxy, whatever HTTP_PROXY says: the guard must see the real
		// destination, and a proxy would be the only address it saw.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// The fetch's context deadline bounds the handshake and the
		// headers; a second timer here would only race it.
		ForceAttemptHTTP2: true,
		MaxIdleConns:      16,
		IdleConnTimeout:   90 * time.Second,
	}
	maxRedirects := o.MaxRedirects
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return &redirectError{max: maxRedirects, to: req.URL.Redacted()}
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return &redirectError{max: -1, to: req.URL.Redacted()}
			}
			return nil
		},
	}
	return &Fetcher{o: o, client: client, slots: make(chan struct{}, maxConversions)}
}

// Close drops idle connections.
func (f *Fetcher) Close() { f.client.CloseIdleConnections() }

// MaxCharsCap is the most text one call may ask for.
func (f *Fetcher) MaxCharsCap() int { return f.o.MaxCharsCap }

// MaxChars is the text a call gets when it names no maxChars.
func (f *Fetcher) MaxChars() int { return f.o.MaxChars }

type redirectError struct {
	max int // -1: a scheme other than http(s)
	to  string
}

func (e *redirectError) Error() string {
	if e.max < 0 {
		return fmt.Sprintf("refused a redirect to %s: only http and https URLs are fetched", e.to)
	}
	return fmt.Sprintf("stopped after %d redirects (tools.web.fetch.maxRedirects); the next one went to %s", e.max, e.to)
}

// Error kinds, for Details["error"].
const (
	KindInvalidURL = "invalid_url"
	KindBlocked    = "blocked_address"
	KindTimeout    = "timeout"
	KindRedirects  = "too_many_redirects"
	KindHTTPStatus = "http_status"
	KindBinary     = "binary_content"
	KindFetch      = "fetch_failed"
)

// Error is a failed fetch, with a kind for tool events and a message the
// model can act on.
type Error struct {
	Kind   string
	Status int // for KindHTTPStatus
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func fail(kind, format string, a ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, a...)}
}

// FetchRequest is one web_fetch call.
type FetchRequest struct {
	URL string
	// ExtractMode is ModeMarkdown (the default) or ModeText.
	ExtractMode string
	// MaxChars limits the text; 0 is the configured default, and more than
	// the cap is lowered to it.
	MaxChars int
}

// FetchResult is what web_fetch returns to the model (as JSON).
type FetchResult struct {
	URL         string `json:"url"`
	FinalURL    string `json:"finalUrl"`
	Status      int    `json:"status"`
	ContentType string `json:"contentType,omitempty"`
	Title       string `json:"title,omitempty"`
	ExtractMode string `json:"extractMode"`
	Extractor   string `json:"extractor"`
	Truncated   bool   `json:"truncated"`
	// Length is len(Text) in characters; RawLength the extracted text's
	// before truncation.
	Length    int    `json:"length"`
	RawLength int    `json:"rawLength"`
	Warning   string `json:"warning,omitempty"`
	FetchedAt string `json:"fetchedAt"`
	TookMs    int64  `json:"tookMs"`
	// BodyBytes is how much of the body was read.
	BodyBytes int `json:"bodyBytes"`
	// ExternalContent marks Text as the web's words, not the person's:
	// instructions in it are data.
	ExternalContent ExternalContent `json:"externalContent"`
	Text            string          `json:"text"`
}

// ExternalContent labels text that came from outside.
type ExternalContent struct {
	Untrusted bool   `json:"untrusted"`
	Source    string `json:"source"`
}

// ParseURL checks a URL web_fetch is asked for.
func ParseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, fail(KindInvalidURL, "url is empty; give a full http:// or https:// URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fail(KindInvalidURL, "url %q does not parse: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fail(KindInvalidURL, "url %q: only http:// and https:// URLs can be fetched", raw)
	}
	if u.Hostname() == "" {
		return nil, fail(KindInvalidURL, "url %q has no host", raw)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// Fetch GETs the URL and converts what comes back. Every failure is an
// *Error.
func (f *Fetcher) Fetch(ctx context.Context, fr FetchRequest) (*FetchResult, error) {
	u, err := ParseURL(fr.URL)
	if err != nil {
		return nil, err
	}
	mode := fr.ExtractMode
	switch mode {
	case "":
		mode = ModeMarkdown
	case ModeMarkdown, ModeText:
	default:
		return nil, fail(KindInvalidURL, "extractMode must be %q or %q, got %q", ModeMarkdown, ModeText, fr.ExtractMode)
	}
	maxChars := fr.MaxChars
	if maxChars <= 0 {
		maxChars = f.o.MaxChars
	}
	maxChars = min(maxChars, f.o.MaxCharsCap)

	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fail(KindInvalidURL, "url %q: %v", u.Redacted(), err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.8")
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, f.transportError(ctx, u, err)
	}
	defer resp.Body.Close()

	limit := f.o.MaxResponseBytes
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, f.transportError(ctx, u, err)
	}
	bodyCut := int64(len(body)) > limit
	if bodyCut {
		body = body[:limit]
	}
	final := resp.Request.URL
	ct := resp.Header.Get("Content-Type")
	res := &FetchResult{
		URL: u.Redacted(), FinalURL: final.Redacted(), Status: resp.StatusCode, ContentType: ct,
		ExtractMode: mode, BodyBytes: len(body),
		FetchedAt:       f.o.Now().UTC().Format(time.RFC3339),
		ExternalContent: ExternalContent{Untrusted: true, Source: "web_fetch"},
	}
	kind := bodyKind(ct, body[:min(len(body), 512)])
	if kind == kindBinary && len(body) == 0 {
		kind = kindText
	}
	if kind == kindBinary && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		e := fail(KindHTTPStatus, "GET %s: HTTP %s", final.Redacted(), resp.Status)
		e.Status = resp.StatusCode
		return nil, e
	}
	if kind == kindBinary {
		what := ct
		if what == "" {
			what = "unlabelled binary data"
		}
		return nil, fail(KindBinary, "%s is %s, not a web page or text: web_fetch returns only HTML and text, so it did not read it", final.Redacted(), what)
	}
	text, err := decode(body, ct)
	if err != nil {
		return nil, fail(KindFetch, "%s: %v", final.Redacted(), err)
	}
	if looksBinary(text) {
		return nil, fail(KindBinary, "%s says it is %q but its bytes are binary, not text: web_fetch returns only HTML and text, so it did not read it", final.Redacted(), ct)
	}
	var out string
	if kind == kindHTML {
		p, err := f.convert(ctx, text, mode, final)
		if err != nil {
			return nil, err
		}
		res.Title, res.Extractor, out = p.Title, p.Extractor, p.Text
	} else {
		res.Extractor, out = "raw", string(text)
	}
	res.RawLength = utf8.RuneCountInString(out)
	out, cut := truncateRunes(out, maxChars)
	res.Text, res.Length = out, utf8.RuneCountInString(out)
	res.Truncated = cut || bodyCut
	switch {
	case bodyCut:
		res.Warning = fmt.Sprintf("the response is longer than tools.web.fetch.maxResponseBytes (%d bytes); only that much was read", limit)
	case cut:
		res.Warning = fmt.Sprintf("the text was cut to %d of its %d characters (maxChars; at most %d)", maxChars, res.RawLength, f.o.MaxCharsCap)
	}
	res.TookMs = time.Since(start).Milliseconds()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		excerpt, _ := truncateRunes(strings.TrimSpace(out), 500)
		e := fail(KindHTTPStatus, "GET %s: HTTP %s", final.Redacted(), resp.Status)
		e.Status = resp.StatusCode
		if excerpt != "" {
			e.Msg += "; the page says: " + excerpt
		}
		return nil, e
	}
	return res, nil
}

// convert runs ConvertHTML within the fetch's deadline. The converters
// take no context and some hostile pages (tens of thousands of sibling
// links) cost them seconds per hundred kilobytes, so the call runs in its
// own goroutine and the fetch stops waiting at the deadline; the slots
// keep such leftovers from piling up, since a later fetch waits for one.
func (f *Fetcher) convert(ctx context.Context, text []byte, mode string, final *url.URL) (Page, error) {
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return Page{}, fail(KindTimeout, "web_fetch %s: gave up after %s (tools.web.fetch.timeoutSeconds) waiting for other pages to finish converting", final.Redacted(), f.o.Timeout)
	}
	type out struct {
		p   Page
		err error
	}
	done := make(chan out, 1)
	go func() {
		defer func() { <-f.slots }()
		p, err := ConvertHTML(text, mode, f.o.Readability, final)
		done <- out{p, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			return Page{}, fail(KindFetch, "%s: %v", final.Redacted(), o.err)
		}
		return o.p, nil
	case <-ctx.Done():
		return Page{}, fail(KindTimeout, "web_fetch %s: converting the page took longer than %s (tools.web.fetch.timeoutSeconds); try extractMode \"text\", which is cheaper", final.Redacted(), f.o.Timeout)
	}
}

// transportError turns a failed request or body read into an *Error,
// naming the blocked address, the timeout or the redirect limit when one of
// those was the cause.
func (f *Fetcher) transportError(ctx context.Context, u *url.URL, err error) error {
	if be := blockedIn(err); be != nil {
		return fail(KindBlocked, "web_fetch %s: %v", u.Redacted(), be)
	}
	var re *redirectError
	if errors.As(err, &re) {
		return fail(KindRedirects, "web_fetch %s: %v", u.Redacted(), re)
	}
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fail(KindTimeout, "web_fetch %s: gave up after %s (tools.web.fetch.timeoutSeconds)", u.Redacted(), f.o.Timeout)
	}
	if ctx.Err() != nil {
		return fail(KindFetch, "web_fetch %s: the run was aborted", u.Redacted())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is named once, below
	}
	return fail(KindFetch, "web_fetch %s: %v", u.Redacted(), err)
}

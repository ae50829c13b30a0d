package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzConvert feeds arbitrary bodies through what web_fetch does with a
// response: classify, decode, convert. It must never panic, and what it
// returns must be valid UTF-8 with no script text.
func FuzzConvert(f *testing.F) {
	for _, seed := range []string{
		articleHTML,
		"<p>x</p>",
		"<html><body><table><tr><td>a</td><td>b</td></tr></table></body></html>",
		"<script>do-not-show</script><p>seen</p>",
		"<a href=\"javascript:alert(1)\">x</a><img src=//x>",
		"<<<>>><!-- <p",
		"<meta charset=\"shift_jis\"><p>\x82\xa0</p>",
		"\xef\xbb\xbf<p>bom</p>",
		"<pre>\x00\x01</pre>",
		strings.Repeat("<div>", 500) + "deep" + strings.Repeat("</div>", 500),
	} {
		f.Add([]byte(seed), "text/html", true, false)
		f.Add([]byte(seed), "", false, true)
	}
	f.Add([]byte("plain"), "text/plain; charset=utf-16", false, false)
	pageURL, _ := url.Parse("https://example.com/dir/page.html")
	f.Fuzz(func(t *testing.T, body []byte, contentType string, readability, text bool) {
		kind := bodyKind(contentType, body[:min(len(body), 512)])
		decoded, err := decode(body, contentType)
		if err != nil {
			return
		}
		if !utf8.Valid(decoded) {
			t.Fatalf("decode gave invalid UTF-8: %q", decoded)
		}
		if kind != kindHTML || looksBinary(decoded) {
			return
		}
		mode := ModeMarkdown
		if text {
			mode = ModeText
		}
		p, err := ConvertHTML(decoded, mode, readability, pageURL)
		if err != nil {
			return
		}
		if !utf8.ValidString(p.Text) || !utf8.ValidString(p.Title) {
			t.Fatalf("invalid UTF-8 out: %q / %q", p.Text, p.Title)
		}
		if strings.Contains(string(body), "<script>do-not-show</script>") && strings.Contains(p.Text, "do-not-show") {
			t.Fatalf("script text leaked: %q", p.Text)
		}
	})
}

// FuzzParseRateLimit checks the X-RateLimit-* reader on any header values:
// no panic, one window per numeric limit at most, no negative durations
// beyond the "not given" -1.
func FuzzParseRateLimit(f *testing.F) {
	f.Add("1, 15000", "1, 0", "1, 1419704", "1;w=1, 15000;w=2592000")
	f.Add("", "", "", "")
	f.Add("x", "-1", "99999999999999999999", ";w=;w=-5,,")
	f.Add("9223372036854775807", "0", "9223372036854775807", "1;w=9223372036854775807")
	f.Fuzz(func(t *testing.T, limit, remaining, reset, policy string) {
		h := http.Header{}
		h.Set("X-RateLimit-Limit", limit)
		h.Set("X-RateLimit-Remaining", remaining)
		h.Set("X-RateLimit-Reset", reset)
		h.Set("X-RateLimit-Policy", policy)
		ws := ParseRateLimit(h)
		if len(ws) > strings.Count(limit, ",")+1 {
			t.Fatalf("%d windows from %q", len(ws), limit)
		}
		for _, w := range ws {
			if w.Limit < 0 || w.Remaining < -1 || (w.Reset < 0 && w.Reset != -1) || w.Window < 0 {
				t.Fatalf("bad window %+v", w)
			}
		}
		if quotaHint(ws) == "" {
			t.Fatal("empty hint")
		}
	})
}

// FuzzParseURL: anything accepted is http(s) with a host and no fragment.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"https://example.com/a#b", "http://[::1]:80/", "ftp://x", "http://", "//x", "http://a b", "HTTP://EXAMPLE.COM"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Fragment != "" {
			t.Fatalf("ParseURL(%q) accepted %#v", s, u)
		}
	})
}

package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// benchPage is an article of about 60 kB with navigation around it, the
// size of a typical documentation page.
var benchPage = "<html><head><title>Bench</title></head><body><nav>" + strings.Repeat(`<a href="/x">link</a> `, 200) + "</nav><article><h1>Title</h1>" +
	strings.Repeat("<p>Koi are ornamental carp kept in outdoor ponds; they need filtered water, shade and a depth of a metre or more.</p>\n", 400) +
	"</article></body></html>"

func BenchmarkConvertHTML(b *testing.B) {
	u, _ := url.Parse("https://example.com/page")
	for _, c := range []struct {
		name        string
		mode        string
		readability bool
	}{{"markdown", ModeMarkdown, false}, {"markdown+readability", ModeMarkdown, true}, {"text+readability", ModeText, true}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(benchPage)))
			for b.Loop() {
				if _, err := ConvertHTML([]byte(benchPage), c.mode, c.readability, u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFetchLocal is one whole web_fetch of the page from a loopback
// server (allowed), guard and conversion included.
func BenchmarkFetchLocal(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(benchPage))
	}))
	defer srv.Close()
	g, _ := NewGuard([]string{"127.0.0.1"})
	o := DefaultFetchOptions()
	o.Guard = g
	f := NewFetcher(o)
	defer f.Close()
	for b.Loop() {
		if _, err := f.Fetch(context.Background(), FetchRequest{URL: srv.URL}); err != nil {
			b.Fatal(err)
		}
	}
}

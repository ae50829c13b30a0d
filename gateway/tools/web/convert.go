package web

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"codeberg.org/readeck/go-readability/v2"
	"codeberg.org/readeck/go-readability/v2/render"
	"github.com/JohannesKaufmann/html-to-markdown/v2/converter"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/base"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/commonmark"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/table"
	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
)

// Extract modes (the extractMode argument).
const (
	ModeMarkdown = "markdown"
	ModeText     = "text"
)

// Body kinds.
const (
	kindHTML   = "html"
	kindText   = "text"
	kindBinary = ""
)

// textTypes are application/* types that are text a model can read as is.
var textTypes = map[string]bool{
	"application/json": true, "application/xml": true, "application/javascript": true,
	"application/ecmascript": true, "application/x-javascript": true, "application/yaml": true,
	"application/x-yaml": true, "application/toml": true, "application/x-sh": true,
	"application/sql": true, "application/x-ndjson": true, "application/csv": true,
	"application/x-www-form-urlencoded": true, "application/graphql": true,
}

// bodyKind decides from the Content-Type (and, when that says nothing
// useful, the first bytes) whether a body is HTML, other text, or binary.
func bodyKind(contentType string, body []byte) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt == "" || mt == "application/octet-stream" || mt == "binary/octet-stream" {
		// Servers label files they do not know as octet-stream; the bytes decide.
		sniff, _, _ := mime.ParseMediaType(http.DetectContentType(body))
		mt = sniff
	}
	switch {
	case mt == "text/html" || mt == "application/xhtml+xml":
		return kindHTML
	case strings.HasPrefix(mt, "text/"), textTypes[mt],
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"), strings.HasSuffix(mt, "+yaml"):
		return kindText
	}
	return kindBinary
}

// decode converts body to UTF-8 using the charset the Content-Type names,
// else what the body's own meta tag or BOM says, else UTF-8.
func decode(body []byte, contentType string) ([]byte, error) {
	if len(body) == 0 {
		return body, nil // charset.NewReader reports EOF on nothing
	}
	r, err := charset.NewReader(bytes.NewReader(body), contentType)
	if err != nil {
		return nil, fmt.Errorf("reading the body (Content-Type %q): %w", contentType, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decoding the body (Content-Type %q): %w", contentType, err)
	}
	return bytes.ToValidUTF8(out, []byte("\uFFFD")), nil
}

// looksBinary catches bodies labelled as text that are not: NUL bytes do
// not occur in text, and a body that is mostly replacement characters was
// never in the charset it claimed.
func looksBinary(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return true
	}
	bad := bytes.Count(b, []byte("\uFFFD"))
	return bad > 16 && bad*10 > utf8.RuneCount(b)
}

// maxReadabilityElems bounds the documents Readability is run on.
const maxReadabilityElems = 50_000

// Page is converted HTML.
type Page struct {
	Title string
	Text  string
	// Extractor names what produced Text: "readability" when the main
	// content was extracted, else "html".
	Extractor string
}

// ConvertHTML turns an HTML document (UTF-8) into markdown or text. With
// useReadability the page's main content is extracted first, when
// Readability finds any; otherwise the whole document is converted. pageURL
// is where the page came from: relative links are made absolute against it.
func ConvertHTML(doc []byte, mode string, useReadability bool, pageURL *url.URL) (Page, error) {
	if pageURL == nil {
		return Page{}, fmt.Errorf("converting HTML: no page URL")
	}
	root, err := html.Parse(bytes.NewReader(doc))
	if err != nil {
		return Page{}, fmt.Errorf("parsing HTML: %w", err)
	}
	p := Page{Title: docTitle(root), Extractor: "html"}
	node := root
	if useReadability {
		ps := readability.NewParser()
		// Readability scores every element and goes over the tree more
		// than once; past this size the plain conversion, which is one
		// pass, does the job.
		ps.MaxElemsToParse = maxReadabilityElems
		if a, err := ps.ParseDocument(root, pageURL); err == nil && a.Node != nil && strings.TrimSpace(render.InnerText(a.Node)) != "" {
			node = a.Node
			p.Extractor = "readability"
			if t := strings.TrimSpace(a.Title()); t != "" {
				p.Title = t
			}
		}
	}
	if mode == ModeText {
		p.Text = strings.TrimSpace(render.InnerText(node))
		return p, nil
	}
	conv := converter.NewConverter(converter.WithPlugins(base.NewBasePlugin(), commonmark.NewCommonmarkPlugin(), table.NewTablePlugin()))
	md, err := conv.ConvertNode(node, converter.WithDomain(pageURL.String()))
	if err != nil {
		return Page{}, fmt.Errorf("converting HTML to markdown: %w", err)
	}
	p.Text = strings.TrimSpace(string(md))
	return p, nil
}

// docTitle is the text of the document's first <title>.
func docTitle(n *html.Node) string {
	if n.Type == html.ElementNode && n.Data == "title" {
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			}
		}
		return strings.Join(strings.Fields(b.String()), " ")
	}
	if n.Type == html.ElementNode && (n.Data == "body" || n.Data == "svg") {
		return ""
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if t := docTitle(c); t != "" {
			return t
		}
	}
	return ""
}

// truncateRunes keeps the first max characters of s.
func truncateRunes(s string, max int) (string, bool) {
	if max <= 0 || utf8.RuneCountInString(s) <= max {
		return s, false
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i], true
		}
		n++
	}
	return s, false
}

// stripTags renders an HTML fragment (a search snippet with <strong>
// highlights) as plain text.
func stripTags(s string) string {
	if !strings.ContainsAny(s, "<&") {
		return s
	}
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	for {
		switch z.Next() {
		case html.ErrorToken:
			return strings.TrimSpace(b.String())
		case html.TextToken:
			b.Write(z.Text())
		}
	}
}

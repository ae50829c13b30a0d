// Package webui is the web chat page the gateway serves at "/". The page is
// plain HTML, CSS and ES modules embedded in the binary: there is no build
// step, no framework and nothing fetched from another host, so the Koi works
// offline and the strict Content-Security-Policy below holds for every byte.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// static is read-only: go:embed requires a package-level variable, and
// nothing writes to an embed.FS.
//
//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response. Everything comes from
// the page's own origin, its WebSocket included: under CSP Level 3 'self'
// matches ws: and wss: to the page's own host and port (https → wss behind
// nginx), so a script that got into the page cannot open a socket anywhere
// else. No inline script or style is allowed, which is what makes an
// injection in rendered model output inert even if the renderer ever had a
// bug.
const ContentSecurityPolicy = "default-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// asset is one embedded file, prepared once so requests only copy bytes.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Page serves the embedded page; see Handler.
type Page struct {
	assets map[string]asset // URL path → file
}

// Handler serves the page at "/" and its assets at "/<name>". Any other path
// is 404 and methods other than GET and HEAD are 405. Responses carry
// Cache-Control: no-cache with an ETag, so a browser revalidates after a
// gateway upgrade instead of running a stale page against a newer protocol.
func Handler() *Page {
	h := &Page{assets: map[string]asset{}}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		// The directory is compiled in; failing to read it is a build defect.
		panic("webui: reading embedded files: " + err.Error())
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := static.ReadFile("static/" + e.Name())
		if err != nil {
			panic("webui: reading embedded file " + e.Name() + ": " + err.Error())
		}
		sum := sha256.Sum256(body)
		a := asset{body: body, ctype: contentType(e.Name()), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		if e.Name() == "index.html" {
			h.assets["/"] = a
			continue
		}
		h.assets["/"+e.Name()] = a
	}
	return h
}

// Serves reports whether p is one of the page's URLs, so a server that mounts
// the page at its root can keep answering every other path itself.
func (h *Page) Serves(p string) bool {
	_, ok := h.assets[p]
	return ok
}

// contentType is explicit rather than mime.TypeByExtension, whose answer
// depends on the host's mime tables; a wrong type for app.js would stop the
// module from loading under nosniff.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// SetSecurityHeaders adds the headers every UI response carries, errors
// included.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// For browsers that predate frame-ancestors.
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (h *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SetSecurityHeaders(w.Header())
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304 and HEAD without a body.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

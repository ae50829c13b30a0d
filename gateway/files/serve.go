package files

import (
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"
)

// DownloadPrefix is the URL path downloads are served under:
// GET /files/<path relative to the workspace>.
const DownloadPrefix = "/files/"

// Download refusals; the gateway maps them to HTTP statuses.
var (
	ErrBadPath   = errors.New("bad path")                // 400
	ErrEscape    = errors.New("outside the workspace")   // 403
	ErrProtected = errors.New("off limits for download") // 403
	ErrNotFound  = errors.New("no such file")            // 404
	ErrNotFile   = errors.New("not a regular file")      // 400
)

// maxDownloadPath bounds the requested path (PATH_MAX).
const maxDownloadPath = 4096

// CleanDownloadPath checks a requested path: relative, slash-separated, no
// "." or ".." segments, no empty segments, no NUL, valid UTF-8. It is
// strict on purpose: links the page makes are already clean, so anything
// else is a mistake or a probe, and is refused rather than reinterpreted.
func CleanDownloadPath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("%w: the path is empty; ask for /files/<path in the workspace>", ErrBadPath)
	case len(p) > maxDownloadPath:
		return "", fmt.Errorf("%w: the path is longer than %d bytes", ErrBadPath, maxDownloadPath)
	case !utf8.ValidString(p), strings.ContainsRune(p, 0):
		return "", fmt.Errorf("%w: the path is not valid UTF-8 text", ErrBadPath)
	case strings.HasPrefix(p, "/"), strings.Contains(p, `\`):
		return "", fmt.Errorf("%w: the path must be relative to the workspace, with / between names", ErrBadPath)
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "..":
			return "", fmt.Errorf("%w: the path climbs out with \"..\"", ErrEscape)
		case "", ".":
			return "", fmt.Errorf("%w: the path has an empty or \".\" segment", ErrBadPath)
		}
	}
	return p, nil
}

// Opened is a file resolved for download.
type Opened struct {
	File *os.File
	Info fs.FileInfo
	Name string // base name
}

// OpenDownload opens rel inside workspace for reading. The workspace is an
// os.Root, so neither ".." nor a symlink can reach outside it (a link that
// points out is refused, as is one that points at the config file or the
// state directory when those live in the workspace). protected are the
// gateway's config file and state directory; they and everything under
// them are refused even through links. Only regular files are served: the
// file is opened non-blocking and checked after opening, so a FIFO swapped
// in cannot hang the request.
func OpenDownload(workspace, rel string, protected []string) (*Opened, error) {
	rel, err := CleanDownloadPath(rel)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("%w: the workspace %s cannot be opened: %w", ErrNotFound, workspace, err)
	}
	defer root.Close()
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
			return nil, fmt.Errorf("%w: %s leads out of the workspace through a symlink", ErrEscape, rel)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, rel)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrNotFound, rel, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotFound, rel, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is a %s", ErrNotFile, rel, kindOf(info))
	}
	// The Root keeps the open inside the workspace; the protected paths can
	// be inside it too (a test layout, or a person who pointed the
	// workspace at ~), so the real path of what was opened is compared.
	real, err := filepath.EvalSymlinks(filepath.Join(workspace, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotFound, rel, err)
	}
	if same, err := os.Stat(real); err != nil || !os.SameFile(same, info) {
		return nil, fmt.Errorf("%w: %s changed while it was opened; try again", ErrNotFound, rel)
	}
	wsReal := spellings(workspace)
	for _, p := range protected {
		if p == "" {
			continue
		}
		for _, q := range spellings(p) {
			// A state directory that holds the workspace (the tests'
			// layout) protects its other parts, which the Root already
			// keeps out of reach, not the workspace.
			if slices.ContainsFunc(wsReal, func(w string) bool { return within(q, w) }) {
				continue
			}
			if within(q, real) {
				return nil, fmt.Errorf("%w: %s is the gateway's config file or state directory", ErrProtected, rel)
			}
		}
	}
	ok = true
	return &Opened{File: f, Info: info, Name: path.Base(rel)}, nil
}

// spellings are p as given (made absolute) and with symlinks resolved.
func spellings(p string) []string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return []string{p}
	}
	out := []string{abs}
	if r, err := filepath.EvalSymlinks(abs); err == nil && r != abs {
		out = append(out, r)
	}
	return out
}

func kindOf(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "directory"
	case fi.Mode()&fs.ModeNamedPipe != 0:
		return "named pipe"
	case fi.Mode()&fs.ModeSocket != 0:
		return "socket"
	case fi.Mode()&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// ContentType is the type a download is sent with: by extension, else by
// sniffing the first bytes, else octet-stream.
func ContentType(name string, head []byte) string {
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(name))); t != "" {
		return t
	}
	if len(head) > 0 {
		return http.DetectContentType(head)
	}
	return "application/octet-stream"
}

// Serve answers a download request for an opened file and closes it. The
// headers make a browser save the file and never run it: attachment
// disposition, nosniff, and a sandboxing CSP in case something renders it
// anyway (an HTML file the agent wrote must not run script on the
// gateway's origin, where the page keeps its token).
func Serve(w http.ResponseWriter, r *http.Request, o *Opened) {
	defer o.File.Close()
	head := make([]byte, 512)
	n, _ := o.File.ReadAt(head, 0)
	h := w.Header()
	h.Set("Content-Type", ContentType(o.Name, head[:n]))
	h.Set("Content-Disposition", disposition(o.Name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "no-store")
	http.ServeContent(w, r, o.Name, o.Info.ModTime(), o.File)
}

// disposition is an attachment Content-Disposition with an ASCII fallback
// name and the exact name in RFC 5987 form.
func disposition(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r)
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, b.String(), url.PathEscape(name))
}

// within: p is dir or below it.
func within(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

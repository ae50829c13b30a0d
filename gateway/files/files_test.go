package files

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func pngBytes(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{R: 255, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const pdfBytes = "%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

func zipWith(t testing.TB, names ...string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "<x/>")
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func att(typ, mimeType, name string, data []byte) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": typ, "mimeType": mimeType, "fileName": name,
		"content": base64.StdEncoding.EncodeToString(data)})
	return b
}

func TestDecodeAccepts(t *testing.T) {
	docx := zipWith(t, "[Content_Types].xml", "word/document.xml")
	xlsx := zipWith(t, "[Content_Types].xml", "xl/workbook.xml")
	ole := append([]byte("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1"), make([]byte, 64)...)
	cases := []struct {
		name               string
		in                 json.RawMessage
		kind, mime, format string
		file               string
	}{
		{"png", att("image", "image/png", "photo.png", pngBytes(t)), KindImage, "image/png", "png", "photo.png"},
		{"png without mime", att("", "", "shot", pngBytes(t)), KindImage, "image/png", "png", "shot.png"},
		{"png octet-stream", att("file", "application/octet-stream", "a.PNG", pngBytes(t)), KindImage, "image/png", "png", "a.png"},
		{"jpeg alias", att("image", "image/jpg", "x.jpeg", []byte("\xFF\xD8\xFF\xE0rest")), KindImage, "image/jpeg", "jpeg", "x.jpeg"},
		{"gif", att("", "image/gif", "g.gif", []byte("GIF89a....")), KindImage, "image/gif", "gif", "g.gif"},
		{"webp", att("", "image/webp", "w.webp", []byte("RIFF\x10\x00\x00\x00WEBPVP8 ")), KindImage, "image/webp", "webp", "w.webp"},
		{"pdf", att("file", "application/pdf", "Q3 report.pdf", []byte(pdfBytes)), KindDocument, "application/pdf", "pdf", "Q3_report.pdf"},
		{"pdf mime params", att("file", "application/PDF; name=x", "r.pdf", []byte(pdfBytes)), KindDocument, "application/pdf", "pdf", "r.pdf"},
		{"docx", att("file", "", "notes.docx", docx), KindDocument, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", "notes.docx"},
		{"xlsx", att("file", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "s.xlsx", xlsx), KindDocument, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", "s.xlsx"},
		{"doc", att("file", "application/msword", "old.doc", ole), KindDocument, "application/msword", "doc", "old.doc"},
		{"xls by name", att("file", "", "old.xls", ole), KindDocument, "application/vnd.ms-excel", "xls", "old.xls"},
		{"csv", att("file", "text/csv", "d.csv", []byte("a,b\n1,2\n")), KindDocument, "text/csv", "csv", "d.csv"},
		{"md by extension", att("file", "", "README.md", []byte("# hi\n")), KindDocument, "text/markdown", "md", "README.md"},
		{"html", att("file", "text/html; charset=utf-8", "p.htm", []byte("<p>hi</p>")), KindDocument, "text/html", "html", "p.htm"},
		{"txt default", att("", "", "", []byte("plain words")), KindDocument, "text/plain", "txt", "attachment.txt"},
		{"name made safe", att("", "image/png", "..hidden <x>.png", pngBytes(t)), KindImage, "image/png", "png", "hidden__x.png"},
		{"wrong extension kept visible", att("", "image/png", "run.exe", pngBytes(t)), KindImage, "image/png", "png", "run.exe.png"},
		{"unpadded base64", json.RawMessage(`{"mimeType":"text/plain","content":"aGk"}`), KindDocument, "text/plain", "txt", "attachment.txt"},
		{"unknown fields ignored", json.RawMessage(`{"mimeType":"text/plain","content":"aGk=","origin":"paste","sizeBytes":2}`), KindDocument, "text/plain", "txt", "attachment.txt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode([]json.RawMessage{c.in}, Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			a := got[0]
			if a.Kind != c.kind || a.MimeType != c.mime || a.Format != c.format || a.FileName != c.file {
				t.Errorf("got kind %s mime %s format %s file %q; want %s %s %s %q", a.Kind, a.MimeType, a.Format, a.FileName, c.kind, c.mime, c.format, c.file)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	small := Limits{MaxBytes: 100, MaxImageBytes: 50, MaxCount: 2, MaxTotalBytes: 120}
	many := []json.RawMessage{}
	for range 3 {
		many = append(many, att("", "text/plain", "a.txt", []byte("x")))
	}
	cases := []struct {
		name   string
		list   []json.RawMessage
		lim    Limits
		reason string
		msg    string
	}{
		{"too many", many, small, ReasonTooMany, "at most 2"},
		{"oversized document", []json.RawMessage{att("", "text/plain", "a.txt", bytes.Repeat([]byte("a"), 101))}, small, ReasonTooLarge, "largest accepted is 100 bytes"},
		{"oversized image", []json.RawMessage{att("", "image/png", "a.png", append(pngBytes(t), make([]byte, 60)...))}, Limits{MaxBytes: 1000, MaxImageBytes: 50, MaxCount: 2, MaxTotalBytes: 2000}, ReasonTooLarge, "largest accepted is 50 bytes"},
		{"huge string refused before decoding", []json.RawMessage{att("", "text/plain", "a.txt", bytes.Repeat([]byte("a"), 4000))}, small, ReasonTooLarge, "larger than"},
		{"total", []json.RawMessage{att("", "text/plain", "a.txt", bytes.Repeat([]byte("a"), 70)), att("", "text/plain", "b.txt", bytes.Repeat([]byte("a"), 70))}, small, ReasonTooLarge, "together"},
		{"corrupt base64", []json.RawMessage{json.RawMessage(`{"mimeType":"text/plain","content":"a$b=c"}`)}, Limits{}, ReasonBadBase64, "not valid base64"},
		{"data url", []json.RawMessage{json.RawMessage(`{"mimeType":"text/plain","content":"data:text/plain;base64,aGk="}`)}, Limits{}, ReasonBadBase64, "data: URL"},
		{"content not a string", []json.RawMessage{json.RawMessage(`{"mimeType":"text/plain","content":42}`)}, Limits{}, ReasonBadShape, "base64 string"},
		{"content missing", []json.RawMessage{json.RawMessage(`{"mimeType":"text/plain"}`)}, Limits{}, ReasonBadShape, "base64 string"},
		{"not an object", []json.RawMessage{json.RawMessage(`"aGk="`)}, Limits{}, ReasonBadShape, "must be an object"},
		{"empty", []json.RawMessage{json.RawMessage(`{"mimeType":"text/plain","content":""}`)}, Limits{}, ReasonEmpty, "empty"},
		{"unknown mime", []json.RawMessage{att("file", "application/x-msdownload", "a.exe", []byte("MZ\x90\x00"))}, Limits{}, ReasonUnsupported, "not accepted"},
		{"bad mime", []json.RawMessage{att("file", "not a type", "a", []byte("x"))}, Limits{}, ReasonUnsupported, "not a MIME type"},
		{"unknown bytes", []json.RawMessage{att("file", "", "a.bin", []byte("\x00\x01\x02binary"))}, Limits{}, ReasonUnsupported, "not accepted"},
		{"zip is not docx", []json.RawMessage{att("file", "", "a.zip", zipWith(t, "x.txt"))}, Limits{}, ReasonUnsupported, "application/zip, which is not accepted"},
		{"invalid utf-8 without type", []json.RawMessage{att("file", "", "a.txt", []byte("\xff\xfe\xfd"))}, Limits{}, ReasonUnsupported, "no accepted type"},
		{"png claimed as pdf", []json.RawMessage{att("file", "application/pdf", "a.pdf", pngBytes(t))}, Limits{}, ReasonMismatch, "the bytes are image/png"},
		{"pdf claimed as png", []json.RawMessage{att("image", "image/png", "a.png", []byte(pdfBytes))}, Limits{}, ReasonMismatch, "application/pdf"},
		{"png claimed as text", []json.RawMessage{att("file", "text/plain", "a.txt", pngBytes(t))}, Limits{}, ReasonMismatch, "image/png"},
		{"binary claimed as csv", []json.RawMessage{att("file", "text/csv", "a.csv", []byte("a,\xff\xfe"))}, Limits{}, ReasonMismatch, "not UTF-8 text"},
		{"xlsx claimed as docx", []json.RawMessage{att("file", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a.docx", zipWith(t, "xl/workbook.xml"))}, Limits{}, ReasonMismatch, "spreadsheetml"},
		{"type image for a pdf", []json.RawMessage{att("image", "", "a.pdf", []byte(pdfBytes))}, Limits{}, ReasonMismatch, "type is image"},
		{"bad type", []json.RawMessage{att("video", "text/plain", "a.txt", []byte("x"))}, Limits{}, ReasonBadShape, "want image, file or document"},
		{"slash in name", []json.RawMessage{att("", "text/plain", "../../etc/passwd", []byte("x"))}, Limits{}, ReasonBadName, "path separator"},
		{"backslash in name", []json.RawMessage{att("", "text/plain", `..\x.txt`, []byte("x"))}, Limits{}, ReasonBadName, "path separator"},
		{"dot dot name", []json.RawMessage{att("", "text/plain", "..", []byte("x"))}, Limits{}, ReasonBadName, "not a file name"},
		{"control in name", []json.RawMessage{att("", "text/plain", "a\nb.txt", []byte("x"))}, Limits{}, ReasonBadName, "control"},
		{"long name", []json.RawMessage{att("", "text/plain", strings.Repeat("a", 256), []byte("x"))}, Limits{}, ReasonBadName, "longer than 255"},
		{"six documents", func() []json.RawMessage {
			var l []json.RawMessage
			for range 6 {
				l = append(l, att("", "text/plain", "a.txt", []byte("x")))
			}
			return l
		}(), Limits{MaxBytes: 100, MaxImageBytes: 100, MaxCount: 10, MaxTotalBytes: 1000}, ReasonTooMany, "5 documents"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.list, c.lim)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Decode = %v, %v; want an *Error", got, err)
			}
			if fe.Reason != c.reason || !strings.Contains(fe.Error(), c.msg) {
				t.Errorf("got %s %q; want reason %s containing %q", fe.Reason, fe.Error(), c.reason, c.msg)
			}
		})
	}
}

func TestDocumentName(t *testing.T) {
	used := map[string]bool{}
	cases := []struct{ in, want string }{
		{"Q3 report.v2.pdf", "Q3 report-v2"},
		{"Q3  __ report.pdf", "Q3 report"},
		{"été.pdf", "-t-"},
		{"(draft) [1].docx", "(draft) [1]"},
		{".pdf", "document"},
		{"Q3 report.v2.csv", "Q3 report-v2 (2)"},
	}
	for _, c := range cases {
		if got := DocumentName(c.in, used); got != c.want {
			t.Errorf("DocumentName(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

func TestSaveAndLoad(t *testing.T) {
	ws := t.TempDir()
	atts, err := Decode([]json.RawMessage{att("image", "image/png", "p.png", pngBytes(t)), att("file", "application/pdf", "r.pdf", []byte(pdfBytes))}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := Save(ws, atts, time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].Path == refs[1].Path {
		t.Fatalf("refs = %+v", refs)
	}
	for i, r := range refs {
		if !strings.HasPrefix(r.Path, "inbox/20261206-230000-") || !strings.HasSuffix(r.Path, atts[i].FileName) {
			t.Errorf("path %s", r.Path)
		}
		fi, err := os.Stat(filepath.Join(ws, r.Path))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("stat %s: %v %v", r.Path, fi, err)
		}
		got, err := Load(ws, r)
		if err != nil || !bytes.Equal(got, atts[i].Data) {
			t.Errorf("Load(%s) = %d bytes, %v", r.Path, len(got), err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(ws, InboxDir))
	if len(entries) != 2 {
		t.Errorf("inbox holds %d entries (temp files left?)", len(entries))
	}
	// A changed file is not sent as if it were the original.
	if err := os.WriteFile(filepath.Join(ws, refs[1].Path), []byte(pdfBytes+"x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ws, refs[1]); !errors.Is(err, ErrChanged) {
		t.Errorf("Load of a changed file = %v; want ErrChanged", err)
	}
	os.Remove(filepath.Join(ws, refs[0].Path))
	if _, err := Load(ws, refs[0]); !errors.Is(err, ErrChanged) {
		t.Errorf("Load of a missing file = %v; want ErrChanged", err)
	}
}

func TestSaveRefusesSymlinkedInbox(t *testing.T) {
	ws, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(ws, InboxDir)); err != nil {
		t.Fatal(err)
	}
	atts, _ := Decode([]json.RawMessage{att("", "text/plain", "a.txt", []byte("x"))}, Limits{})
	if _, err := Save(ws, atts, time.Now()); err == nil {
		t.Fatal("Save followed an inbox symlinked out of the workspace")
	}
	if e, _ := os.ReadDir(outside); len(e) != 0 {
		t.Errorf("files written outside the workspace: %v", e)
	}
}

func TestOpenDownload(t *testing.T) {
	base := t.TempDir()
	ws := filepath.Join(base, "ws")
	state := filepath.Join(ws, "state")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{ws, state, outside, filepath.Join(ws, "sub")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(ws, "sub", "ok.txt"), "fine")
	write(filepath.Join(outside, "secret.txt"), "secret")
	write(filepath.Join(state, "devices.json"), "{}")
	cfg := filepath.Join(ws, "skykoi.json")
	write(cfg, "{}")
	os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(ws, "out-link"))
	os.Symlink("../outside", filepath.Join(ws, "out-dir"))
	os.Symlink("sub/ok.txt", filepath.Join(ws, "in-link"))
	os.Symlink("state", filepath.Join(ws, "state-link"))
	os.Symlink("skykoi.json", filepath.Join(ws, "cfg-link"))
	if err := syscall.Mkfifo(filepath.Join(ws, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	protected := []string{cfg, state}
	cases := []struct {
		path string
		want error // nil: served
		body string
	}{
		{"sub/ok.txt", nil, "fine"},
		{"in-link", nil, "fine"},
		{"../outside/secret.txt", ErrEscape, ""},
		{"sub/../../outside/secret.txt", ErrEscape, ""},
		{"out-link", ErrEscape, ""},
		{"out-dir/secret.txt", ErrEscape, ""},
		{"/etc/passwd", ErrBadPath, ""},
		{"sub//ok.txt", ErrBadPath, ""},
		{"./sub/ok.txt", ErrBadPath, ""},
		{"", ErrBadPath, ""},
		{"a\x00b", ErrBadPath, ""},
		{"skykoi.json", ErrProtected, ""},
		{"cfg-link", ErrProtected, ""},
		{"state/devices.json", ErrProtected, ""},
		{"state-link/devices.json", ErrProtected, ""},
		{"sub", ErrNotFile, ""},
		{"fifo", ErrNotFile, ""},
		{"missing.txt", ErrNotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			o, err := OpenDownload(ws, c.path, protected)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("OpenDownload(%q) = %v; want %v", c.path, err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			Serve(rec, httptest.NewRequest(http.MethodGet, "/files/"+c.path, nil), o)
			if rec.Body.String() != c.body {
				t.Errorf("body %q", rec.Body.String())
			}
			h := rec.Header()
			if h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment;") ||
				!strings.HasPrefix(h.Get("Content-Type"), "text/plain") || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("headers %v", h)
			}
		})
	}
}

func TestContentType(t *testing.T) {
	cases := []struct {
		name string
		head []byte
		want string
	}{
		{"a.pdf", nil, "application/pdf"},
		{"a.PNG", nil, "image/png"},
		{"noext", pngBytes(t), "image/png"},
		{"noext", nil, "application/octet-stream"},
		{"a.html", nil, "text/html; charset=utf-8"},
	}
	for _, c := range cases {
		if got := ContentType(c.name, c.head); got != c.want {
			t.Errorf("ContentType(%s) = %s; want %s", c.name, got, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(att("image", "image/png", "p.png", pngBytes(f))))
	f.Add([]byte(att("file", "application/pdf", "a/b.pdf", []byte(pdfBytes))))
	f.Add([]byte(`{"mimeType":"text/plain","content":"aGk"}`))
	f.Add([]byte(`{"content":"UEsDBA=="}`))
	f.Add([]byte(`{"type":"image","content":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		atts, err := Decode([]json.RawMessage{in}, Limits{MaxBytes: 1 << 16, MaxImageBytes: 1 << 16, MaxCount: 1, MaxTotalBytes: 1 << 16})
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		a := atts[0]
		if strings.ContainsAny(a.FileName, `/\`) || strings.HasPrefix(a.FileName, ".") || len(a.FileName) > 200 {
			t.Errorf("unsafe stored name %q", a.FileName)
		}
		if _, ok := formatOf(a.MimeType); !ok || len(a.Data) == 0 {
			t.Errorf("accepted %q with %d bytes", a.MimeType, len(a.Data))
		}
		if a.Kind == KindDocument {
			n := DocumentName(a.FileName, nil)
			for _, r := range n {
				if !(r < 128 && (r == ' ' || r == '-' || r == '(' || r == ')' || r == '[' || r == ']' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')) {
					t.Errorf("document name %q has %q", n, r)
				}
			}
			if strings.Contains(n, "  ") {
				t.Errorf("document name %q has two spaces in a row", n)
			}
		}
	})
}

func FuzzOpenDownload(f *testing.F) {
	base := f.TempDir()
	ws := filepath.Join(base, "ws")
	os.MkdirAll(filepath.Join(ws, "d"), 0o700)
	os.WriteFile(filepath.Join(ws, "d", "f.txt"), []byte("in"), 0o600)
	os.WriteFile(filepath.Join(base, "secret"), []byte("out"), 0o600)
	os.Symlink("../secret", filepath.Join(ws, "link"))
	for _, s := range []string{"d/f.txt", "../secret", "link", "d/../../secret", "/etc/passwd", "d/./f.txt", "%2e%2e/secret", "d\\..\\..\\secret"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		o, err := OpenDownload(ws, p, nil)
		if err != nil {
			return
		}
		defer o.File.Close()
		b, _ := io.ReadAll(o.File)
		if string(b) != "in" {
			t.Fatalf("OpenDownload(%q) served %q, which is not the one file inside the workspace", p, b)
		}
	})
}

// A state directory that holds the workspace does not block the workspace.
func TestOpenDownloadWorkspaceInState(t *testing.T) {
	state := t.TempDir()
	ws := filepath.Join(state, "koi")
	os.MkdirAll(ws, 0o700)
	os.WriteFile(filepath.Join(ws, "a.txt"), []byte("a"), 0o600)
	os.WriteFile(filepath.Join(state, "devices.json"), []byte("{}"), 0o600)
	os.Symlink("../devices.json", filepath.Join(ws, "dev"))
	o, err := OpenDownload(ws, "a.txt", []string{state})
	if err != nil {
		t.Fatalf("OpenDownload: %v", err)
	}
	o.File.Close()
	if _, err := OpenDownload(ws, "dev", []string{state}); !errors.Is(err, ErrEscape) {
		t.Errorf("a link to the state directory's devices file: %v; want ErrEscape", err)
	}
}

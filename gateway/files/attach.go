// Package files moves files in and out of a Koi: chat attachments decoded,
// checked and saved under the workspace's inbox, read back when the history
// is replayed to the model, and workspace files served for download.
//
// Nothing here knows the wire protocol or Bedrock's SDK types; the gateway
// maps Error to protocol errors and the agent maps Attachment to model
// blocks.
package files

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits bound what one message may carry. The defaults are Amazon
// Bedrock's own Converse limits (an image at most 3.75 MB, a document at
// most 4.5 MB, at most 5 documents per request): a larger file would be
// accepted here only to be refused by the model later, mid-run.
type Limits struct {
	MaxBytes      int `json:"maxBytes"`      // decoded size of one non-image attachment
	MaxImageBytes int `json:"maxImageBytes"` // decoded size of one image
	MaxCount      int `json:"maxCount"`      // attachments per message
	MaxTotalBytes int `json:"maxTotalBytes"` // decoded size of all of one message's attachments
}

// Bedrock's Converse limits, and what a message may carry so its base64
// still fits the 25 MiB frame with room for the text.
const (
	BedrockMaxImageBytes    = 3_750_000
	BedrockMaxDocumentBytes = 4_500_000
	BedrockMaxImages        = 20
	BedrockMaxDocuments     = 5
	defaultMaxCount         = 10
	defaultMaxTotalBytes    = 16 << 20
)

// DefaultLimits are the limits hello-ok advertises as policy.attachments.
func DefaultLimits() Limits {
	return Limits{MaxBytes: BedrockMaxDocumentBytes, MaxImageBytes: BedrockMaxImageBytes,
		MaxCount: defaultMaxCount, MaxTotalBytes: defaultMaxTotalBytes}
}

// Kinds of attachment: they become Bedrock image or document blocks.
const (
	KindImage    = "image"
	KindDocument = "document"
)

// Attachment is one checked attachment, ready to be saved.
type Attachment struct {
	Kind     string // KindImage or KindDocument
	MimeType string // canonical, e.g. "image/png"
	Format   string // Bedrock's format name: png, jpeg, gif, webp, pdf, csv, doc, docx, xls, xlsx, html, txt, md
	FileName string // sanitised, ends in the format's extension
	Data     []byte
}

// Error is a refused attachment; Reason is a stable code clients can act on.
type Error struct {
	Index  int    // which attachment, from 0; -1 for the list as a whole
	Reason string // one of the Reason* codes
	Msg    string
}

// Refusal reasons.
const (
	ReasonTooMany     = "too_many"
	ReasonTooLarge    = "too_large"
	ReasonBadBase64   = "bad_base64"
	ReasonEmpty       = "empty"
	ReasonUnsupported = "unsupported_type"
	ReasonMismatch    = "type_mismatch"
	ReasonBadName     = "bad_file_name"
	ReasonBadShape    = "bad_shape"
)

func (e *Error) Error() string {
	if e.Index < 0 {
		return "attachments: " + e.Msg
	}
	return fmt.Sprintf("attachments[%d]: %s", e.Index, e.Msg)
}

// format describes one accepted type.
type format struct {
	mime, name, ext, kind string
	text                  bool // checked as UTF-8 text rather than by signature
}

var formats = []format{
	{"image/png", "png", ".png", KindImage, false},
	{"image/jpeg", "jpeg", ".jpg", KindImage, false},
	{"image/gif", "gif", ".gif", KindImage, false},
	{"image/webp", "webp", ".webp", KindImage, false},
	{"application/pdf", "pdf", ".pdf", KindDocument, false},
	{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", ".docx", KindDocument, false},
	{"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", ".xlsx", KindDocument, false},
	{"application/msword", "doc", ".doc", KindDocument, false},
	{"application/vnd.ms-excel", "xls", ".xls", KindDocument, false},
	{"text/csv", "csv", ".csv", KindDocument, true},
	{"text/html", "html", ".html", KindDocument, true},
	{"text/markdown", "md", ".md", KindDocument, true},
	{"text/plain", "txt", ".txt", KindDocument, true},
}

// aliases are other names clients and browsers use for the types above.
var aliases = map[string]string{
	"image/jpg":                   "image/jpeg",
	"image/pjpeg":                 "image/jpeg",
	"text/x-markdown":             "text/markdown",
	"application/csv":             "text/csv",
	"text/comma-separated-values": "text/csv",
	"application/xhtml+xml":       "text/html",
}

// textExt picks the text type of an attachment sent without a MIME type.
var textExt = map[string]string{
	".csv": "text/csv", ".md": "text/markdown", ".markdown": "text/markdown",
	".html": "text/html", ".htm": "text/html", ".txt": "text/plain",
}

func formatOf(mimeType string) (format, bool) {
	for _, f := range formats {
		if f.mime == mimeType {
			return f, true
		}
	}
	return format{}, false
}

// MimeTypes lists the accepted MIME types, for error messages and docs.
func MimeTypes() []string {
	out := make([]string, len(formats))
	for i, f := range formats {
		out[i] = f.mime
	}
	return out
}

// raw is OpenClaw's attachment shape. Other fields (origin, sizeBytes,
// width, …) are allowed and ignored: the bytes are what is checked.
type raw struct {
	Type     string  `json:"type"`
	MimeType string  `json:"mimeType"`
	FileName string  `json:"fileName"`
	Content  *string `json:"content"`
}

// maxFileName bounds a file name as sent (NAME_MAX).
const maxFileName = 255

// Decode checks every attachment of one message and returns them decoded,
// or the first refusal. It stores nothing.
func Decode(list []json.RawMessage, lim Limits) ([]Attachment, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits()
	}
	if len(list) > lim.MaxCount {
		return nil, &Error{-1, ReasonTooMany, fmt.Sprintf("%d attachments; at most %d per message", len(list), lim.MaxCount)}
	}
	var out []Attachment
	total, images, docs := 0, 0, 0
	for i, r := range list {
		a, err := decodeOne(i, r, lim)
		if err != nil {
			return nil, err
		}
		total += len(a.Data)
		if total > lim.MaxTotalBytes {
			return nil, &Error{-1, ReasonTooLarge, fmt.Sprintf("together the attachments are larger than %s; send fewer or smaller files", human(lim.MaxTotalBytes))}
		}
		if a.Kind == KindImage {
			images++
		} else {
			docs++
		}
		if images > BedrockMaxImages || docs > BedrockMaxDocuments {
			return nil, &Error{-1, ReasonTooMany, fmt.Sprintf("at most %d images and %d documents per message (the model's limit)", BedrockMaxImages, BedrockMaxDocuments)}
		}
		out = append(out, a)
	}
	return out, nil
}

func decodeOne(i int, r json.RawMessage, lim Limits) (Attachment, error) {
	fail := func(reason, msg string, args ...any) (Attachment, error) {
		return Attachment{}, &Error{i, reason, fmt.Sprintf(msg, args...)}
	}
	// One decode straight into a string: the content is megabytes, and
	// every extra pass over it shows in the time to accept a message.
	var p raw
	if err := json.Unmarshal(r, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "content" {
			return fail(ReasonBadShape, "content must be the file's bytes as a base64 string")
		}
		return fail(ReasonBadShape, "must be an object {type, mimeType, fileName, content}: %v", err)
	}
	if p.Content == nil {
		return fail(ReasonBadShape, "content must be the file's bytes as a base64 string")
	}
	content := *p.Content
	switch p.Type {
	case "", KindImage, "file", KindDocument:
	default:
		return fail(ReasonBadShape, "type %q: want image, file or document (or leave it out)", clip(p.Type))
	}
	// The decoded size is known before decoding: refuse a huge string
	// without allocating its bytes.
	ceiling := max(lim.MaxBytes, lim.MaxImageBytes)
	if base64.StdEncoding.DecodedLen(len(content)) > ceiling+2 {
		return fail(ReasonTooLarge, "the file is larger than %s; the largest accepted is %s (%s for images)", human(base64.StdEncoding.DecodedLen(len(content))), human(lim.MaxBytes), human(lim.MaxImageBytes))
	}
	data, err := decodeBase64(content)
	if err != nil {
		return fail(ReasonBadBase64, "content is not valid base64 (standard alphabet, padded, no data: prefix): %v", err)
	}
	if len(data) == 0 {
		return fail(ReasonEmpty, "the file is empty")
	}
	name, err := checkName(p.FileName)
	if err != nil {
		return fail(ReasonBadName, "%v", err)
	}
	claimed := ""
	if p.MimeType != "" {
		mt, _, err := mime.ParseMediaType(p.MimeType)
		if err != nil {
			return fail(ReasonUnsupported, "mimeType %q is not a MIME type", clip(p.MimeType))
		}
		if a, ok := aliases[mt]; ok {
			mt = a
		}
		if mt != "application/octet-stream" { // what browsers say when they do not know
			claimed = mt
		}
	}
	sniffed := sniff(data)
	var f format
	switch {
	case claimed != "":
		var ok bool
		if f, ok = formatOf(claimed); !ok {
			return fail(ReasonUnsupported, "type %s is not accepted; send one of %s", claimed, strings.Join(MimeTypes(), ", "))
		}
		if f.text {
			if sniffed != "" {
				return fail(ReasonMismatch, "claimed %s, but the bytes are %s", claimed, sniffed)
			}
			if !isText(data) {
				return fail(ReasonMismatch, "claimed %s, but the bytes are not UTF-8 text", claimed)
			}
		} else if sniffed != claimed && !(oleCompatible(claimed) && sniffed == oleType) {
			what := sniffed
			if what == "" {
				what = "not a file of that type"
			}
			return fail(ReasonMismatch, "claimed %s, but the bytes are %s", claimed, what)
		}
	case sniffed == oleType:
		// Word and Excel 97 files share one container; the name decides.
		if strings.EqualFold(path.Ext(name), ".xls") {
			f, _ = formatOf("application/vnd.ms-excel")
		} else {
			f, _ = formatOf("application/msword")
		}
	case sniffed != "":
		var ok bool
		if f, ok = formatOf(sniffed); !ok {
			return fail(ReasonUnsupported, "the bytes are %s, which is not accepted; send one of %s", sniffed, strings.Join(MimeTypes(), ", "))
		}
	case isText(data):
		mt := textExt[strings.ToLower(path.Ext(name))]
		if mt == "" {
			mt = "text/plain"
		}
		f, _ = formatOf(mt)
	default:
		return fail(ReasonUnsupported, "the bytes are of no accepted type; send one of %s", strings.Join(MimeTypes(), ", "))
	}
	if p.Type == KindImage && f.kind != KindImage {
		return fail(ReasonMismatch, "type is image, but the file is %s", f.mime)
	}
	limit := lim.MaxBytes
	if f.kind == KindImage {
		limit = lim.MaxImageBytes
	}
	if len(data) > limit {
		return fail(ReasonTooLarge, "the %s is %s; the largest accepted is %s", f.mime, human(len(data)), human(limit))
	}
	return Attachment{Kind: f.kind, MimeType: f.mime, Format: f.name, FileName: storedName(name, f), Data: data}, nil
}

// decodeBase64 takes standard base64, padded or not. A data: URL prefix is
// refused rather than stripped: the MIME type belongs in mimeType.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		return nil, errors.New("starts with a data: URL prefix; send only the base64 after the comma")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return nil, errors.New("contains whitespace")
	}
	if len(s)%4 != 0 {
		return base64.RawStdEncoding.Strict().DecodeString(s)
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// oleType is what sniff calls an OLE2 compound file (Word 97, Excel 97).
const oleType = "application/x-ole-storage"

func oleCompatible(mt string) bool {
	return mt == "application/msword" || mt == "application/vnd.ms-excel"
}

// sniff names the binary type data starts with, "" for none. Office Open
// XML files are zips told apart by the part they must contain.
func sniff(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "image/gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "image/webp"
	case bytes.HasPrefix(data, []byte("%PDF-")):
		return "application/pdf"
	case bytes.HasPrefix(data, []byte("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1")):
		return oleType
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return "application/zip"
		}
		for _, f := range zr.File {
			switch f.Name {
			case "word/document.xml":
				return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
			case "xl/workbook.xml":
				return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
			}
		}
		return "application/zip"
	}
	if bytes.IndexByte(data[:min(len(data), 8192)], 0) >= 0 {
		return "application/octet-stream"
	}
	return ""
}

// isText: UTF-8 without NUL bytes or other control characters than
// whitespace (a UTF-8 BOM is fine).
func isText(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' && r != '\f' || r == 0x7f {
			return false
		}
	}
	return true
}

// checkName refuses names that try to be paths; it does not change them.
func checkName(n string) (string, error) {
	switch {
	case n == "":
		return "", nil
	case len(n) > maxFileName:
		return "", fmt.Errorf("fileName is longer than %d bytes", maxFileName)
	case !utf8.ValidString(n):
		return "", errors.New("fileName is not valid UTF-8")
	case strings.ContainsAny(n, `/\`):
		return "", fmt.Errorf("fileName %q contains a path separator; send the bare name", clip(n))
	case n == "." || n == ".." || strings.Trim(n, ". ") == "":
		return "", fmt.Errorf("fileName %q is not a file name", clip(n))
	}
	for _, r := range n {
		if unicode.IsControl(r) {
			return "", errors.New("fileName contains control characters")
		}
	}
	return n, nil
}

// storedName is a safe name for the inbox: letters, digits and ".-_()"
// (anything else becomes "_"), no leading dot, ending in the format's
// extension so what opens it later knows the type.
func storedName(n string, f format) string {
	ext := path.Ext(n)
	stem := strings.TrimSuffix(n, ext)
	if !sameExt(ext, f) {
		stem = n // keep what it claimed to be, visibly: "x.exe" → "x.exe.png"
	}
	var b strings.Builder
	for _, r := range stem {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), strings.ContainsRune("-_()", r):
			b.WriteRune(r)
		case r == '.':
			b.WriteByte('.')
		default:
			b.WriteByte('_')
		}
	}
	s := strings.Trim(b.String(), "._")
	if s == "" {
		s = "attachment"
	}
	const maxStem = 120 // the inbox adds a prefix; stay far below NAME_MAX
	for len(s) > maxStem {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	e := f.ext
	if sameExt(ext, f) {
		e = strings.ToLower(ext)
	}
	return s + e
}

func sameExt(ext string, f format) bool {
	ext = strings.ToLower(ext)
	if ext == f.ext {
		return true
	}
	switch f.name {
	case "jpeg":
		return ext == ".jpeg"
	case "md":
		return ext == ".markdown"
	case "html":
		return ext == ".htm"
	}
	return false
}

// DocumentName is a Bedrock document name for a file name: Bedrock allows
// only letters and digits, single spaces, hyphens, parentheses and square
// brackets, so "Q3 report.v2.pdf" becomes "Q3 report-v2". used holds the
// names already given in the same request (Bedrock refuses duplicates) and
// is updated.
func DocumentName(fileName string, used map[string]bool) string {
	stem := strings.TrimSuffix(fileName, path.Ext(fileName))
	var b strings.Builder
	space := false
	for _, r := range stem {
		ok := r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) || strings.ContainsRune("-()[]", r)
		switch {
		case ok:
			b.WriteRune(r)
			space = false
		case r == ' ' || r == '_':
			if !space {
				b.WriteByte(' ')
			}
			space = true
		default:
			b.WriteByte('-')
			space = false
		}
	}
	s := strings.TrimSpace(b.String())
	if len(s) > 100 {
		s = strings.TrimSpace(s[:100])
	}
	if s == "" {
		s = "document"
	}
	name := s
	for n := 2; used[name]; n++ {
		name = fmt.Sprintf("%s (%d)", s, n)
	}
	if used != nil {
		used[name] = true
	}
	return name
}

// human is a size for messages: "3.8 MB".
func human(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}

// clip bounds echoed input in messages.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	i := 80
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Lookup gives the kind and Bedrock format of an accepted MIME type.
func Lookup(mimeType string) (kind, format string, ok bool) {
	f, ok := formatOf(mimeType)
	return f.kind, f.name, ok
}

// Human is a size for people: "3.8 MB".
func Human(n int64) string { return human(int(n)) }

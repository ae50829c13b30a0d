package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

// testPNG is a real 1×1 PNG.
var testPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

const testPDF = "%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func inboxFiles(t *testing.T, ws string) []string {
	t.Helper()
	e, err := os.ReadDir(filepath.Join(ws, "inbox"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, x := range e {
		out = append(out, x.Name())
	}
	return out
}

// An image and a PDF sent with chat.send reach Bedrock as an image and a
// document block, are saved in the inbox, and the transcript keeps only
// references; the next turn sends them again from the inbox.
func TestChatSendAttachments(t *testing.T) {
	ts, fake := agentServer(t)
	ws := filepath.Join(ts.dir, "koi")
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("I see a dot and a report.")})
	c, hello := dialConnected(t, ts)
	if a := hello.Policy.Attachments; a == nil || a.MaxImageBytes != 3_750_000 || a.MaxBytes != 4_500_000 || a.MaxCount < 2 {
		t.Fatalf("hello-ok policy.attachments = %+v", hello.Policy.Attachments)
	}
	r := c.call("chat.send", map[string]any{"sessionKey": "main", "message": "what are these?", "idempotencyKey": "att-1",
		"attachments": []map[string]any{
			{"type": "image", "mimeType": "image/png", "fileName": "dot.png", "content": b64(testPNG)},
			{"type": "file", "mimeType": "application/pdf", "fileName": "Q3 report.pdf", "content": b64([]byte(testPDF))},
		}})
	if !r.OK {
		t.Fatalf("chat.send: %+v", r.Error)
	}
	collectRun(t, c, "att-1")
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	imgs, docs := reqs[0].Images(), reqs[0].Documents()
	if len(imgs) != 1 || imgs[0].Format != "png" || !bytes.Equal(imgs[0].Source.Bytes, testPNG) {
		t.Errorf("images %+v", imgs)
	}
	if len(docs) != 1 || docs[0].Format != "pdf" || docs[0].Name != "Q3 report" || string(docs[0].Source.Bytes) != testPDF {
		t.Errorf("documents %+v", docs)
	}
	if got := inboxFiles(t, ws); len(got) != 2 {
		t.Fatalf("inbox %v", got)
	}
	hist := c.call("chat.history", map[string]any{"sessionKey": "main"})
	var hv struct {
		Messages []session.Message `json:"messages"`
	}
	_ = json.Unmarshal(hist.Payload, &hv)
	if bytes.Contains(hist.Payload, []byte(b64(testPNG))) {
		t.Error("the transcript holds the image's bytes")
	}
	var refs []session.Content
	for _, cc := range hv.Messages[0].Content {
		if cc.Type == "attachment" {
			refs = append(refs, cc)
		}
	}
	if len(refs) != 2 || refs[0].MimeType != "image/png" || refs[0].Size != int64(len(testPNG)) || len(refs[0].SHA256) != 64 ||
		!strings.HasPrefix(refs[1].Path, "inbox/") || !strings.HasSuffix(refs[1].Path, "Q3_report.pdf") {
		t.Fatalf("references %+v", refs)
	}
	fi, err := os.Stat(filepath.Join(ws, refs[0].Path))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved image: %v %v", fi, err)
	}
	// The next turn re-reads the files.
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "and now?", "idempotencyKey": "att-2"})
	collectRun(t, c, "att-2")
	reqs = fake.Requests()
	if n := len(reqs[len(reqs)-1].Images()); n != 1 {
		t.Errorf("second turn sent %d images", n)
	}
}

// Bad attachments get specific errors, nothing is saved or recorded, and
// the gateway keeps serving.
func TestAttachmentBadInput(t *testing.T) {
	ts, fake := agentServer(t)
	ws := filepath.Join(ts.dir, "koi")
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("ok")})
	c, _ := dialConnected(t, ts)
	big := b64(bytes.Repeat([]byte("a"), 4_600_000))
	cases := []struct {
		name   string
		att    map[string]any
		reason string
		msg    string
	}{
		{"oversized", map[string]any{"mimeType": "text/plain", "fileName": "a.txt", "content": big}, "too_large", "largest accepted"},
		{"corrupt base64", map[string]any{"mimeType": "image/png", "content": "iVBOR*w0K"}, "bad_base64", "not valid base64"},
		{"unknown mime", map[string]any{"mimeType": "application/x-sh", "fileName": "x.sh", "content": b64([]byte("#!/bin/sh\n"))}, "unsupported_type", "not accepted"},
		{"png claimed as pdf", map[string]any{"mimeType": "application/pdf", "fileName": "x.pdf", "content": b64(testPNG)}, "type_mismatch", "image/png"},
		{"path in name", map[string]any{"mimeType": "text/plain", "fileName": "../../.bashrc", "content": b64([]byte("x"))}, "bad_file_name", "path separator"},
	}
	for _, m := range []string{"chat.send", "agent"} {
		for i, cs := range cases {
			t.Run(m+"/"+cs.name, func(t *testing.T) {
				p := map[string]any{"message": "see", "idempotencyKey": m + cs.name, "attachments": []any{cs.att}}
				if m == "chat.send" {
					p["sessionKey"] = "main"
				}
				r := c.call(m, p)
				if r.OK || r.Error.Code != protocol.CodeInvalidRequest || !strings.Contains(r.Error.Message, cs.msg) {
					t.Fatalf("case %d: got ok=%v %+v; want %q", i, r.OK, r.Error, cs.msg)
				}
				if d, _ := r.Error.Details.(map[string]any); d["reason"] != cs.reason {
					t.Errorf("details %v; want reason %s", r.Error.Details, cs.reason)
				}
			})
		}
	}
	if got := inboxFiles(t, ws); len(got) != 0 {
		t.Errorf("refused attachments left files: %v", got)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d model requests for refused messages", n)
	}
	if _, ok := ts.sessions.Get(session.MainKey); ok {
		if _, msgs, _ := ts.sessions.History(session.MainKey, 10); len(msgs) != 0 {
			t.Errorf("refused messages were recorded: %+v", msgs)
		}
	}
	// Still serving.
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "hi", "idempotencyKey": "after"})
	collectRun(t, c, "after")
}

func download(t *testing.T, ts *testServer, path, secret string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.http+path, nil)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestDownloads(t *testing.T) {
	ts := startServer(t)
	ws := filepath.Join(ts.dir, "koi")
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(ws, "out"), 0o700)
	os.WriteFile(filepath.Join(ws, "out", "report.pdf"), []byte(testPDF), 0o600)
	os.WriteFile(filepath.Join(ws, "page.html"), []byte("<script>alert(1)</script>"), 0o600)
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("TOPSECRET-CONTENT"), 0o600)
	os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(ws, "escape"))
	os.Symlink(filepath.Join(ts.dir, "skykoi.json"), filepath.Join(ws, "cfg"))
	cases := []struct {
		name, path, secret string
		hdr                map[string]string
		status             int
		body               string
	}{
		{"served", "/files/out/report.pdf", testToken, nil, 200, testPDF},
		{"escaped name", "/files/out/report%2Epdf", testToken, nil, 200, testPDF},
		{"no secret", "/files/out/report.pdf", "", nil, 401, ""},
		{"wrong secret", "/files/out/report.pdf", "nope", nil, 401, ""},
		{"traversal", "/files/../skykoi.json", testToken, nil, 403, ""},
		{"encoded traversal", "/files/%2e%2e/skykoi.json", testToken, nil, 403, ""},
		{"symlink escape", "/files/escape", testToken, nil, 403, ""},
		{"config through a link", "/files/cfg", testToken, nil, 403, ""},
		{"directory", "/files/out", testToken, nil, 400, ""},
		{"missing", "/files/nope.txt", testToken, nil, 404, ""},
		{"foreign host", "/files/out/report.pdf", testToken, map[string]string{"Host": "evil.example"}, 421, ""},
		{"foreign origin", "/files/out/report.pdf", testToken, map[string]string{"Origin": "http://evil.example"}, 403, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.http+c.path, nil)
			if c.secret != "" {
				req.Header.Set("Authorization", "Bearer "+c.secret)
			}
			for k, v := range c.hdr {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d (%s); want %d", resp.StatusCode, b, c.status)
			}
			if c.status == 200 {
				if string(b) != c.body || resp.Header.Get("Content-Type") != "application/pdf" ||
					resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="report.pdf"`) {
					t.Errorf("body %q headers %v", b, resp.Header)
				}
			}
			if bytes.Contains(b, []byte("TOPSECRET")) && c.status != 200 {
				t.Errorf("refusal leaked the file: %s", b)
			}
		})
	}
	// HTML is downloaded, never run on the gateway's origin.
	resp, _ := download(t, ts, "/files/page.html", testToken, nil)
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("html headers %v", resp.Header)
	}
	if strings.Contains(ts.logs.String(), testToken) {
		t.Error("the token reached the log")
	}
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestBrowserFiles: in the real Chromium, an image chosen with the file
// picker and a PDF dropped on the composer go with one message and reach the
// fake Bedrock as an image and a document block; a file the agent then
// writes downloads from the link the page shows, with its exact bytes.
func TestBrowserFiles(t *testing.T) {
	chromium := chromiumPath(t)
	ts, fake := agentServer(t)
	ws := filepath.Join(ts.dir, "koi")
	browserCtx := startBrowser(t, chromium, "")
	tb := newTab(t, browserCtx)

	const written = "summary line 1\nsummary line 2 ✓\n"
	args, _ := json.Marshal(map[string]string{"path": "out/summary.txt", "content": written})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("w1", "write", string(args)), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("I wrote `out/summary.txt` for you.")})

	tb.do("opening the page", chromedp.Navigate(ts.http+"/#token="+testToken))
	tb.waitJS("the page to connect", jsConnected)

	dir := t.TempDir()
	img := filepath.Join(dir, "dot.png")
	if err := os.WriteFile(img, testPNG, 0o600); err != nil {
		t.Fatal(err)
	}
	tb.do("choosing an image with the file picker", chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{img}))
	tb.waitJS("the image to be listed", `document.querySelectorAll("#attachments li").length === 1`)
	// A drop as the browser delivers it: a DataTransfer holding a File.
	pdfJSON, _ := json.Marshal(testPDF)
	evalJS[chromedp.Void](tb, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([`+string(pdfJSON)+`], "Q3 report.pdf", {type: "application/pdf"}));
		const c = document.getElementById("composer");
		c.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
		c.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`)
	tb.waitJS("the PDF to be listed", `document.querySelectorAll("#attachments li").length === 2`)
	tb.send("What is in these?")
	tb.waitJS("the answer", jsLastAnswer+`.includes("I wrote")`)

	reqs := fake.Requests()
	if len(reqs) == 0 {
		t.Fatal("no model request")
	}
	first := reqs[0]
	imgs, docs := first.Images(), first.Documents()
	if len(imgs) != 1 || imgs[0].Format != "png" || !bytes.Equal(imgs[0].Source.Bytes, testPNG) {
		t.Errorf("image blocks %+v", imgs)
	}
	if len(docs) != 1 || docs[0].Format != "pdf" || docs[0].Name != "Q3 report" || string(docs[0].Source.Bytes) != testPDF {
		t.Errorf("document blocks %+v", docs)
	}
	if got, err := os.ReadFile(filepath.Join(ws, "out", "summary.txt")); err != nil || string(got) != written {
		t.Fatalf("the agent's file: %q %v", got, err)
	}

	// The write tool's link (and the mention in the answer) download it.
	tb.waitJS("a download link", `document.querySelector('#messages .msg.assistant .file-link[data-path="out/summary.txt"]') !== null`)
	if n := evalJS[int](tb, `document.querySelectorAll('#messages .msg.assistant .file-link[data-path="out/summary.txt"]').length`); n != 1 {
		t.Errorf("%d links for one file; want one", n)
	}
	downloads := t.TempDir()
	tb.do("allowing downloads", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
		return err
	}))
	tb.do("clicking the download link", chromedp.Click(chromedp.CSS(`#messages .msg.assistant .file-link`)))
	tb.waitJS("the download to finish", `document.querySelector('#messages .file-link').dataset.state === "downloaded"`)
	deadline := time.Now().Add(patience(t))
	for {
		got, err := os.ReadFile(filepath.Join(downloads, "summary.txt"))
		if err == nil && string(got) == written {
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(downloads)
			t.Fatalf("downloaded %q (%v); dir %v", got, err, entries)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// After a reload the history shows the sent files and the link again.
	tb.do("reloading", chromedp.Reload())
	tb.waitJS("the page to reconnect", jsConnected)
	tb.waitJS("the history's files", `document.querySelectorAll("#messages .msg.user .sent-file").length === 2 &&
		document.querySelector('#messages .file-link[data-path="out/summary.txt"]') !== null`)
	tb.checkClean()
}

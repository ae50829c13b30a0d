package gateway

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// chatAndWait runs one message to its end through a WebSocket client, so
// the session exists on the gateway with a transcript.
func chatAndWait(t *testing.T, ts *testServer, fake *bedrocktest.Server, key, message, answer string) {
	t.Helper()
	c, _ := dialConnected(t, ts)
	defer c.ws.Close()
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text(answer)})
	id := "run-" + strings.NewReplacer(":", "-").Replace(key)
	res := c.call("chat.send", map[string]any{"sessionKey": key, "message": message, "idempotencyKey": id})
	if !res.OK {
		t.Fatalf("chat.send: %+v", res.Error)
	}
	if last := lastChat(t, c, id); last.State != "final" {
		t.Fatalf("run in %s ended %q: %s", key, last.State, last.ErrorMessage)
	}
}

// setConfigBox edits the settings box as a person would (an input event),
// with a JS expression that turns the parsed config o into the new one.
func setConfigBox(tb *tab, edit string) {
	tb.t.Helper()
	evalJS[chromedp.Void](tb, `(() => {
		const ta = document.getElementById("config-text");
		const o = JSON.parse(ta.value);
		`+edit+`;
		ta.value = JSON.stringify(o, null, 2);
		ta.dispatchEvent(new Event("input", {bubbles: true}));
	})()`)
}

// TestBrowserOwnerSettings: the owner edits the config through config.set,
// sees the validator's issues inline with the file left alone, saves a
// fixed config, and resets and deletes sessions from the settings view.
func TestBrowserOwnerSettings(t *testing.T) {
	ts, fake := agentServer(t)
	chatAndWait(t, ts, fake, "agent:main:keep", "first", "one")
	chatAndWait(t, ts, fake, "agent:main:gone", "second", "two")
	keepBefore, _ := ts.sessions.Get("agent:main:keep")

	tb := newTab(t, startBrowser(t, chromiumPath(t), "MAP koi.test 127.0.0.1"))
	tb.do("opening the page", chromedp.Navigate(ts.http+"/#token="+testToken))
	tb.waitJS("the page to connect", jsConnected)
	tb.do("opening the settings", chromedp.Click(chromedp.ID("settings-toggle")))
	tb.waitJS("the current config", `document.getElementById("config-text").value.includes('"workspace"')`)
	if hidden := evalJS[bool](tb, `document.getElementById("messages").hidden && document.getElementById("composer").hidden`); !hidden {
		t.Error("the chat is still shown under the settings")
	}
	if p := evalJS[string](tb, `document.getElementById("config-path").textContent`); p != ts.opts.ConfigPath {
		t.Errorf("config path shown as %q, want %q", p, ts.opts.ConfigPath)
	}

	before, err := os.ReadFile(ts.opts.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// An invalid value: shown inline, the typed text kept, the file alone.
	setConfigBox(tb, `o.logging = {level: "loud"}`)
	typed := evalJS[string](tb, `document.getElementById("config-text").value`)
	tb.do("saving the invalid config", chromedp.Click(chromedp.ID("config-save")))
	tb.waitJS("the inline issue", `[...document.querySelectorAll("#config-issues .issue")].some(li => li.textContent.startsWith("logging.level: "))`)
	if got := evalJS[string](tb, `document.getElementById("config-text").value`); got != typed {
		t.Errorf("a failed save changed the text in the box:\n%s\nwant\n%s", got, typed)
	}
	if st := evalJS[string](tb, `document.getElementById("config-status").textContent`); !strings.HasPrefix(st, "Not saved") {
		t.Errorf("status after a refused save: %q", st)
	}
	if after, _ := os.ReadFile(ts.opts.ConfigPath); !bytes.Equal(after, before) {
		t.Fatalf("a refused save changed the file:\n%s", after)
	}
	tb.screenshot("webchat-settings-invalid.png")

	// Fixed: saved, the file changed, the redacted secrets kept.
	setConfigBox(tb, `o.logging = {level: "warn"}`)
	tb.do("saving the fixed config", chromedp.Click(chromedp.ID("config-save")))
	tb.waitJS("the save", `document.getElementById("config-status").dataset.kind === "ok"`)
	if !evalJS[bool](tb, `document.getElementById("config-issues").hidden`) {
		t.Error("the issues are still shown after a good save")
	}
	after, err := os.ReadFile(ts.opts.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := configgen.DecodeRaw(after)
	if err != nil {
		t.Fatalf("the saved file does not parse: %v\n%s", err, after)
	}
	if lvl, _ := configgen.Get(tree, "logging.level"); lvl != "warn" {
		t.Errorf("logging.level on disk = %v, want warn", lvl)
	}
	if h, _ := configgen.Get(tree, "gateway.auth.tokenSha256"); h != configgen.HashSecret(testToken) {
		t.Errorf("gateway.auth.tokenSha256 on disk = %v: the save lost the secret", h)
	}
	if lvl := ts.cfg().Logging.Level; lvl != "warn" {
		t.Errorf("running logging.level = %q, want warn", lvl)
	}
	// A second save works from the new hash.
	setConfigBox(tb, `o.logging = {level: "info"}`)
	tb.do("saving again", chromedp.Click(chromedp.ID("config-save")))
	tb.waitJS("the second save", `document.getElementById("config-status").dataset.kind === "ok" && document.getElementById("config-status").textContent.startsWith("Saved")`)
	waitFor(t, "the second save on disk", func() bool { return ts.cfg().Logging.Level == "info" })

	// Sessions: reset one, delete another after confirming.
	row := func(key string) string { return `#admin-sessions [data-key="` + key + `"]` }
	tb.waitJS("both sessions in the list", `document.querySelector('`+row("agent:main:keep")+`') && document.querySelector('`+row("agent:main:gone")+`')`)
	tb.do("resetting a session", chromedp.Click(chromedp.CSS(row("agent:main:keep")+` [data-action="reset"]`)))
	tb.waitJS("the reset", `document.getElementById("admin-sessions-status").textContent.startsWith("Reset")`)
	if after, ok := ts.sessions.Get("agent:main:keep"); !ok || after.SessionID == keepBefore.SessionID {
		t.Errorf("after reset the session is %+v (ok %v); want a new session id, not %s", after, ok, keepBefore.SessionID)
	}
	tb.do("asking to delete a session", chromedp.Click(chromedp.CSS(row("agent:main:gone")+` [data-action="delete"]`)))
	tb.waitJS("the confirmation", `!!document.querySelector('`+row("agent:main:gone")+` [data-action="confirm-delete"]')`)
	if _, ok := ts.sessions.Get("agent:main:gone"); !ok {
		t.Fatal("the session was deleted before the delete was confirmed")
	}
	tb.do("confirming the delete", chromedp.Click(chromedp.CSS(row("agent:main:gone")+` [data-action="confirm-delete"]`)))
	tb.waitJS("the deleted session to leave the list", `!document.querySelector('`+row("agent:main:gone")+`') && !!document.querySelector('`+row("agent:main:keep")+`')`)
	if _, ok := ts.sessions.Get("agent:main:gone"); ok {
		t.Error("the gateway still has the deleted session")
	}
	tb.screenshot("webchat-settings.png")
	tb.checkClean()
}

// TestBrowserModelUnreachable: without model credentials the page says so
// on arrival, next to the connection state, in the gateway's one sentence;
// a message sent anyway fails with that sentence, and after a reload the
// question and the error are both still there.
func TestBrowserModelUnreachable(t *testing.T) {
	ts, _ := agentServer(t, withOptions(func(o *Options) { o.AWSCredentials = noCreds{} }))
	tb := newTab(t, startBrowser(t, chromiumPath(t), "MAP koi.test 127.0.0.1"))
	tb.do("opening the page", chromedp.Navigate(ts.http+"/#token="+testToken))
	tb.waitJS("the page to connect", jsConnected)
	// Whether the start-up check finished before hello-ok or its health
	// event comes after, the warning must show without sending anything.
	tb.waitJS("the model warning", `!document.getElementById("model-warning").hidden`)
	warning := evalJS[string](tb, `document.getElementById("model-warning").textContent`)
	if !oneSentence(warning) || !strings.Contains(warning, "The model is unreachable") || !strings.Contains(warning, "AWS_PROFILE") {
		t.Errorf("model warning %q; want one sentence saying the model is unreachable and how to fix it", warning)
	}
	if st := evalJS[string](tb, `document.getElementById("status").textContent`); !strings.Contains(st, "model is unreachable") {
		t.Errorf("status %q says nothing of the model", st)
	}
	if m := evalJS[string](tb, `document.getElementById("status").dataset.model || ""`); m != "unreachable" {
		t.Errorf("status data-model = %q, want unreachable (not the green dot)", m)
	}
	tb.screenshot("webchat-model-unreachable.png")

	tb.send("are you there?")
	jsErrors := `[...document.querySelectorAll("#messages .msg.assistant .inline-error")].map(e => e.textContent)`
	tb.waitJS("the failed turn", jsErrors+`.length === 1`)
	if got := evalJS[[]string](tb, jsErrors); got[0] != warning {
		t.Errorf("the failed turn says %q, want the one sentence %q", got[0], warning)
	}
	tb.do("reloading", chromedp.Reload())
	tb.waitJS("the page to reconnect", jsConnected)
	tb.waitJS("the history", `document.querySelectorAll("#messages .msg").length === 2`)
	if u := evalJS[string](tb, `document.querySelector("#messages .msg.user .plain")?.textContent || ""`); u != "are you there?" {
		t.Errorf("after a reload the question is %q", u)
	}
	if got := evalJS[[]string](tb, jsErrors); len(got) != 1 || got[0] != warning {
		t.Errorf("after a reload the errors are %q, want [%q]", got, warning)
	}
	tb.checkClean()
}

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// chromiumPath finds Debian's chromium. The browser test never downloads a
// browser: without one it skips, except in CI, where skipping would hide a
// broken page.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const why = "chromium is not installed (apt-get install -y chromium, or make deps)"
	if os.Getenv("CI") != "" {
		t.Fatal(why + "; CI must run the browser test")
	}
	t.Skip(why)
	return ""
}

// tab is one browser tab and what it reported: exceptions, dialogs and CSP
// violations are failures; console output is kept for the failure message.
type tab struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	problems []string
	console  []string
}

func (tb *tab) listen(ev any) {
	// Runs in chromedp's read loop: record and return.
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		tb.problems = append(tb.problems, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *page.EventJavascriptDialogOpening:
		tb.problems = append(tb.problems, fmt.Sprintf("a %s dialog opened: %q", ev.Type, ev.Message))
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		tb.console = append(tb.console, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
	case *log.EventEntryAdded:
		tb.console = append(tb.console, fmt.Sprintf("log %s/%s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
		if strings.Contains(ev.Entry.Text, "Content Security Policy") {
			tb.problems = append(tb.problems, "CSP violation: "+ev.Entry.Text)
		}
	}
}

// newTab opens a tab in the browser of parent and records, before any page
// script runs, every CSP violation the page causes. Extra scripts run before
// the page's own, to take browser features away.
func newTab(t *testing.T, parent context.Context, initScripts ...string) *tab {
	t.Helper()
	tb := &tab{t: t}
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tb.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range initScripts {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

// dump describes the page for a failure message.
func (tb *tab) dump() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		url: location.href,
		status: document.getElementById("status")?.textContent,
		banner: document.getElementById("banner")?.textContent,
		device: document.getElementById("device-note")?.textContent,
		messages: document.getElementById("messages")?.innerText,
	}, null, 1)`))
	if err != nil {
		state = "(page state unavailable: " + err.Error() + ")"
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return state + "\n" + strings.Join(tb.console, "\n")
}

func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, patience(tb.t))
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", what, err, tb.dump())
	}
}

// waitJS waits until the expression is truthy. The bound is a safety net
// against a hang, not a timing assertion.
func (tb *tab) waitJS(what, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, patience(tb.t))
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(patience(tb.t)*9/10)))
	if err != nil {
		tb.t.Fatalf("waiting for %s: %v\n%s", what, err, tb.dump())
	}
}

func evalJS[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, patience(tb.t))
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// checkClean fails on anything the page should never do.
func (tb *tab) checkClean() {
	tb.t.Helper()
	if csp := evalJS[[]string](tb, `window.__csp || []`); len(csp) > 0 {
		tb.t.Errorf("CSP violations: %v", csp)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Error(p)
	}
	tb.problems = nil
}

func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, patience(tb.t))
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Errorf("screenshot: %v", err)
		return
	}
	// An artifact of the run for a person to look at; gitignored.
	dir := filepath.Join("testdata", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot: gateway/%s", path)
}

const (
	jsConnected = `document.getElementById("status").dataset.state === "connected"`
	// jsLastAnswer is the text of the newest answer once its run ended.
	jsLastAnswer = `(() => { const a = [...document.querySelectorAll("#messages .msg.assistant")].pop();
		return a && !a.hasAttribute("aria-busy") ? a.textContent : ""; })()`
)

func (tb *tab) send(text string) {
	tb.t.Helper()
	// Enter in the message box sends, as a person would.
	tb.do("typing a message", chromedp.SendKeys(chromedp.ID("input"), text+"\r"))
}

// startBrowser starts headless Chromium for the test and returns its
// context. resolverRules maps names to addresses without DNS (Chromium's
// --host-resolver-rules), so a test can use names that are not loopback.
func startBrowser(t *testing.T, chromium, resolverRules string) context.Context {
	t.Helper()
	// A bound for the whole browser, so a wedged page fails the test
	// instead of hanging it.
	root, stop := context.WithTimeout(context.Background(), patience(t))
	t.Cleanup(stop)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		// Names that are not loopback, without DNS; and the test servers'
		// self-signed certificates are accepted.
		chromedp.Flag("host-resolver-rules", resolverRules),
		chromedp.IgnoreCertErrors,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 760),
	)
	// Registered after TempDir, so it runs first: chromium exits before its
	// profile directory is removed.
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return browserCtx
}

// retryCountdown is the rate-limit banner's countdown from a 2 s lockout.
var retryCountdown = regexp.MustCompile(`Trying again in (2 seconds|1 second)\b`)

// TestBrowserWebChat drives the page in headless Chromium against a real
// gateway and the fake Bedrock: token link, streaming, history after a
// reload, tool calls, hostile model output, Stop, a wrong token and the rate
// limit, a browser without Ed25519, a TLS proxy in front, sessions, and the
// gateway shutting down. One browser serves every step, to keep it fast.
func TestBrowserWebChat(t *testing.T) {
	chromium := chromiumPath(t)
	ts, fake := agentServer(t,
		withConfig("gateway.auth.rateLimit.maxAttempts", 2),
		withConfig("gateway.auth.rateLimit.lockoutMs", 2000),
		// As on a Koi, where nginx on the same host is the proxy.
		withConfig("gateway.trustedProxies", []string{"127.0.0.1"}),
		// The name the proxy step below uses, as an owner would list the
		// domain nginx answers to (its port does not matter to the Host rule).
		withConfig("gateway.controlUi.allowedOrigins", []string{"https://koi.test"}))

	browserCtx := startBrowser(t, chromium, "MAP koi.test 127.0.0.1")
	tb := newTab(t, browserCtx)

	// (a) The token link, then a streamed answer.
	fake.Enqueue("*", bedrocktest.Reply{
		bedrocktest.Text("Streaming "), bedrocktest.Delay(300 * time.Millisecond),
		bedrocktest.Text("answer "), bedrocktest.Delay(300 * time.Millisecond),
		bedrocktest.Text("is done."), bedrocktest.Usage(10, 5, 0, 0),
	})
	tb.do("opening the page", chromedp.Navigate(ts.http+"/#token="+testToken))
	tb.waitJS("the page to connect", jsConnected)

	url := evalJS[string](tb, `location.href`)
	if strings.Contains(url, "token") || strings.Contains(url, testToken) {
		t.Errorf("the token is still in the address bar: %s", url)
	}
	hist, err := chromedp.Run(tb.ctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, testToken) {
			t.Errorf("the token is in the tab's history: %s", e.URL)
		}
	}
	if got := evalJS[string](tb, `sessionStorage.getItem("skykoi.webchat.token")`); got != testToken {
		t.Errorf("sessionStorage token = %q", got)
	}

	switch device := evalJS[string](tb, `document.getElementById("device-note").dataset.device`); device {
	case "verified":
		devs := ts.devices.List()
		if len(devs) != 1 || devs[0].ClientID != "skykoi-webchat" || devs[0].ClientMode != "webchat" {
			t.Fatalf("the gateway remembered %+v; want the page's device", devs)
		}
		t.Logf("device %s verified with a WebCrypto Ed25519 key", devs[0].ID)
	case "none":
		if n := len(ts.devices.List()); n != 0 {
			t.Errorf("the page says it has no device, the gateway remembered %d", n)
		}
		t.Logf("this Chromium has no WebCrypto Ed25519; the page connected with the token alone: %s",
			evalJS[string](tb, `document.getElementById("device-note").textContent`))
	default:
		t.Fatalf("device state %q after connecting", device)
	}

	checkMarkdown(t, tb)

	// Record every state the answer passes through, to see it stream.
	evalJS[chromedp.Void](tb, `window.__snaps = [];
		new MutationObserver(() => {
			const a = [...document.querySelectorAll("#messages .msg.assistant")].pop();
			if (a) window.__snaps.push(a.textContent);
		}).observe(document.getElementById("messages"), {subtree: true, childList: true, characterData: true});`)
	tb.send("Hello Koi")
	tb.waitJS("the final answer", jsLastAnswer+`.includes("Streaming answer is done.")`)
	snaps := evalJS[[]string](tb, `window.__snaps`)
	partial := false
	for _, s := range snaps {
		if strings.Contains(s, "Streaming") && !strings.Contains(s, "is done.") {
			partial = true
		}
	}
	if !partial {
		t.Errorf("no partial answer was shown before the final one; states: %q", snaps)
	}
	if got := evalJS[string](tb, `document.querySelector("#messages .msg.user .plain").textContent`); got != "Hello Koi" {
		t.Errorf("user message shown as %q", got)
	}
	if reqs := fake.Requests(); len(reqs) != 1 || *reqs[0].Messages[0].Content[0].Text != "Hello Koi" {
		t.Fatalf("Bedrock got %+v", reqs)
	}
	if !evalJS[bool](tb, `document.activeElement === document.getElementById("input")`) {
		t.Error("the message box lost focus after sending")
	}
	tb.checkClean()

	// (b) A reload shows the conversation from chat.history, with the same
	// device key (kept in IndexedDB) and the token from sessionStorage.
	tb.do("reloading", chromedp.Reload())
	tb.waitJS("the page to reconnect", jsConnected)
	tb.waitJS("the history", `document.querySelectorAll("#messages .msg").length === 2`)
	if evalJS[bool](tb, `window.__snaps !== undefined`) {
		t.Fatal("the page did not reload")
	}
	msgs := evalJS[[]string](tb, `[...document.querySelectorAll("#messages .msg")].map(m => m.className + ": " + m.textContent)`)
	if !strings.Contains(msgs[0], "user") || !strings.Contains(msgs[0], "Hello Koi") ||
		!strings.Contains(msgs[1], "assistant") || !strings.Contains(msgs[1], "Streaming answer is done.") {
		t.Errorf("history after reload: %q", msgs)
	}
	if n := len(ts.devices.List()); n > 1 {
		t.Errorf("the reload made a new device key (%d devices remembered)", n)
	}
	if cur := evalJS[string](tb, `document.querySelector("#sessions [aria-current=true]")?.dataset.key`); cur != "agent:main:main" {
		t.Errorf("current session in the sidebar: %q", cur)
	}

	// (c) A tool call renders as a collapsed <details> between the texts.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Let me run it."),
		bedrocktest.ToolUse("t1", "exec", `{"command":"echo hi"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("It printed hi.")})
	tb.send("run echo hi")
	tb.waitJS("the answer after the tool", jsLastAnswer+`.includes("It printed hi.")`)
	checkTool := func(when string) {
		t.Helper()
		tool := evalJS[map[string]any](tb, `(() => {
			const d = [...document.querySelectorAll("#messages details.tool")].pop();
			if (!d) return {};
			const a = d.closest(".msg");
			const texts = [...a.querySelectorAll(".md")].filter(m => m.textContent);
			return {name: d.querySelector(".tool-name")?.textContent, open: d.open, text: d.textContent,
				before: texts.length > 1 && !!(texts[0].compareDocumentPosition(d) & Node.DOCUMENT_POSITION_FOLLOWING),
				after: texts.length > 1 && !!(texts[texts.length - 1].compareDocumentPosition(d) & Node.DOCUMENT_POSITION_PRECEDING)};
		})()`)
		if tool["name"] != "exec" || tool["open"] != false {
			t.Errorf("%s: tool element %v; want a collapsed details naming exec", when, tool)
		}
		text, _ := tool["text"].(string)
		if !strings.Contains(text, "echo hi") || !strings.Contains(text, "Result") {
			t.Errorf("%s: tool details %q lack the arguments or the result", when, text)
		}
		if tool["before"] != true || tool["after"] != true {
			t.Errorf("%s: the tool call is not between the two texts: %v", when, tool)
		}
	}
	checkTool("live")

	// (d) Model output with markup stays text.
	hostile := "Look: <img src=x onerror=alert(1)> and <script>window.__pwned=1</script> " +
		"[click](javascript:alert(1)) and **bold** with `code` at https://example.com/x."
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text(hostile)})
	tb.send("show me markup")
	tb.waitJS("the hostile answer", jsLastAnswer+`.includes("<img src=x onerror=alert(1)>")`)
	checkInert := func(when string) {
		t.Helper()
		r := evalJS[map[string]any](tb, `({
			elements: document.querySelectorAll("#messages img, #messages script, #messages iframe, #messages [onerror]").length,
			pwned: window.__pwned !== undefined,
			badLinks: [...document.querySelectorAll("#messages a")].filter(a => !/^https?:$/.test(a.protocol) || a.rel !== "noopener noreferrer").length,
			links: [...document.querySelectorAll("#messages a")].map(a => a.href),
			bold: [...document.querySelectorAll("#messages strong")].map(s => s.textContent),
			code: [...document.querySelectorAll("#messages .md code")].map(s => s.textContent),
		})`)
		if r["elements"] != float64(0) || r["pwned"] != false || r["badLinks"] != float64(0) {
			t.Errorf("%s: model markup became live: %v", when, r)
		}
		if fmt.Sprint(r["bold"]) != "[bold]" || fmt.Sprint(r["code"]) != "[code]" || fmt.Sprint(r["links"]) != "[https://example.com/x]" {
			t.Errorf("%s: markdown rendered as %v", when, r)
		}
	}
	checkInert("live")
	tb.checkClean()

	// Stop ends a run that is still streaming.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Thinking about it"), bedrocktest.Hang()})
	tb.send("take your time")
	tb.waitJS("the Stop button and a partial answer", `!document.getElementById("stop").hidden &&
		[...document.querySelectorAll("#messages .msg.assistant")].pop().textContent.includes("Thinking about it")`)
	tb.do("clicking Stop", chromedp.Click(chromedp.ID("stop")))
	tb.waitJS("the stopped run", jsLastAnswer+`.includes("Stopped.") && document.getElementById("stop").hidden`)

	// The same conversation rebuilt from history renders the same way.
	tb.do("reloading", chromedp.Reload())
	tb.waitJS("the page to reconnect", jsConnected)
	tb.waitJS("the full history", `document.querySelectorAll("#messages .msg.user").length === 4`)
	checkTool("history")
	checkInert("history")
	if !evalJS[bool](tb, jsLastAnswer+`.includes("Thinking about it") && `+jsLastAnswer+`.includes("Stopped.")`) {
		t.Errorf("the stopped answer in history: %q", evalJS[string](tb, jsLastAnswer))
	}
	if users := evalJS[[]string](tb, `[...document.querySelectorAll("#messages .msg.user .plain")].map(p => p.textContent)`); strings.Join(users, "|") != "Hello Koi|run echo hi|show me markup|take your time" {
		t.Errorf("user messages in history: %q", users)
	}
	tb.checkClean()
	tb.screenshot("webchat.png")

	// (e) A wrong token in a fresh tab: a clear message and no retry loop.
	// A second wrong token reaches the (test-sized) rate limit, and the
	// right one is then told to wait, and gets in once the lockout ends.
	// This tab also plays a browser without Ed25519 or IndexedDB: the page
	// must still get in, with the token alone.
	bad := newTab(t, browserCtx, `
		SubtleCrypto.prototype.generateKey = function () {
			return Promise.reject(new DOMException("Ed25519 is not supported", "NotSupportedError"));
		};
		IDBFactory.prototype.open = function () { throw new DOMException("blocked", "SecurityError"); };`)
	bad.do("opening the page with a wrong token", chromedp.Navigate(ts.http+"/#token=not-the-token"))
	bad.waitJS("the auth error", `document.getElementById("status").dataset.state === "auth-failed"`)
	banner := evalJS[string](bad, `document.getElementById("banner").textContent`)
	if banner != "The token was not accepted. Open the link with #token=… again or paste the token." {
		t.Errorf("auth error banner %q", banner)
	}
	if evalJS[bool](bad, `document.getElementById("token-form").hidden`) {
		t.Error("the token field is not shown after an auth failure")
	}
	if got := evalJS[string](bad, `sessionStorage.getItem("skykoi.webchat.token") || ""`); got != "" {
		t.Errorf("a rejected token stayed in sessionStorage: %q", got)
	}
	bad.screenshot("webchat-auth.png")
	bad.do("pasting another wrong token", chromedp.SendKeys(chromedp.ID("token-input"), "still-not-the-token\r"))
	bad.waitJS("the second auth error", `!document.getElementById("token-form").hidden`)
	bad.do("pasting the token", chromedp.SendKeys(chromedp.ID("token-input"), testToken+"\r"))
	bad.waitJS("the rate limit message", `document.getElementById("status").dataset.state === "rate-limited"`)
	// The countdown starts at the 2 s lockout and ticks each second, so a
	// loaded machine may read it a tick later.
	if banner := evalJS[string](bad, `document.getElementById("banner").textContent`); !strings.Contains(banner, "Too many failed sign-in attempts") ||
		!retryCountdown.MatchString(banner) {
		t.Errorf("rate limit banner %q", banner)
	}
	bad.waitJS("the page to connect after the lockout", jsConnected)
	bad.waitJS("the history in the second tab", `document.querySelectorAll("#messages .msg.user").length === 4`)
	if n := strings.Count(ts.logs.String(), `"msg":"auth failed"`); n != 2 {
		t.Errorf("the gateway logged %d auth failures, want 2: the page must not retry a rejected token", n)
	}
	if dev := evalJS[string](bad, `document.getElementById("device-note").dataset.device`); dev != "none" {
		t.Errorf("without Ed25519 the device state is %q, want none", dev)
	}
	if note := evalJS[string](bad, `document.getElementById("device-note").textContent`); !strings.Contains(note, "NotSupportedError") ||
		!strings.Contains(note, "token alone") {
		t.Errorf("device note without Ed25519: %q", note)
	}
	bad.checkClean()

	// (f) Behind a TLS reverse proxy that keeps the browser's Host, as nginx
	// does on a Koi: https and wss under a name that is not loopback, so the
	// Origin check passes only because origin and Host match.
	target, _ := neturl.Parse(ts.http)
	proxy := httptest.NewUnstartedServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		// The gateway going away at the end is expected, not worth a log line.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	})
	proxy.StartTLS()
	t.Cleanup(proxy.Close)
	_, port, _ := net.SplitHostPort(proxy.Listener.Addr().String())
	viaProxy := newTab(t, browserCtx)
	viaProxy.do("opening the page through the proxy", chromedp.Navigate("https://koi.test:"+port+"/#token="+testToken))
	viaProxy.waitJS("the page to connect through the proxy", jsConnected)
	viaProxy.waitJS("the history through the proxy", `document.querySelectorAll("#messages .msg.user").length === 4`)
	if dev := evalJS[string](viaProxy, `document.getElementById("device-note").dataset.device`); dev != "verified" {
		t.Errorf("through the proxy the device state is %q, want verified (https is a secure context)", dev)
	}
	if n := len(ts.devices.List()); n != 2 {
		t.Errorf("%d devices remembered; want 2 (one per origin)", n)
	}
	viaProxy.checkClean()

	// (g) Sessions: a new chat, its answer seen only there, switching back,
	// and a reset.
	tb.do("starting a new chat", chromedp.Click(chromedp.ID("new-session")))
	tb.waitJS("the empty new chat", `document.querySelector("#sessions [aria-current=true]").dataset.key.startsWith("agent:main:chat-") &&
		document.querySelectorAll("#messages .msg").length === 0 && document.activeElement === document.getElementById("input")`)
	newKey := evalJS[string](tb, `document.querySelector("#sessions [aria-current=true]").dataset.key`)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Fresh start.")})
	tb.send("hi there")
	tb.waitJS("the answer in the new chat", jsLastAnswer+`.includes("Fresh start.")`)
	tb.waitJS("both sessions in the sidebar", `document.querySelectorAll("#sessions .session").length === 2`)
	for _, x := range []*tab{bad, viaProxy} {
		if got := evalJS[string](x, `document.getElementById("messages").textContent`); strings.Contains(got, "Fresh start.") {
			t.Error("another session's answer showed up in the main session's view")
		}
	}
	tb.do("switching to main", chromedp.Click(chromedp.CSS(`#sessions [data-key="agent:main:main"]`)))
	tb.waitJS("the main history", `document.querySelectorAll("#messages .msg.user").length === 4`)
	tb.do("switching back", chromedp.Click(chromedp.CSS(`#sessions [data-key="`+newKey+`"]`)))
	tb.waitJS("the new chat's history", `document.querySelectorAll("#messages .msg.user").length === 1`)
	tb.do("resetting", chromedp.Click(chromedp.ID("reset")))
	tb.waitJS("the reset", `document.querySelectorAll("#messages .msg").length === 0 &&
		document.getElementById("messages").textContent.includes("Started afresh")`)
	tb.checkClean()

	// (h) The gateway stopping: every tab says the Koi is restarting and keep
	// trying to reconnect.
	if err := ts.stop(t); err != nil {
		t.Fatalf("stopping the gateway: %v", err)
	}
	for _, x := range []*tab{tb, bad, viaProxy} {
		x.waitJS("the restart message", `document.getElementById("banner").textContent === "The Koi is restarting…"`)
		x.waitJS("a reconnect attempt", `document.getElementById("status").textContent.includes("retrying in")`)
	}
	tb.checkClean()
}

// checkMarkdown runs the page's own renderer on a table of inputs, in the
// browser, and compares the DOM it builds.
func checkMarkdown(t *testing.T, tb *tab) {
	t.Helper()
	const a = ` rel="noopener noreferrer" target="_blank"`
	cases := []struct{ in, want string }{
		{"Hello\nworld", "<p>Hello<br>world</p>"},
		{"a\n\nb", "<p>a</p><p>b</p>"},
		{"**b** *i* _u_ `c`", "<p><strong>b</strong> <em>i</em> <em>u</em> <code>c</code></p>"},
		{"snake_case_name and 2 * 3 * 4", "<p>snake_case_name and 2 * 3 * 4</p>"},
		{"```go\nx := 1 < 2\n```\nafter", `<pre><code data-lang="go">x := 1 &lt; 2</code></pre><p>after</p>`},
		{"```\nstill streaming", "<pre><code>still streaming</code></pre>"},
		{"- a\n- b\n  - c\n- d", "<ul><li>a</li><li>b<ul><li>c</li></ul></li><li>d</li></ul>"},
		{"1. x\n2. y", "<ol><li>x</li><li>y</li></ol>"},
		{"3. x", `<ol start="3"><li>x</li></ol>`},
		{"[a](https://e.com/p?q=1)", `<p><a href="https://e.com/p?q=1"` + a + `>a</a></p>`},
		{"[a](javascript:alert(1))", "<p>a</p>"},
		{"[a](/relative)", "<p>a</p>"},
		{"see https://e.com/x).", `<p>see <a href="https://e.com/x"` + a + `>https://e.com/x</a>).</p>`},
		{"# Title", "<h3>Title</h3>"},
		{"> quote", "<blockquote><p>quote</p></blockquote>"},
		{"<b onclick=x>hi</b> &amp;", "<p>&lt;b onclick=x&gt;hi&lt;/b&gt; &amp;amp;</p>"},
		{`\*not\*`, "<p>*not*</p>"},
		{"---", "<hr>"},
	}
	var ins []string
	for _, c := range cases {
		ins = append(ins, c.in)
	}
	js, _ := json.Marshal(ins)
	ctx, cancel := context.WithTimeout(tb.ctx, patience(tb.t))
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`import("/markdown.js").then(m => `+string(js)+`.map(s => {
		const d = document.createElement("div");
		m.renderMarkdown(s, d);
		return d.innerHTML;
	}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running the renderer: %v", err)
	}
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("markdown %q\n got %s\nwant %s", c.in, got[i], c.want)
		}
	}
	// Hostile shapes finish quickly and do not overflow the stack.
	ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`import("/markdown.js").then(m => {
		const t0 = performance.now();
		for (const s of [">".repeat(5000) + " x", "*a ".repeat(20000), "[".repeat(20000), "- ".repeat(3000) + "x",
			"_".repeat(20000), "`+"`"+`".repeat(20000), "**".repeat(10000) + "x", "`+"`"+`x ".repeat(20000)]) {
			m.renderMarkdown(s, document.createElement("div"));
		}
		return performance.now() - t0;
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("hostile markdown: %v", err)
	}
	t.Logf("hostile markdown rendered in %.0f ms", ms)
}

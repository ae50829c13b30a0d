package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// TestBrowserCSPAndHost checks, in real Chromium, the two browser-side
// defences of issue 16: the page's connect-src admits its own gateway and no
// other socket, and a page loaded under a rebound name is refused.
func TestBrowserCSPAndHost(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t)

	// Another WebSocket server on another port, standing for any host a
	// script injected into the page would like to reach. It counts the
	// upgrades that get to it.
	var upgrades atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			http.NotFound(w, r)
			return
		}
		upgrades.Add(1)
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		if ws, err := up.Upgrade(w, r, nil); err == nil {
			ws.Close()
		}
	}))
	t.Cleanup(other.Close)
	_, otherPort, _ := net.SplitHostPort(other.Listener.Addr().String())

	browser := startBrowser(t, chromium, "MAP attacker.test 127.0.0.1")
	tb := newTab(t, browser)
	tb.do("opening the page", chromedp.Navigate(ts.http+"/#token="+testToken))
	tb.waitJS("the page to connect to its own gateway under connect-src 'self'", jsConnected)
	tb.checkClean()

	otherURL := "ws://" + other.Listener.Addr().String() + "/"
	evalJS[chromedp.Void](tb, `window.__other = "pending";
		try {
			const s = new WebSocket(`+strconv.Quote(otherURL)+`);
			s.onopen = () => { window.__other = "open"; };
			s.onerror = () => { if (window.__other === "pending") window.__other = "error"; };
		} catch (e) { window.__other = "threw " + e.name; }`)
	tb.waitJS("the socket to the other port to end", `window.__other !== "pending"`)
	if got := evalJS[string](tb, `window.__other`); got == "open" {
		t.Errorf("the page opened a WebSocket to %s; connect-src must admit only its own origin", otherURL)
	}
	tb.waitJS("the CSP violation report", `window.__csp.some(v => v.startsWith("connect-src") && v.includes(":`+otherPort+`"))`)
	if n := upgrades.Load(); n != 0 {
		t.Errorf("the other server saw %d upgrade(s); the browser must not send the request at all", n)
	}
	// The violation just caused is expected; anything else is not.
	tb.mu.Lock()
	var rest []string
	for _, p := range tb.problems {
		if !(strings.HasPrefix(p, "CSP violation") && strings.Contains(p, otherPort)) {
			rest = append(rest, p)
		}
	}
	tb.problems = rest
	tb.mu.Unlock()
	evalJS[chromedp.Void](tb, `window.__csp = window.__csp.filter(v => !v.includes(":`+otherPort+`"))`)
	tb.checkClean()
	if !evalJS[bool](tb, jsConnected) {
		t.Error("the page lost its own connection")
	}

	// DNS rebinding: the gateway's address under a name it does not know,
	// as a page on attacker.test would see it after re-pointing its name.
	_, port, _ := net.SplitHostPort(ts.Addr().String())
	rb := newTab(t, browser)
	rb.do("opening the page under a rebound name", chromedp.Navigate("http://attacker.test:"+port+"/#token="+testToken))
	body := evalJS[string](rb, `document.body ? document.body.innerText : ""`)
	if !strings.Contains(body, "gateway.controlUi.allowedOrigins") || evalJS[bool](rb, `!!document.getElementById("status")`) {
		t.Errorf("the page was served under a rebound name; body: %q", body)
	}
}

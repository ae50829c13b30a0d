package gateway

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestBrowserCronAnnouncement: a scheduled job's answer appears on the web
// page, in real Chromium, while the page sits open on the main session, and
// it is still there after a reload (it is in the main session's history).
func TestBrowserCronAnnouncement(t *testing.T) {
	chromium := chromiumPath(t)
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Inbox: 3 new mails.")})

	tb := newTab(t, startBrowser(t, chromium, ""))
	tb.do("opening the page", chromedp.Navigate(ts.http+"/#token="+testToken))
	tb.waitJS("the page to connect", jsConnected)

	c, _ := dialConnected(t, ts, asAdmin)
	if res := c.call("cron.add", map[string]any{"name": "inbox", "schedule": map[string]any{"kind": "at", "at": "1s"},
		"payload": map[string]any{"kind": "agentTurn", "message": "check my inbox"}}); !res.OK {
		t.Fatalf("cron.add: %+v", res.Error)
	}
	const shown = `[...document.querySelectorAll("#messages .msg.assistant")].some(m => m.textContent.includes("[cron: inbox] Inbox: 3 new mails."))`
	tb.waitJS("the job's announcement on the page", shown)
	// The job's own turn stays in its session: the main view does not show
	// the job's prompt as if the owner had typed it.
	if evalJS[bool](tb, `[...document.querySelectorAll("#messages .msg.user")].some(m => m.textContent.includes("check my inbox"))`) {
		t.Error("the main view shows the job's prompt as a message of the owner")
	}
	tb.do("reloading", chromedp.Reload())
	tb.waitJS("the page to connect again", jsConnected)
	tb.waitJS("the announcement from history", shown)
	tb.checkClean()
}

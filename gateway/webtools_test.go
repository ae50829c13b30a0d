package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestAgentWebFetch drives web_fetch through the real gateway: the fake
// Bedrock calls it on a local page (127.0.0.1 allowed through
// tools.web.allowPrivate) and the page's text reaches the model; then on the
// metadata service, which the dial-time guard refuses with an error result
// that names the address and the key, and the run still ends normally.
func TestAgentWebFetch(t *testing.T) {
	var hits atomic.Int64
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>Pond notes</title></head><body><article><h1>Pond notes</h1>
<p>The filter pump was replaced on the third of March; the next service is due in September.</p></article></body></html>`)
	}))
	t.Cleanup(page.Close)
	ts, fake := agentServer(t, withConfig("tools.web.allowPrivate", []string{"127.0.0.1"}))
	c, _ := dialConnected(t, ts, func(p map[string]any) { p["caps"] = []string{"tool-events"} })

	in, _ := json.Marshal(map[string]string{"url": page.URL + "/notes"})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("w1", "web_fetch", string(in)), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("w2", "web_fetch", `{"url":"http://169.254.169.254/latest/meta-data/iam/security-credentials/"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("The pump is due for service in September.")})
	if r := c.call("chat.send", map[string]any{"sessionKey": "main", "message": "when is the pump due?", "idempotencyKey": "wf1"}); !r.OK {
		t.Fatalf("chat.send: %+v", r.Error)
	}
	_, ch := collectRun(t, c, "wf1")
	if final := ch[len(ch)-1]; final.State != "final" {
		t.Fatalf("run ended %s: %+v", final.State, final)
	}

	reqs := fake.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d model requests, want 3", len(reqs))
	}
	offered := false
	for _, tool := range reqs[0].ToolConfig.Tools {
		offered = offered || tool.ToolSpec != nil && tool.ToolSpec.Name == "web_fetch"
	}
	if !offered {
		t.Error("web_fetch was not offered to the model")
	}
	if got := toolResultText(reqs[1]); !strings.Contains(got, "The filter pump was replaced on the third of March") || !strings.Contains(got, `"title":"Pond notes"`) {
		t.Errorf("the page's text did not reach the model: %s", got)
	}
	if hits.Load() != 1 {
		t.Errorf("the page got %d requests, want 1", hits.Load())
	}
	last := reqs[2].Messages[len(reqs[2].Messages)-1].Content[0].ToolResult
	got := toolResultText(reqs[2])
	if last == nil || last.Status != "error" || !strings.Contains(got, "refused to connect to 169.254.169.254") ||
		!strings.Contains(got, "instance metadata service") || !strings.Contains(got, "tools.web.allowPrivate") {
		t.Errorf("the metadata fetch was not refused clearly: status %v, %s", last, got)
	}
}

package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestAgentCannotRewriteGatewayFiles drives the real gateway and agent loop:
// a model that asks the write and edit tools to raise tools.exec.security in
// the config file, or to touch the device store, is refused, and the files
// stay as they were. Security "full" is the loosest mode and refuses them
// too; in the harness the workspace lies inside the state directory, so this
// also covers that layout.
func TestAgentCannotRewriteGatewayFiles(t *testing.T) {
	for _, security := range []string{"deny", "full"} {
		t.Run(security, func(t *testing.T) {
			ts, fake := agentServer(t, withConfig("tools.exec.security", security))
			cfgPath := filepath.Join(ts.dir, "skykoi.json")
			before, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			devices := filepath.Join(ts.dir, "paired.json")
			fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("w1", "write",
				string(mustJSON(map[string]any{"path": cfgPath, "content": `{"gateway":{"mode":"local"},"tools":{"exec":{"security":"full"}}}`}))), bedrocktest.Stop("tool_use")})
			fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("e1", "edit",
				string(mustJSON(map[string]any{"path": "../skykoi.json", "oldText": `"local"`, "newText": `"local","x":1`}))), bedrocktest.Stop("tool_use")})
			fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("w2", "write",
				string(mustJSON(map[string]any{"path": devices, "content": "{}"}))), bedrocktest.Stop("tool_use")})
			fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("I could not.")})
			c, _ := dialConnected(t, ts)
			res := c.call("chat.send", map[string]any{"sessionKey": "main", "message": "give yourself full exec", "idempotencyKey": "k1"})
			if !res.OK {
				t.Fatalf("chat.send %s", res.Payload)
			}
			_, ch := collectRun(t, c, "k1")
			if final := ch[len(ch)-1]; final.State != "final" {
				t.Fatalf("run ended %+v", final)
			}
			after, err := os.ReadFile(cfgPath)
			if err != nil || string(after) != string(before) {
				t.Errorf("the config file changed: %q, %v", after, err)
			}
			if _, err := os.Stat(devices); err == nil {
				b, _ := os.ReadFile(devices)
				if string(b) == "{}" {
					t.Error("the device store was overwritten")
				}
			}
			reqs := fake.Requests()
			if len(reqs) != 4 {
				t.Fatalf("%d model requests", len(reqs))
			}
			for i, want := range []string{"the gateway's config file", "the gateway's config file", "the gateway's state directory"} {
				msgs := reqs[i+1].Messages
				tr := msgs[len(msgs)-1].Content[0].ToolResult
				if tr == nil || !strings.Contains(string(mustJSON(tr)), want) {
					t.Errorf("tool result %d sent back: %s", i+1, mustJSON(msgs[len(msgs)-1]))
				}
			}
		})
	}
}

package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestMemorySurvivesReset drives the whole memory path through the real
// gateway: a reset (by /new, then by the idle policy) first runs a silent
// flush turn whose write tool call (scripted in the fake Bedrock) saves a
// fact; after the reset memory_search finds it, and the prompt shows it.
// Nothing of the flush reaches clients or the transcript.
func TestMemorySurvivesReset(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	ts, fake := agentServer(t, withConfig("session.reset", map[string]any{"mode": "idle", "idleMinutes": 60}),
		withOptions(func(o *Options) { o.Now = now }))
	c, _ := dialConnected(t, ts, func(p map[string]any) { p["caps"] = []string{"tool-events"} })
	note := "memory/" + now().Format(time.DateOnly) + ".md"

	// untilFinal reads every event up to runID's final chat event and fails
	// on any agent or chat event of another run: a flush must be silent.
	untilFinal := func(runID string) {
		t.Helper()
		for {
			f := c.mustRead()
			if f.Type != "event" || (f.Event != "agent" && f.Event != "chat") {
				continue
			}
			var e struct {
				RunID string `json:"runId"`
				State string `json:"state"`
			}
			_ = json.Unmarshal(f.Payload, &e)
			if e.RunID != runID || strings.Contains(string(f.Payload), "Elmstead") && !strings.Contains(runID, "after") {
				t.Fatalf("event of another run (or of the flush) reached the client: %s %s", f.Event, f.Payload)
			}
			if f.Event == "chat" && (e.State == "final" || e.State == "error" || e.State == "aborted") {
				if e.State != "final" {
					t.Fatalf("run %s ended %s: %s", runID, e.State, f.Payload)
				}
				return
			}
		}
	}
	send := func(msg, id string) {
		t.Helper()
		if r := c.call("chat.send", map[string]any{"sessionKey": "main", "message": msg, "idempotencyKey": id}); !r.OK {
			t.Fatalf("chat.send: %+v", r.Error)
		}
		untilFinal(id)
	}

	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Noted: locker 4471.")})
	send("remember my gym locker number is 4471", "before-1")

	// /new: the flush writes today's note, then answers NO_REPLY.
	write, _ := json.Marshal(map[string]string{"path": note, "content": "- Gym locker 4471, at the Elmstead branch\n"})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("f1", "write", string(write)), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("NO_REPLY")})
	if r := c.call("chat.send", map[string]any{"sessionKey": "main", "message": "/new", "idempotencyKey": "n1"}); !r.OK || !strings.Contains(string(r.Payload), `"command":"reset"`) {
		t.Fatalf("/new: %s %+v", r.Payload, r.Error)
	}
	reqs := fake.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d model requests after /new, want 3 (the turn and two flush steps)", len(reqs))
	}
	flush := reqs[1]
	if sys := systemText(flush.System); !strings.Contains(sys, "Housekeeping") || !strings.Contains(sys, note) {
		t.Errorf("the flush request lacks its instruction naming %s: %s", note, sys)
	}
	if body := string(flush.Body); !strings.Contains(body, "4471") {
		t.Error("the flush did not see the conversation")
	}
	for _, tool := range flush.ToolConfig.Tools {
		if tool.ToolSpec != nil && tool.ToolSpec.Name == "exec" {
			t.Error("the flush was offered exec")
		}
	}
	if b, err := os.ReadFile(filepath.Join(ts.dir, "koi", filepath.FromSlash(note))); err != nil || !strings.Contains(string(b), "Elmstead") {
		t.Fatalf("the flush's write did not land: %q %v", b, err)
	}

	// After the reset: memory_search finds the fact, and today's note is in
	// the prompt.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("s1", "memory_search", `{"query":"where is the Elmstead locker"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("At the Elmstead branch.")})
	send("which branch is my locker at?", "after-1")
	reqs = fake.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d model requests, want 5", len(reqs))
	}
	if sys := systemText(reqs[3].System); !strings.Contains(sys, "### "+note) || !strings.Contains(sys, "Elmstead") {
		t.Errorf("the prompt after the reset lacks today's note: %s", sys)
	}
	if !strings.Contains(toolResultText(reqs[4]), `"path":"`+note+`"`) || !strings.Contains(toolResultText(reqs[4]), "Elmstead") {
		t.Errorf("memory_search did not find the fact: %s", toolResultText(reqs[4]))
	}

	// The idle policy resets too, and flushes first.
	write2, _ := json.Marshal(map[string]string{"path": "MEMORY.md", "content": "Favourite colour: teal\n"})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("f2", "write", string(write2)), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("NO_REPLY")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("s2", "memory_search", `{"query":"favourite colour"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Teal.")})
	offset.Store(int64(61 * time.Minute))
	send("what is my favourite colour?", "after-idle")
	reqs = fake.Requests()
	if len(reqs) != 9 {
		t.Fatalf("%d model requests, want 9", len(reqs))
	}
	if !strings.Contains(systemText(reqs[5].System), "Housekeeping") {
		t.Error("no flush before the idle reset")
	}
	if got := toolResultText(reqs[8]); !strings.Contains(got, `"path":"MEMORY.md"`) || !strings.Contains(got, "teal") {
		t.Errorf("memory_search after the idle reset: %s", got)
	}

	// The flush left nothing in any transcript.
	files, _ := filepath.Glob(filepath.Join(ts.dir, "sessions", "*.jsonl"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "NO_REPLY") || strings.Contains(string(b), "memory flush") {
			t.Errorf("%s records the flush turn", f)
		}
	}
}

func systemText(blocks []bedrocktest.SystemBlock) string {
	var b strings.Builder
	for _, s := range blocks {
		if s.Text != nil {
			b.WriteString(*s.Text)
		}
	}
	return b.String()
}

// toolResultText is the text of the last message's tool results.
func toolResultText(r bedrocktest.Request) string {
	var b strings.Builder
	if len(r.Messages) == 0 {
		return ""
	}
	for _, c := range r.Messages[len(r.Messages)-1].Content {
		if c.ToolResult != nil {
			for _, p := range c.ToolResult.Content {
				if p.Text != nil {
					b.WriteString(*p.Text)
				}
			}
		}
	}
	return b.String()
}

package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

const testModel = "us.anthropic.claude-opus-4-6-v1"

// agentServer starts a gateway whose Bedrock is a fake reached through the
// real SDK client (endpoint override, static test credentials).
func agentServer(t *testing.T, opts ...serverOpt) (*testServer, *bedrocktest.Server) {
	t.Helper()
	fake := bedrocktest.NewServer()
	t.Cleanup(fake.Close)
	base := []serverOpt{
		withConfig("models.providers.amazon-bedrock.endpoint", fake.URL()),
		withConfig("models.providers.amazon-bedrock.region", "us-east-1"),
		withConfig("tools.exec.security", "full"),
		withOptions(func(o *Options) {
			o.AWSCredentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session")
			o.ModelBackoff = time.Millisecond
		}),
	}
	return startServer(t, append(base, opts...)...), fake
}

// event payloads, decoded loosely.
type agentEvent struct {
	RunID      string         `json:"runId"`
	Seq        int            `json:"seq"`
	Stream     string         `json:"stream"`
	SessionKey string         `json:"sessionKey"`
	SessionID  string         `json:"sessionId"`
	Data       map[string]any `json:"data"`
}

type chatEvent struct {
	RunID        string `json:"runId"`
	Seq          int    `json:"seq"`
	State        string `json:"state"`
	DeltaText    string `json:"deltaText"`
	ErrorMessage string `json:"errorMessage"`
	Message      struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"message"`
}

// collectRun reads frames until the run's chat event in a terminal state,
// returning its agent and chat events in order.
func collectRun(t *testing.T, c *wsClient, runID string) ([]agentEvent, []chatEvent) {
	t.Helper()
	var ag []agentEvent
	var ch []chatEvent
	for {
		f := c.mustRead()
		if f.Type != "event" {
			continue
		}
		switch f.Event {
		case "agent":
			e := unmarshal[agentEvent](t, f.Payload)
			if e.RunID == runID {
				ag = append(ag, e)
			}
		case "chat":
			e := unmarshal[chatEvent](t, f.Payload)
			if e.RunID != runID {
				continue
			}
			ch = append(ch, e)
			if e.State == "final" || e.State == "aborted" || e.State == "error" {
				return ag, ch
			}
		}
	}
}

func TestAgentPlainAnswer(t *testing.T) {
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Hello "), bedrocktest.Text("there."), bedrocktest.Usage(12, 3, 0, 0)})
	c, _ := dialConnected(t, ts)
	id := c.request("agent", map[string]any{"message": "hi", "idempotencyKey": "run-1"})
	ack := c.readRes(id)
	var a map[string]any
	_ = json.Unmarshal(ack.Payload, &a)
	if !ack.OK || a["status"] != "accepted" || a["runId"] != "run-1" || a["sessionKey"] != "agent:main:main" {
		t.Fatalf("ack %s", ack.Payload)
	}
	final := c.readRes(id)
	var fin struct {
		RunID  string `json:"runId"`
		Status string `json:"status"`
		Result struct {
			Payloads []struct{ Text string } `json:"payloads"`
			Meta     struct {
				AgentMeta struct {
					SessionID string        `json:"sessionId"`
					Provider  string        `json:"provider"`
					Model     string        `json:"model"`
					Usage     session.Usage `json:"usage"`
				} `json:"agentMeta"`
			} `json:"meta"`
		} `json:"result"`
	}
	_ = json.Unmarshal(final.Payload, &fin)
	if !final.OK || fin.Status != "ok" || len(fin.Result.Payloads) != 1 || fin.Result.Payloads[0].Text != "Hello there." {
		t.Fatalf("final %s", final.Payload)
	}
	if m := fin.Result.Meta.AgentMeta; m.Provider != "amazon-bedrock" || m.Model != testModel || m.Usage.InputTokens != 12 || m.SessionID == "" {
		t.Errorf("agentMeta %+v", m)
	}
	// The fake got the message through the real SDK, signed, with our system prompt.
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].ModelID != testModel || len(reqs[0].Messages) != 1 || *reqs[0].Messages[0].Content[0].Text != "hi" {
		t.Fatalf("requests %+v", reqs)
	}
	if !strings.HasPrefix(reqs[0].Header.Get("Authorization"), "AWS4-HMAC-SHA256") || len(reqs[0].System) == 0 {
		t.Error("request not signed or without a system prompt")
	}
	// History has both turns.
	h := c.call("chat.history", map[string]any{"sessionKey": "main"})
	var hist struct {
		SessionID string            `json:"sessionId"`
		Messages  []session.Message `json:"messages"`
	}
	_ = json.Unmarshal(h.Payload, &hist)
	if len(hist.Messages) != 2 || hist.Messages[0].Text() != "hi" || hist.Messages[1].Text() != "Hello there." || hist.SessionID != fin.Result.Meta.AgentMeta.SessionID {
		t.Fatalf("history %s", h.Payload)
	}
}

func TestAgentEventsAndToolTurn(t *testing.T) {
	ts, fake := agentServer(t)
	ws := filepath.Join(ts.dir, "koi")
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Let me look."), bedrocktest.ToolUse("t1", "exec", `{"command":"echo hello > note.txt && echo written"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("t2", "read", `{"path":"note.txt"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("The note says hello.")})
	withCap, _ := dialConnected(t, ts, func(p map[string]any) { p["caps"] = []string{"tool-events"} })
	noCap, _ := dialConnected(t, ts)
	res := withCap.call("chat.send", map[string]any{"sessionKey": "main", "message": "write a note", "idempotencyKey": "k1"})
	var sent map[string]any
	_ = json.Unmarshal(res.Payload, &sent)
	if !res.OK || sent["status"] != "started" || sent["runId"] != "k1" {
		t.Fatalf("chat.send %s", res.Payload)
	}
	ag, ch := collectRun(t, withCap, "k1")
	ag2, _ := collectRun(t, noCap, "k1")

	// Per-run seq from 1 without gaps, in both streams.
	for i, e := range ag {
		if e.Seq != i+1 {
			t.Fatalf("agent seq %d at %d", e.Seq, i)
		}
	}
	for i, e := range ch {
		if e.Seq != i+1 {
			t.Fatalf("chat seq %d at %d", e.Seq, i)
		}
	}
	var streams []string
	for _, e := range ag {
		s := e.Stream
		if s == "lifecycle" || s == "tool" {
			s += ":" + e.Data["phase"].(string)
		}
		streams = append(streams, s)
	}
	got := strings.Join(streams, ",")
	want := "lifecycle:start,assistant,usage,tool:start,tool:result,usage,tool:start,tool:result,assistant,usage,lifecycle:end"
	if got != want {
		t.Errorf("agent streams\n got %s\nwant %s", got, want)
	}
	for _, e := range ag2 {
		if e.Stream == "tool" {
			t.Fatal("a client without the tool-events cap got a tool event")
		}
	}
	// The exec ran in the workspace; read saw its file; results went back to Bedrock.
	if b, err := os.ReadFile(filepath.Join(ws, "note.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("note.txt: %q %v", b, err)
	}
	reqs := fake.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d model requests", len(reqs))
	}
	last := reqs[2].Messages
	tr := last[len(last)-1].Content[0].ToolResult
	if tr == nil || tr.ToolUseID != "t2" || !strings.Contains(string(mustJSON(tr)), "hello") {
		t.Errorf("tool result sent back: %s", mustJSON(last[len(last)-1]))
	}
	final := ch[len(ch)-1]
	if final.State != "final" || final.Message.Content[0].Text != "Let me look.\n\nThe note says hello." {
		t.Errorf("final %+v", final)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestChatDeltasCoalesced: 400 model deltas arrive as a handful of chat
// deltas that together carry all the text, in order.
func TestChatDeltasCoalesced(t *testing.T) {
	ts, fake := agentServer(t)
	reply := bedrocktest.Reply{}
	for i := 0; i < 400; i++ {
		reply = append(reply, bedrocktest.Text("w"+string(rune('a'+i%26))+" "))
		if i%100 == 99 {
			reply = append(reply, bedrocktest.Delay(200*time.Millisecond))
		}
	}
	fake.Enqueue("*", reply)
	c, _ := dialConnected(t, ts)
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "talk", "idempotencyKey": "d1"})
	ag, ch := collectRun(t, c, "d1")
	var joined strings.Builder
	deltas := 0
	for _, e := range ch {
		if e.State == "delta" {
			deltas++
			joined.WriteString(e.DeltaText)
			if e.Message.Content[0].Text != joined.String() {
				t.Fatalf("delta message is not the text so far")
			}
		}
	}
	final := ch[len(ch)-1].Message.Content[0].Text
	if joined.String() != final || len(final) != 400*3 {
		t.Fatalf("deltas lost text: %d vs %d chars", joined.Len(), len(final))
	}
	assistant := 0
	for _, e := range ag {
		if e.Stream == "assistant" {
			assistant++
		}
	}
	// The stream took at least 3 × 200 ms; coalescing allows about one chat
	// delta per 150 ms plus leading edges, far fewer than 400.
	if deltas < 2 || deltas > 60 || assistant < 2 || assistant > 150 {
		t.Errorf("%d chat deltas and %d assistant events for 400 model deltas", deltas, assistant)
	}
}

func TestAgentIdempotentRetry(t *testing.T) {
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Delay(100 * time.Millisecond), bedrocktest.Text("once")})
	c, _ := dialConnected(t, ts)
	first := c.request("agent", map[string]any{"message": "hi", "idempotencyKey": "same"})
	second := c.request("agent", map[string]any{"message": "hi", "idempotencyKey": "same"})
	// Each request id gets an ack and then the same final answer.
	got := map[string][]frame{}
	for len(got[first]) < 2 || len(got[second]) < 2 {
		f := c.mustRead()
		if f.Type == "res" {
			got[f.ID] = append(got[f.ID], f)
		}
	}
	for _, id := range []string{first, second} {
		ack, fin := got[id][0], got[id][1]
		if !strings.Contains(string(ack.Payload), `"accepted"`) || !strings.Contains(string(ack.Payload), `"runId":"same"`) {
			t.Errorf("ack for %s: %s", id, ack.Payload)
		}
		if !fin.OK || !strings.Contains(string(fin.Payload), `"text":"once"`) {
			t.Fatalf("final for %s: %s %+v", id, fin.Payload, fin.Error)
		}
	}
	if n := len(fake.Requests()); n != 1 {
		t.Fatalf("%d model calls for one idempotency key", n)
	}
	// chat.send with the same key after the end reports the cached status.
	r := c.call("chat.send", map[string]any{"sessionKey": "main", "message": "hi", "idempotencyKey": "same"})
	if !strings.Contains(string(r.Payload), `"status":"ok"`) {
		t.Errorf("repeat after the end: %s", r.Payload)
	}
}

func TestAgentAbortAndQueue(t *testing.T) {
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("partial answer"), bedrocktest.Hang()})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("second")})
	c, _ := dialConnected(t, ts)
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "one", "idempotencyKey": "a1"})
	r2 := c.call("chat.send", map[string]any{"sessionKey": "main", "message": "two", "idempotencyKey": "a2"})
	if !strings.Contains(string(r2.Payload), `"started"`) {
		t.Fatalf("second send: %s", r2.Payload)
	}
	// Wait until the first run has streamed, then abort it.
	for {
		f := c.mustRead()
		if f.Event == "chat" && strings.Contains(string(f.Payload), `"a1"`) && strings.Contains(string(f.Payload), "partial") {
			break
		}
	}
	if st, _ := ts.runtime.Counts(); st != 1 {
		t.Errorf("%d runs active, want 1 (the second is queued)", st)
	}
	ab := c.call("chat.abort", map[string]any{"sessionKey": "main", "runId": "a1"})
	if !strings.Contains(string(ab.Payload), `"aborted":true`) {
		t.Fatalf("abort: %s", ab.Payload)
	}
	_, ch := collectRun(t, c, "a1")
	if ch[len(ch)-1].State != "aborted" {
		t.Errorf("first run ended %q", ch[len(ch)-1].State)
	}
	_, ch2 := collectRun(t, c, "a2")
	if ch2[len(ch2)-1].State != "final" {
		t.Errorf("second run ended %q", ch2[len(ch2)-1].State)
	}
	// The queued run saw the first run's partial answer in its history.
	reqs := fake.Requests()
	if len(reqs) != 2 || !strings.Contains(string(reqs[1].Body), "partial answer") {
		t.Errorf("second request lacks the first's partial text")
	}
	w := c.call("agent.wait", map[string]any{"runId": "a1"})
	if !strings.Contains(string(w.Payload), `"aborted":true`) || !strings.Contains(string(w.Payload), `"status":"ok"`) {
		t.Errorf("agent.wait: %s", w.Payload)
	}
}

func TestResetByCommandAndIdle(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	ts, fake := agentServer(t, withConfig("session.reset", map[string]any{"mode": "idle", "idleMinutes": 60}),
		withOptions(func(o *Options) { o.Now = now }))
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("ok")})
	c, _ := dialConnected(t, ts)
	send := func(msg, key string) {
		c.call("chat.send", map[string]any{"sessionKey": "main", "message": msg, "idempotencyKey": key})
		collectRun(t, c, key)
	}
	sid := func() string {
		var h struct {
			SessionID string `json:"sessionId"`
		}
		_ = json.Unmarshal(c.call("chat.history", map[string]any{"sessionKey": "main"}).Payload, &h)
		return h.SessionID
	}
	send("first", "r1")
	s1 := sid()
	send("second", "r2")
	if sid() != s1 {
		t.Fatal("session reset without a reason")
	}
	// /new resets at once.
	r := c.call("chat.send", map[string]any{"sessionKey": "main", "message": "/new", "idempotencyKey": "n1"})
	if !strings.Contains(string(r.Payload), `"command":"reset"`) {
		t.Fatalf("/new: %s", r.Payload)
	}
	s2 := sid()
	if s2 == s1 || s2 == "" {
		t.Fatalf("sessionId %q after /new (was %q)", s2, s1)
	}
	send("third", "r3")
	// 61 idle minutes later the next message starts a new session.
	offset.Store(int64(61 * time.Minute))
	send("fourth", "r4")
	if s3 := sid(); s3 == s2 {
		t.Fatal("idle reset did not happen")
	}
	// Old transcripts are kept.
	files, _ := filepath.Glob(filepath.Join(ts.dir, "sessions", "*.jsonl"))
	if len(files) != 3 {
		t.Errorf("%d transcripts, want 3 (resets never delete)", len(files))
	}
}

func TestUsageAndSessionsMethods(t *testing.T) {
	ts, fake := agentServer(t)
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("ok"), bedrocktest.Usage(100, 10, 5, 1)})
	c, _ := dialConnected(t, ts, func(p map[string]any) { p["scopes"] = []string{"operator.admin"} })
	for _, k := range []string{"u1", "u2"} {
		c.call("chat.send", map[string]any{"sessionKey": "work", "message": "hi", "idempotencyKey": k})
		collectRun(t, c, k)
	}
	u := c.call("usage.status", nil)
	var us struct {
		Totals session.Totals `json:"totals"`
	}
	_ = json.Unmarshal(u.Payload, &us)
	if us.Totals.InputTokens != 200 || us.Totals.OutputTokens != 20 || us.Totals.CacheReadTokens != 10 || us.Totals.Requests != 2 {
		t.Errorf("usage %s", u.Payload)
	}
	l := c.call("sessions.list", nil)
	if !strings.Contains(string(l.Payload), `"key":"agent:main:work"`) || !strings.Contains(string(l.Payload), `"inputTokens":200`) {
		t.Errorf("sessions.list %s", l.Payload)
	}
	p := c.call("sessions.patch", map[string]any{"key": "work", "label": "Work"})
	if !p.OK || !strings.Contains(string(p.Payload), `"label":"Work"`) {
		t.Errorf("patch %s %+v", p.Payload, p.Error)
	}
	if r := c.call("sessions.patch", map[string]any{"key": "work", "model": "openai/gpt"}); r.OK {
		t.Error("patch accepted a non-bedrock model")
	}
	if r := c.call("sessions.delete", map[string]any{"key": "main"}); r.OK {
		t.Error("the main session was deleted")
	}
	d := c.call("sessions.delete", map[string]any{"key": "work"})
	if !strings.Contains(string(d.Payload), `"deleted":true`) {
		t.Errorf("delete %s", d.Payload)
	}
	if r := c.call("chat.history", map[string]any{"sessionKey": "work"}); r.OK || r.Error.Code != protocol.CodeNotFound {
		t.Errorf("history of a deleted session: %+v", r)
	}
	st := c.call("status", nil)
	if !strings.Contains(string(st.Payload), `"inputTokens":200`) {
		t.Errorf("status %s", st.Payload)
	}
}

func TestAgentBadInput(t *testing.T) {
	ts, _ := agentServer(t)
	c, _ := dialConnected(t, ts)
	tests := []struct {
		method string
		params map[string]any
		code   string
		msg    string
	}{
		{"agent", map[string]any{"message": "  "}, protocol.CodeInvalidRequest, "invalid params: message must be a non-empty string"},
		{"agent", map[string]any{}, protocol.CodeInvalidRequest, "invalid params: message is required"},
		{"agent", map[string]any{"message": "x", "agentId": "other"}, protocol.CodeInvalidRequest, `unknown agent: other (this Koi has one agent, "main")`},
		{"agent", map[string]any{"message": "x", "thinking": "max"}, protocol.CodeInvalidRequest, `invalid params: thinking must be one of off, low, medium, high; got "max"`},
		{"agent", map[string]any{"message": 5}, protocol.CodeInvalidRequest, "invalid params: message must be a string, got number"},
		{"chat.send", map[string]any{"sessionKey": "main", "message": "x"}, protocol.CodeInvalidRequest, "invalid params: idempotencyKey is required"},
		{"chat.history", map[string]any{"sessionKey": "nope"}, protocol.CodeNotFound, ""},
		{"agent.wait", map[string]any{"runId": "nope"}, protocol.CodeNotFound, "unknown run: nope"},
		{"chat.history", map[string]any{"sessionKey": "agent:other:x"}, protocol.CodeInvalidRequest, ""},
	}
	for _, tt := range tests {
		r := c.call(tt.method, tt.params)
		if r.OK || r.Error.Code != tt.code || (tt.msg != "" && r.Error.Message != tt.msg) {
			t.Errorf("%s %v: got %+v, want %s %q", tt.method, tt.params, r.Error, tt.code, tt.msg)
		}
	}
}

// TestWorkspaceFollowsReload: after a reload moves the workspace, the next
// run's system prompt names the new directory and reads its prompt files,
// as the tools already do.
func TestWorkspaceFollowsReload(t *testing.T) {
	ts, fake := agentServer(t)
	oldWS, newWS := filepath.Join(ts.dir, "koi"), filepath.Join(ts.dir, "koi-moved")
	for dir, marker := range map[string]string{oldWS: "marker-from-old-workspace", newWS: "marker-from-new-workspace"} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "AGENTS.md"), []byte(marker+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := dialConnected(t, ts)
	turn := func(key string) string {
		fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("ok")})
		c.agentTurn("hi", key)
		reqs := fake.Requests()
		return string(reqs[len(reqs)-1].Body)
	}
	if body := turn("before"); !strings.Contains(body, "marker-from-old-workspace") {
		t.Fatalf("the first prompt lacks the workspace's AGENTS.md: %s", body)
	}
	ts.setConfig(t, "agents.defaults.workspace", newWS)
	body := turn("after")
	if !strings.Contains(body, "marker-from-new-workspace") || strings.Contains(body, "marker-from-old-workspace") {
		t.Errorf("after the reload the prompt does not come from the new workspace: %s", body)
	}
	if !strings.Contains(body, "Workspace: "+newWS) {
		t.Errorf("the prompt does not name the new workspace: %s", body)
	}
}

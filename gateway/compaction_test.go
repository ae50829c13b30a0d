package gateway

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/session"
)

// summaryMarker is in the system prompt of the agent's summarisation
// requests (agent.summaryPrompt); the fake answers those with a summary.
const summaryMarker = "You are compacting a conversation"

func isSummaryRequest(r bedrocktest.Request) bool {
	for _, s := range r.System {
		if s.Text != nil && strings.Contains(*s.Text, summaryMarker) {
			return true
		}
	}
	return false
}

// lastUserText is the text of the request's last message, "" when it is
// tool results.
func lastUserText(r bedrocktest.Request) string {
	m := r.Messages[len(r.Messages)-1]
	for _, b := range m.Content {
		if b.Text != nil {
			return *b.Text
		}
	}
	return ""
}

func firstText(r bedrocktest.Request) string {
	for _, b := range r.Messages[0].Content {
		if b.Text != nil {
			return *b.Text
		}
	}
	return ""
}

// contextFake answers summarisation requests with a numbered summary and
// everything else with answer(req).
func contextFake(fake *bedrocktest.Server, answer func(bedrocktest.Request) bedrocktest.Reply) *atomic.Int64 {
	var summaries atomic.Int64
	fake.Handle(func(r bedrocktest.Request) bedrocktest.Reply {
		if isSummaryRequest(r) {
			n := summaries.Add(1)
			return bedrocktest.Reply{bedrocktest.Text(fmt.Sprintf("SUMMARY-%d of the earlier turns.", n))}
		}
		return answer(r)
	})
	return &summaries
}

func compactionEvents(ag []agentEvent) (starts, ends []agentEvent) {
	for _, e := range ag {
		if e.Stream == "compaction" {
			if e.Data["phase"] == "start" {
				starts = append(starts, e)
			} else if e.Data["phase"] == "end" {
				ends = append(ends, e)
			}
		}
	}
	return starts, ends
}

func transcriptPath(t *testing.T, ts *testServer, c *wsClient) string {
	t.Helper()
	var l struct {
		Sessions []session.Entry `json:"sessions"`
	}
	if err := json.Unmarshal(c.call("sessions.list", map[string]any{}).Payload, &l); err != nil || len(l.Sessions) == 0 {
		t.Fatalf("sessions.list: %v", err)
	}
	for _, e := range l.Sessions {
		if e.Key == session.MainKey {
			return filepath.Join(ts.opts.StateDir, "sessions", e.SessionID+".jsonl")
		}
	}
	t.Fatal("no main session")
	return ""
}

// A "too long" refusal compacts once and retries once: the retry carries
// the summary and the latest turn; a second refusal in a row ends the run
// instead of looping.
func TestTooLongRefusalCompactsOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		refusals   int // in a row, for the fourth turn
		wantState  string
		wantCalls  int // model requests of the fourth turn
		wantErrSub string
	}{
		{"one refusal", 1, "final", 3, ""},
		{"refused again after compacting", 2, "error", 3, "still too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, fake := agentServer(t, withConfig("agents.defaults.contextTokens", 20000))
			refused := 0
			contextFake(fake, func(r bedrocktest.Request) bedrocktest.Reply {
				if lastUserText(r) == "four" && refused < tc.refusals {
					refused++
					return bedrocktest.Reply{bedrocktest.HTTPError(400, "ValidationException", bedrocktest.TooLongMessage)}
				}
				return bedrocktest.Reply{bedrocktest.Text("ok")}
			})
			c, _ := dialConnected(t, ts)
			big := strings.Repeat("word ", 2000) // 10 kB a turn
			for i := range 3 {
				key := fmt.Sprintf("t%d", i)
				c.call("chat.send", map[string]any{"sessionKey": "main", "message": fmt.Sprintf("turn %d %s", i, big), "idempotencyKey": key})
				if _, ch := collectRun(t, c, key); ch[len(ch)-1].State != "final" {
					t.Fatalf("turn %d: %+v", i, ch[len(ch)-1])
				}
			}
			before := len(fake.Requests())
			c.call("chat.send", map[string]any{"sessionKey": "main", "message": "four", "idempotencyKey": "t9"})
			ag, ch := collectRun(t, c, "t9")
			last := ch[len(ch)-1]
			if last.State != tc.wantState || !strings.Contains(last.ErrorMessage, tc.wantErrSub) {
				t.Fatalf("ended %+v, want %s %q", last, tc.wantState, tc.wantErrSub)
			}
			reqs := fake.Requests()[before:]
			if len(reqs) != tc.wantCalls {
				t.Fatalf("%d model requests, want %d (refused, summary, retry)", len(reqs), tc.wantCalls)
			}
			starts, ends := compactionEvents(ag)
			if len(starts) != 1 || len(ends) != 1 || ends[0].Data["willRetry"] != true || ends[0].Data["reason"] != "overflow" {
				t.Fatalf("compaction events: %+v %+v", starts, ends)
			}
			if !isSummaryRequest(reqs[1]) {
				t.Fatalf("request after the refusal is not the summary request")
			}
			retry := reqs[2]
			if !strings.Contains(firstText(retry), "SUMMARY-1") || lastUserText(retry) != "four" || strings.Contains(string(retry.Body), "turn 0 ") {
				t.Errorf("retry does not start with the summary, end with the latest turn, and leave out the summarised turn")
			}
			// The transcript keeps everything: 3 turns, the question and
			// its answer or error entry.
			if h := historyLines(t, c); len(h) != 8 {
				t.Errorf("history has %d messages, want 8", len(h))
			}
		})
	}
}

// The scenario: 40 turns of about 9 kB against a model with a 120 kB
// context. The context is managed before sending, so at most 3 requests may
// be refused, every turn is answered, compactions carry over (far fewer than
// one a turn) and the transcript keeps every message.
func TestFortyTurnsWithinTheWindow(t *testing.T) {
	const limit = 30000 // tokens: 120 kB at the fake's 4 bytes a token
	ts, fake := agentServer(t, withConfig("agents.defaults.contextTokens", limit))
	fake.SetContextLimit(limit)
	fake.KeepRequests(200)
	answer := strings.Repeat("answer ", 640) // ~4.5 kB
	summaries := contextFake(fake, func(bedrocktest.Request) bedrocktest.Reply { return bedrocktest.Reply{bedrocktest.Text(answer)} })
	c, _ := dialConnected(t, ts)
	question := strings.Repeat("question ", 500) // ~4.5 kB
	compactions := 0
	for i := range 40 {
		key := fmt.Sprintf("q%d", i)
		c.call("chat.send", map[string]any{"sessionKey": "main", "message": fmt.Sprintf("%d %s", i, question), "idempotencyKey": key})
		ag, ch := collectRun(t, c, key)
		if last := ch[len(ch)-1]; last.State != "final" {
			t.Fatalf("turn %d: %+v", i, last)
		}
		_, ends := compactionEvents(ag)
		compactions += len(ends)
	}
	t.Logf("40 turns: %d compactions, %d refused", compactions, fake.TooLong())
	if n := fake.TooLong(); n > 3 {
		t.Errorf("%d requests refused as too long, want at most 3", n)
	}
	if compactions == 0 || compactions > 15 || int64(compactions) != summaries.Load() {
		t.Errorf("%d compactions (%d summary requests) over 40 turns: want some, carried over between turns", compactions, summaries.Load())
	}
	if h := historyLines(t, c); len(h) != 80 {
		t.Errorf("history has %d messages, want all 80", len(h))
	}
	path := transcriptPath(t, ts, c)
	tr, err := session.LoadTranscript(path)
	if err != nil || len(tr.Messages) != 80 || tr.Compaction == nil {
		t.Fatalf("transcript: %d messages, compaction %v, %v", len(tr.Messages), tr.Compaction, err)
	}
}

// The scenario: a 300-turn session whose tool calls return 20 kB
// each keeps working at every turn: the huge results are cut in what is
// sent (never in the transcript) and compactions keep the context inside
// the fake's window. The tool is read (no process to start), so 300 turns
// stay quick.
func TestLongSessionLargeToolOutputs(t *testing.T) {
	const turns, limit, lineLen, lines = 300, 30000, 100, 200
	ts, fake := agentServer(t, withConfig("agents.defaults.contextTokens", limit))
	fake.SetContextLimit(limit)
	fake.KeepRequests(50)
	ws := filepath.Join(ts.dir, "koi")
	if err := os.MkdirAll(ws, 0o700); err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", lineLen-1) + "\n"
	if err := os.WriteFile(filepath.Join(ws, "big.txt"), []byte(strings.Repeat(line, lines)), 0o600); err != nil {
		t.Fatal(err)
	}
	var maxResult atomic.Int64
	contextFake(fake, func(r bedrocktest.Request) bedrocktest.Reply {
		for _, m := range r.Messages {
			for _, b := range m.Content {
				if tr := b.ToolResult; tr != nil {
					for _, c := range tr.Content {
						if c.Text != nil && int64(len(*c.Text)) > maxResult.Load() {
							maxResult.Store(int64(len(*c.Text)))
						}
					}
				}
			}
		}
		if lastUserText(r) == "" { // tool results came back
			return bedrocktest.Reply{bedrocktest.Text("read it")}
		}
		return bedrocktest.Reply{bedrocktest.ToolUse("tu", "read", `{"path":"big.txt"}`)}
	})
	c, _ := dialConnected(t, ts)
	for i := range turns {
		key := fmt.Sprintf("l%d", i)
		c.call("chat.send", map[string]any{"sessionKey": "main", "message": fmt.Sprintf("turn %d: read big.txt", i), "idempotencyKey": key})
		if _, ch := collectRun(t, c, key); ch[len(ch)-1].State != "final" || !strings.Contains(fmt.Sprint(ch[len(ch)-1].Message), "read it") {
			t.Fatalf("turn %d: %+v", i, ch[len(ch)-1])
		}
	}
	if n := fake.TooLong(); n > 3 {
		t.Errorf("%d requests refused as too long", n)
	}
	if m := maxResult.Load(); m == 0 || m >= lineLen*lines {
		t.Errorf("largest tool result sent: %d bytes; want it trimmed below the file's %d", m, lineLen*lines)
	}
	tr, err := session.LoadTranscript(transcriptPath(t, ts, c))
	if err != nil {
		t.Fatal(err)
	}
	whole := 0
	for _, m := range tr.Messages {
		for _, c := range m.Content {
			if c.Type == "toolResult" && strings.Count(c.Result, line) == lines {
				whole++
			}
		}
	}
	if whole != turns || len(tr.Messages) != 4*turns {
		t.Errorf("the transcript holds %d whole tool outputs and %d messages, want %d and %d", whole, len(tr.Messages), turns, 4*turns)
	}
}

// sessions.compact and /compact summarise on demand; with nothing left to
// summarise they say so instead of failing.
func TestCompactOnDemand(t *testing.T) {
	ts, fake := agentServer(t, withConfig("agents.defaults.contextTokens", 20000))
	contextFake(fake, func(bedrocktest.Request) bedrocktest.Reply { return bedrocktest.Reply{bedrocktest.Text("ok")} })
	c := adminClient(t, ts)
	big := strings.Repeat("word ", 2000)
	turn := func(i int) {
		key := fmt.Sprintf("t%d", i)
		c.call("chat.send", map[string]any{"sessionKey": "main", "message": fmt.Sprintf("turn %d %s", i, big), "idempotencyKey": key})
		collectRun(t, c, key)
	}
	for i := range 3 {
		turn(i)
	}
	var res struct {
		OK        bool   `json:"ok"`
		Key       string `json:"key"`
		Compacted bool   `json:"compacted"`
		Result    struct {
			TokensBefore, TokensAfter int
		} `json:"result"`
	}
	r := c.call("sessions.compact", map[string]any{"key": "main"})
	if err := json.Unmarshal(r.Payload, &res); err != nil || !res.OK || !res.Compacted || res.Key != session.MainKey ||
		res.Result.TokensAfter <= 0 || res.Result.TokensAfter >= res.Result.TokensBefore {
		t.Fatalf("sessions.compact: %s %+v", r.Payload, r.Error)
	}
	r = c.call("sessions.compact", map[string]any{"key": "main"})
	if !strings.Contains(string(r.Payload), `"compacted":false`) {
		t.Errorf("second sessions.compact: %s", r.Payload)
	}
	turn(3)
	turn(4)
	r = c.call("chat.send", map[string]any{"sessionKey": "main", "message": "/compact", "idempotencyKey": "cmd"})
	if !strings.Contains(string(r.Payload), `"command":"compact"`) {
		t.Fatalf("/compact: %s", r.Payload)
	}
	ag, ch := collectRun(t, c, "cmd")
	starts, ends := compactionEvents(ag)
	if ch[len(ch)-1].State != "final" || len(starts) != 1 || len(ends) != 1 || ends[0].Data["reason"] != "manual" || ends[0].Data["ok"] != true {
		t.Fatalf("/compact run: %+v, compaction %+v", ch[len(ch)-1], ends)
	}
	// The next turn starts from the second summary, which folded in the first.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("after")})
	turn(5)
	reqs := fake.Requests()
	if last := reqs[len(reqs)-1]; !strings.Contains(firstText(last), "SUMMARY-2") {
		t.Errorf("the turn after /compact does not start from its summary: %.200s", firstText(last))
	}
	if h := historyLines(t, c); len(h) != 12 {
		t.Errorf("history has %d messages, want all 12", len(h))
	}
	if f := c.call("sessions.compact", map[string]any{"key": "agent:main:nope"}); f.OK || f.Error == nil || f.Error.Code != "NOT_FOUND" {
		t.Errorf("sessions.compact of an unknown key: %+v", f)
	}
}

// The compaction entry is the context after a restart; one cut short by
// kill -9 is dropped alone, and the next turn sends the turns it would have
// summarised, with nothing lost from the transcript.
func TestCompactionSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name        string
		tear        bool
		wantSummary bool
	}{
		{"clean restart", false, true},
		{"torn compaction line", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			opts := []serverOpt{withConfig("agents.defaults.contextTokens", 20000), withOptions(func(o *Options) { o.StateDir = state })}
			ts, fake := agentServer(t, opts...)
			contextFake(fake, func(bedrocktest.Request) bedrocktest.Reply { return bedrocktest.Reply{bedrocktest.Text("ok")} })
			c := adminClient(t, ts)
			big := strings.Repeat("word ", 2000)
			turn := func(c *wsClient, i int) {
				key := fmt.Sprintf("t%d", i)
				c.call("chat.send", map[string]any{"sessionKey": "main", "message": fmt.Sprintf("turn %d %s", i, big), "idempotencyKey": key})
				if _, ch := collectRun(t, c, key); ch[len(ch)-1].State != "final" {
					t.Fatalf("turn %d: %+v", i, ch[len(ch)-1])
				}
			}
			for i := range 3 {
				turn(c, i)
			}
			if r := c.call("sessions.compact", map[string]any{"key": "main"}); !strings.Contains(string(r.Payload), `"compacted":true`) {
				t.Fatalf("sessions.compact: %s %+v", r.Payload, r.Error)
			}
			path := transcriptPath(t, ts, c)
			if err := ts.stop(t); err != nil {
				t.Fatal(err)
			}
			if tc.tear {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				lastLine := strings.LastIndex(strings.TrimSuffix(string(data), "\n"), "\n") + 1
				if !strings.Contains(string(data[lastLine:]), `"type":"compaction"`) {
					t.Fatalf("the last line is not the compaction: %.80s", data[lastLine:])
				}
				if err := os.WriteFile(path, data[:lastLine+(len(data)-lastLine)/2], 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ts2 := startServer(t, append([]serverOpt{
				withConfig("models.providers.amazon-bedrock.endpoint", fake.URL()),
				withConfig("models.providers.amazon-bedrock.region", "us-east-1"),
			}, opts...)...)
			c2, _ := dialConnected(t, ts2)
			turn(c2, 3)
			reqs := fake.Requests()
			last := reqs[len(reqs)-1]
			if got := strings.Contains(firstText(last), "SUMMARY-1"); got != tc.wantSummary {
				t.Errorf("the turn after the restart starts with the summary: %v, want %v", got, tc.wantSummary)
			}
			if got := strings.Contains(string(last.Body), "turn 0 "); got == tc.wantSummary {
				t.Errorf("the summarised turn is sent: %v, want %v", got, !tc.wantSummary)
			}
			if h := historyLines(t, c2); len(h) != 8 {
				t.Errorf("history has %d messages, want all 8", len(h))
			}
		})
	}
}

// isFlushRequest: the memory flush's last user text carries its note.
func isFlushRequest(r bedrocktest.Request) bool {
	return strings.Contains(lastUserText(r), "[memory flush]")
}

// Before a compaction summarises turns away, the memory flush lets the
// agent write down what it must keep: the flush sees the turns about to be
// summarised, runs before the summary request, and what it writes is in
// the memory file and the next turn's system prompt. On /compact and at
// the threshold alike; never after a "too long" refusal (that context was
// refused already).
func TestFlushBeforeCompaction(t *testing.T) {
	ts, fake := agentServer(t, withConfig("agents.defaults.contextTokens", 20000))
	note := "memory/" + time.Now().Format(time.DateOnly) + ".md"
	write, _ := json.Marshal(map[string]string{"path": note, "content": "- The launch code word is PERIWINKLE\n"})
	var mu sync.Mutex
	contextFake(fake, func(r bedrocktest.Request) bedrocktest.Reply {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case isFlushRequest(r):
			if !strings.Contains(string(r.Body), "PERIWINKLE") {
				t.Errorf("the flush did not see the turn about to be summarised")
			}
			return bedrocktest.Reply{bedrocktest.ToolUse("f1", "write", string(write)), bedrocktest.Stop("tool_use")}
		case lastUserText(r) == "":
			return bedrocktest.Reply{bedrocktest.Text("NO_REPLY")}
		}
		return bedrocktest.Reply{bedrocktest.Text("ok")}
	})
	c := adminClient(t, ts)
	big := strings.Repeat("word ", 2000) // 10 kB a turn
	for i, msg := range []string{"the code word is PERIWINKLE " + big, "turn 1 " + big, "turn 2 " + big, "turn 3 " + big} {
		key := fmt.Sprintf("t%d", i)
		c.call("chat.send", map[string]any{"sessionKey": "main", "message": msg, "idempotencyKey": key})
		if _, ch := collectRun(t, c, key); ch[len(ch)-1].State != "final" {
			t.Fatalf("turn %d: %+v", i, ch[len(ch)-1])
		}
	}
	before := len(fake.Requests())
	r := c.call("sessions.compact", map[string]any{"key": "main"})
	if !r.OK || !strings.Contains(string(r.Payload), `"compacted":true`) {
		t.Fatalf("sessions.compact: %s %+v", r.Payload, r.Error)
	}
	reqs := fake.Requests()[before:]
	var kinds []string
	for _, q := range reqs {
		switch {
		case isSummaryRequest(q):
			kinds = append(kinds, "summary")
		case isFlushRequest(q):
			kinds = append(kinds, "flush")
		default:
			kinds = append(kinds, "other")
		}
	}
	if strings.Join(kinds, ",") != "flush,other,summary" {
		t.Fatalf("requests of the compaction: %v; want the flush (and its tool step) before the summary", kinds)
	}
	b, err := os.ReadFile(filepath.Join(ts.dir, "koi", note))
	if err != nil || !strings.Contains(string(b), "PERIWINKLE") {
		t.Fatalf("the flush's note: %q, %v", b, err)
	}
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "what was the code word?", "idempotencyKey": "t9"})
	collectRun(t, c, "t9")
	last := fake.Requests()[len(fake.Requests())-1]
	if !strings.Contains(systemText(last.System), "PERIWINKLE") {
		t.Error("the note the flush wrote is not in the next turn's system prompt")
	}
}

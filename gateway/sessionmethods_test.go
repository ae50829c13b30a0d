package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

// readSessionsChanged reads frames until a sessions.changed event with reason.
func readSessionsChanged(t *testing.T, c *wsClient, reason string) map[string]any {
	t.Helper()
	for {
		f := c.readEvent(protocol.EventSessionsChanged)
		p := unmarshal[map[string]any](t, f.Payload)
		if p["reason"] == reason {
			return p
		}
	}
}

func TestChatInject(t *testing.T) {
	tests := []struct {
		name     string
		params   map[string]any
		wantText string // "" = refused
		wantErr  string
	}{
		{"plain note", map[string]any{"sessionKey": "notes", "message": "build finished"}, "build finished", ""},
		{"labelled note", map[string]any{"sessionKey": "notes", "message": "disk at 91%", "label": "monitor"}, "[monitor] disk at 91%", ""},
		{"main before any message", map[string]any{"sessionKey": "main", "message": "welcome"}, "welcome", ""},
		{"no message", map[string]any{"sessionKey": "notes"}, "", "invalid params: sessionKey and message are required"},
		{"no session key", map[string]any{"message": "x"}, "", "invalid params: sessionKey and message are required"},
		{"blank message", map[string]any{"sessionKey": "notes", "message": "  "}, "", "invalid params: message must be a non-empty string"},
		{"unknown agent", map[string]any{"sessionKey": "agent:ops:main", "message": "x"}, "", "unknown agent"},
	}
	ts := startServer(t)
	c, _ := dialConnected(t, ts)
	watcher, _ := dialConnected(t, ts)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.call("chat.inject", tt.params)
			if tt.wantText == "" {
				if res.OK || res.Error.Code != protocol.CodeInvalidRequest || !strings.Contains(res.Error.Message, tt.wantErr) {
					t.Fatalf("got ok=%v %+v, want INVALID_REQUEST %q", res.OK, res.Error, tt.wantErr)
				}
				return
			}
			if !res.OK {
				t.Fatalf("chat.inject: %+v", res.Error)
			}
			got := unmarshal[struct {
				OK        bool   `json:"ok"`
				MessageID string `json:"messageId"`
			}](t, res.Payload)
			key, _ := session.NormalizeKey(tt.params["sessionKey"].(string))
			if !got.OK || got.MessageID == "" {
				t.Fatalf("payload %s", res.Payload)
			}
			// Other clients learn that the session changed, with the message.
			ev := readSessionsChanged(t, watcher, "inject")
			if keys, _ := ev["keys"].([]any); len(keys) != 1 || keys[0] != key || ev["messageId"] != got.MessageID {
				t.Errorf("sessions.changed %v, want keys [%s] and messageId %s", ev, key, got.MessageID)
			}
			// The note is the transcript's newest message: an assistant
			// message marked as injected.
			h := unmarshal[struct {
				Messages []session.Message `json:"messages"`
			}](t, c.call("chat.history", map[string]any{"sessionKey": key}).Payload)
			if len(h.Messages) == 0 {
				t.Fatal("history is empty")
			}
			last := h.Messages[len(h.Messages)-1]
			if last.Role != "assistant" || last.StopReason != "injected" || last.Text() != tt.wantText || last.Timestamp == 0 {
				t.Errorf("last message %+v, want an injected assistant note %q", last, tt.wantText)
			}
			if e, ok := ts.sessions.Get(key); !ok || e.LastMessageID != got.MessageID {
				t.Errorf("session entry %+v does not end with message %s", e, got.MessageID)
			}
		})
	}
}

func TestSessionsPreview(t *testing.T) {
	ts := startServer(t)
	seed(t, ts, "alpha", []session.Message{
		textMessage("user", "first question"),
		textMessage("assistant", "first   answer\nwith lines"),
		{Role: "assistant", Content: []session.Content{{Type: "toolCall", ID: "t1", Name: "exec"}}}, // no text: left out
		textMessage("user", "second question"),
		textMessage("assistant", "a long answer that goes on and on"),
	})
	seed(t, ts, "beta", []session.Message{textMessage("user", "only one")})
	seed(t, ts, "empty", nil)
	type item struct{ Role, Text string }
	type preview struct {
		Key       string `json:"key"`
		Status    string `json:"status"`
		Items     []item `json:"items"`
		Truncated bool   `json:"truncated"`
	}
	tests := []struct {
		name    string
		params  map[string]any
		want    []preview
		wantErr string
	}{
		{
			name:   "several sessions with defaults",
			params: map[string]any{"keys": []string{"alpha", "agent:main:beta", "empty", "nope", "bad key:"}},
			want: []preview{
				{Key: "alpha", Status: "ok", Items: []item{{"user", "first question"}, {"assistant", "first answer with lines"},
					{"user", "second question"}, {"assistant", "a long answer that goes on and on"}}},
				{Key: "agent:main:beta", Status: "ok", Items: []item{{"user", "only one"}}},
				{Key: "empty", Status: "empty", Items: []item{}},
				{Key: "nope", Status: "missing", Items: []item{}},
				{Key: "bad key:", Status: "missing", Items: []item{}},
			},
		},
		{
			name:   "limit and maxChars",
			params: map[string]any{"keys": []string{"alpha"}, "limit": 2, "maxChars": 6},
			want:   []preview{{Key: "alpha", Status: "ok", Items: []item{{"user", "second"}, {"assistant", "a long"}}}},
		},
		{name: "no keys", params: map[string]any{"keys": []string{}}, wantErr: "keys must be a non-empty array"},
		{name: "too many keys", params: map[string]any{"keys": make([]string, 101)}, wantErr: "at most 100 keys"},
		{name: "limit too large", params: map[string]any{"keys": []string{"alpha"}, "limit": 101}, wantErr: "limit must be from 1 to 100"},
		{name: "maxChars too large", params: map[string]any{"keys": []string{"alpha"}, "maxChars": 4097}, wantErr: "maxChars must be from 1 to 4096"},
		{name: "key too long", params: map[string]any{"keys": []string{strings.Repeat("k", 1025)}}, wantErr: "each key must be at most 1024 bytes"},
	}
	c, _ := dialConnected(t, ts)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.call("sessions.preview", tt.params)
			if tt.wantErr != "" {
				if res.OK || res.Error.Code != protocol.CodeInvalidRequest || !strings.Contains(res.Error.Message, tt.wantErr) {
					t.Fatalf("got ok=%v %+v, want INVALID_REQUEST %q", res.OK, res.Error, tt.wantErr)
				}
				return
			}
			if !res.OK {
				t.Fatalf("sessions.preview: %+v", res.Error)
			}
			got := unmarshal[struct {
				TS        int64     `json:"ts"`
				Previews  []preview `json:"previews"`
				Truncated bool      `json:"truncated"`
			}](t, res.Payload)
			if got.TS == 0 || got.Truncated || fmt.Sprint(got.Previews) != fmt.Sprint(tt.want) {
				t.Errorf("previews\n got  %+v (ts %d, truncated %v)\n want %+v", got.Previews, got.TS, got.Truncated, tt.want)
			}
		})
	}

	t.Run("past the response bound", func(t *testing.T) {
		// "<" is six bytes of JSON ("\u003c"), so 100 items of 4096 of them
		// are 2.4 MiB per session: the third session is past 6.25 MiB.
		var keys []string
		for i := range 4 {
			key := fmt.Sprintf("wide-%d", i)
			var ms []session.Message
			for j := range 100 {
				ms = append(ms, textMessage("user", fmt.Sprintf("%03d", j)+strings.Repeat("<", 4096)))
			}
			seed(t, ts, key, ms)
			keys = append(keys, key)
		}
		res := c.call("sessions.preview", map[string]any{"keys": keys, "limit": 100, "maxChars": 4096})
		if !res.OK {
			t.Fatalf("sessions.preview: %+v", res.Error)
		}
		if len(res.Payload) > protocol.MaxResponseBytes {
			t.Errorf("payload is %d bytes, over %d", len(res.Payload), protocol.MaxResponseBytes)
		}
		got := unmarshal[struct {
			Previews  []preview `json:"previews"`
			Truncated bool      `json:"truncated"`
		}](t, res.Payload)
		if !got.Truncated || len(got.Previews) != len(keys) {
			t.Fatalf("truncated %v with %d previews, want every key answered and truncated", got.Truncated, len(got.Previews))
		}
		for i, p := range got.Previews {
			whole := p.Status == "ok" && len(p.Items) == 100 && !p.Truncated
			cut := p.Status == "ok" && len(p.Items) == 0 && p.Truncated
			if p.Key != keys[i] || !whole && !cut || i == 0 && !whole || i == len(keys)-1 && !cut {
				t.Errorf("preview %d: key %s status %s, %d items, truncated %v", i, p.Key, p.Status, len(p.Items), p.Truncated)
			}
		}
	})
}

func TestSessionsReset(t *testing.T) {
	ts, fake := agentServer(t)
	// The run streams part of an answer, then waits until it is aborted.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("partial answer"), bedrocktest.Hang()})
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("done")})
	c := adminClient(t, ts)
	watcher, _ := dialConnected(t, ts)
	const key = "agent:main:work"

	// A session with history, and a run in progress in it.
	seed(t, ts, key, []session.Message{textMessage("user", "earlier"), textMessage("assistant", "reply")})
	before, _ := ts.sessions.Get(key)
	if res := c.call("chat.send", map[string]any{"sessionKey": key, "message": "long job", "idempotencyKey": "job-1"}); !res.OK {
		t.Fatalf("chat.send: %+v", res.Error)
	}
	for {
		f := watcher.readEvent(protocol.EventChat)
		if ev := unmarshal[chatEvent](t, f.Payload); ev.RunID == "job-1" && strings.Contains(ev.DeltaText, "partial") {
			break
		}
	}

	res := c.call("sessions.reset", map[string]any{"key": "work"})
	if !res.OK {
		t.Fatalf("sessions.reset: %+v", res.Error)
	}
	got := unmarshal[struct {
		OK    bool          `json:"ok"`
		Key   string        `json:"key"`
		Entry session.Entry `json:"entry"`
	}](t, res.Payload)
	e := got.Entry
	if !got.OK || got.Key != key || e.SessionID == "" || e.SessionID == before.SessionID || e.ResetAt == 0 ||
		e.MessageCount != 0 || e.TotalTokens != 0 || e.LastMessagePreview != "" {
		t.Fatalf("reset answered %s; want a new sessionId (was %s) and zeroed counters", res.Payload, before.SessionID)
	}
	ev := readSessionsChanged(t, watcher, "reset")
	if keys, _ := ev["keys"].([]any); len(keys) != 1 || keys[0] != key {
		t.Errorf("sessions.changed %v", ev)
	}

	// The run was aborted by the reset.
	w := c.call("agent.wait", map[string]any{"runId": "job-1", "timeoutMs": 60000})
	ws := unmarshal[map[string]any](t, w.Payload)
	if !w.OK || ws["status"] != "ok" || ws["aborted"] != true {
		t.Errorf("agent.wait after reset: %s", w.Payload)
	}

	// The new transcript holds nothing of the old conversation or the
	// aborted run; the old one is kept on disk.
	h := unmarshal[struct {
		SessionID string            `json:"sessionId"`
		Messages  []session.Message `json:"messages"`
	}](t, c.call("chat.history", map[string]any{"sessionKey": key}).Payload)
	if h.SessionID != e.SessionID || len(h.Messages) != 0 {
		t.Errorf("history after reset: session %s, %d messages %+v", h.SessionID, len(h.Messages), h.Messages)
	}
	old, err := os.ReadFile(filepath.Join(ts.opts.StateDir, "sessions", before.SessionID+".jsonl"))
	if err != nil || !strings.Contains(string(old), "earlier") {
		t.Errorf("old transcript not kept: %v", err)
	}

	// The session works again afterwards.
	if res := c.call("chat.send", map[string]any{"sessionKey": key, "message": "again", "idempotencyKey": "job-2"}); !res.OK {
		t.Fatalf("chat.send after reset: %+v", res.Error)
	}
	if w := c.call("agent.wait", map[string]any{"runId": "job-2", "timeoutMs": 60000}); unmarshal[map[string]any](t, w.Payload)["status"] != "ok" {
		t.Errorf("run after reset: %s", w.Payload)
	}

	// Refusals.
	for _, tt := range []struct {
		name   string
		params map[string]any
		code   string
		msg    string
	}{
		{"unknown session", map[string]any{"key": "never-used"}, protocol.CodeNotFound, "agent:main:never-used"},
		{"no key", map[string]any{}, protocol.CodeInvalidRequest, "key is required"},
	} {
		res := c.call("sessions.reset", tt.params)
		if res.OK || res.Error.Code != tt.code || !strings.Contains(res.Error.Message, tt.msg) {
			t.Errorf("%s: got ok=%v %+v, want %s %q", tt.name, res.OK, res.Error, tt.code, tt.msg)
		}
	}
	if res := dialRead(t, ts).call("sessions.reset", map[string]any{"key": "work"}); res.OK || res.Error.Code != protocol.CodeForbidden {
		t.Errorf("reset without operator.admin: ok=%v %+v", res.OK, res.Error)
	}
}

// dialRead opens a connection with the default (read and write) scopes.
func dialRead(t *testing.T, ts *testServer) *wsClient {
	c, _ := dialConnected(t, ts)
	return c
}

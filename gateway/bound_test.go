package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/session"
)

// historyPayload is chat.history's answer with its size markers.
type historyPayload struct {
	SessionKey string `json:"sessionKey"`
	Messages   []struct {
		Role    string `json:"role"`
		Content []struct {
			Type      string          `json:"type"`
			Text      string          `json:"text"`
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"content"`
		Truncated bool `json:"truncated"`
	} `json:"messages"`
	Truncated bool `json:"truncated"`
	Omitted   *int `json:"omitted"`
}

// seed writes msgs into key's transcript through the store, as runs do.
func seed(t *testing.T, ts *testServer, key string, msgs []session.Message) {
	t.Helper()
	if _, _, err := ts.sessions.Resolve(key); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := ts.sessions.Append(key, m); err != nil {
			t.Fatal(err)
		}
	}
}

func textMessage(role, text string) session.Message {
	return session.Message{Role: role, Content: []session.Content{{Type: "text", Text: text}}}
}

// rawCall sends a request and returns its response frame's raw bytes, read
// with the client read limit the server advertised in hello-ok, as a
// conforming client reads it.
func rawCall(t *testing.T, c *wsClient, maxPayload int, method string, params any) []byte {
	t.Helper()
	c.ws.SetReadLimit(int64(maxPayload))
	id := c.request(method, params)
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(patience(t)))
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("%s: reading the response: %v", method, err)
		}
		if typ != websocket.TextMessage {
			continue
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		if f.Type == "res" && f.ID == id {
			return data
		}
	}
}

func TestChatHistoryBounded(t *testing.T) {
	const n = 200
	big := func(i int) string { return fmt.Sprintf("m%03d ", i) + strings.Repeat("x", 140<<10) }
	huge := strings.Repeat("é", 2<<20) // 4 MiB of two-byte runes
	tests := []struct {
		name  string
		msgs  func() []session.Message
		check func(t *testing.T, p historyPayload)
	}{
		{
			// 200 x 140 KiB is 28 MiB: past maxPayload as a whole, each
			// message well under the per-message bound.
			name: "many large messages keep the newest",
			msgs: func() []session.Message {
				var ms []session.Message
				for i := range n {
					ms = append(ms, textMessage([]string{"user", "assistant"}[i%2], big(i)))
				}
				return ms
			},
			check: func(t *testing.T, p historyPayload) {
				kept := len(p.Messages)
				if !p.Truncated || p.Omitted == nil || *p.Omitted != n-kept || kept == 0 || kept == n {
					t.Fatalf("truncated %v omitted %v with %d of %d messages kept", p.Truncated, p.Omitted, kept, n)
				}
				for j, m := range p.Messages {
					i := n - kept + j
					if m.Truncated || len(m.Content) != 1 || m.Content[0].Text != big(i) {
						t.Fatalf("message %d of %d is not message %d whole", j, kept, i)
					}
				}
			},
		},
		{
			name: "one huge message is cut with a note",
			msgs: func() []session.Message {
				return []session.Message{textMessage("user", "before"), textMessage("assistant", huge), textMessage("user", "after")}
			},
			check: func(t *testing.T, p historyPayload) {
				if !p.Truncated || p.Omitted == nil || *p.Omitted != 0 || len(p.Messages) != 3 {
					t.Fatalf("truncated %v omitted %v messages %d; want 3 kept, the middle one cut", p.Truncated, p.Omitted, len(p.Messages))
				}
				if p.Messages[0].Content[0].Text != "before" || p.Messages[2].Content[0].Text != "after" || p.Messages[0].Truncated || p.Messages[2].Truncated {
					t.Errorf("the small messages changed")
				}
				m := p.Messages[1]
				text := m.Content[0].Text
				head, note, ok := strings.Cut(text, "\n[… truncated: the first ")
				if !m.Truncated || !ok || !strings.HasPrefix(huge, head) || len(head) == 0 || !utf8.ValidString(head) {
					t.Fatalf("huge message: truncated %v, %d bytes, note found %v", m.Truncated, len(text), ok)
				}
				if want := fmt.Sprintf("%d of %d bytes are shown]", len(head), len(huge)); note != want {
					t.Errorf("note %q, want %q", note, want)
				}
				if b, _ := json.Marshal(m); len(b) > maxHistoryMessageBytes+64 {
					t.Errorf("cut message is %d bytes of JSON, over %d", len(b), maxHistoryMessageBytes)
				}
			},
		},
		{
			name: "small history is whole",
			msgs: func() []session.Message {
				return []session.Message{textMessage("user", "hi"), textMessage("assistant", "hello")}
			},
			check: func(t *testing.T, p historyPayload) {
				if p.Truncated || p.Omitted == nil || *p.Omitted != 0 || len(p.Messages) != 2 {
					t.Errorf("truncated %v omitted %v messages %d", p.Truncated, p.Omitted, len(p.Messages))
				}
			},
		},
	}
	ts := startServer(t)
	c, hello := dialConnected(t, ts)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("bounded-%d", i)
			seed(t, ts, key, tt.msgs())
			data := rawCall(t, c, hello.Policy.MaxPayload, "chat.history", map[string]any{"sessionKey": key, "limit": n})
			if len(data) > hello.Policy.MaxPayload {
				t.Fatalf("response frame is %d bytes, over maxPayload %d", len(data), hello.Policy.MaxPayload)
			}
			f := unmarshal[frame](t, data)
			if !f.OK {
				t.Fatalf("chat.history failed: %+v", f.Error)
			}
			tt.check(t, unmarshal[historyPayload](t, f.Payload))
			// The connection is still usable.
			if res := c.call("health", nil); !res.OK {
				t.Fatalf("health after chat.history: %+v", res.Error)
			}
		})
	}
}

func TestClipMessage(t *testing.T) {
	const limit = 4096
	long := strings.Repeat("a", 20000)
	tests := []struct {
		name string
		in   session.Message
		cut  bool
	}{
		{"small", textMessage("user", "hello"), false},
		{"long text", textMessage("assistant", long), true},
		{"escapes", textMessage("assistant", strings.Repeat("\x01\"<", 5000)), true},
		{"multibyte", textMessage("assistant", strings.Repeat("日本", 5000)), true},
		{"tool result", session.Message{Role: "user", Content: []session.Content{{Type: "toolResult", ToolCallID: "t1", Name: "exec", Result: long}}}, true},
		{"tool arguments", session.Message{Role: "assistant", Content: []session.Content{{Type: "toolCall", ID: "t1", Name: "write",
			Arguments: json.RawMessage(`{"content":"` + long + `"}`)}}}, true},
		{"several large fields", session.Message{Role: "assistant", Content: []session.Content{
			{Type: "text", Text: long}, {Type: "text", Text: long + long}, {Type: "text", Text: long}}}, true},
		{"many small blocks", session.Message{Role: "assistant", Content: func() []session.Content {
			var cs []session.Content
			for range 2000 {
				cs = append(cs, session.Content{Type: "text", Text: "0123456789"})
			}
			return cs
		}()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig, _ := json.Marshal(tt.in)
			got := clipMessage(tt.in, limit)
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if got.Truncated != tt.cut {
				t.Errorf("truncated %v, want %v", got.Truncated, tt.cut)
			}
			if !tt.cut && string(b) != string(orig) {
				t.Errorf("an uncut message changed: %s", b)
			}
			if len(b) > limit {
				t.Errorf("%d bytes of JSON, over the %d limit", len(b), limit)
			}
			if !utf8.Valid(b) || !json.Valid(b) {
				t.Errorf("output is not valid UTF-8 JSON")
			}
			for _, c := range got.Content {
				if len(c.Arguments) > 0 && !json.Valid(c.Arguments) {
					t.Errorf("arguments are not JSON: %s", c.Arguments)
				}
			}
			if again, _ := json.Marshal(tt.in); string(again) != string(orig) {
				t.Errorf("the input message was modified")
			}
		})
	}
}

func TestFitItems(t *testing.T) {
	items := []string{"aaaa", "bbbb", "cccc", "dddd"} // 6 bytes of JSON each, plus a comma
	tests := []struct {
		name      string
		budget    int
		lastFirst bool
		want      []string
		omitted   int
	}{
		{"all fit", 1 << 10, true, items, 0},
		{"newest last", 2 + 2*7, true, []string{"cccc", "dddd"}, 2},
		{"newest first", 2 + 2*7, false, []string{"aaaa", "bbbb"}, 2},
		{"none fit", 5, true, []string{}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, omitted := fitItems(items, tt.budget, tt.lastFirst, func(s string) string { return s })
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || omitted != tt.omitted {
				t.Errorf("got %v, %d omitted; want %v, %d", got, omitted, tt.want, tt.omitted)
			}
			if b, _ := json.Marshal(got); len(b) > tt.budget && len(got) > 0 {
				t.Errorf("%d bytes, over %d", len(b), tt.budget)
			}
		})
	}
}

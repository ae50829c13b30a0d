package agent

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/session"
)

func TestCutMiddle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		limit int
		cut   bool
	}{
		{"short stays", "hello", 10, false},
		{"exact stays", strings.Repeat("a", 10), 10, false},
		{"ascii", strings.Repeat("a", 100) + strings.Repeat("z", 100), 60, true},
		{"multibyte boundaries", strings.Repeat("é€😀", 200), 101, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cutMiddle(tc.in, tc.limit, "why")
			if !tc.cut {
				if got != tc.in {
					t.Errorf("changed %q to %q", tc.in, got)
				}
				return
			}
			if !utf8.ValidString(got) || !strings.Contains(got, "bytes omitted: why") {
				t.Errorf("got %q", got)
			}
			marker := strings.Index(got, "\n[…")
			end := strings.LastIndex(got, "…]\n") + len("…]\n")
			if kept := marker + len(got) - end; kept > tc.limit || !strings.HasPrefix(tc.in, got[:marker]) || !strings.HasSuffix(tc.in, got[end:]) {
				t.Errorf("kept %d bytes (limit %d), head or tail not from the input", kept, tc.limit)
			}
		})
	}
}

func TestKeepFrom(t *testing.T) {
	u := func(text string) session.Message {
		return session.Message{Role: "user", Content: []session.Content{{Type: "text", Text: text}}}
	}
	a := func(text string) session.Message {
		return session.Message{Role: "assistant", Content: []session.Content{{Type: "text", Text: text}}}
	}
	res := session.Message{Role: "user", Content: []session.Content{{Type: "toolResult", ToolCallID: "t", Result: strings.Repeat("r", 400)}}}
	k := strings.Repeat("k", 400) // 100 tokens
	for _, tc := range []struct {
		name   string
		msgs   []session.Message
		budget int
		want   int
	}{
		{"all fit: nothing to summarise", []session.Message{u(k), a(k)}, 1000, 0},
		{"keeps the turns that fit", []session.Message{u(k), a(k), u(k), a(k), u(k), a(k)}, 450, 2},
		{"always the last turn", []session.Message{u(k), a(k), u(k), a(k)}, 10, 2},
		{"never cuts at a tool result", []session.Message{u(k), a(k), u(k), a(k), res, a(k)}, 350, 2},
		{"one turn only", []session.Message{u(k), a(k), res, a(k)}, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := keepFrom(tc.msgs, tc.budget); got != tc.want {
				t.Errorf("keepFrom = %d, want %d", got, tc.want)
			}
		})
	}
}

// The estimate counts what the fake Bedrock counts (bedrocktest.EstimateTokens).
func TestEstimateTokens(t *testing.T) {
	sys := []bedrock.SystemBlock{{Text: strings.Repeat("s", 40)}}
	specs := []bedrock.ToolSpec{{Name: "exec", Description: "runs", InputSchema: []byte(`{"type":"object"}`)}}
	msgs := []bedrock.Message{
		{Role: bedrock.RoleUser, Content: []bedrock.Block{{Type: bedrock.BlockText, Text: strings.Repeat("u", 400)}}},
		{Role: bedrock.RoleAssistant, Content: []bedrock.Block{{Type: bedrock.BlockToolUse, ToolUseID: "t", Name: "exec", Input: []byte(`{"command":"ls"}`)}}},
		{Role: bedrock.RoleUser, Content: []bedrock.Block{{Type: bedrock.BlockToolResult, ToolUseID: "t", Result: strings.Repeat("r", 800)}}},
	}
	want := (40+4+4+17+3)/4 + (400+4+16+800+3)/4
	if got := estimateTokens(sys, msgs, specs); got != want {
		t.Errorf("estimateTokens = %d, want %d", got, want)
	}
}

func TestTrimToolResults(t *testing.T) {
	const window = 100000 // 10% = 40,000 bytes
	big := strings.Repeat("b", 50000)
	msgs := []bedrock.Message{{Role: bedrock.RoleUser, Content: []bedrock.Block{
		{Type: bedrock.BlockToolResult, Result: big}, {Type: bedrock.BlockToolResult, Result: "small"}, {Type: bedrock.BlockText, Text: big}}}}
	out := trimToolResults(msgs, window)
	if r := out[0].Content[0].Result; len(r) > 40000+200 || !strings.Contains(r, "trimmed to fit the context window") {
		t.Errorf("big result: %d bytes", len(r))
	}
	if out[0].Content[1].Result != "small" || out[0].Content[2].Text != big {
		t.Error("a small result or a text block was trimmed")
	}
}

package bedrocktest_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// The context limit answers like Bedrock (the provider sees a
// ContextOverflow), and a served request reports the same estimate as its
// input tokens.
func TestContextLimit(t *testing.T) {
	srv := bedrocktest.NewServer()
	defer srv.Close()
	srv.SetDefault(bedrocktest.Reply{bedrocktest.Text("ok")})
	p, err := bedrock.New(context.Background(), bedrock.Options{
		Endpoint:    srv.URL(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session"),
		Logger:      slog.New(slog.DiscardHandler),
		MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	const system, tool, desc = "you are a test", "echo", "echoes its input"
	schema := `{"type":"object"}`
	req := func(text, result string) bedrock.Request {
		r := bedrock.Request{Models: []string{"amazon-bedrock/m"},
			System:   []bedrock.SystemBlock{{Text: system}},
			Tools:    []bedrock.ToolSpec{{Name: tool, Description: desc, InputSchema: []byte(schema)}},
			Messages: []bedrock.Message{{Role: bedrock.RoleUser, Content: []bedrock.Block{{Type: bedrock.BlockText, Text: text}}}}}
		if result != "" {
			r.Messages = append(r.Messages,
				bedrock.Message{Role: bedrock.RoleAssistant, Content: []bedrock.Block{{Type: bedrock.BlockToolUse, ToolUseID: "t1", Name: tool, Input: []byte(`{"a":1}`)}}},
				bedrock.Message{Role: bedrock.RoleUser, Content: []bedrock.Block{{Type: bedrock.BlockToolResult, ToolUseID: "t1", Result: result}}})
		}
		return r
	}
	fixed := len(system) + len(tool) + len(desc) + len(schema)
	const limit = 1000
	srv.SetContextLimit(limit)
	for _, tc := range []struct {
		name         string
		text, result string
		wantTokens   int
		wantRefused  bool
	}{
		{"small", "hi", "", (fixed + 2 + 3) / 4, false},
		{"at the limit", strings.Repeat("x", limit*4-fixed), "", limit, false},
		{"one byte over", strings.Repeat("x", limit*4-fixed+1), "", limit + 1, true},
		{"tool output counts", "go", strings.Repeat("r", limit*4), 0, true},
		{"tool call counts", "go", "ok", (fixed + 2 + len(tool) + len(`{"a":1}`) + 2 + 3) / 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.TooLong()
			resp, err := p.Stream(context.Background(), req(tc.text, tc.result), func(bedrock.Event) {})
			last := srv.Requests()[len(srv.Requests())-1]
			if tc.wantTokens > 0 && last.InputTokens != tc.wantTokens {
				t.Errorf("estimate = %d, want %d", last.InputTokens, tc.wantTokens)
			}
			if tc.wantRefused {
				var be *bedrock.Error
				if !errors.As(err, &be) || be.Kind != bedrock.ContextOverflow {
					t.Fatalf("err = %v, want a context overflow", err)
				}
				if !strings.Contains(be.Reason(), "ValidationException: "+bedrocktest.TooLongMessage) {
					t.Errorf("reason = %q", be.Reason())
				}
				if srv.TooLong() != before+1 || last.Rejected == "" {
					t.Errorf("refusal not counted: %d → %d, rejected %q", before, srv.TooLong(), last.Rejected)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Usage.InputTokens != last.InputTokens || srv.TooLong() != before {
				t.Errorf("usage.inputTokens = %d, estimate %d, refusals %d → %d", resp.Usage.InputTokens, last.InputTokens, before, srv.TooLong())
			}
		})
	}
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/session"
)

// history returns the main session's messages as "role:text" lines.
func historyLines(t *testing.T, c *wsClient) []string {
	t.Helper()
	var h struct {
		Messages []session.Message `json:"messages"`
	}
	_ = json.Unmarshal(c.call("chat.history", map[string]any{"sessionKey": "main"}).Payload, &h)
	var out []string
	for _, m := range h.Messages {
		line := m.Role + ":" + m.Text()
		for _, cc := range m.Content {
			if cc.Type != "text" {
				line += " [" + cc.Type + "]"
			}
		}
		if m.ErrorMessage != "" {
			line += " [error]"
		}
		out = append(out, line)
	}
	return out
}

func lastChat(t *testing.T, c *wsClient, runID string) chatEvent {
	_, ch := collectRun(t, c, runID)
	return ch[len(ch)-1]
}

func TestAgentFaults(t *testing.T) {
	tests := []struct {
		name      string
		replies   []bedrocktest.Reply
		config    []serverOpt
		wantState string
		wantError string // substring of the chat errorMessage
		wantHist  []string
		wantCalls int
		// wantToolResult is in the tool result sent back to the model.
		wantToolResult string
	}{
		{
			name: "throttled twice, then an answer",
			replies: []bedrocktest.Reply{
				{bedrocktest.HTTPError(429, "ThrottlingException", "Too many requests")},
				{bedrocktest.HTTPError(503, "ServiceUnavailableException", "busy")},
				{bedrocktest.Text("made it")},
			},
			wantState: "final", wantHist: []string{"user:go", "assistant:made it"}, wantCalls: 3,
		},
		{
			name:      "failing mid-stream keeps the partial answer",
			replies:   []bedrocktest.Reply{{bedrocktest.Text("half an ans"), bedrocktest.Exception("modelStreamErrorException", "stream broke")}},
			wantState: "error", wantError: "stream broke",
			wantHist: []string{"user:go", "assistant:half an ans", "assistant: [error]"}, wantCalls: 1,
		},
		{
			name:      "context overflow with nothing to trim says so",
			replies:   []bedrocktest.Reply{{bedrocktest.HTTPError(400, "ValidationException", "Input is too long for requested model.")}},
			wantState: "error", wantError: "too long for the model's context window",
			wantHist: []string{"user:go", "assistant: [error]"}, wantCalls: 1,
		},
		{
			name:      "unknown model id says what to fix",
			replies:   []bedrocktest.Reply{{bedrocktest.HTTPError(400, "ValidationException", "The provided model identifier is invalid.")}},
			wantState: "error", wantError: "agents.defaults.model",
			wantHist: []string{"user:go", "assistant: [error]"}, wantCalls: 1,
		},
		{
			name:      "model access not granted says what to do",
			replies:   []bedrocktest.Reply{{bedrocktest.HTTPError(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")}},
			wantState: "error", wantError: "Model access",
			wantHist: []string{"user:go", "assistant: [error]"}, wantCalls: 1,
		},
		{
			name: "exec under deny is refused to the model, the run goes on",
			replies: []bedrocktest.Reply{
				{bedrocktest.ToolUse("t1", "exec", `{"command":"rm -rf /"}`), bedrocktest.Stop("tool_use")},
				{bedrocktest.Text("I may not run commands.")},
			},
			config:    []serverOpt{withConfig("tools.exec.security", "deny")},
			wantState: "final", wantHist: []string{"user:go", "assistant: [toolCall]", "user: [toolResult]", "assistant:I may not run commands."}, wantCalls: 2,
			wantToolResult: "exec is disabled",
		},
		{
			name: "a tool call with invalid JSON arguments gets a clear tool error",
			replies: []bedrocktest.Reply{
				{bedrocktest.ToolUse("t1", "read", `{"path": 42}`), bedrocktest.Stop("tool_use")},
				{bedrocktest.Text("retrying differently")},
			},
			wantState: "final", wantHist: []string{"user:go", "assistant: [toolCall]", "user: [toolResult]", "assistant:retrying differently"}, wantCalls: 2,
			wantToolResult: `\"path\"`,
		},
		{
			name: "a command that never ends is killed at its timeout",
			replies: []bedrocktest.Reply{
				{bedrocktest.ToolUse("t1", "exec", `{"command":"sleep 1000","timeoutSec":1}`), bedrocktest.Stop("tool_use")},
				{bedrocktest.Text("it hung")},
			},
			wantState: "final", wantHist: []string{"user:go", "assistant: [toolCall]", "user: [toolResult]", "assistant:it hung"}, wantCalls: 2,
			wantToolResult: "timed out",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, fake := agentServer(t, tt.config...)
			for _, r := range tt.replies {
				fake.Enqueue("*", r)
			}
			c, _ := dialConnected(t, ts)
			c.call("chat.send", map[string]any{"sessionKey": "main", "message": "go", "idempotencyKey": "f1"})
			last := lastChat(t, c, "f1")
			if last.State != tt.wantState || !strings.Contains(last.ErrorMessage, tt.wantError) {
				t.Fatalf("ended %q %q, want %q containing %q", last.State, last.ErrorMessage, tt.wantState, tt.wantError)
			}
			if got := historyLines(t, c); strings.Join(got, "\n") != strings.Join(tt.wantHist, "\n") {
				t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantHist, "\n"))
			}
			if n := len(fake.Requests()); n != tt.wantCalls {
				t.Errorf("%d model calls, want %d", n, tt.wantCalls)
			}
			// A tool result that went back to the model says what happened.
			if tt.wantToolResult != "" {
				body := string(fake.Requests()[1].Body)
				if !strings.Contains(body, tt.wantToolResult) || !strings.Contains(body, `"status":"error"`) {
					t.Errorf("tool result sent to the model lacks %q or the error status: %s", tt.wantToolResult, body)
				}
			}
		})
	}
}

// TestRunOutlivesItsClient: the client that started a run vanishes without a
// close frame; the run completes and a new connection reads the outcome.
func TestRunOutlivesItsClient(t *testing.T) {
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Delay(150 * time.Millisecond), bedrocktest.Text("still here")})
	c, _ := dialConnected(t, ts)
	id := c.request("agent", map[string]any{"message": "go", "idempotencyKey": "gone"})
	c.readRes(id) // ack
	_ = c.ws.NetConn().Close()
	c2, _ := dialConnected(t, ts)
	w := c2.call("agent.wait", map[string]any{"runId": "gone", "timeoutMs": 10000})
	if !strings.Contains(string(w.Payload), `"status":"ok"`) {
		t.Fatalf("agent.wait: %s", w.Payload)
	}
	if got := historyLines(t, c2); strings.Join(got, "|") != "user:go|assistant:still here" {
		t.Errorf("history %v", got)
	}
}

// TestDrainMidRun: SIGTERM during a hung model call: the run ends in exactly
// one terminal state (error: shut down), recorded, and the gateway exits.
func TestDrainMidRun(t *testing.T) {
	ts, fake := agentServer(t, withOptions(func(o *Options) { o.DrainTimeout = 300 * time.Millisecond }))
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("thinking…"), bedrocktest.Hang()})
	c, _ := dialConnected(t, ts)
	id := c.request("agent", map[string]any{"message": "go", "idempotencyKey": "d"})
	c.readRes(id)
	for {
		f := c.mustRead()
		if f.Event == "chat" && strings.Contains(string(f.Payload), "thinking") {
			break
		}
	}
	go ts.stop(t)
	var final frame
	for {
		f := c.mustRead()
		if f.Type == "res" && f.ID == id {
			final = f
			break
		}
	}
	if final.OK || !strings.Contains(final.Error.Message, "shut down") {
		t.Fatalf("final %+v %s", final.Error, final.Payload)
	}
	code, _ := c.expectClose()
	if code != 1012 {
		t.Errorf("close %d", code)
	}
	// The transcript on disk has the question, the partial answer and why
	// the run ended.
	store, err := session.Open(session.Options{Dir: ts.dir + "/sessions"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, msgs, _ := store.History(session.MainKey, 0)
	if len(msgs) != 3 || msgs[1].Text() != "thinking…" || msgs[2].StopReason != "error" || !strings.Contains(msgs[2].ErrorMessage, "shut down") {
		t.Errorf("transcript after drain: %+v", msgs)
	}
}

// noCreds is a credentials provider that finds nothing, as on a laptop
// without AWS configuration.
type noCreds struct{}

func (noCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("no EC2 IMDS role found, no AWS_ACCESS_KEY_ID in the environment")
}

func TestNoCredentialsSaysHowToFix(t *testing.T) {
	ts, _ := agentServer(t, withOptions(func(o *Options) { o.AWSCredentials = noCreds{} }))
	c, _ := dialConnected(t, ts)
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "hi", "idempotencyKey": "nc"})
	last := lastChat(t, c, "nc")
	if last.State != "error" || !strings.Contains(last.ErrorMessage, "credentials") {
		t.Fatalf("got %q %q", last.State, last.ErrorMessage)
	}
}

// TestHealthSaysModelUnreachable: without credentials the gateway still
// serves, and health says why runs will fail.
func TestHealthSaysModelUnreachable(t *testing.T) {
	ts, _ := agentServer(t, withOptions(func(o *Options) { o.AWSCredentials = noCreds{} }))
	c, _ := dialConnected(t, ts)
	var h Health
	waitFor(t, "health to report the model", func() bool {
		h = unmarshal[Health](t, c.call("health", nil).Payload)
		return h.Model.Reachable != nil
	})
	if *h.Model.Reachable || !strings.Contains(h.Model.Error, "AWS_PROFILE") {
		t.Errorf("model health %+v", h.Model)
	}
}

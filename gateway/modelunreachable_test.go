package gateway

import (
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/session"
)

// oneSentence reports whether s reads as one sentence: capital start, one
// full stop at the end, none inside.
func oneSentence(s string) bool {
	return s != "" && s[0] >= 'A' && s[0] <= 'Z' && strings.HasSuffix(s, ".") && !strings.Contains(s[:len(s)-1], ". ")
}

// TestModelUnreachableOnArrival: without credentials a client learns on
// connecting, from hello-ok's health, that the model is unreachable, in one
// sentence with the fix; a message sent anyway fails with that sentence,
// and the question and the error both stay in the history. The SDK's chain
// is in the debug log only.
func TestModelUnreachableOnArrival(t *testing.T) {
	ts, fake := agentServer(t, withOptions(func(o *Options) { o.AWSCredentials = noCreds{} }))
	// The credential check runs in the background after start; wait for it
	// on one connection, then arrive on another.
	probe, _ := dialConnected(t, ts)
	waitFor(t, "health to know the model", func() bool {
		return unmarshal[Health](t, probe.call("health", nil).Payload).Model.Reachable != nil
	})
	c, hello := dialConnected(t, ts)
	h, ok := hello.Snapshot.Health.(map[string]any)
	if !ok {
		t.Fatalf("hello-ok snapshot health is %T", hello.Snapshot.Health)
	}
	model, _ := h["model"].(map[string]any)
	warning, _ := model["error"].(string)
	if model["reachable"] != false || !oneSentence(warning) || !strings.Contains(warning, "The model is unreachable") ||
		!strings.Contains(warning, "AWS_PROFILE") || strings.Contains(warning, "IMDS") {
		t.Fatalf("hello-ok model health %v; want unreachable with one sentence naming the fix", model)
	}

	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "hello?", "idempotencyKey": "u1"})
	last := lastChat(t, c, "u1")
	if last.State != "error" || last.ErrorMessage != warning {
		t.Fatalf("the run ended %q with %q; want error with %q", last.State, last.ErrorMessage, warning)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests reached Bedrock without credentials", n)
	}

	// A fresh connection (a reload) sees the question and the error.
	c2, _ := dialConnected(t, ts)
	hist := unmarshal[struct {
		Messages []session.Message `json:"messages"`
	}](t, c2.call("chat.history", map[string]any{"sessionKey": "main"}).Payload)
	msgs := hist.Messages
	if len(msgs) != 2 || msgs[0].Role != "user" || msgs[0].Text() != "hello?" ||
		msgs[1].Role != "assistant" || msgs[1].StopReason != "error" || msgs[1].ErrorMessage != warning || msgs[1].RunID != "u1" {
		t.Fatalf("history after the failed turn: %+v", msgs)
	}
	if !strings.Contains(ts.logs.String(), "no EC2 IMDS role found") {
		t.Error("the SDK's error chain is not in the debug log")
	}
}

// TestFailedTurnStaysOutOfTheModelsView: the error entry a failed run
// leaves is for people; the next run sends the model the questions, not the
// gateway's error as if the model had said it.
func TestFailedTurnStaysOutOfTheModelsView(t *testing.T) {
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.HTTPError(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("here now")})
	c, _ := dialConnected(t, ts)
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "first", "idempotencyKey": "a"})
	if last := lastChat(t, c, "a"); last.State != "error" || !strings.Contains(last.ErrorMessage, "Model access") {
		t.Fatalf("first run ended %q %q", last.State, last.ErrorMessage)
	}
	c.call("chat.send", map[string]any{"sessionKey": "main", "message": "second", "idempotencyKey": "b"})
	if last := lastChat(t, c, "b"); last.State != "final" {
		t.Fatalf("second run ended %q %q", last.State, last.ErrorMessage)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d model requests", len(reqs))
	}
	body := string(reqs[1].Body)
	if strings.Contains(body, "Model access") || strings.Contains(body, "unreachable") {
		t.Errorf("the second request carries the first run's error: %s", body)
	}
	if !strings.Contains(body, "first") || !strings.Contains(body, "second") {
		t.Errorf("the second request lacks the questions: %s", body)
	}
	if got := strings.Join(historyLines(t, c), "|"); got != "user:first|assistant: [error]|user:second|assistant:here now" {
		t.Errorf("history %s", got)
	}
}

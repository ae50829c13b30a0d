package gateway

import (
	"strings"
	"testing"

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

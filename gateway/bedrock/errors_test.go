package bedrock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIsContextOverflow(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"Input is too long for requested model.", true},
		{"prompt is too long: 210000 tokens > 200000 maximum", true},
		{"The input token count exceeds the maximum number of input tokens", true},
		{"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.", true},
		{"Input Tokens Exceeded: Number of input tokens exceeds maximum length.", true},
		{"Too many input tokens for this model", true},
		{"Too many tokens in the request", true},
		// Output limits or throttling wording must not be taken for overflow.
		{"max_tokens: 300000 > 64000, which is the maximum allowed number of output tokens for claude-sonnet-4", false},
		{"The maximum tokens you requested exceeds the model limit of 4096.", false},
		{"Too many tokens, please wait before trying again.", false},
		{"The provided model identifier is invalid.", false},
		{"messages: roles must alternate", false},
	} {
		if got := isContextOverflow(tc.msg); got != tc.want {
			t.Errorf("isContextOverflow(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	in := "key AKIAIOSFODNN7EXAMPLE and session ASIAY34FZKBOKMUTVV7A failed"
	out := redact(in)
	if strings.Contains(out, "AKIAIOSFODNN7EXAMPLE") || strings.Contains(out, "ASIAY34FZKBOKMUTVV7A") {
		t.Errorf("redact(%q) = %q", in, out)
	}
	if !strings.Contains(out, "failed") {
		t.Errorf("redact dropped the rest: %q", out)
	}
}

func TestClassifyContext(t *testing.T) {
	c := classifier{ref: "amazon-bedrock/x", region: "us-east-1"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if e := c.classify(ctx, errors.New("read: connection reset")); e.Kind != Canceled || e.Retryable {
		t.Errorf("canceled ctx → %s retryable=%v", e.Kind, e.Retryable)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer dcancel()
	if e := c.classify(dctx, errors.New("x")); e.Kind != Timeout || e.Retryable {
		t.Errorf("expired ctx → %s retryable=%v", e.Kind, e.Retryable)
	}
	if e := c.classify(context.Background(), errTruncated); e.Kind != Unavailable || !e.Retryable {
		t.Errorf("truncated → %s retryable=%v", e.Kind, e.Retryable)
	}
	if e := c.classify(context.Background(), errors.New("weird")); e.Kind != Other || e.Retryable {
		t.Errorf("unknown → %s retryable=%v", e.Kind, e.Retryable)
	}
	inner := &Error{Kind: Throttled}
	if e := c.classify(context.Background(), inner); e != inner {
		t.Errorf("an *Error is passed through")
	}
}

func TestBackoffBounds(t *testing.T) {
	p := &Provider{opts: Options{BaseBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}}
	for attempt := 1; attempt < 100; attempt++ {
		bound := min(50*time.Millisecond, 10*time.Millisecond<<min(attempt-1, 20))
		for range 20 {
			if d := p.backoff(attempt); d < 0 || d > bound {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", attempt, d, bound)
			}
		}
	}
}

package bedrock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/skykoi/skykoi/gateway/bedrock"
	bt "github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/internal/testwait"
)

const (
	opus   = "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"
	sonnet = "amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	llama  = "amazon-bedrock/meta.llama3-70b-instruct-v1:0"
)

func modelID(ref string) string { return strings.TrimPrefix(ref, "amazon-bedrock/") }

func testCreds() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session")
}

// newProvider points a real SDK client at srv with static credentials and
// millisecond backoff.
func newProvider(t testing.TB, srv *bt.Server, mod func(*bedrock.Options)) *bedrock.Provider {
	t.Helper()
	opts := bedrock.Options{
		Region:      "us-west-2",
		Endpoint:    srv.URL(),
		Credentials: testCreds(),
		BaseBackoff: time.Millisecond,
		MaxBackoff:  2 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
		Getenv:      func(string) string { return "" },
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := bedrock.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("bedrock.New: %v", err)
	}
	return p
}

func userText(s string) bedrock.Message {
	return bedrock.Message{Role: bedrock.RoleUser, Content: []bedrock.Block{{Type: bedrock.BlockText, Text: s}}}
}

// recorder collects events; Retry delays are random, so they are checked
// for range and then zeroed before comparison.
type recorder struct {
	mu     sync.Mutex
	events []bedrock.Event
}

func (r *recorder) on(e bedrock.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) normalized(t *testing.T, maxDelay time.Duration) []bedrock.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]bedrock.Event, 0, len(r.events))
	for _, e := range r.events {
		if rt, ok := e.(bedrock.Retry); ok {
			if rt.Delay < 0 || rt.Delay > maxDelay {
				t.Errorf("retry delay %v outside [0, %v]", rt.Delay, maxDelay)
			}
			rt.Delay = 0
			e = rt
		}
		out = append(out, e)
	}
	return out
}

func jsonEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: got invalid JSON %s: %v", what, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want invalid JSON %s: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %s\n want %s", what, got, want)
	}
}

func TestStream(t *testing.T) {
	throttle := bt.HTTPError(429, "ThrottlingException", "Too many requests, please wait before trying again.")
	type check func(t *testing.T, resp *bedrock.Response, reqs []bt.Request)
	tests := []struct {
		name     string
		models   []string
		req      func(*bedrock.Request)
		replies  map[string][]bt.Reply
		opts     func(*bedrock.Options)
		wantText string
		wantStop string
		wantEvts []bedrock.Event // nil: not checked
		wantKind bedrock.ErrorKind
		wantMsg  []string // substrings of the error message
		wantReqs int
		check    check
	}{
		{
			name:     "plain text assembled, deltas in order",
			replies:  map[string][]bt.Reply{opus: {{bt.Text("Hel"), bt.Text("lo"), bt.Text(", world"), bt.Usage(11, 3, 0, 0)}}},
			wantText: "Hello, world",
			wantStop: "end_turn",
			wantEvts: []bedrock.Event{
				bedrock.TextDelta{Text: "Hel"}, bedrock.TextDelta{Text: "lo"}, bedrock.TextDelta{Text: ", world"},
				bedrock.Usage{InputTokens: 11, OutputTokens: 3},
			},
			wantReqs: 1,
		},
		{
			name: "tool use input assembled from chunks",
			replies: map[string][]bt.Reply{opus: {{
				bt.Text("Let me look."),
				bt.ToolUse("tooluse_1", "read", `{"path":"/home/ubuntu/koi/notes.md","limit":200,"ratio":1.50,"tags":["a","ü"]}`),
				bt.Stop("tool_use"), bt.Usage(20, 10, 0, 0),
			}}},
			wantText: "Let me look.",
			wantStop: "tool_use",
			wantReqs: 1,
			check: func(t *testing.T, resp *bedrock.Response, _ []bt.Request) {
				uses := resp.ToolUses()
				if len(uses) != 1 || uses[0].ToolUseID != "tooluse_1" || uses[0].Name != "read" {
					t.Fatalf("tool uses = %+v", uses)
				}
				// The model's bytes are kept: 1.50 stays 1.50.
				if got, want := string(uses[0].Input), `{"path":"/home/ubuntu/koi/notes.md","limit":200,"ratio":1.50,"tags":["a","ü"]}`; got != want {
					t.Errorf("input = %s, want %s", got, want)
				}
				if resp.Content[0].Type != bedrock.BlockText || resp.Content[1].Type != bedrock.BlockToolUse {
					t.Errorf("content order = %+v", resp.Content)
				}
			},
		},
		{
			name:     "tool use without input gets an empty object",
			replies:  map[string][]bt.Reply{opus: {{bt.ToolUse("t0", "status", "")}}},
			wantStop: "tool_use",
			wantEvts: []bedrock.Event{bedrock.ToolUseStart{ID: "t0", Name: "status"}},
			wantReqs: 1,
			check: func(t *testing.T, resp *bedrock.Response, _ []bt.Request) {
				if got := string(resp.ToolUses()[0].Input); got != "{}" {
					t.Errorf("input = %s, want {}", got)
				}
			},
		},
		{
			name:     "usage with cache read and write",
			replies:  map[string][]bt.Reply{opus: {{bt.Text("ok"), bt.Usage(100, 7, 3000, 250)}}},
			wantText: "ok",
			wantEvts: []bedrock.Event{bedrock.TextDelta{Text: "ok"}, bedrock.Usage{InputTokens: 100, OutputTokens: 7, CacheReadTokens: 3000, CacheWriteTokens: 250}},
			wantReqs: 1,
			check: func(t *testing.T, resp *bedrock.Response, _ []bt.Request) {
				want := bedrock.Usage{InputTokens: 100, OutputTokens: 7, CacheReadTokens: 3000, CacheWriteTokens: 250}
				if resp.Usage != want {
					t.Errorf("usage = %+v, want %+v", resp.Usage, want)
				}
			},
		},
		{
			name: "system prompt and cache points for a cache-capable model",
			req: func(r *bedrock.Request) {
				r.System = []bedrock.SystemBlock{{Text: "You are a Koi.", Cache: true}}
				r.Messages = []bedrock.Message{userText("one"), {Role: bedrock.RoleAssistant, Content: []bedrock.Block{{Type: bedrock.BlockText, Text: "two"}}}, userText("three")}
				r.CacheMessagesUpTo = 2
			},
			replies:  map[string][]bt.Reply{opus: {{bt.Text("ok")}}},
			wantText: "ok",
			wantReqs: 1,
			check: func(t *testing.T, _ *bedrock.Response, reqs []bt.Request) {
				var body struct {
					System   json.RawMessage `json:"system"`
					Messages []struct {
						Content json.RawMessage `json:"content"`
					} `json:"messages"`
				}
				if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
					t.Fatal(err)
				}
				jsonEqual(t, "system", body.System, []byte(`[{"text":"You are a Koi."},{"cachePoint":{"type":"default"}}]`))
				jsonEqual(t, "message 1", body.Messages[1].Content, []byte(`[{"text":"two"},{"cachePoint":{"type":"default"}}]`))
				if got := reqs[0].MessageCachePoints(); !slices.Equal(got, []int{1}) {
					t.Errorf("message cache points = %v, want [1]", got)
				}
			},
		},
		{
			name:   "no cache points for a model without prompt caching",
			models: []string{llama},
			req: func(r *bedrock.Request) {
				r.System = []bedrock.SystemBlock{{Text: "You are a Koi.", Cache: true}}
				r.CacheMessagesUpTo = 1
			},
			replies:  map[string][]bt.Reply{llama: {{bt.Text("ok")}}},
			wantText: "ok",
			wantReqs: 1,
			check: func(t *testing.T, _ *bedrock.Response, reqs []bt.Request) {
				if reqs[0].HasSystemCachePoint() || len(reqs[0].MessageCachePoints()) != 0 {
					t.Errorf("cache points sent to a model without caching: %s", reqs[0].Body)
				}
				if len(reqs[0].System) != 1 || *reqs[0].System[0].Text != "You are a Koi." {
					t.Errorf("system = %s", reqs[0].Body)
				}
			},
		},
		{
			name:   "thinking budget in additionalModelRequestFields",
			models: []string{sonnet},
			req: func(r *bedrock.Request) {
				r.Thinking = "medium"
				r.MaxTokens = 1000
			},
			replies:  map[string][]bt.Reply{sonnet: {{bt.Reasoning("Let me think.", "sig-abc"), bt.Text("42")}}},
			wantText: "42",
			// Reasoning is not surfaced as events.
			wantEvts: []bedrock.Event{bedrock.TextDelta{Text: "42"}},
			wantReqs: 1,
			check: func(t *testing.T, resp *bedrock.Response, reqs []bt.Request) {
				jsonEqual(t, "additionalModelRequestFields", reqs[0].AdditionalModelRequestFields,
					[]byte(`{"thinking":{"type":"enabled","budget_tokens":4096}}`))
				if got := *reqs[0].InferenceConfig.MaxTokens; got != 5096 {
					t.Errorf("maxTokens = %d, want 1000 + 4096", got)
				}
				want := bedrock.Block{Type: bedrock.BlockReasoning, Text: "Let me think.", Signature: "sig-abc"}
				if !reflect.DeepEqual(resp.Content[0], want) {
					t.Errorf("reasoning block = %+v, want %+v", resp.Content[0], want)
				}
			},
		},
		{
			name:   "no thinking fields when off or for other models",
			models: []string{llama},
			req: func(r *bedrock.Request) {
				r.Thinking = "high"
				r.MaxTokens = 1000
			},
			replies:  map[string][]bt.Reply{llama: {{bt.Text("ok")}}},
			wantText: "ok",
			wantReqs: 1,
			check: func(t *testing.T, _ *bedrock.Response, reqs []bt.Request) {
				if reqs[0].AdditionalModelRequestFields != nil {
					t.Errorf("additionalModelRequestFields = %s", reqs[0].AdditionalModelRequestFields)
				}
				if got := *reqs[0].InferenceConfig.MaxTokens; got != 1000 {
					t.Errorf("maxTokens = %d, want 1000", got)
				}
			},
		},
		{
			name: "throttled twice then success",
			replies: map[string][]bt.Reply{opus: {
				{throttle},
				{bt.Exception("throttlingException", "Too many tokens, please wait before trying again.")},
				{bt.Text("finally")},
			}},
			wantText: "finally",
			wantEvts: []bedrock.Event{
				bedrock.Retry{Attempt: 2, Model: opus, Reason: "ThrottlingException: Too many requests, please wait before trying again."},
				bedrock.Retry{Attempt: 3, Model: opus, Reason: "ThrottlingException: Too many tokens, please wait before trying again."},
				bedrock.TextDelta{Text: "finally"},
			},
			wantReqs: 3,
		},
		{
			name: "500 then success",
			replies: map[string][]bt.Reply{opus: {
				{bt.HTTPError(500, "InternalServerException", "boom")},
				{bt.Text("fine")},
			}},
			wantText: "fine",
			wantEvts: []bedrock.Event{
				bedrock.Retry{Attempt: 2, Model: opus, Reason: "InternalServerException: boom"},
				bedrock.TextDelta{Text: "fine"},
			},
			wantReqs: 2,
		},
		{
			name: "service unavailable, model not ready and stream error before output are retried",
			opts: func(o *bedrock.Options) { o.MaxAttempts = 4 },
			replies: map[string][]bt.Reply{opus: {
				{bt.HTTPError(503, "ServiceUnavailableException", "try later")},
				{bt.HTTPError(429, "ModelNotReadyException", "warming up")},
				{bt.Exception("modelStreamErrorException", "hiccup")},
				{bt.Text("up")},
			}},
			wantText: "up",
			wantReqs: 4,
		},
		{
			name:   "throttled beyond MaxAttempts on the primary, fallback answers",
			models: []string{opus, sonnet},
			replies: map[string][]bt.Reply{
				opus:   {{throttle}, {throttle}, {throttle}},
				sonnet: {{bt.Text("from the fallback")}},
			},
			wantText: "from the fallback",
			wantEvts: []bedrock.Event{
				bedrock.Retry{Attempt: 2, Model: opus, Reason: "ThrottlingException: Too many requests, please wait before trying again."},
				bedrock.Retry{Attempt: 3, Model: opus, Reason: "ThrottlingException: Too many requests, please wait before trying again."},
				bedrock.Fallback{From: opus, To: sonnet, Reason: "ThrottlingException: Too many requests, please wait before trying again."},
				bedrock.TextDelta{Text: "from the fallback"},
			},
			wantReqs: 4,
			check: func(t *testing.T, resp *bedrock.Response, reqs []bt.Request) {
				if resp.Model != sonnet {
					t.Errorf("Response.Model = %q, want %q", resp.Model, sonnet)
				}
				if reqs[3].ModelID != modelID(sonnet) {
					t.Errorf("4th request went to %q", reqs[3].ModelID)
				}
			},
		},
		{
			name:     "all models throttled",
			models:   []string{opus, sonnet},
			opts:     func(o *bedrock.Options) { o.MaxAttempts = 1 },
			replies:  map[string][]bt.Reply{opus: {{throttle}}, sonnet: {{throttle}}},
			wantKind: bedrock.Throttled,
			wantMsg:  []string{sonnet, "gave up after 1 attempts on each of 2 models"},
			wantReqs: 2,
		},
		{
			name:     "exception mid-stream after text is not retried",
			replies:  map[string][]bt.Reply{opus: {{bt.Text("partial "), bt.Exception("modelStreamErrorException", "the model fell over")}}},
			wantText: "partial ",
			wantEvts: []bedrock.Event{bedrock.TextDelta{Text: "partial "}},
			wantKind: bedrock.Stream,
			wantMsg:  []string{"broke off", "ModelStreamErrorException: the model fell over"},
			wantReqs: 1,
		},
		{
			name:     "connection cut mid-stream after text",
			replies:  map[string][]bt.Reply{opus: {{bt.Text("half"), bt.Disconnect()}}},
			wantText: "half",
			wantKind: bedrock.Stream,
			wantReqs: 1,
		},
		{
			name: "connection cut before output is retried",
			replies: map[string][]bt.Reply{opus: {
				{bt.Disconnect()},
				{bt.Text("again")},
			}},
			wantText: "again",
			wantReqs: 2,
		},
		{
			name:     "403 AccessDeniedException",
			models:   []string{opus, sonnet},
			replies:  map[string][]bt.Reply{opus: {{bt.HTTPError(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")}}},
			wantKind: bedrock.AccessDenied,
			wantMsg:  []string{opus, "Model access", "us-west-2", "bedrock:InvokeModelWithResponseStream", "You don't have access"},
			wantReqs: 1,
		},
		{
			name:     "404 ResourceNotFoundException",
			replies:  map[string][]bt.Reply{opus: {{bt.HTTPError(404, "ResourceNotFoundException", "Model not found.")}}},
			wantKind: bedrock.ModelNotFound,
			wantMsg:  []string{"agents.defaults.model", "us-west-2", "inference profile"},
			wantReqs: 1,
		},
		{
			name:     "invalid model identifier",
			replies:  map[string][]bt.Reply{opus: {{bt.HTTPError(400, "ValidationException", "The provided model identifier is invalid.")}}},
			wantKind: bedrock.ModelNotFound,
			wantMsg:  []string{"agents.defaults.model"},
			wantReqs: 1,
		},
		{
			name: "on-demand throughput needs an inference profile",
			replies: map[string][]bt.Reply{opus: {{bt.HTTPError(400, "ValidationException",
				"Invocation of model ID anthropic.claude-opus-4-6-v1 with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.")}}},
			wantKind: bedrock.ModelNotFound,
			wantMsg:  []string{"us.<modelId>"},
			wantReqs: 1,
		},
		{
			name:     "input too long is a context overflow",
			replies:  map[string][]bt.Reply{opus: {{bt.HTTPError(400, "ValidationException", "Input is too long for requested model.")}}},
			wantKind: bedrock.ContextOverflow,
			wantMsg:  []string{"context window", "oldest turns"},
			wantReqs: 1,
		},
		{
			name:     "context overflow as an in-stream exception",
			replies:  map[string][]bt.Reply{opus: {{bt.Exception("validationException", "prompt is too long: 210000 tokens > 200000 maximum")}}},
			wantKind: bedrock.ContextOverflow,
			wantReqs: 1,
		},
		{
			name:     "other validation errors",
			replies:  map[string][]bt.Reply{opus: {{bt.HTTPError(400, "ValidationException", "messages.1: roles must alternate")}}},
			wantKind: bedrock.Validation,
			wantMsg:  []string{"roles must alternate"},
			wantReqs: 1,
		},
		{
			name:     "quota exhausted is not retried",
			replies:  map[string][]bt.Reply{opus: {{bt.HTTPError(400, "ServiceQuotaExceededException", "Too many tokens per day")}}},
			wantKind: bedrock.Throttled,
			wantMsg:  []string{"Service Quotas"},
			wantReqs: 1,
		},
		{
			name:     "malformed tool input at max_tokens",
			replies:  map[string][]bt.Reply{opus: {{bt.ToolUse("t1", "write", `{"path":"/tmp/x","content":"abc`), bt.Stop("max_tokens")}}},
			wantStop: "max_tokens",
			wantKind: bedrock.Stream,
			wantMsg:  []string{"maxTokens", "t1"},
			wantReqs: 1,
		},
		{
			name:     "unknown event types are ignored",
			replies:  map[string][]bt.Reply{opus: {{bt.Text("a"), bt.RawEvent("someFutureEvent", `{"x":1}`), bt.Text("b")}}},
			wantText: "ab",
			wantReqs: 1,
		},
		{
			name: "a stalled stream is abandoned after IdleTimeout and retried",
			// Long enough that the healthy retry never trips it on a loaded
			// machine (50 ms did), short enough to keep the test quick: the
			// hang costs this much once.
			opts: func(o *bedrock.Options) { o.IdleTimeout = 5 * time.Second },
			replies: map[string][]bt.Reply{opus: {
				{bt.Hang()},
				{bt.Text("awake")},
			}},
			wantText: "awake",
			wantEvts: []bedrock.Event{
				bedrock.Retry{Attempt: 2, Model: opus, Reason: "stream idle timeout"},
				bedrock.TextDelta{Text: "awake"},
			},
			wantReqs: 2,
		},
		{
			name: "inference profile ARN passes through the path",
			models: []string{
				"amazon-bedrock/arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
			},
			req:      func(r *bedrock.Request) { r.System = []bedrock.SystemBlock{{Text: "sys", Cache: true}} },
			replies:  map[string][]bt.Reply{bt.AnyModel: {{bt.Text("arn ok")}}},
			wantText: "arn ok",
			wantReqs: 1,
			check: func(t *testing.T, _ *bedrock.Response, reqs []bt.Request) {
				want := "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
				if reqs[0].ModelID != want {
					t.Errorf("model id = %q (path %s), want %q", reqs[0].ModelID, reqs[0].Path, want)
				}
				if !reqs[0].HasSystemCachePoint() {
					t.Errorf("no cachePoint for a system inference profile ARN of a caching model")
				}
				if reqs[0].Region != "us-west-2" || reqs[0].SigningService != "bedrock" {
					t.Errorf("signed for %s/%s", reqs[0].Region, reqs[0].SigningService)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := bt.NewServer()
			defer srv.Close()
			for ref, replies := range tc.replies {
				id := ref
				if ref != bt.AnyModel {
					id = modelID(ref)
				}
				for _, r := range replies {
					srv.Enqueue(id, r)
				}
			}
			p := newProvider(t, srv, tc.opts)
			req := bedrock.Request{Models: tc.models, Messages: []bedrock.Message{userText("hello")}, MaxTokens: 512}
			if req.Models == nil {
				req.Models = []string{opus}
			}
			if tc.req != nil {
				tc.req(&req)
			}
			var rec recorder
			resp, err := p.Stream(context.Background(), req, rec.on)
			reqs := srv.Requests()

			if tc.wantKind == "" {
				if err != nil {
					t.Fatalf("Stream: %v", err)
				}
			} else {
				var be *bedrock.Error
				if !errors.As(err, &be) {
					t.Fatalf("Stream error = %v (%T), want *bedrock.Error of kind %s", err, err, tc.wantKind)
				}
				if be.Kind != tc.wantKind {
					t.Fatalf("kind = %s, want %s (message: %s)", be.Kind, tc.wantKind, be.Message)
				}
				for _, s := range tc.wantMsg {
					if !strings.Contains(be.Message, s) {
						t.Errorf("message %q does not contain %q", be.Message, s)
					}
				}
			}
			if len(reqs) != tc.wantReqs {
				t.Errorf("fake saw %d requests, want %d", len(reqs), tc.wantReqs)
			}
			if resp != nil {
				if got := resp.Text(); got != tc.wantText {
					t.Errorf("text = %q, want %q", got, tc.wantText)
				}
				if tc.wantStop != "" && resp.StopReason != tc.wantStop {
					t.Errorf("stop reason = %q, want %q", resp.StopReason, tc.wantStop)
				}
			} else if tc.wantText != "" {
				t.Errorf("no response, want text %q", tc.wantText)
			}
			if tc.wantEvts != nil {
				got := rec.normalized(t, 2*time.Millisecond)
				// Usage and tool input deltas are checked by their own cases;
				// filter what a case did not list so each stays focused.
				got = slices.DeleteFunc(got, func(e bedrock.Event) bool {
					switch e.(type) {
					case bedrock.Usage:
						return !slices.ContainsFunc(tc.wantEvts, func(w bedrock.Event) bool { _, ok := w.(bedrock.Usage); return ok })
					case bedrock.ToolUseInputDelta:
						return true
					}
					return false
				})
				if !reflect.DeepEqual(got, tc.wantEvts) {
					t.Errorf("events:\n got  %#v\n want %#v", got, tc.wantEvts)
				}
			}
			if tc.check != nil {
				tc.check(t, resp, reqs)
			}
			if n := srv.Pending(); n != 0 && tc.wantKind == "" {
				t.Errorf("%d scripted replies unused", n)
			}
		})
	}
}

// TestToolRoundTrip runs the agent's loop once: the model calls a tool, the
// caller runs it and sends the result back in the next request.
func TestToolRoundTrip(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	input := `{"command":"uname -a","timeout":30}`
	srv.Enqueue(modelID(opus), bt.Reply{bt.Text("Checking."), bt.ToolUse("tooluse_abc", "exec", input), bt.Stop("tool_use")})
	srv.Enqueue(modelID(opus), bt.Reply{bt.Text("It is Linux.")})
	p := newProvider(t, srv, nil)

	tools := []bedrock.ToolSpec{{
		Name:        "exec",
		Description: "Run a shell command",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"integer"}},"required":["command"]}`),
	}}
	msgs := []bedrock.Message{userText("What OS is this?")}
	var partials []string
	var starts []bedrock.ToolUseStart
	resp, err := p.Stream(context.Background(), bedrock.Request{Models: []string{opus}, Messages: msgs, Tools: tools, MaxTokens: 1024},
		func(e bedrock.Event) {
			switch e := e.(type) {
			case bedrock.ToolUseInputDelta:
				partials = append(partials, e.Partial)
			case bedrock.ToolUseStart:
				starts = append(starts, e)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != 1 || starts[0] != (bedrock.ToolUseStart{ID: "tooluse_abc", Name: "exec"}) {
		t.Errorf("tool starts = %+v", starts)
	}
	if len(partials) < 2 || strings.Join(partials, "") != input {
		t.Errorf("input deltas %q do not add up to %s", partials, input)
	}
	uses := resp.ToolUses()
	if len(uses) != 1 {
		t.Fatalf("tool uses = %+v", uses)
	}

	// The caller runs the tool and continues the conversation.
	msgs = append(msgs,
		bedrock.Message{Role: bedrock.RoleAssistant, Content: resp.Content},
		bedrock.Message{Role: bedrock.RoleUser, Content: []bedrock.Block{
			{Type: bedrock.BlockToolResult, ToolUseID: uses[0].ToolUseID, Result: "Linux koi 6.8.0 x86_64", IsError: false},
		}},
	)
	resp2, err := p.Stream(context.Background(), bedrock.Request{Models: []string{opus}, Messages: msgs, Tools: tools, MaxTokens: 1024}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp2.Text() != "It is Linux." || resp2.StopReason != "end_turn" {
		t.Errorf("second answer = %q / %s", resp2.Text(), resp2.StopReason)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d", len(reqs))
	}
	var body struct {
		Messages   json.RawMessage `json:"messages"`
		ToolConfig json.RawMessage `json:"toolConfig"`
	}
	if err := json.Unmarshal(reqs[1].Body, &body); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, "second request messages", body.Messages, []byte(`[
		{"role":"user","content":[{"text":"What OS is this?"}]},
		{"role":"assistant","content":[
			{"text":"Checking."},
			{"toolUse":{"toolUseId":"tooluse_abc","name":"exec","input":{"command":"uname -a","timeout":30}}}
		]},
		{"role":"user","content":[
			{"toolResult":{"toolUseId":"tooluse_abc","content":[{"text":"Linux koi 6.8.0 x86_64"}]}}
		]}
	]`))
	jsonEqual(t, "toolConfig", body.ToolConfig, []byte(`{"tools":[{"toolSpec":{
		"name":"exec","description":"Run a shell command",
		"inputSchema":{"json":{"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"integer"}},"required":["command"]}}
	}}]}`))
}

// TestToolResultErrorAndReasoningSentBack checks the less common blocks on
// the wire: an error result carries status "error", and a reasoning block
// goes back with its signature (Anthropic requires it before tool results
// when thinking is on).
func TestToolResultErrorAndReasoningSentBack(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	srv.Enqueue(bt.AnyModel, bt.Reply{bt.Text("ok")})
	p := newProvider(t, srv, nil)
	msgs := []bedrock.Message{
		userText("go"),
		{Role: bedrock.RoleAssistant, Content: []bedrock.Block{
			{Type: bedrock.BlockReasoning, Text: "need a tool", Signature: "c2ln"},
			{Type: bedrock.BlockToolUse, ToolUseID: "t9", Name: "read", Input: json.RawMessage(`{"path":"/nope","big":12345678901234567890}`)},
		}},
		{Role: bedrock.RoleUser, Content: []bedrock.Block{{Type: bedrock.BlockToolResult, ToolUseID: "t9", Result: "ENOENT", IsError: true}}},
	}
	if _, err := p.Stream(context.Background(), bedrock.Request{Models: []string{sonnet}, Messages: msgs, Thinking: "low"}, nil); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(srv.Requests()[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	// The big integer must survive unrounded: tool inputs go back as sent.
	jsonEqual(t, "assistant turn", body.Messages[1], []byte(`{"role":"assistant","content":[
		{"reasoningContent":{"reasoningText":{"text":"need a tool","signature":"c2ln"}}},
		{"toolUse":{"toolUseId":"t9","name":"read","input":{"path":"/nope","big":12345678901234567890}}}
	]}`))
	if !bytes.Contains(body.Messages[1], []byte("12345678901234567890")) {
		t.Errorf("big number rounded: %s", body.Messages[1])
	}
	jsonEqual(t, "tool result", body.Messages[2], []byte(`{"role":"user","content":[
		{"toolResult":{"toolUseId":"t9","content":[{"text":"ENOENT"}],"status":"error"}}
	]}`))

	// A model without extended thinking (say, after a fallback) gets the
	// same transcript without the reasoning block.
	srv.Enqueue(bt.AnyModel, bt.Reply{bt.Text("ok")})
	if _, err := p.Stream(context.Background(), bedrock.Request{Models: []string{llama}, Messages: msgs}, nil); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(srv.Requests()[1].Body, &body); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, "assistant turn for llama", body.Messages[1], []byte(`{"role":"assistant","content":[
		{"toolUse":{"toolUseId":"t9","name":"read","input":{"path":"/nope","big":12345678901234567890}}}
	]}`))
}

func TestCancelDuringHang(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply bt.Reply
	}{
		{"after output", bt.Reply{bt.Text("thinking..."), bt.Hang()}},
		{"before output", bt.Reply{bt.Hang()}},
		{"before headers", bt.Reply{bt.Delay(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bt.NewServer()
			defer srv.Close()
			srv.Enqueue(bt.AnyModel, tc.reply)
			p := newProvider(t, srv, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				resp *bedrock.Response
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := p.Stream(ctx, bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText("hi")}}, nil)
				done <- result{resp, err}
			}()
			// Cancel once the fake holds the request, so the cancel hits a
			// live stream rather than racing the dial.
			for len(srv.Requests()) == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
			var r result
			select {
			case r = <-done:
			case <-time.After(testwait.Patience(t)): // a deadlock guard, not a timing assertion
				t.Fatal("Stream did not return after cancel")
			}
			var be *bedrock.Error
			if !errors.As(r.err, &be) || be.Kind != bedrock.Canceled {
				t.Fatalf("error = %v, want kind canceled", r.err)
			}
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("error chain lacks context.Canceled: %v", r.err)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("requests = %d, want 1 (no retry after cancel)", n)
			}
		})
	}
}

func TestDeadlineIsTimeout(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	srv.Enqueue(bt.AnyModel, bt.Reply{bt.Hang()})
	p := newProvider(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := p.Stream(ctx, bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText("hi")}}, nil)
	var be *bedrock.Error
	if !errors.As(err, &be) || be.Kind != bedrock.Timeout || be.Retryable {
		t.Fatalf("error = %#v, want non-retryable timeout", err)
	}
}

func TestNoCredentials(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	srv.SetDefault(bt.Reply{bt.Text("must not be reached")})
	failing := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		// An error text that quotes a key id must not leak into the message.
		return aws.Credentials{}, errors.New("no EC2 IMDS role found; tried AKIAIOSFODNN7EXAMPLE")
	})
	p := newProvider(t, srv, func(o *bedrock.Options) { o.Credentials = failing })
	_, err := p.Stream(context.Background(), bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText("hi")}}, nil)
	var be *bedrock.Error
	if !errors.As(err, &be) || be.Kind != bedrock.NoCredentials {
		t.Fatalf("error = %v, want kind no_credentials", err)
	}
	for _, s := range []string{"instance profile", "IMDSv2", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "no EC2 IMDS role found"} {
		if !strings.Contains(be.Message, s) {
			t.Errorf("message %q lacks %q", be.Message, s)
		}
	}
	if strings.Contains(be.Message, "AKIAIOSFODNN7EXAMPLE") || strings.Contains(be.Message, "secret") {
		t.Errorf("message leaks credentials: %s", be.Message)
	}
	if be.Retryable {
		t.Error("no_credentials must not be retryable")
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("fake saw %d requests without credentials", n)
	}
	// Ping classifies the same way.
	if err := p.Ping(context.Background(), opus); !errors.As(err, &be) || be.Kind != bedrock.NoCredentials {
		t.Errorf("Ping error = %v, want no_credentials", err)
	}
}

func TestAWSRejectsCredentials(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	srv.Enqueue(bt.AnyModel, bt.Reply{bt.HTTPError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")})
	p := newProvider(t, srv, nil)
	_, err := p.Stream(context.Background(), bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText("hi")}}, nil)
	var be *bedrock.Error
	if !errors.As(err, &be) || be.Kind != bedrock.NoCredentials || !strings.Contains(be.Message, "security token") {
		t.Fatalf("error = %v, want no_credentials quoting AWS", err)
	}
}

func TestPing(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	p := newProvider(t, srv, nil)

	srv.Enqueue(modelID(opus), bt.Reply{bt.Text("p")})
	if err := p.Ping(context.Background(), opus); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	r := srv.Requests()[0]
	if r.Operation != "Converse" || r.ModelID != modelID(opus) || r.InferenceConfig == nil || *r.InferenceConfig.MaxTokens != 1 {
		t.Errorf("ping request = %s %s %s", r.Operation, r.ModelID, r.Body)
	}

	for _, tc := range []struct {
		reply bt.Reply
		kind  bedrock.ErrorKind
	}{
		{bt.Reply{bt.HTTPError(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")}, bedrock.AccessDenied},
		{bt.Reply{bt.HTTPError(400, "ValidationException", "The provided model identifier is invalid.")}, bedrock.ModelNotFound},
		{bt.Reply{bt.HTTPError(429, "ThrottlingException", "slow")}, bedrock.Throttled},
		{bt.Reply{bt.Exception("serviceUnavailableException", "down")}, bedrock.Unavailable},
	} {
		srv.Enqueue(bt.AnyModel, tc.reply)
		var be *bedrock.Error
		if err := p.Ping(context.Background(), opus); !errors.As(err, &be) || be.Kind != tc.kind {
			t.Errorf("Ping error = %v, want kind %s", err, tc.kind)
		}
	}
	var be *bedrock.Error
	if err := p.Ping(context.Background(), "openai/gpt-4"); !errors.As(err, &be) || be.Kind != bedrock.ModelNotFound {
		t.Errorf("Ping with a foreign provider = %v", err)
	}
}

func TestRequestErrorsBeforeSending(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	p := newProvider(t, srv, nil)
	for _, tc := range []struct {
		name string
		req  bedrock.Request
		kind bedrock.ErrorKind
		msg  string
	}{
		{"no model", bedrock.Request{}, bedrock.Validation, "agents.defaults.model.primary"},
		{"bare model id", bedrock.Request{Models: []string{"anthropic.claude-opus-4-6-v1"}}, bedrock.ModelNotFound, "amazon-bedrock/<modelId>"},
		{"foreign provider", bedrock.Request{Models: []string{opus, "openai/gpt-5"}}, bedrock.ModelNotFound, "openai"},
		{"bad thinking", bedrock.Request{Models: []string{opus}, Thinking: "max"}, bedrock.Validation, "agents.defaults.thinking"},
		{"bad role", bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{{Role: "system"}}}, bedrock.Validation, "role"},
		{"bad block", bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{{Role: "user", Content: []bedrock.Block{{Type: "image"}}}}}, bedrock.Validation, "image"},
		{"bad tool input", bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{{Role: "assistant", Content: []bedrock.Block{{Type: "toolUse", ToolUseID: "x", Name: "y", Input: json.RawMessage(`{`)}}}}}, bedrock.Validation, "toolUse x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Stream(context.Background(), tc.req, nil)
			var be *bedrock.Error
			if !errors.As(err, &be) || be.Kind != tc.kind || !strings.Contains(be.Message, tc.msg) {
				t.Fatalf("error = %v, want kind %s mentioning %q", err, tc.kind, tc.msg)
			}
		})
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("invalid requests reached the fake: %d", n)
	}
}

// TestRegionReachesTheSigner checks the precedence config > AWS_REGION >
// AWS_DEFAULT_REGION > us-east-1 by the region the real signer put into the
// credential scope.
func TestRegionReachesTheSigner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		region string
		env    map[string]string
		want   string
	}{
		{"config wins", "eu-central-1", map[string]string{"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "eu-central-1"},
		{"AWS_REGION", "", map[string]string{"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "eu-west-1"},
		{"AWS_DEFAULT_REGION", "", map[string]string{"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"},
		{"default", "", nil, "us-east-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bt.NewServer()
			defer srv.Close()
			srv.SetDefault(bt.Reply{bt.Text("ok")})
			p := newProvider(t, srv, func(o *bedrock.Options) {
				o.Region = tc.region
				o.Getenv = func(k string) string { return tc.env[k] }
			})
			if p.Region() != tc.want {
				t.Errorf("Region() = %q, want %q", p.Region(), tc.want)
			}
			if _, err := p.Stream(context.Background(), bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText("hi")}}, nil); err != nil {
				t.Fatal(err)
			}
			if got := srv.Requests()[0].Region; got != tc.want {
				t.Errorf("signed for %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []bedrock.Options{
		{Endpoint: "not a url"},
		{Endpoint: "ftp://example.com"},
		{MaxAttempts: -1},
		{BaseBackoff: -time.Second},
	} {
		o.Credentials = testCreds()
		if _, err := bedrock.New(context.Background(), o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// TestConcurrentStreams shares one Provider between goroutines, as the
// gateway does across sessions. Under -race it also guards ownProtocol: with
// the client's shared protocol the SDK's event-stream codec races.
func TestConcurrentStreams(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	srv.Handle(func(req bt.Request) bt.Reply {
		return bt.Reply{bt.Text("echo: "), bt.Text(*req.Messages[0].Content[0].Text)}
	})
	p := newProvider(t, srv, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			msg := strings.Repeat("x", i+1)
			resp, err := p.Stream(context.Background(), bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText(msg)}}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if resp.Text() != "echo: "+msg {
				t.Errorf("got %q", resp.Text())
			}
		})
	}
	wg.Wait()
}

// TestBackToBackStreams is the regression test for the smithy-go/net/http
// race that closed connections under live event streams (see
// addReadOnlyBody). Without the fix one stream in a few dozen broke here,
// so two hundred in a row succeed reliably only with it.
func TestBackToBackStreams(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	// The pause keeps each stream open past the moment the transport's
	// check runs, which is when the connection used to be closed.
	reply := bt.Reply{bt.TextDeltas(25, "x"), bt.Delay(2 * time.Millisecond), bt.TextDeltas(25, "x")}
	srv.Handle(func(bt.Request) bt.Reply { return reply })
	p := newProvider(t, srv, func(o *bedrock.Options) { o.MaxAttempts = 1 })
	req := bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText("hi")}}
	for i := range 200 {
		resp, err := p.Stream(context.Background(), req, nil)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if got := resp.Text(); got != strings.Repeat("x", 50) {
			t.Fatalf("stream %d: %d bytes", i, len(got))
		}
	}
}

// TestBareSDKWithFakeClient shows that the fake's Client carries a fix for
// the same race, for tests that use the SDK directly.
func TestBareSDKWithFakeClient(t *testing.T) {
	srv := bt.NewServer()
	defer srv.Close()
	reply := bt.Reply{bt.TextDeltas(25, "x"), bt.Delay(2 * time.Millisecond), bt.TextDeltas(25, "x")}
	srv.Handle(func(bt.Request) bt.Reply { return reply })
	client := bedrockruntime.New(bedrockruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  testCreds(),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   srv.Client(),
	})
	in := &bedrockruntime.ConverseStreamInput{
		ModelId: aws.String("m"),
		Messages: []types.Message{{
			Role:    types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}},
		}},
	}
	for i := range 100 {
		out, err := client.ConverseStream(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		stream := out.GetStream()
		n := 0
		for range stream.Events() {
			n++
		}
		if err := stream.Close(); err != nil {
			t.Fatalf("stream %d after %d events: %v", i, n, err)
		}
	}
}

func TestCheckCredentials(t *testing.T) {
	tests := []struct {
		name  string
		creds aws.CredentialsProvider
		ok    bool
	}{
		{"static credentials", credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session"), true},
		{"no credentials", aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("nothing configured")
		}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := bedrock.New(context.Background(), bedrock.Options{Region: "us-east-1", Endpoint: "http://127.0.0.1:1", Credentials: tt.creds})
			if err != nil {
				t.Fatal(err)
			}
			err = p.CheckCredentials(context.Background())
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var be *bedrock.Error
			if !errors.As(err, &be) || be.Kind != bedrock.NoCredentials || !strings.Contains(be.Message, "instance profile") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

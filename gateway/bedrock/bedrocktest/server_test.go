package bedrocktest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// fakeSig is enough for the fake's SigV4 presence check; these tests talk
// raw HTTP to look at the wire, the bedrock package tests use the real SDK.
const fakeSig = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/eu-west-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"

func post(t *testing.T, ctx context.Context, srv *Server, modelID, op, body string, signed bool) *http.Response {
	t.Helper()
	u := srv.URL() + "/model/" + url.PathEscape(modelID) + "/" + op
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if signed {
		req.Header.Set("Authorization", fakeSig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

type wireEvent struct {
	messageType, eventType, contentType string
	payload                             string
}

func readEvents(t *testing.T, r io.Reader) []wireEvent {
	t.Helper()
	dec := eventstream.NewDecoder()
	var out []wireEvent
	for {
		msg, err := dec.Decode(r, nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, toWire(msg))
	}
}

func toWire(msg eventstream.Message) wireEvent {
	get := func(name string) string {
		if v := msg.Headers.Get(name); v != nil {
			return v.String()
		}
		return ""
	}
	et := get(":event-type")
	if et == "" {
		et = get(":exception-type")
	}
	return wireEvent{get(":message-type"), et, get(":content-type"), string(msg.Payload)}
}

func TestUnsignedRequestIsRejected(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	srv.SetDefault(Reply{Text("never")})
	resp, err := http.Post(srv.URL()+"/model/x/converse-stream", "application/json", strings.NewReader(`{"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", resp.StatusCode)
	}
	if et := resp.Header.Get("X-Amzn-ErrorType"); !strings.HasPrefix(et, "AccessDeniedException") {
		t.Errorf("X-Amzn-ErrorType = %q", et)
	}
	var body struct{ Message string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !strings.Contains(body.Message, "SigV4") {
		t.Errorf("body message = %q, %v", body.Message, err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Rejected == "" {
		t.Errorf("rejected request not recorded: %+v", reqs)
	}
}

func TestStreamWireFormat(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	srv.Enqueue("us.anthropic.claude-opus-4-6-v1", Reply{
		Text("Hi"), Text(" there"),
		ToolUse("tu1", "read", `{"path":"/tmp/ü"}`),
		Stop("tool_use"),
		Usage(10, 5, 2, 1),
	})
	resp := post(t, context.Background(), srv, "us.anthropic.claude-opus-4-6-v1", "converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, true)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs := readEvents(t, resp.Body)
	var types []string
	var toolInput strings.Builder
	for _, e := range evs {
		if e.messageType != "event" || e.contentType != "application/json" {
			t.Errorf("event headers: %+v", e)
		}
		types = append(types, e.eventType)
		var p struct {
			Delta struct {
				ToolUse struct{ Input string } `json:"toolUse"`
			} `json:"delta"`
		}
		_ = json.Unmarshal([]byte(e.payload), &p)
		toolInput.WriteString(p.Delta.ToolUse.Input)
	}
	want := []string{
		"messageStart",
		"contentBlockDelta", "contentBlockDelta", "contentBlockStop", // text: no contentBlockStart, as on Bedrock
		"contentBlockStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop",
		"messageStop", "metadata",
	}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("event sequence:\n got  %v\n want %v", types, want)
	}
	if toolInput.String() != `{"path":"/tmp/ü"}` {
		t.Errorf("tool input chunks add up to %q", toolInput.String())
	}
	payloads := map[int]string{
		0:  `{"role":"assistant"}`,
		1:  `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`,
		3:  `{"contentBlockIndex":0}`,
		4:  `{"contentBlockIndex":1,"start":{"toolUse":{"name":"read","toolUseId":"tu1"}}}`,
		9:  `{"stopReason":"tool_use"}`,
		10: `{"metrics":{"latencyMs":0},"usage":{"cacheReadInputTokens":2,"cacheWriteInputTokens":1,"inputTokens":10,"outputTokens":5,"totalTokens":18}}`,
	}
	for i, p := range payloads {
		got := evs[i].payload
		if i == 10 { // latency is real time
			var m map[string]any
			_ = json.Unmarshal([]byte(got), &m)
			m["metrics"] = map[string]any{"latencyMs": 0}
			b, _ := json.Marshal(m)
			got = string(b)
		}
		if got != p {
			t.Errorf("event %d (%s) payload = %s, want %s", i, evs[i].eventType, got, p)
		}
	}
	r := srv.Requests()[0]
	if r.Operation != "ConverseStream" || r.Region != "eu-west-1" || r.SigningService != "bedrock" || *r.Messages[0].Content[0].Text != "hi" {
		t.Errorf("recorded request = %+v", r)
	}
}

func TestAutoStopAndException(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply Reply
		want  []string
	}{
		{"empty reply", Reply{}, []string{"messageStart", "messageStop", "metadata"}},
		{"text only", Reply{Text("a")}, []string{"messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}},
		{"usage without stop", Reply{Text("a"), Usage(1, 1, 0, 0)}, []string{"messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}},
		{"exception mid-stream", Reply{Text("a"), Exception("ThrottlingException", "slow"), Text("never")}, []string{"messageStart", "contentBlockDelta", "throttlingException"}},
		{"reasoning then text", Reply{Reasoning("hm", "sig"), Text("a")}, []string{
			"messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop",
			"contentBlockDelta", "contentBlockStop", "messageStop", "metadata",
		}},
		{"text deltas", Reply{TextDeltas(3, "x")}, []string{"messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServer()
			defer srv.Close()
			srv.Enqueue(AnyModel, tc.reply)
			resp := post(t, context.Background(), srv, "m", "converse-stream", `{}`, true)
			defer resp.Body.Close()
			evs := readEvents(t, resp.Body)
			var got []string
			for _, e := range evs {
				got = append(got, e.eventType)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("events = %v, want %v", got, tc.want)
			}
			last := evs[len(evs)-1]
			switch last.eventType {
			case "messageStop":
				t.Errorf("metadata must come last")
			case "throttlingException":
				if last.messageType != "exception" || last.payload != `{"message":"slow"}` {
					t.Errorf("exception = %+v", last)
				}
			case "metadata":
				if !strings.Contains(evs[len(evs)-2].payload, `"end_turn"`) {
					t.Errorf("auto stop reason = %s", evs[len(evs)-2].payload)
				}
			}
		})
	}
}

func TestHTTPErrorReply(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	srv.Enqueue(AnyModel, Reply{Delay(time.Millisecond), HTTPError(429, "throttlingException", "Too many requests")})
	resp := post(t, context.Background(), srv, "m", "converse-stream", `{}`, true)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "ThrottlingException:") ||
		string(b) != `{"message":"Too many requests"}` || resp.Header.Get("X-Amzn-RequestId") == "" {
		t.Errorf("got %d %v %s", resp.StatusCode, resp.Header, b)
	}
}

func TestConverseRoute(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	srv.Enqueue(AnyModel, Reply{Text("po"), Text("ng"), ToolUse("t", "x", `{"a":1}`), Usage(3, 1, 0, 0)})
	srv.Enqueue(AnyModel, Reply{Exception("serviceUnavailableException", "down")})
	resp := post(t, context.Background(), srv, "m", "converse", `{}`, true)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Output struct {
			Message struct {
				Role    string
				Content []map[string]json.RawMessage
			}
		}
		StopReason string
		Usage      map[string]int
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.StopReason != "tool_use" || got.Output.Message.Role != "assistant" || len(got.Output.Message.Content) != 2 ||
		string(got.Output.Message.Content[0]["text"]) != `"pong"` || got.Usage["inputTokens"] != 3 {
		t.Errorf("converse answer = %s", b)
	}
	resp = post(t, context.Background(), srv, "m", "converse", `{}`, true)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "ServiceUnavailableException") {
		t.Errorf("exception on converse = %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
}

func TestScriptSelection(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	answer := func(model string) string {
		resp := post(t, context.Background(), srv, model, "converse", `{}`, true)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return resp.Header.Get("X-Amzn-ErrorType")
		}
		var v struct {
			Output struct {
				Message struct{ Content []struct{ Text string } }
			}
		}
		_ = json.Unmarshal(b, &v)
		return v.Output.Message.Content[0].Text
	}
	srv.Enqueue("a", Reply{Text("a1")})
	srv.Enqueue("a", Reply{Text("a2")})
	srv.Enqueue(AnyModel, Reply{Text("any")})
	srv.Handle(func(r Request) Reply { return Reply{Text("handled " + r.ModelID)} })
	for _, step := range []struct{ model, want string }{
		{"a", "a1"}, {"b", "any"}, {"a", "a2"}, {"a", "handled a"}, {"b", "handled b"},
	} {
		if got := answer(step.model); got != step.want {
			t.Errorf("model %s answered %q, want %q", step.model, got, step.want)
		}
	}
	srv.Reset()
	if got := answer("a"); !strings.HasPrefix(got, "ValidationException") {
		t.Errorf("unscripted answer = %q, want a ValidationException", got)
	}
	srv.SetDefault(Reply{Text("default")})
	if got := answer("z"); got != "default" {
		t.Errorf("default answer = %q", got)
	}
	if len(srv.Requests()) != 2 || srv.Pending() != 0 {
		t.Errorf("after Reset: %d requests, %d pending", len(srv.Requests()), srv.Pending())
	}
}

func TestModelIDIsUnescaped(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	srv.SetDefault(Reply{Text("ok")})
	arn := "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
	// The SDK sends ':' as %3A and '/' as %2F.
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse", strings.NewReader(`{}`))
	req.Header.Set("Authorization", fakeSig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := srv.Requests()[0].ModelID; got != arn {
		t.Errorf("model id = %q, want %q", got, arn)
	}
	for _, path := range []string{"/model/x/invoke", "/foo", "/model//converse"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL()+path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", fakeSig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestEventsAreFlushed reads the first delta while the fake is still
// hanging: without a flush per event it would sit in a buffer and this
// test would block.
func TestEventsAreFlushed(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	srv.Enqueue(AnyModel, Reply{Text("first"), Hang()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := post(t, ctx, srv, "m", "converse-stream", `{}`, true)
	defer resp.Body.Close()
	dec := eventstream.NewDecoder()
	br := bufio.NewReader(resp.Body)
	for _, want := range []string{"messageStart", "contentBlockDelta"} {
		msg, err := dec.Decode(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := toWire(msg).eventType; got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	}
	cancel() // the client goes away; Hang must end so Close does not block
}

func TestDisconnectCutsAFrame(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	srv.Enqueue(AnyModel, Reply{Text("a"), Disconnect()})
	resp := post(t, context.Background(), srv, "m", "converse-stream", `{}`, true)
	defer resp.Body.Close()
	dec := eventstream.NewDecoder()
	var err error
	for n := 0; err == nil && n < 10; n++ {
		_, err = dec.Decode(resp.Body, nil)
	}
	if err == nil || err == io.EOF {
		t.Errorf("decoder error = %v, want a cut frame", err)
	}
}

func TestSplitChunks(t *testing.T) {
	for _, s := range []string{"", "a", `{"k":"üüüü"}`, "🐟🐟🐟🐟🐟", strings.Repeat("x", 100)} {
		parts := splitChunks(s, 3)
		if strings.Join(parts, "") != s || len(parts) > 3 {
			t.Errorf("splitChunks(%q) = %q", s, parts)
		}
		for _, p := range parts {
			if !utf8.ValidString(p) {
				t.Errorf("splitChunks(%q) split a rune: %q", s, p)
			}
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/model/x/converse", "/model/arn%3Aa%2Fb/converse-stream", "/model/%zz/converse", "/", "/model/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		u, err := url.Parse("http://h" + p)
		if err != nil {
			return
		}
		op, id, err := parsePath(&http.Request{Method: http.MethodPost, URL: u})
		if err != nil {
			return
		}
		if op != "Converse" && op != "ConverseStream" {
			t.Fatalf("parsePath(%q) op = %q", p, op)
		}
		if id == "" {
			t.Fatalf("parsePath(%q) accepted an empty id", p)
		}
	})
}

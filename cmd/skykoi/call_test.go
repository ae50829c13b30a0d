package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/protocol"
)

const callTestToken = "call-test-token"

// callTestGateway is a test peer with just enough of PROTOCOL.md for
// `skykoi call`: the handshake with a token, echo, agent (answers twice) and
// fail. The client package's tests cover the protocol paths in depth.
func callTestGateway(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		send := func(v any) bool {
			data, _ := json.Marshal(v)
			return c.WriteMessage(websocket.TextMessage, data) == nil
		}
		read := func() (protocol.Request, bool) {
			var req protocol.Request
			_, data, err := c.ReadMessage()
			return req, err == nil && json.Unmarshal(data, &req) == nil
		}
		res := func(id string, payload any) protocol.Response {
			return protocol.Response{Type: protocol.TypeResponse, ID: id, OK: true, Payload: payload}
		}
		if !send(protocol.Event{Type: protocol.TypeEvent, Event: protocol.EventConnectChallenge, Payload: protocol.Challenge{Nonce: "n", TS: 1}}) {
			return
		}
		req, ok := read()
		if !ok {
			return
		}
		var p protocol.ConnectParams
		_ = json.Unmarshal(req.Params, &p)
		if p.Auth == nil || p.Auth.Token != callTestToken {
			send(protocol.Response{Type: protocol.TypeResponse, ID: req.ID, Error: protocol.Errorf(protocol.CodeInvalidRequest, "unauthorized: gateway token mismatch").
				WithDetails(map[string]string{"code": protocol.AuthTokenMismatch})})
			return
		}
		if !send(res(req.ID, protocol.HelloOK{Type: "hello-ok", Protocol: protocol.MaxProtocol})) {
			return
		}
		for {
			req, ok := read()
			if !ok {
				return
			}
			switch req.Method {
			case "echo":
				if len(req.Params) == 0 {
					req.Params = json.RawMessage(`{"noParams":true}`)
				}
				ok = send(res(req.ID, req.Params))
			case "agent":
				ok = send(res(req.ID, map[string]string{"runId": "r1", "status": "accepted"})) &&
					send(res(req.ID, map[string]string{"runId": "r1", "status": "ok"}))
			default:
				ok = send(protocol.Response{Type: protocol.TypeResponse, ID: req.ID, Error: protocol.Errorf(protocol.CodeNotFound, "no such thing: "+req.Method).
					WithDetails(map[string]string{"method": req.Method})})
			}
			if !ok {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws://" + strings.TrimPrefix(srv.URL, "http://")
}

func TestCall(t *testing.T) {
	url := callTestGateway(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(callTestToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{name: "payload printed indented", args: []string{"echo", "--token", callTestToken, "--params", `{"a":1,"b":[true]}`},
			wantStdout: "{\n  \"a\": 1,\n  \"b\": [\n    true\n  ]\n}\n"},
		{name: "no params", args: []string{"echo", "--token-file", tokenFile},
			wantStdout: "{\n  \"noParams\": true\n}\n"},
		{name: "expect final", args: []string{"agent", "--token", callTestToken, "--expect-final", "--params", `{"message":"hi"}`},
			wantStdout: "{\n  \"runId\": \"r1\",\n  \"status\": \"ok\"\n}\n"},
		{name: "error response", args: []string{"missing.method", "--token", callTestToken}, wantCode: 1,
			wantStderr: []string{"NOT_FOUND: no such thing: missing.method", `details: {"method":"missing.method"}`}},
		{name: "refused token", args: []string{"echo", "--token", "wrong"}, wantCode: 1,
			wantStderr: []string{"INVALID_REQUEST: unauthorized: gateway token mismatch", "AUTH_TOKEN_MISMATCH", "hint:"}},
		{name: "params not JSON", args: []string{"echo", "--token", callTestToken, "--params", `{"a":`}, wantCode: exitUsage,
			wantStderr: []string{"--params is not valid JSON"}},
		{name: "params not an object", args: []string{"echo", "--token", callTestToken, "--params", `[1]`}, wantCode: exitUsage,
			wantStderr: []string{"--params must be a JSON object"}},
		{name: "two token sources", args: []string{"echo", "--token", "a", "--token-file", tokenFile}, wantCode: exitUsage,
			wantStderr: []string{"not both"}},
		{name: "no method", args: []string{"--token", callTestToken}, wantCode: exitUsage,
			wantStderr: []string{"exactly one METHOD"}},
		{name: "empty token file", args: []string{"echo", "--token-file", emptyFile}, wantCode: 1,
			wantStderr: []string{"is empty"}},
		{name: "not a WebSocket URL", args: []string{"echo", "--url", "http://127.0.0.1:1", "--token", "x"}, wantCode: exitUsage,
			wantStderr: []string{"ws:// or wss://"}},
		{name: "malformed fingerprint", args: []string{"echo", "--url", "wss://127.0.0.1:1", "--tls-sha256", "zz"}, wantCode: exitUsage,
			wantStderr: []string{"--tls-sha256"}},
		{name: "unreachable", args: []string{"echo", "--url", "ws://127.0.0.1:1", "--token", "x"}, wantCode: 1,
			wantStderr: []string{"ws://127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"call"}, tt.args...)
			if !strings.Contains(strings.Join(tt.args, " "), "--url") {
				args = append(args, "--url", url)
			}
			code, stdout, stderr := runCall(t, args)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if tt.wantCode == 0 && stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantStdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q does not contain %q", stderr, want)
				}
			}
		})
	}
}

func TestCallTokenFromEnv(t *testing.T) {
	url := callTestGateway(t)
	t.Setenv("SKYKOI_TOKEN", callTestToken)
	code, stdout, stderr := runCall(t, []string{"call", "echo", "--url", url, "--params", `{"x":"y"}`})
	if code != 0 || stdout != "{\n  \"x\": \"y\"\n}\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

// runCall runs the command line in-process; the deadline is a safety net
// against a hang, not a timing assertion.
func runCall(t *testing.T, args []string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience(t))
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, args, stdio{in: strings.NewReader(""), out: &out, err: &errOut})
	return code, out.String(), errOut.String()
}

// TestCallOwnerMethods: the token holder is the Koi's owner, so `skykoi call`
// reaches the admin methods of a real gateway with the token alone.
func TestCallOwnerMethods(t *testing.T) {
	fake := bedrocktest.NewServer()
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	g := startChatGW(t, fake, dir, "127.0.0.1:0")
	tokenFile := chatTokenFile(t, chatTestToken)
	code, stdout, stderr := runCall(t, []string{"call", "config.get", "--url", g.url, "--token-file", tokenFile})
	if code != 0 {
		t.Fatalf("config.get: exit %d stderr %q", code, stderr)
	}
	var got struct {
		Path  string `json:"path"`
		Hash  string `json:"hash"`
		Valid bool   `json:"valid"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("config.get printed %q: %v", stdout, err)
	}
	if got.Path != filepath.Join(dir, "skykoi.json") || len(got.Hash) != 64 || !got.Valid {
		t.Errorf("config.get = %+v", got)
	}
	// sessions.patch is admin too; main exists from its first message on.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("hi")})
	if code, _, stderr := runCall(t, []string{"call", "agent", "--expect-final", "--url", g.url, "--token-file", tokenFile,
		"--params", `{"message":"hello","idempotencyKey":"k1"}`}); code != 0 {
		t.Fatalf("agent: exit %d stderr %q", code, stderr)
	}
	code, _, stderr = runCall(t, []string{"call", "sessions.patch", "--url", g.url, "--token-file", tokenFile,
		"--params", `{"key":"main","label":"owner"}`})
	if code != 0 {
		t.Errorf("sessions.patch: exit %d stderr %q", code, stderr)
	}
}

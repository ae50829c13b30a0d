package mcp_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/mcp"
	"github.com/skykoi/skykoi/gateway/mcp/mcptest"
	"github.com/skykoi/skykoi/gateway/tools"
	"github.com/skykoi/skykoi/internal/testwait"
)

func stdio(t *testing.T, args ...string) configgen.MCPServer {
	return configgen.MCPServer{Enabled: true, Command: mcptest.StdioServer(t), Args: args,
		RequestTimeoutMs: 60000, ConnectionTimeoutMs: 30000}
}

func remote(url string) configgen.MCPServer {
	return configgen.MCPServer{Enabled: true, URL: url, RequestTimeoutMs: 60000, ConnectionTimeoutMs: 30000}
}

// start runs a Manager for the test's lifetime.
func start(t *testing.T, opts mcp.Options) *mcp.Manager {
	t.Helper()
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 10 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 100 * time.Millisecond
	}
	if opts.Workspace == nil {
		ws := t.TempDir()
		opts.Workspace = func() string { return ws }
	}
	m := mcp.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testwait.Patience(t)):
			t.Error("the Manager did not stop")
		}
	})
	return m
}

// waitFor polls the status until cond holds for the named server.
func waitFor(t *testing.T, m *mcp.Manager, name string, what string, cond func(mcp.Status) bool) mcp.Status {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		for _, st := range m.Status() {
			if st.Name == name && cond(st) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s never became %s; status %+v", name, what, m.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ready(st mcp.Status) bool { return st.State == mcp.StateReady }

func call(t *testing.T, m *mcp.Manager, name string, args any) tools.Result {
	t.Helper()
	raw, _ := json.Marshal(args)
	return m.Call(context.Background(), name, raw)
}

func TestToolsOverStdioAndHTTP(t *testing.T) {
	ts := mcptest.HTTPServer(t, "remote-test", "")
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{
		"local":  stdio(t),
		"remote": remote(ts.URL + "/mcp"),
	}})
	waitFor(t, m, "local", "ready", ready)
	waitFor(t, m, "remote", "ready", ready)

	specs := m.Specs()
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	for _, want := range []string{"local__echo", "local__crash", "remote__echo", "remote__sleep"} {
		if !slices.Contains(names, want) {
			t.Errorf("Specs lack %s; got %q", want, names)
		}
	}
	for _, s := range specs {
		if s.Name != "remote__echo" {
			continue
		}
		if s.Description != "Echo the text back." {
			t.Errorf("description %q, want the server's", s.Description)
		}
		var schema struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(s.InputSchema, &schema); err != nil || schema.Type != "object" || schema.Properties["text"] == nil {
			t.Errorf("schema %s: want an object with text (%v)", s.InputSchema, err)
		}
	}

	tests := []struct {
		name, tool string
		args       any
		want       string
		isErr      bool
		kind       string
	}{
		{"stdio echo", "local__echo", map[string]any{"text": "hi"}, "echo: hi", false, ""},
		{"http echo", "remote__echo", map[string]any{"text": "there"}, "echo: there", false, ""},
		{"tool error", "remote__fail", map[string]any{"message": "nope"}, "nope", true, "tool_error"},
		{"unknown tool of a server", "remote__missing", map[string]any{}, `MCP server "remote" has no tool "missing"`, true, "unknown_tool"},
		{"unknown server", "other__echo", map[string]any{}, `there is no MCP server "other"`, true, "unknown_tool"},
		{"arguments not an object", "local__echo", []int{1}, "the arguments must be a JSON object", true, "invalid_arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, m, tt.tool, tt.args)
			if !strings.Contains(res.Text, tt.want) || res.IsError != tt.isErr {
				t.Fatalf("got %+v; want text containing %q, isError %v", res, tt.want, tt.isErr)
			}
			if tt.kind != "" && res.Details["error"] != tt.kind {
				t.Errorf("kind %v, want %s", res.Details["error"], tt.kind)
			}
		})
	}
}

// TestCrashIsRestarted: a stdio server that dies mid-call gives the model a
// clear error, is restarted with backoff, and serves again.
func TestCrashIsRestarted(t *testing.T) {
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{"s": stdio(t)}})
	waitFor(t, m, "s", "ready", ready)

	res := call(t, m, "s__crash", map[string]any{})
	if !res.IsError || res.Details["error"] != "mcp_unavailable" || !strings.Contains(res.Text, "stopped during the call") {
		t.Fatalf("crash call: %+v; want an mcp_unavailable error saying the server stopped", res)
	}
	st := waitFor(t, m, "s", "restarted and ready", func(st mcp.Status) bool { return st.Restarts >= 1 && ready(st) })
	if st.Tools == 0 {
		t.Errorf("restarted server has no tools: %+v", st)
	}
	if res := call(t, m, "s__echo", map[string]any{"text": "back"}); res.IsError || res.Text != "echo: back" {
		t.Errorf("after restart: %+v", res)
	}
}

// TestDeadServerCall: a server that cannot start keeps being retried, says
// why in its status, and its tools answer with an error meanwhile.
func TestDeadServerCall(t *testing.T) {
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{
		"gone": {Enabled: true, Command: filepath.Join(t.TempDir(), "no-such-server"), RequestTimeoutMs: 1000, ConnectionTimeoutMs: 1000},
	}})
	st := waitFor(t, m, "gone", "restarting twice", func(st mcp.Status) bool { return st.Restarts >= 2 })
	if st.State != mcp.StateRestarting || !strings.Contains(st.LastError, "no-such-server") {
		t.Errorf("status %+v; want restarting with the start error", st)
	}
	res := call(t, m, "gone__echo", map[string]any{})
	if !res.IsError || res.Details["error"] != "mcp_unavailable" || !strings.Contains(res.Text, `MCP server "gone" is not connected`) {
		t.Errorf("call to a dead server: %+v", res)
	}
}

func TestCallTimeout(t *testing.T) {
	srv := stdio(t)
	srv.RequestTimeoutMs = 200
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{"s": srv}})
	waitFor(t, m, "s", "ready", ready)
	res := call(t, m, "s__sleep", map[string]any{"ms": 600000})
	if !res.IsError || res.Details["error"] != "timeout" || !strings.Contains(res.Text, "requestTimeoutMs") {
		t.Fatalf("slow call: %+v; want a timeout naming requestTimeoutMs", res)
	}
	// The server itself is fine: the next call works on the same connection.
	if res := call(t, m, "s__echo", map[string]any{"text": "still here"}); res.IsError {
		t.Errorf("after a timeout: %+v", res)
	}
	if st := waitFor(t, m, "s", "ready", ready); st.Restarts != 0 {
		t.Errorf("a timeout restarted the server: %+v", st)
	}
}

// TestAbortCancelsCall: cancelling the run's context ends a call at once.
func TestAbortCancelsCall(t *testing.T) {
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{"s": stdio(t)}})
	waitFor(t, m, "s", "ready", ready)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan tools.Result, 1)
	go func() { done <- m.Call(ctx, "s__sleep", json.RawMessage(`{"ms":600000}`)) }()
	cancel()
	select {
	case res := <-done:
		if !res.IsError || res.Details["error"] != "aborted" {
			t.Errorf("aborted call: %+v", res)
		}
	case <-time.After(testwait.Patience(t)):
		t.Fatal("the call did not end when its context was cancelled")
	}
}

// TestNeverInitializes: a server that never answers initialize is cut off
// after connectionTimeoutMs and retried; nothing waits on it.
func TestNeverInitializes(t *testing.T) {
	srv := stdio(t, "-hang")
	srv.ConnectionTimeoutMs = 300
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{"hung": srv}})
	st := waitFor(t, m, "hung", "retried", func(st mcp.Status) bool { return st.Restarts >= 1 })
	if !strings.Contains(st.LastError, "no answer within 300ms") {
		t.Errorf("last error %q; want the connection timeout", st.LastError)
	}
	if specs := m.Specs(); len(specs) != 0 {
		t.Errorf("a server that never initialized offers tools: %v", specs)
	}
}

// TestChildEnvHasNoSecrets: a stdio server gets the gateway's environment
// without its secrets, plus its own env.
func TestChildEnvHasNoSecrets(t *testing.T) {
	srv := stdio(t)
	srv.Env = map[string]string{"EXTRA": "from-config", "FOO": "overridden"}
	environ := append(os.Environ(), "FOO=bar", "KEEP=kept",
		configgen.EnvToken+"=gateway-token-should-not-leak", configgen.EnvPassword+"=pw", configgen.EnvClientToken+"=client")
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{"s": srv}, Environ: func() []string { return environ }})
	waitFor(t, m, "s", "ready", ready)
	tests := []struct{ name, want string }{
		{configgen.EnvToken, "<unset>"},
		{configgen.EnvPassword, "<unset>"},
		{configgen.EnvClientToken, "<unset>"},
		{"KEEP", "kept"},
		{"FOO", "overridden"},
		{"EXTRA", "from-config"},
	}
	for _, tt := range tests {
		if res := call(t, m, "s__getenv", map[string]any{"name": tt.name}); res.Text != tt.want {
			t.Errorf("server's %s = %q, want %q", tt.name, res.Text, tt.want)
		}
	}
}

// TestHeadersFromEnvAndFile: header values are read from the environment
// or a file at connect; a missing one is reported without any value.
func TestHeadersFromEnvAndFile(t *testing.T) {
	ts := mcptest.HTTPServer(t, "auth-test", "Bearer s3cret-value")
	keyFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(keyFile, []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withHeader := func(ref configgen.HeaderRef) configgen.MCPServer {
		s := remote(ts.URL + "/mcp")
		s.Headers = map[string]configgen.HeaderRef{"Authorization": ref}
		return s
	}
	env := map[string]string{"MCP_TOKEN": "s3cret-value"}
	m := start(t, mcp.Options{
		Servers: map[string]configgen.MCPServer{
			"fromenv":  withHeader(configgen.HeaderRef{Env: "MCP_TOKEN", Prefix: "Bearer "}),
			"fromfile": withHeader(configgen.HeaderRef{File: keyFile, Prefix: "Bearer "}),
			"missing":  withHeader(configgen.HeaderRef{Env: "NOT_SET", Prefix: "Bearer "}),
			"noauth":   remote(ts.URL + "/mcp"),
		},
		Getenv: func(k string) string { return env[k] },
	})
	for _, name := range []string{"fromenv", "fromfile"} {
		waitFor(t, m, name, "ready", ready)
		if res := call(t, m, name+"__echo", map[string]any{"text": "x"}); res.IsError {
			t.Errorf("%s: %+v", name, res)
		}
	}
	st := waitFor(t, m, "missing", "failed", func(st mcp.Status) bool { return st.Restarts >= 1 })
	if !strings.Contains(st.LastError, "NOT_SET is not set") {
		t.Errorf("missing header: last error %q", st.LastError)
	}
	st = waitFor(t, m, "noauth", "refused", func(st mcp.Status) bool { return st.Restarts >= 1 })
	if st.State == mcp.StateReady {
		t.Errorf("a server refusing the request is ready: %+v", st)
	}
	for _, st := range m.Status() {
		if strings.Contains(st.LastError, "s3cret") {
			t.Errorf("status shows the secret: %+v", st)
		}
	}
}

// TestUpdate: a reload starts new servers, stops removed ones, restarts a
// changed one, and leaves an unchanged one connected.
func TestUpdate(t *testing.T) {
	keep, change := stdio(t), stdio(t)
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{"keep": keep, "change": change, "drop": stdio(t)}})
	for _, n := range []string{"keep", "change", "drop"} {
		waitFor(t, m, n, "ready", ready)
	}
	changed := change
	changed.Args = []string{"-name", "renamed"}
	m.Update(map[string]configgen.MCPServer{"keep": keep, "change": changed, "add": stdio(t)})
	waitFor(t, m, "add", "ready", ready)
	waitFor(t, m, "change", "ready", ready)
	var names []string
	for _, st := range m.Status() {
		names = append(names, st.Name)
	}
	if !slices.Equal(names, []string{"add", "change", "keep"}) {
		t.Errorf("servers after update: %q", names)
	}
	if res := call(t, m, "drop__echo", map[string]any{"text": "x"}); res.Details["error"] != "unknown_tool" {
		t.Errorf("a removed server's tool: %+v", res)
	}
	for _, sp := range m.Specs() {
		if strings.HasPrefix(sp.Name, "drop__") {
			t.Errorf("a removed server's tool is still offered: %s", sp.Name)
		}
	}
	off := keep
	off.Enabled = false
	m.Update(map[string]configgen.MCPServer{"keep": off})
	st := waitFor(t, m, "keep", "disabled", func(st mcp.Status) bool { return st.State == mcp.StateDisabled })
	if st.Tools != 0 {
		t.Errorf("disabled server: %+v", st)
	}
	if res := call(t, m, "keep__echo", map[string]any{"text": "x"}); !strings.Contains(res.Text, "is disabled") {
		t.Errorf("a disabled server's tool: %+v", res)
	}
}

// TestAllowDeny: MCP tools go through the one tools.Set, and tools.allow /
// tools.deny filter them as they filter the built-in ones.
func TestAllowDeny(t *testing.T) {
	ts := mcptest.HTTPServer(t, "remote-test", "")
	m := start(t, mcp.Options{Servers: map[string]configgen.MCPServer{"local": stdio(t), "remote": remote(ts.URL + "/mcp")}})
	waitFor(t, m, "local", "ready", ready)
	waitFor(t, m, "remote", "ready", ready)

	tests := []struct {
		name        string
		allow, deny []string
		offered     []string
		refused     []string
	}{
		{"no policy offers everything", nil, nil,
			[]string{"read", "local__echo", "local__sleep", "remote__echo"}, nil},
		{"server glob in allow", []string{"read", "local__*"}, []string{"local__sleep"},
			[]string{"read", "local__echo"}, []string{"local__sleep", "remote__echo", "write"}},
		{"one tool allowed", []string{"remote__echo"}, nil,
			[]string{"remote__echo"}, []string{"read", "local__echo", "remote__sleep"}},
		{"deny a whole server", nil, []string{"remote__*"},
			[]string{"read", "local__echo"}, []string{"remote__echo"}},
		{"built-ins only", []string{"read"}, nil,
			[]string{"read"}, []string{"local__echo", "remote__echo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := tools.New(tools.Options{Workspace: t.TempDir(), Allow: tt.allow, Deny: tt.deny, External: m})
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			var names []string
			for _, s := range set.Specs() {
				names = append(names, s.Name)
			}
			for _, n := range tt.offered {
				if !slices.Contains(names, n) {
					t.Errorf("%s not offered; got %q", n, names)
				}
			}
			for _, n := range tt.refused {
				if slices.Contains(names, n) {
					t.Errorf("%s offered; got %q", n, names)
				}
				if strings.Contains(n, "__") {
					if res := set.Run(context.Background(), n, json.RawMessage(`{"text":"x"}`)); res.Details["error"] != "not_allowed" {
						t.Errorf("Run(%s) = %+v; want not_allowed", n, res)
					}
				}
			}
			for _, n := range tt.offered {
				if n == "local__echo" || n == "remote__echo" {
					if res := set.Run(context.Background(), n, json.RawMessage(`{"text":"x"}`)); res.IsError || res.Text != "echo: x" {
						t.Errorf("Run(%s) = %+v", n, res)
					}
				}
			}
		})
	}
}

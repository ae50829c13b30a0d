package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/mcp"
	"github.com/skykoi/skykoi/gateway/mcp/mcptest"
)

// mcpHealth reads health over the WebSocket and returns its MCP servers.
func mcpHealth(t *testing.T, c *wsClient) map[string]mcp.Status {
	t.Helper()
	res := c.call("health", nil)
	if !res.OK {
		t.Fatalf("health: %s", res.Payload)
	}
	h := unmarshal[Health](t, res.Payload)
	out := map[string]mcp.Status{}
	for _, st := range h.MCP {
		out[st.Name] = st
	}
	return out
}

func waitMCPReady(t *testing.T, c *wsClient, names ...string) {
	t.Helper()
	var last map[string]mcp.Status
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last MCP health: %+v", last)
		}
	})
	waitFor(t, "MCP servers "+strings.Join(names, ", ")+" ready", func() bool {
		last = mcpHealth(t, c)
		for _, n := range names {
			if last[n].State != mcp.StateReady {
				return false
			}
		}
		return true
	})
}

// TestAgentCallsMCPTools: one agent turn through the real gateway and the
// fake Bedrock calls a tool of a stdio MCP server and one of a streamable
// HTTP MCP server, both real go-sdk servers; both were offered to the model
// with their schemas, and their results went back to it.
func TestAgentCallsMCPTools(t *testing.T) {
	remote := mcptest.HTTPServer(t, "remote-test", "Bearer remote-secret")
	stdioBin := mcptest.StdioServer(t)
	ts, fake := agentServer(t,
		withConfig("mcp.servers", map[string]any{
			"local": map[string]any{"command": stdioBin},
			"remote": map[string]any{"url": remote.URL + "/mcp",
				"headers": map[string]any{"Authorization": map[string]any{"env": "REMOTE_MCP_TOKEN", "prefix": "Bearer "}}},
		}),
		withOptions(func(o *Options) {
			o.Getenv = func(k string) string {
				if k == "REMOTE_MCP_TOKEN" {
					return "remote-secret"
				}
				return ""
			}
		}))
	c, _ := dialConnected(t, ts)
	waitMCPReady(t, c, "local", "remote")

	fake.Enqueue("*", bedrocktest.Reply{
		bedrocktest.ToolUse("m1", "local__echo", `{"text":"from stdio"}`),
		bedrocktest.ToolUse("m2", "remote__echo", `{"text":"over http"}`),
		bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Both answered.")})
	c.agentTurn("use the MCP tools", "mcp1")
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d model requests, want 2", len(reqs))
	}
	first := string(reqs[0].Body)
	for _, want := range []string{`"local__echo"`, `"remote__echo"`, `"local__crash"`, "Echo the text back."} {
		if !strings.Contains(first, want) {
			t.Errorf("the tool list sent to the model lacks %s", want)
		}
	}
	results := map[string]string{}
	last := reqs[1].Messages[len(reqs[1].Messages)-1]
	for _, b := range last.Content {
		if b.ToolResult != nil {
			results[b.ToolResult.ToolUseID] = string(mustJSON(b.ToolResult))
		}
	}
	if !strings.Contains(results["m1"], "echo: from stdio") || !strings.Contains(results["m2"], "echo: over http") {
		t.Errorf("tool results sent back: %v", results)
	}
	if strings.Contains(ts.logs.String(), "remote-secret") {
		t.Error("the log contains the header's secret")
	}
}

// TestMCPReadinessDoesNotWait: five servers that never answer initialize
// leave /readyz at 200 and the gateway serving; health and status say
// they are not ready.
func TestMCPReadinessDoesNotWait(t *testing.T) {
	bin := mcptest.StdioServer(t)
	servers := map[string]any{}
	for _, n := range []string{"h1", "h2", "h3", "h4", "h5"} {
		servers[n] = map[string]any{"command": bin, "args": []any{"-hang"}}
	}
	ts := startServer(t, withConfig("mcp.servers", servers))
	resp, err := http.Get(ts.http + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz %d %s while MCP servers hang", resp.StatusCode, body)
	}
	c, _ := dialConnected(t, ts)
	st := mcpHealth(t, c)
	if len(st) != 5 {
		t.Fatalf("health lists %d MCP servers, want 5: %+v", len(st), st)
	}
	for n, s := range st {
		if s.State == mcp.StateReady || s.Tools != 0 {
			t.Errorf("%s: %+v; a server that never answered is not ready", n, s)
		}
	}
	res := c.call("status", nil)
	var status struct {
		MCP []mcp.Status `json:"mcp"`
	}
	if err := json.Unmarshal(res.Payload, &status); err != nil || len(status.MCP) != 5 {
		t.Errorf("status mcp: %s (%v)", res.Payload, err)
	}
}

// TestMCPReload: a reload that adds a server starts it; one that removes
// it stops it and its tools leave the model's list.
func TestMCPReload(t *testing.T) {
	bin := mcptest.StdioServer(t)
	ts := startServer(t)
	c, _ := dialConnected(t, ts)
	if st := mcpHealth(t, c); len(st) != 0 {
		t.Fatalf("MCP servers before any are configured: %+v", st)
	}
	rewrite := func(servers any) { ts.setConfig(t, "mcp.servers", servers) }
	rewrite(map[string]any{"added": map[string]any{"command": bin}})
	waitMCPReady(t, c, "added")
	set, err := ts.toolSet("")
	if err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		var out []string
		for _, s := range set.Specs() {
			out = append(out, s.Name)
		}
		return out
	}
	if !slices.Contains(names(), "added__echo") {
		t.Errorf("after adding the server the tools are %q", names())
	}
	rewrite(map[string]any{})
	waitFor(t, "the removed server gone from health", func() bool { return len(mcpHealth(t, c)) == 0 })
	if n := names(); slices.ContainsFunc(n, func(s string) bool { return strings.HasPrefix(s, "added__") }) {
		t.Errorf("a removed server's tools are still offered: %q", n)
	}
}

// TestMCPConfigSetBadInput: config.set with a bad mcp.servers entry is
// refused with the key's path, writes nothing, never echoes a plaintext
// header, and the gateway keeps serving; a good one starts the server.
func TestMCPConfigSetBadInput(t *testing.T) {
	bin := mcptest.StdioServer(t)
	ts := startServer(t)
	c, _ := dialConnected(t, ts, func(p map[string]any) { p["scopes"] = []string{"operator.admin", "operator.read"} })
	before, err := os.ReadFile(ts.opts.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	set := func(servers any) frame {
		get := c.call("config.get", nil)
		var g struct {
			Hash string `json:"hash"`
		}
		_ = json.Unmarshal(get.Payload, &g)
		tree, err := configgen.DecodeRaw(before)
		if err != nil {
			t.Fatal(err)
		}
		configgen.Set(tree, "mcp.servers", servers)
		raw, err := configgen.Marshal(tree)
		if err != nil {
			t.Fatal(err)
		}
		return c.call("config.set", map[string]any{"raw": string(raw), "baseHash": g.Hash})
	}
	tests := []struct {
		name    string
		servers any
		want    string
	}{
		{"plaintext header", map[string]any{"r": map[string]any{"url": "https://mcp.example.com/mcp",
			"headers": map[string]any{"Authorization": "Bearer sk-plain-secret"}}}, "mcp.servers.r.headers.Authorization"},
		{"bad server name", map[string]any{"a__b": map[string]any{"command": bin}}, "mcp.servers.a__b"},
		{"neither command nor url", map[string]any{"x": map[string]any{}}, "mcp.servers.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := set(tt.servers)
			if res.OK {
				t.Fatalf("config.set accepted %v", tt.servers)
			}
			msg := string(mustJSON(res.Error))
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "sk-plain-secret") {
				t.Errorf("error %s; want the path %s and no secret", msg, tt.want)
			}
			if after, _ := os.ReadFile(ts.opts.ConfigPath); string(after) != string(before) {
				t.Error("a refused config.set changed the file")
			}
			if st := mcpHealth(t, c); len(st) != 0 {
				t.Errorf("a refused config.set started servers: %+v", st)
			}
		})
	}
	if res := set(map[string]any{"ok": map[string]any{"command": bin}}); !res.OK {
		t.Fatalf("a good config.set: %s %+v", res.Payload, res.Error)
	}
	waitMCPReady(t, c, "ok")
}

package configgen

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseMCPInvalid: every bad mcp.servers shape is refused with its path,
// and a header given as plaintext is never echoed.
func TestParseMCPInvalid(t *testing.T) {
	srv := func(name, body string) string {
		return `{` + gw + `, mcp: {servers: {` + name + `: ` + body + `}}}`
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"neither command nor url", srv("gh", `{}`),
			[]string{`mcp.servers.gh: needs command (a stdio server) or url (a streamable HTTP server)`}},
		{"both command and url", srv("gh", `{command: "gh-mcp", url: "http://127.0.0.1:1/mcp"}`),
			[]string{`mcp.servers.gh: set either command (a stdio server) or url (a streamable HTTP server), not both`}},
		{"name with double underscore", srv("a__b", `{command: "x"}`),
			[]string{`mcp.servers.a__b: server name must start with a letter and use letters, digits, - and single _ (at most 24 characters; "__" separates server and tool in tool names), got "a__b"`}},
		{"name starting with a digit", srv(`"1x"`, `{command: "x"}`),
			[]string{`mcp.servers."1x": server name must start with a letter and use letters, digits, - and single _ (at most 24 characters; "__" separates server and tool in tool names), got "1x"`}},
		{"name too long", srv(strings.Repeat("a", 25), `{command: "x"}`),
			[]string{`mcp.servers.` + strings.Repeat("a", 25) + `: server name must start with a letter and use letters, digits, - and single _ (at most 24 characters; "__" separates server and tool in tool names), got "` + strings.Repeat("a", 25) + `"`}},
		{"sse transport", srv("r", `{url: "https://mcp.example.com/sse", transport: "sse"}`),
			[]string{`mcp.servers.r.transport: "sse" is not supported by SkyKoi: SkyKoi speaks streamable HTTP to remote servers; use "streamable-http" with the server's MCP endpoint`}},
		{"stdio transport with url", srv("r", `{url: "https://mcp.example.com/mcp", transport: "stdio"}`),
			[]string{`mcp.servers.r.transport: "stdio" needs command; with url use "streamable-http"`}},
		{"relative command", srv("s", `{command: "./bin/server"}`),
			[]string{`mcp.servers.s.command: must be a binary name or an absolute path, got "./bin/server"`}},
		{"relative cwd", srv("s", `{command: "srv", cwd: "work"}`),
			[]string{`mcp.servers.s.cwd: must be an absolute path or start with ~/, got "work"`}},
		{"args with url", srv("r", `{url: "https://mcp.example.com/mcp", args: ["-v"]}`),
			[]string{`mcp.servers.r.args: only used by stdio servers (those with command), not with url`}},
		{"headers with command", srv("s", `{command: "srv", headers: {Authorization: {env: "TOKEN"}}}`),
			[]string{`mcp.servers.s.headers: only used by streamable HTTP servers (those with url), not with command`}},
		{"plaintext header is refused and not echoed", srv("r", `{url: "https://mcp.example.com/mcp", headers: {Authorization: "Bearer sk-live-123"}}`),
			[]string{`mcp.servers.r.headers.Authorization: must be an object {env: NAME} or {file: /path}: header values come from the environment or a file, never from plaintext in the config`}},
		{"header with env and file", srv("r", `{url: "https://mcp.example.com/mcp", headers: {Authorization: {env: "T", file: "/run/t"}}}`),
			[]string{`mcp.servers.r.headers.Authorization: set exactly one of env and file`}},
		{"header with neither", srv("r", `{url: "https://mcp.example.com/mcp", headers: {Authorization: {prefix: "Bearer "}}}`),
			[]string{`mcp.servers.r.headers.Authorization: set exactly one of env and file`}},
		{"bad header name", srv("r", `{url: "https://mcp.example.com/mcp", headers: {"X Bad": {env: "T"}}}`),
			[]string{`mcp.servers.r.headers."X Bad": must be an HTTP header name, got "X Bad"`}},
		{"bad header env name", srv("r", `{url: "https://mcp.example.com/mcp", headers: {A: {env: "1T"}}}`),
			[]string{`mcp.servers.r.headers.A.env: must be an environment variable name (letters, digits and _, not starting with a digit), got "1T"`}},
		{"credentials in url", srv("r", `{url: "https://u:p@mcp.example.com/mcp"}`),
			[]string{`mcp.servers.r.url: must not carry credentials; put them in headers, read from env or a file`}},
		{"url not http", srv("r", `{url: "ftp://mcp.example.com/"}`),
			[]string{`mcp.servers.r.url: must be an http:// or https:// URL, got "ftp://mcp.example.com/"`}},
		{"gateway secret in env", srv("s", `{command: "srv", env: {SKYKOI_GATEWAY_TOKEN: "x"}}`),
			[]string{`mcp.servers.s.env.SKYKOI_GATEWAY_TOKEN: SKYKOI_GATEWAY_TOKEN is the gateway's own secret and is never passed to MCP servers; remove it`}},
		{"env value not a string", srv("s", `{command: "srv", env: {DEBUG: 1}}`),
			[]string{`mcp.servers.s.env.DEBUG: must be a string, got 1`}},
		{"unknown server key", srv("s", `{command: "srv", timeout: 5}`),
			[]string{`mcp.servers.s.timeout: unknown key`}},
		{"timeout too small", srv("s", `{command: "srv", requestTimeoutMs: 5}`),
			[]string{`mcp.servers.s.requestTimeoutMs: must be an integer from 100 to 86400000, got 5`}},
		{"servers not an object", `{` + gw + `, mcp: {servers: ["gh"]}}`,
			[]string{`mcp.servers: must be an object of server name → server, got a list`}},
		{"allow names an unconfigured server", `{` + gw + `, tools: {allow: ["read", "gh__search"]}, mcp: {servers: {docs: {command: "d"}}}}`,
			[]string{`tools.allow[1]: names MCP server "gh", which mcp.servers does not define (configured: docs)`}},
		{"deny names a server with none configured", `{` + gw + `, tools: {deny: ["gh__*"]}}`,
			[]string{`tools.deny[0]: names MCP server "gh", which mcp.servers does not define (none is configured)`}},
		{"allow with a bad mcp tool part", `{` + gw + `, tools: {allow: ["gh__a.b"]}, mcp: {servers: {gh: {command: "d"}}}}`,
			[]string{"tools.allow[0]: must be one of " + strings.Join(toolNames, ", ") + ", or <server>__<tool> / <server>__* for a server in mcp.servers; got \"gh__a.b\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEnv([]byte(doc(tt.in)), noEnv)
			got := issueStrings(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("issues:\n got  %q\n want %q", got, tt.want)
			}
			if strings.Contains(strings.Join(got, "\n"), "sk-live") {
				t.Errorf("an issue echoes the header value: %q", got)
			}
		})
	}
}

func TestParseMCPValid(t *testing.T) {
	in := `{` + gw + `, tools: {allow: ["read", "docs__*", "remote__search"], deny: ["docs__drop"]},
	  mcp: {servers: {
	    docs: {command: "docs-mcp", args: ["--stdio"], env: {DEBUG: "1"}, cwd: "/srv"},
	    remote: {url: "https://mcp.example.com/mcp", transport: "streamable-http", requestTimeoutMs: 5000,
	             headers: {Authorization: {env: "REMOTE_TOKEN", prefix: "Bearer "}, "X-Key": {file: "/run/key"}}},
	    off: {command: "/opt/off", enabled: false},
	  }}}`
	cfg, err := ParseEnv([]byte(doc(in)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]MCPServer{
		"docs": {Enabled: true, Command: "docs-mcp", Args: []string{"--stdio"}, Env: map[string]string{"DEBUG": "1"}, Cwd: "/srv",
			RequestTimeoutMs: 60000, ConnectionTimeoutMs: 30000},
		"remote": {Enabled: true, Transport: "streamable-http", URL: "https://mcp.example.com/mcp", RequestTimeoutMs: 5000, ConnectionTimeoutMs: 30000,
			Headers: map[string]HeaderRef{"Authorization": {Env: "REMOTE_TOKEN", Prefix: "Bearer "}, "X-Key": {File: "/run/key"}}},
		"off": {Enabled: false, Command: "/opt/off", RequestTimeoutMs: 60000, ConnectionTimeoutMs: 30000},
	}
	if !reflect.DeepEqual(cfg.MCP.Servers, want) {
		t.Errorf("servers:\n got  %+v\n want %+v", cfg.MCP.Servers, want)
	}
	cp := cfg.Clone()
	cp.MCP.Servers["docs"].Env["DEBUG"] = "changed"
	if cfg.MCP.Servers["docs"].Env["DEBUG"] != "1" {
		t.Error("Clone shares the env map")
	}
}

func TestSplitMCPToolName(t *testing.T) {
	tests := []struct {
		in, server, tool string
		ok               bool
	}{
		{"gh__search", "gh", "search", true},
		{"gh__*", "gh", "*", true},
		{"my-srv_1__list_issues", "my-srv_1", "list_issues", true},
		{"read", "", "", false},
		{"gh__", "", "", false},
		{"__x", "", "", false},
		{"gh__a b", "", "", false},
		{"a___b", "a", "_b", true}, // the first "__" separates; MCP tool names may start with _
	}
	for _, tt := range tests {
		s, tl, ok := SplitMCPToolName(tt.in)
		if s != tt.server || tl != tt.tool || ok != tt.ok {
			t.Errorf("SplitMCPToolName(%q) = %q, %q, %v; want %q, %q, %v", tt.in, s, tl, ok, tt.server, tt.tool, tt.ok)
		}
	}
}

// FuzzSplitMCPToolName: whatever it accepts puts back together into the
// input, has a valid server name, and is never a built-in tool's name.
func FuzzSplitMCPToolName(f *testing.F) {
	for _, s := range []string{"gh__search", "gh__*", "a___b", "read", "__", "x__", "é__t", "a__b__c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		server, tool, ok := SplitMCPToolName(s)
		if !ok {
			return
		}
		if server+"__"+tool != s || !ValidServerName(server) || tool == "" || contains(toolNames, s) {
			t.Fatalf("SplitMCPToolName(%q) = %q, %q", s, server, tool)
		}
	})
}

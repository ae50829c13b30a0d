package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/mcp/mcptest"
)

func TestDoctor(t *testing.T) {
	fake := bedrocktest.NewServer()
	defer fake.Close()
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("k")})
	mcpBin := mcptest.StdioServer(t)
	tests := []struct {
		name     string
		cfg      string // %d: port, %s: fake endpoint; "" writes no file
		perm     os.FileMode
		noCreds  bool
		holdPort bool
		wantCode int
		want     []string
		notWant  []string
		atHome   bool   // the config sits in $HOME itself, a directory shared with everything else
		endpoint string // replaces the fake Bedrock's URL
	}{
		{name: "healthy", cfg: `{gateway: {mode: "local", port: %d, auth: {tokenSha256: "` + configgen.HashSecret("t") + `"}},
			agents: {defaults: {model: {primary: "amazon-bedrock/m1", fallbacks: ["amazon-bedrock/m2"]}}},
			models: {providers: {"amazon-bedrock": {region: "eu-west-1", endpoint: "%s"}}}}`, perm: 0o600, wantCode: 0,
			want: []string{"[ok  ] config:", "[ok  ] state dir permissions", "[ok  ] port:", "[ok  ] AWS region: eu-west-1 (models.providers.amazon-bedrock.region)",
				"[ok  ] AWS credentials", "[ok  ] model amazon-bedrock/m1: answered", "[ok  ] model amazon-bedrock/m2: answered", "[ok  ] clock", "0 failed, 0 warnings"}},
		{name: "MCP servers", cfg: `{gateway: {mode: "local", port: %d, auth: {tokenSha256: "` + configgen.HashSecret("t") + `"}},
			models: {providers: {"amazon-bedrock": {region: "us-east-1", endpoint: "%s"}}},
			mcp: {servers: {good: {command: "` + mcpBin + `"}, gone: {command: "/nonexistent/mcp-server", connectionTimeoutMs: 2000},
			                off: {command: "` + mcpBin + `", enabled: false}}}}`, perm: 0o600, wantCode: 0,
			want: []string{"[ok  ] MCP server good: stdio server answered with 5 tools", "[WARN] MCP server gone: starting:", "/nonexistent/mcp-server",
				"fix: fix mcp.servers.gone", "[ok  ] MCP server off: disabled"}},
		{name: "invalid config", cfg: `{gateway: {mode: "remote", port: %d}} // %s`, perm: 0o600, wantCode: 1,
			want: []string{"[FAIL] config:", `gateway.mode: must be "local", got "remote"`, "fix: edit the file"}},
		{name: "missing config", wantCode: 1, want: []string{"does not exist", "fix: run `skykoi local`"},
			notWant: []string{"state dir", "chmod"}},
		{name: "DNS fails", cfg: `{gateway: {mode: "local", port: %d, auth: {tokenSha256: "` + configgen.HashSecret("t") + `"}},
			models: {providers: {"amazon-bedrock": {region: "us-east-1", endpoint: "%s"}}}}`, perm: 0o600, endpoint: "http://bedrock.skykoi-doctor-test.invalid/", wantCode: 1,
			want:    []string{"[WARN] clock: could not compare clocks: looking up bedrock.skykoi-doctor-test.invalid failed, so DNS is not working", "fix: fix name resolution first"},
			notWant: []string{"timedatectl"}},
		{name: "loose config in the home directory", cfg: `{gateway: {mode: "local", port: %d, auth: {tokenSha256: "` + configgen.HashSecret("t") + `"}},
			models: {providers: {"amazon-bedrock": {region: "us-east-1", endpoint: "%s"}}}}`, perm: 0o644, atHome: true, wantCode: 0,
			want:    []string{"[WARN] state dir permissions", "skykoi.json is 644", "fix: chmod 600 "},
			notWant: []string{"chmod -R", "bashrc"}},
		{name: "loose permissions, port taken, no credentials", cfg: `{gateway: {mode: "local", port: %d, auth: {tokenSha256: "` + configgen.HashSecret("t") + `"}},
			models: {providers: {"amazon-bedrock": {region: "us-east-1", endpoint: "%s"}}}}`, perm: 0o644, noCreds: true, holdPort: true, wantCode: 1,
			want: []string{"[WARN] state dir permissions", "chmod -R go-rwx", "[FAIL] port:", "taken by another program", "[FAIL] AWS credentials", "AWS_PROFILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			_ = os.MkdirAll(state, 0o700)
			path := filepath.Join(state, "skykoi.json")
			if tt.atHome {
				path = filepath.Join(dir, "skykoi.json")
				// Another program's file the Koi must leave alone.
				if err := os.WriteFile(filepath.Join(dir, ".bashrc"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			port := freeTCPPort(t)
			if tt.holdPort {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
			}
			if tt.cfg != "" {
				if err := os.WriteFile(path, []byte(fmt.Sprintf(tt.cfg, port, cmp.Or(tt.endpoint, fake.URL()))), tt.perm); err != nil {
					t.Fatal(err)
				}
				_ = os.Chmod(path, tt.perm)
			}
			t.Setenv("HOME", dir)
			t.Setenv(configgen.EnvStateDir, "")
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "missing", "aws-config"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "missing", "aws-credentials"))
			if tt.noCreds {
				t.Setenv("AWS_ACCESS_KEY_ID", "")
				t.Setenv("AWS_SECRET_ACCESS_KEY", "")
			} else {
				t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
				t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
			}
			var out bytes.Buffer
			code := run(context.Background(), []string{"doctor", "--config", path}, stdio{in: strings.NewReader(""), out: &out, err: &out})
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", code, tt.wantCode, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

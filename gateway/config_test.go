package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/protocol"
)

func adminClient(t *testing.T, ts *testServer) *wsClient {
	c, _ := dialConnected(t, ts, func(p map[string]any) { p["scopes"] = []string{"operator.admin"} })
	return c
}

type configGet struct {
	Path   string         `json:"path"`
	Hash   string         `json:"hash"`
	Config map[string]any `json:"config"`
	Valid  bool           `json:"valid"`
}

func TestConfigGetRedacts(t *testing.T) {
	ts := startServer(t)
	c := adminClient(t, ts)
	res := c.call("config.get", nil)
	if !res.OK {
		t.Fatal(res.Error)
	}
	got := unmarshal[configGet](t, res.Payload)
	data, _ := os.ReadFile(ts.opts.ConfigPath)
	if got.Path != ts.opts.ConfigPath || got.Hash != hashHex(data) || !got.Valid {
		t.Errorf("path %q hash %q valid %v", got.Path, got.Hash, got.Valid)
	}
	if v, _ := configgen.Get(got.Config, "gateway.auth.tokenSha256"); v != configgen.Redacted {
		t.Errorf("tokenSha256 shown as %v", v)
	}
	if strings.Contains(string(res.Payload), configgen.HashSecret(testToken)) {
		t.Error("the token digest leaks through config.get")
	}
	schema := c.call("config.schema", nil)
	var s struct {
		Schema map[string]any `json:"schema"`
	}
	_ = json.Unmarshal(schema.Payload, &s)
	if s.Schema["$id"] != configgen.SchemaID {
		t.Errorf("config.schema: %v", s.Schema["$id"])
	}
}

func TestConfigSet(t *testing.T) {
	hashLine := fmt.Sprintf(`tokenSha256: %q`, configgen.HashSecret(testToken))
	tests := []struct {
		name       string
		raw        func(cur configGet) string
		baseHash   func(cur configGet) string
		wantErr    string   // error message; "" = success
		wantIssues []string // details.issues as "path: message"
		check      func(t *testing.T, ts *testServer)
	}{
		{
			name: "valid change is written and applied hot",
			raw: func(configGet) string {
				return `// set by config.set
{gateway: {mode: "local", auth: {` + hashLine + `}, controlUi: {allowedOrigins: ["https://app.example"]}}, logging: {level: "warn"}}`
			},
			check: func(t *testing.T, ts *testServer) {
				if o := ts.cfg().Gateway.ControlUI.AllowedOrigins; len(o) != 1 || o[0] != "https://app.example" {
					t.Errorf("running origins %v", o)
				}
				data, _ := os.ReadFile(ts.opts.ConfigPath)
				if !strings.HasPrefix(string(data), "// set by config.set") {
					t.Errorf("file is %q: raw text not written as given", data)
				}
				if ts.opts.LogLevel.Level().String() != "WARN" {
					t.Errorf("log level %v", ts.opts.LogLevel.Level())
				}
			},
		},
		{
			name: "invalid config: issues returned, nothing written",
			raw: func(configGet) string {
				return `{gateway: {mode: "local", port: "x", auth: {` + hashLine + `}}, tools: {exec: {security: "all"}}}`
			},
			wantErr: "invalid config",
			wantIssues: []string{
				`gateway.port: must be an integer from 1 to 65535, got "x"`,
				`tools.exec.security: must be one of deny, allowlist, full; got "all"`,
			},
		},
		{
			name:       "syntax error",
			raw:        func(configGet) string { return "{gateway: {" },
			wantErr:    "invalid config",
			wantIssues: []string{"line 1, column 11: unexpected end of file (is a bracket, brace or quote left open?)"},
		},
		{
			name:     "stale baseHash",
			raw:      func(configGet) string { return `{gateway: {mode: "local", auth: {` + hashLine + `}}}` },
			baseHash: func(configGet) string { return strings.Repeat("0", 64) },
			wantErr:  "config changed since it was read (baseHash does not match); read it again with config.get",
		},
		{
			name: "redacted secret keeps the current value",
			raw: func(cur configGet) string {
				tree := cur.Config
				configgen.Set(tree, "logging.level", "debug")
				b, _ := json.Marshal(tree)
				return string(b)
			},
			check: func(t *testing.T, ts *testServer) {
				cfg, err := configgen.ParseEnv(mustRead(t, ts.opts.ConfigPath), func(string) string { return "" })
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Gateway.Auth.TokenSha256 != configgen.HashSecret(testToken) {
					t.Error("the redaction marker was written instead of the secret")
				}
				// And the token still works.
				if _, hello := dialConnected(t, ts); hello.Type != "hello-ok" {
					t.Error("cannot connect after config.set")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t)
			c := adminClient(t, ts)
			cur := unmarshal[configGet](t, c.call("config.get", nil).Payload)
			before := mustRead(t, ts.opts.ConfigPath)
			base := cur.Hash
			if tt.baseHash != nil {
				base = tt.baseHash(cur)
			}
			res := c.call("config.set", map[string]any{"raw": tt.raw(cur), "baseHash": base})
			if tt.wantErr == "" {
				if !res.OK {
					t.Fatalf("config.set: %+v", res.Error)
				}
				var p map[string]any
				_ = json.Unmarshal(res.Payload, &p)
				if p["hash"] != hashHex(mustRead(t, ts.opts.ConfigPath)) {
					t.Errorf("returned hash %v does not match the file", p["hash"])
				}
				tt.check(t, ts)
				return
			}
			if res.OK || res.Error.Message != tt.wantErr {
				t.Fatalf("got %+v, want %q", res.Error, tt.wantErr)
			}
			if tt.wantIssues != nil {
				raw, _ := json.Marshal(res.Error.Details)
				var d struct {
					Issues []configgen.Issue `json:"issues"`
				}
				_ = json.Unmarshal(raw, &d)
				var got []string
				for _, is := range d.Issues {
					got = append(got, is.String())
				}
				if strings.Join(got, "\n") != strings.Join(tt.wantIssues, "\n") {
					t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantIssues, "\n"))
				}
			}
			if string(mustRead(t, ts.opts.ConfigPath)) != string(before) {
				t.Error("the file changed although config.set failed")
			}
		})
	}
}

// TestConfigSetMovesListener: a new port gets a new listener; the old port
// stops accepting, established connections stay.
func TestConfigSetMovesListener(t *testing.T) {
	ts := startServer(t, withOptions(func(o *Options) { o.Addr = "" }), withConfig("gateway.port", freePort(t)))
	ts.url = "ws://" + ts.Addr().String() + "/"
	c := adminClient(t, ts)
	oldAddr := ts.Addr().String()
	cur := unmarshal[configGet](t, c.call("config.get", nil).Payload)
	newPort := freePort(t)
	tree := cur.Config
	configgen.Set(tree, "gateway.port", newPort)
	raw, _ := json.Marshal(tree)
	res := c.call("config.set", map[string]any{"raw": string(raw), "baseHash": cur.Hash})
	if !res.OK {
		t.Fatal(res.Error)
	}
	var p map[string]any
	_ = json.Unmarshal(res.Payload, &p)
	if p["listenerRestarted"] != true || p["applied"] != "restart" {
		t.Errorf("result %v", p)
	}
	if r := c.call("health", nil); !r.OK {
		t.Error("established connection dropped")
	}
	nc, _ := dialConnected(t, &testServer{Server: ts.Server, url: fmt.Sprintf("ws://127.0.0.1:%d/", newPort)})
	if r := nc.call("status", nil); !r.OK {
		t.Fatal(r.Error)
	} else if st := unmarshal[map[string]any](t, r.Payload); st["gateway"].(map[string]any)["port"] != float64(newPort) {
		t.Errorf("status port %v, want %d", st["gateway"], newPort)
	}
	if conn, err := net.Dial("tcp", oldAddr); err == nil {
		conn.Close()
		t.Errorf("old address %s still accepts connections", oldAddr)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLogsTail(t *testing.T) {
	ts := startServer(t)
	c, _ := dialConnected(t, ts)
	// The connect above logged "client connected"; the tail has it.
	res := c.call("logs.tail", nil)
	tail := unmarshal[struct {
		Cursor    uint64   `json:"cursor"`
		Lines     []string `json:"lines"`
		Truncated bool     `json:"truncated"`
	}](t, res.Payload)
	if !strings.Contains(strings.Join(tail.Lines, "\n"), "client connected") {
		t.Fatalf("tail lacks the connect line: %v", tail.Lines)
	}
	// Polling with the cursor returns only what is new.
	ts.log.Info("marker line")
	next := unmarshal[struct {
		Cursor uint64   `json:"cursor"`
		Lines  []string `json:"lines"`
	}](t, c.call("logs.tail", map[string]any{"cursor": tail.Cursor}).Payload)
	joined := strings.Join(next.Lines, "\n")
	if !strings.Contains(joined, "marker line") || strings.Contains(joined, "client connected") {
		t.Errorf("cursor poll returned %v", next.Lines)
	}
	for _, bad := range []map[string]any{{"limit": 0}, {"limit": 5001}, {"maxBytes": 0}} {
		if r := c.call("logs.tail", bad); r.OK || r.Error.Code != protocol.CodeInvalidRequest {
			t.Errorf("logs.tail %v accepted", bad)
		}
	}
}

func TestLogRing(t *testing.T) {
	r := NewLogRing(3)
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(r, "line %d\n", i)
	}
	cur := func(v uint64) *uint64 { return &v }
	tests := []struct {
		name      string
		cursor    *uint64
		limit     int
		maxBytes  int
		want      string
		wantNext  uint64
		truncated bool
	}{
		{"last lines", nil, 500, 1000, "line 3,line 4,line 5", 5, false},
		{"limit", nil, 2, 1000, "line 4,line 5", 5, false},
		{"cursor inside", cur(3), 500, 1000, "line 4,line 5", 5, false},
		{"cursor fell out of the ring", cur(0), 500, 1000, "line 3,line 4,line 5", 5, true},
		{"cursor at end", cur(5), 500, 1000, "", 5, false},
		{"cursor beyond end", cur(99), 500, 1000, "", 5, false},
		{"maxBytes cuts", cur(2), 500, 13, "line 3,line 4", 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, next, trunc := r.Tail(tt.cursor, tt.limit, tt.maxBytes)
			if strings.Join(lines, ",") != tt.want || next != tt.wantNext || trunc != tt.truncated {
				t.Errorf("got %q next %d truncated %v", lines, next, trunc)
			}
		})
	}
}

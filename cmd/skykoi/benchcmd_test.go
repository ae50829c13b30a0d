package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// benchGateway starts the chat tests' in-process gateway with a fake Bedrock
// and returns its ws URL and a file holding its token.
func benchGateway(t *testing.T) (string, string) {
	t.Helper()
	fake := bedrocktest.NewServer()
	t.Cleanup(fake.Close)
	fake.SetDefault(bedrocktest.Reply{bedrocktest.TextDeltas(50, "tok ")})
	dir := t.TempDir()
	g := startChatGW(t, fake, dir, "127.0.0.1:0")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(chatTestToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return g.url, tokenFile
}

func TestBenchCommand(t *testing.T) {
	url, tokenFile := benchGateway(t)
	tests := []struct {
		mode string
		n    string
		want []string // metric names that must be present and positive
		args []string
	}{
		{"handshake", "20", []string{"handshake_p50_ms", "handshake_p99_ms"}, nil},
		{"handshake", "5", []string{"handshake_p99_ms", "held_connections"}, []string{"--hold", "25"}},
		{"rtt", "50", []string{"rtt_p50_ms", "rtt_p99_ms"}, nil},
		{"clients", "30", []string{"rss_after_mb", "gateway_connections"}, nil},
		{"stream", "3", []string{"first_delta_p50_ms", "run_p50_ms", "events_per_s"}, nil},
		{"fanout", "5", []string{"run_s", "events_delivered"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{tt.mode}, tt.args...), " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"bench", tt.mode, "--url", url, "--token-file", tokenFile, "-n", tt.n, "--json"}, tt.args...)
			code := run(context.Background(), args,
				stdio{in: strings.NewReader(""), out: &out, err: &errb})
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			var res benchResult
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("output %q: %v", out.String(), err)
			}
			for _, m := range tt.want {
				if res.Metrics[m] <= 0 {
					t.Errorf("metric %s = %v in %+v", m, res.Metrics[m], res.Metrics)
				}
			}
			if tt.args != nil && res.Metrics["held_connections"] != 25 {
				t.Errorf("held %v connections, want 25", res.Metrics["held_connections"])
			}
			if tt.mode == "clients" && res.Metrics["gateway_connections"] != 30 {
				t.Errorf("gateway saw %v connections, want 30", res.Metrics["gateway_connections"])
			}
		})
	}
	var errb bytes.Buffer
	if code := run(context.Background(), []string{"bench", "nope", "--url", url, "--token-file", tokenFile}, stdio{in: strings.NewReader(""), out: &errb, err: &errb}); code != 2 {
		t.Errorf("unknown mode: exit %d", code)
	}
}

package mcp_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/mcp"
	"github.com/skykoi/skykoi/gateway/mcp/mcptest"
)

func p50(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds()) / 1000
}

// BenchmarkStdioCall: one echo call over stdio. "sdk" is the go-sdk's own
// CallTool on a session of its own (the JSON-RPC round trip and the server's
// time); "manager" is the same call through Manager.Call, as the agent makes
// it. The difference of their p50s is what the gateway adds.
func BenchmarkStdioCall(b *testing.B) {
	bin := mcptest.StdioServer(b)
	args := map[string]any{"text": "ping"}
	b.Run("sdk", func(b *testing.B) {
		client := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "0"}, nil)
		cs, err := client.Connect(context.Background(), &sdk.CommandTransport{Command: exec.Command(bin)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		times := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
		}
		b.ReportMetric(p50(times), "p50-µs")
	})
	b.Run("manager", func(b *testing.B) {
		m := mcp.New(mcp.Options{Servers: map[string]configgen.MCPServer{"s": {Enabled: true, Command: bin,
			RequestTimeoutMs: 60000, ConnectionTimeoutMs: 30000}}, Workspace: func() string { return b.TempDir() }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		defer func() { cancel(); <-done }()
		for m.Status()[0].State != mcp.StateReady {
			time.Sleep(time.Millisecond)
		}
		raw, _ := json.Marshal(args)
		times := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if res := m.Call(context.Background(), "s__echo", raw); res.IsError {
				b.Fatal(res.Text)
			}
			times = append(times, time.Since(start))
		}
		b.ReportMetric(p50(times), "p50-µs")
	})
}

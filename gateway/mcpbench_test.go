package gateway

import (
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/mcp/mcptest"
)

// BenchmarkReadyWithMCP: the time from starting a gateway to /readyz 200
// with no MCP server and with five configured (real go-sdk stdio servers).
// The clock stops when the server reports ready (what /readyz and the
// systemd READY notification say), measured the same way for both.
func BenchmarkReadyWithMCP(b *testing.B) {
	bin := mcptest.StdioServer(b)
	five := map[string]any{}
	for _, n := range []string{"s1", "s2", "s3", "s4", "s5"} {
		five[n] = map[string]any{"command": bin}
	}
	for _, bc := range []struct {
		name    string
		servers map[string]any
	}{{"none", map[string]any{}}, {"five", five}} {
		b.Run(bc.name, func(b *testing.B) {
			var times []time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				ts := startServer(b, withConfig("mcp.servers", bc.servers))
				for !ts.Ready() {
					runtime.Gosched()
				}
				times = append(times, time.Since(start))
				// What a load balancer sees, once, so the measurement is
				// of readiness and not of five server processes starting
				// beside an HTTP poll on two shared cores.
				if resp, err := http.Get(ts.http + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("/readyz after Ready: %v %v", resp, err)
				} else {
					resp.Body.Close()
				}
				b.StopTimer()
				ts.stop(b)
				b.StartTimer()
			}
			slices.Sort(times)
			med := times[len(times)/2]
			b.ReportMetric(float64(med.Microseconds())/1000, "ready-ms")
		})
	}
}

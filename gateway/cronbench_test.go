package gateway

import (
	"sort"
	"testing"
	"time"
)

func p99(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)*99/100]
}

// BenchmarkCron10k: 10,000 cron.add calls over a real WebSocket, then
// cron.list pages (200 jobs each) against the 10,000; reports the p99 of
// each call's round trip.
func BenchmarkCron10k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ts := startServer(b)
		c, _ := dialConnected(b, ts, asAdmin)
		adds := make([]time.Duration, 0, 10000)
		for n := 0; n < 10000; n++ {
			start := time.Now()
			r := c.call("cron.add", map[string]any{"name": "job", "schedule": map[string]any{"kind": "every", "everyMs": 3600000},
				"payload": map[string]any{"kind": "agentTurn", "message": "check the log"}})
			adds = append(adds, time.Since(start))
			if !r.OK {
				b.Fatalf("cron.add: %+v", r.Error)
			}
			// The harness keeps the frames a call passes over (here each
			// add's cron event) and re-reads them on the next call; 10,000
			// kept events would make the client, not the gateway, the cost.
			c.skipped = nil
		}
		lists := make([]time.Duration, 0, 500)
		for n := 0; n < 500; n++ {
			start := time.Now()
			r := c.call("cron.list", map[string]any{"limit": 200, "offset": (n % 50) * 200})
			lists = append(lists, time.Since(start))
			if !r.OK {
				b.Fatalf("cron.list: %+v", r.Error)
			}
			c.skipped = nil
		}
		b.ReportMetric(float64(p99(adds).Microseconds())/1000, "add-p99-ms")
		b.ReportMetric(float64(p99(lists).Microseconds())/1000, "list-p99-ms")
	}
}

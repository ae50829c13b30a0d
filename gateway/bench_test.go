package gateway

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Benchmarks drive the real server over loopback WebSockets. Run:
//
//	go test ./gateway -run '^$' -bench . -benchtime 2000x
//
// Numbers go in docs/PERFORMANCE.md; nothing here asserts a duration.

func quietServer(b *testing.B, opts ...serverOpt) *testServer {
	opts = append(opts, withOptions(func(o *Options) {
		o.LogLevel.Set(8) // above error: benchmarks measure the gateway, not log I/O
	}))
	return startServer(b, opts...)
}

// reportPercentiles adds p50/p90/p99 of the samples as metrics.
func reportPercentiles(b *testing.B, samples []time.Duration, unit string) {
	if len(samples) == 0 {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs/"+unit)
	b.ReportMetric(at(0.90), "p90-µs/"+unit)
	b.ReportMetric(at(0.99), "p99-µs/"+unit)
}

// BenchmarkHandshake: dial, challenge, connect, hello-ok.
func BenchmarkHandshake(b *testing.B) { benchHandshake(b, 0) }

// BenchmarkHandshakeHeld1000: the same with 1,000 idle authenticated
// connections open, each read by a goroutine that discards what arrives
// (presence included). With -memprofile it shows what one connect allocates
// at that size (docs/PERFORMANCE.md).
func BenchmarkHandshakeHeld1000(b *testing.B) { benchHandshake(b, 1000) }

func benchHandshake(b *testing.B, held int) {
	ts := quietServer(b)
	connect := func() *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(ts.url, nil)
		if err != nil {
			b.Fatal(err)
		}
		c := &wsClient{t: b, ws: ws}
		c.challenge()
		if res := c.call("connect", connectParams()); !res.OK {
			b.Fatal(res.Error)
		}
		return ws
	}
	for range held {
		ws := connect()
		go func() {
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		}()
	}
	if held > 0 {
		time.Sleep(300 * time.Millisecond) // presence broadcasts settle
	}
	samples := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		ws := connect()
		samples = append(samples, time.Since(start))
		ws.Close()
	}
	b.StopTimer()
	reportPercentiles(b, samples, "handshake")
}

// BenchmarkHealthRoundTrip: health requests on one connection.
func BenchmarkHealthRoundTrip(b *testing.B) {
	ts := quietServer(b)
	c, _ := dialConnected(b, ts)
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if res := c.call("health", nil); !res.OK {
			b.Fatal(res.Error)
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, samples, "rtt")
}

// BenchmarkBroadcastFanout: one event to 100 connected clients; an
// iteration ends when every client has read it.
func BenchmarkBroadcastFanout(b *testing.B) {
	const clients = 100
	ts := quietServer(b)
	cs := make([]*wsClient, clients)
	for i := range cs {
		cs[i], _ = dialConnected(b, ts)
	}
	// Let the presence events of the connects drain first.
	for _, c := range cs {
		c.call("health", nil)
	}
	payload := map[string]any{"text": "fan-out benchmark payload of a typical size for a chat delta event"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts.broadcast("bench", payload, nil, false)
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func(c *wsClient) {
				defer wg.Done()
				c.readEvent("bench")
			}(c)
		}
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*clients)/b.Elapsed().Seconds(), "deliveries/s")
}

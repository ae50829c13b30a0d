package gateway

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// Agent benchmarks (docs/PERFORMANCE.md):
//
//	go test ./gateway -run '^$' -bench 'Agent' -benchtime 30x
//
// BenchmarkAgentRun measures one 2,000-delta run two ways in the same
// process against the same fake Bedrock: "direct" consumes the stream with
// the provider (the real SDK client) and nothing else; "gateway" sends
// chat.send over a real WebSocket and waits for the final chat event. The
// difference is what the gateway adds. Nothing here asserts a duration.

const benchDeltas = 2000

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchReply() bedrocktest.Reply {
	return bedrocktest.Reply{bedrocktest.TextDeltas(benchDeltas, "tok "), bedrocktest.Usage(10, benchDeltas, 0, 0)}
}

func BenchmarkAgentRun(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		fake := bedrocktest.NewServer()
		defer fake.Close()
		fake.SetDefault(benchReply())
		p, err := bedrock.New(context.Background(), bedrock.Options{Region: "us-east-1", Endpoint: fake.URL(),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session")})
		if err != nil {
			b.Fatal(err)
		}
		req := bedrock.Request{Models: []string{"amazon-bedrock/" + testModel},
			Messages: []bedrock.Message{{Role: "user", Content: []bedrock.Block{{Type: "text", Text: "go"}}}}}
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			n := 0
			if _, err := p.Stream(context.Background(), req, func(ev bedrock.Event) {
				if _, ok := ev.(bedrock.TextDelta); ok {
					n++
				}
			}); err != nil || n != benchDeltas {
				b.Fatalf("stream: %v (%d deltas)", err, n)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/run")
	})
	b.Run("gateway", func(b *testing.B) {
		ts, fake := agentBenchServer(b)
		var firstSent atomic.Int64
		fake.Handle(func(bedrocktest.Request) bedrocktest.Reply {
			firstSent.Store(time.Now().UnixNano()) // the fake writes the first delta right after this
			return benchReply()
		})
		c, _ := dialConnected(b, ts)
		var firstEvent []time.Duration
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			key := fmt.Sprintf("b%d", i)
			c.call("chat.send", map[string]any{"sessionKey": "main", "message": "go", "idempotencyKey": key})
			gotFirst := false
			for {
				f := c.mustRead()
				if f.Type != "event" {
					continue
				}
				if !gotFirst && f.Event == "agent" && containsAll(string(f.Payload), `"stream":"assistant"`, key) {
					firstEvent = append(firstEvent, time.Duration(time.Now().UnixNano()-firstSent.Load()))
					gotFirst = true
				}
				if f.Event == "chat" && containsAll(string(f.Payload), `"state":"final"`, key) {
					break
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/run")
		sort.Slice(firstEvent, func(i, j int) bool { return firstEvent[i] < firstEvent[j] })
		if len(firstEvent) > 0 {
			b.ReportMetric(float64(firstEvent[len(firstEvent)/2].Microseconds())/1000, "first-event-ms(p50)")
		}
	})
}

// BenchmarkAgentColdStart: each iteration starts a fresh gateway and times
// its first run and its second; the difference is what a cold start defers
// to the first turn.
func BenchmarkAgentColdStart(b *testing.B) {
	var firsts, seconds []time.Duration
	for i := 0; i < b.N; i++ {
		ts, fake := agentBenchServer(b)
		fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("ok")})
		c, _ := dialConnected(b, ts)
		for r := 0; r < 2; r++ {
			key := fmt.Sprintf("c%d", r)
			start := time.Now()
			c.call("chat.send", map[string]any{"sessionKey": "main", "message": "go", "idempotencyKey": key})
			for {
				f := c.mustRead()
				if f.Event == "chat" && containsAll(string(f.Payload), `"state":"final"`, key) {
					break
				}
			}
			if r == 0 {
				firsts = append(firsts, time.Since(start))
			} else {
				seconds = append(seconds, time.Since(start))
			}
		}
		ts.stop(b)
	}
	med := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(firsts), "first-run-ms")
	b.ReportMetric(med(seconds), "second-run-ms")
}

func agentBenchServer(b *testing.B) (*testServer, *bedrocktest.Server) {
	fake := bedrocktest.NewServer()
	b.Cleanup(fake.Close)
	// Every request of a long session is a context's worth of bytes; a fake
	// that kept them all would measure its own memory, not the gateway's.
	fake.KeepRequests(1)
	ts := quietServer(b,
		withConfig("models.providers.amazon-bedrock.endpoint", fake.URL()),
		withConfig("models.providers.amazon-bedrock.region", "us-east-1"),
		withOptions(func(o *Options) {
			o.AWSCredentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session")
		}))
	return ts, fake
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

package gateway

import (
	"encoding/json"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// BenchmarkRunFanout100: one run streaming about 10,000 deltas/s for 2 s,
// watched by 100 clients. For every chat event, the spread between the
// first and the last client to receive it is how far the slowest client
// was behind.
//
//	go test ./gateway -run '^$' -bench RunFanout100 -benchtime 3x
func BenchmarkRunFanout100(b *testing.B) {
	const clients = 100
	reply := bedrocktest.Reply{}
	for i := 0; i < 200; i++ { // 200 × 100 deltas with 10 ms pauses ≈ 10,000/s for 2 s
		reply = append(reply, bedrocktest.TextDeltas(100, "x"), bedrocktest.Delay(10*time.Millisecond))
	}
	ts, fake := agentBenchServer(b)
	fake.SetDefault(reply)
	var spreads []time.Duration
	var deltasPerS []float64
	for i := 0; i < b.N; i++ {
		arrivals := make([]map[int]time.Time, clients)
		var wg sync.WaitGroup
		conns := make([]*wsClient, clients)
		for c := range conns {
			conns[c], _ = dialConnected(b, ts)
		}
		key := "fan" + string(rune('a'+i))
		start := time.Now()
		conns[0].send(map[string]any{"type": "req", "id": "s", "method": "chat.send", "params": map[string]any{
			"sessionKey": key, "message": "go", "idempotencyKey": key}})
		for c := range conns {
			arrivals[c] = map[int]time.Time{}
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for {
					_ = conns[c].ws.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, data, err := conns[c].ws.ReadMessage()
					if err != nil {
						return
					}
					var f struct {
						Event   string `json:"event"`
						Payload struct {
							RunID string `json:"runId"`
							Seq   int    `json:"seq"`
							State string `json:"state"`
						} `json:"payload"`
					}
					if json.Unmarshal(data, &f) != nil || f.Event != "chat" || f.Payload.RunID != key {
						continue
					}
					arrivals[c][f.Payload.Seq] = time.Now()
					if f.Payload.State == "final" {
						return
					}
				}
			}(c)
		}
		wg.Wait()
		elapsed := time.Since(start)
		deltasPerS = append(deltasPerS, 20000/elapsed.Seconds())
		for seq := range arrivals[0] {
			var first, last time.Time
			for c := range arrivals {
				at, ok := arrivals[c][seq]
				if !ok {
					b.Fatalf("client %d missed chat event %d", c, seq)
				}
				if first.IsZero() || at.Before(first) {
					first = at
				}
				if at.After(last) {
					last = at
				}
			}
			spreads = append(spreads, last.Sub(first))
		}
		for _, c := range conns {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
			c.ws.Close()
		}
	}
	sort.Slice(spreads, func(i, j int) bool { return spreads[i] < spreads[j] })
	b.ReportMetric(float64(spreads[len(spreads)/2].Microseconds())/1000, "spread-p50-ms")
	b.ReportMetric(float64(spreads[len(spreads)*99/100].Microseconds())/1000, "spread-p99-ms")
	b.ReportMetric(float64(spreads[len(spreads)-1].Microseconds())/1000, "spread-max-ms")
	sort.Float64s(deltasPerS)
	b.ReportMetric(deltasPerS[len(deltasPerS)/2], "model-deltas/s")
}

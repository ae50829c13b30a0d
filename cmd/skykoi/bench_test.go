package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/configgen"
)

// BenchmarkDaemon measures the real binary, the way it runs on a Koi:
//
//	go test ./cmd/skykoi -run '^$' -bench BenchmarkDaemon -benchtime 20x
//
// Each iteration starts the gateway, polls /readyz until 200 (start-ms), and
// reads its RSS from /proc when idle (idle-RSS-MB). The last iteration then
// holds 1,000 authenticated idle connections and reads RSS again
// (1000conns-RSS-MB). Nothing here asserts a number; docs/PERFORMANCE.md
// records them.
func BenchmarkDaemon(b *testing.B) {
	const token = "bench-token-0123456789abcdefghijklmnopqrstuvwxyz"
	dir := b.TempDir()
	var startMs, idleMB []float64
	var connsMB float64
	var handshakes []time.Duration
	for i := 0; i < b.N; i++ {
		port := freeTCPPort(b)
		cfgPath := filepath.Join(dir, fmt.Sprintf("skykoi-%d.json", i))
		cfg := fmt.Sprintf(`{gateway: {mode: "local", port: %d, auth: {tokenSha256: %q}}, logging: {level: "warn"}}`, port, configgen.HashSecret(token))
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(binary, "gateway", "run", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
		for {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Since(start) > 20*time.Second {
				b.Fatal("gateway did not become ready")
			}
			time.Sleep(200 * time.Microsecond)
		}
		startMs = append(startMs, float64(time.Since(start).Microseconds())/1000)
		time.Sleep(100 * time.Millisecond) // let start-up garbage settle before reading RSS
		idleMB = append(idleMB, rssMB(b, cmd.Process.Pid))
		if i == b.N-1 {
			conns := make([]*websocket.Conn, 0, 1000)
			for j := 0; j < 1000; j++ {
				ws := dialAuthed(b, port, token)
				conns = append(conns, ws)
				// An idle client still reads (ticks, presence) and answers
				// pings; one that never read would be measuring its backlog.
				go func() {
					for {
						if _, _, err := ws.NextReader(); err != nil {
							return
						}
					}
				}()
			}
			time.Sleep(200 * time.Millisecond)
			connsMB = rssMB(b, cmd.Process.Pid)
			// Handshake latency with the 1,000 connections open.
			for j := 0; j < 300; j++ {
				start := time.Now()
				ws := dialAuthed(b, port, token)
				handshakes = append(handshakes, time.Since(start))
				ws.Close()
			}
			b.Logf("rss with 1000 connections: %.1f MB", connsMB)
			for _, ws := range conns {
				ws.Close()
			}
		}
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	b.ReportMetric(median(startMs), "start-ms")
	b.ReportMetric(median(idleMB), "idle-RSS-MB")
	b.ReportMetric(connsMB, "1000conns-RSS-MB")
	if len(handshakes) > 0 {
		sort.Slice(handshakes, func(i, j int) bool { return handshakes[i] < handshakes[j] })
		b.ReportMetric(float64(handshakes[len(handshakes)/2].Microseconds())/1000, "handshake-p50-ms@1000")
		b.ReportMetric(float64(handshakes[len(handshakes)*99/100].Microseconds())/1000, "handshake-p99-ms@1000")
	}
}

func dialAuthed(b *testing.B, port int, token string) *websocket.Conn {
	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
	if err != nil {
		b.Fatal(err)
	}
	var f map[string]any
	_ = ws.ReadJSON(&f) // challenge
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": map[string]any{
		"minProtocol": 3, "maxProtocol": 4, "auth": map[string]any{"token": token},
		"client": map[string]any{"id": "bench", "version": "1", "platform": "linux", "mode": "bench"}}})
	for {
		if err := ws.ReadJSON(&f); err != nil {
			b.Fatal(err)
		}
		if f["id"] == "c" {
			if f["ok"] != true {
				b.Fatalf("connect: %v", f)
			}
			return ws
		}
	}
}

// rssMB reads VmRSS of pid in MB.
func rssMB(b *testing.B, pid int) float64 {
	mb := procRSSMB(pid)
	if mb == 0 {
		b.Fatalf("no VmRSS for pid %d", pid)
	}
	return mb
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

//go:build soak

// Package soak runs the real gateway binary under hours-like churn. It is
// not part of `make test`; run it with `make soak`.
package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/session"
)

const token = "soak-token-0123456789abcdefghijklmnopqrstuvwxyz"

// TestSoak: SOAK_MINUTES (default 30) of 100 clients connecting, chatting
// and vanishing at random, runs with tool calls against the fake Bedrock,
// abort storms and SIGHUP reloads, all against `skykoi gateway run` in its
// own process. It passes when the gateway's RSS after warm-up grows less
// than 10%, its goroutines return to their baseline once the load stops,
// every run reaches a terminal state, and every transcript loads cleanly.
func TestSoak(t *testing.T) {
	minutes := 30.0
	if v := os.Getenv("SOAK_MINUTES"); v != "" {
		m, err := strconv.ParseFloat(v, 64)
		if err != nil || m <= 0 {
			t.Fatalf("SOAK_MINUTES=%q: want a positive number", v)
		}
		minutes = m
	}
	total := time.Duration(minutes * float64(time.Minute))
	warmup := total / 5

	dir := t.TempDir()
	bin := filepath.Join(dir, "skykoi")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/skykoi").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fake := bedrocktest.NewServer()
	defer fake.Close()
	fake.KeepRequests(1)
	fake.Handle(func(req bedrocktest.Request) bedrocktest.Reply {
		last := req.Messages[len(req.Messages)-1]
		if last.Content[0].ToolResult == nil && rand.IntN(3) == 0 {
			id := "t" + strconv.Itoa(rand.IntN(1e9))
			calls := []bedrocktest.Step{
				bedrocktest.ToolUse(id, "exec", `{"command":"echo soak $RANDOM"}`),
				bedrocktest.ToolUse(id, "write", `{"path":"soak/note.txt","content":"soak"}`),
				bedrocktest.ToolUse(id, "read", `{"path":"AGENTS.md"}`),
			}
			return bedrocktest.Reply{calls[rand.IntN(len(calls))], bedrocktest.Stop("tool_use")}
		}
		return bedrocktest.Reply{bedrocktest.TextDeltas(20+rand.IntN(200), "soak "),
			bedrocktest.Delay(time.Duration(rand.IntN(50)) * time.Millisecond), bedrocktest.Text("done."), bedrocktest.Usage(100, 50, 10, 0)}
	})

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfgPath := filepath.Join(dir, "skykoi.json")
	writeConfig := func(level string) {
		cfg := fmt.Sprintf(`{gateway: {mode: "local", port: %d, auth: {tokenSha256: %q}}, logging: {level: %q},
			agents: {defaults: {workspace: %q}}, tools: {exec: {security: "full"}},
			models: {providers: {"amazon-bedrock": {region: "us-east-1", endpoint: %q}}}}`,
			port, configgen.HashSecret(token), level, filepath.Join(dir, "koi"), fake.URL())
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("warn")
	gw := exec.Command(bin, "gateway", "run", "--config", cfgPath)
	gw.Env = append(os.Environ(), "HOME="+dir, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true")
	logf, _ := os.Create(filepath.Join(dir, "gateway.log"))
	gw.Stdout, gw.Stderr = logf, logf
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.Process.Kill(); _ = gw.Wait() }()
	url := fmt.Sprintf("ws://127.0.0.1:%d/", port)
	ctx, cancel := context.WithTimeout(context.Background(), total+10*time.Minute)
	defer cancel()
	var admin *client.Client
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := client.Dial(ctx, client.Options{URL: url, Token: token, Scopes: []string{"operator.admin"}})
		if err == nil {
			admin = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer admin.Close()
	type stats struct {
		Runs    struct{ Active, Queued int }
		Process struct {
			Goroutines int   `json:"goroutines"`
			RSS        int64 `json:"rssBytes"`
		}
	}
	status := func() stats {
		var s stats
		if err := admin.Request(ctx, "status", nil, &s); err != nil {
			t.Fatalf("status: %v", err)
		}
		return s
	}
	baseline := status().Process.Goroutines

	var sent, terminal atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); churn(url, i, stop, &sent, &terminal) }(i)
	}
	wg.Add(1)
	go func() { // abort storms and SIGHUP reloads
		defer wg.Done()
		tick := time.NewTicker(3 * time.Second)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if n%2 == 0 {
				for j := 0; j < 20; j++ {
					_ = admin.Request(ctx, "chat.abort", map[string]any{"sessionKey": "soak" + strconv.Itoa(rand.IntN(100))}, nil)
				}
			} else {
				writeConfig([]string{"info", "warn", "error"}[n%3])
				_ = gw.Process.Signal(syscall.SIGHUP)
			}
		}
	}()

	start := time.Now()
	var peakRSS float64
	var afterWarmup []float64 // RSS samples after warm-up
	sample := time.NewTicker(15 * time.Second)
	for time.Since(start) < total {
		<-sample.C
		s := status()
		rss := float64(s.Process.RSS) / (1 << 20)
		peakRSS = max(peakRSS, rss)
		if time.Since(start) >= warmup {
			afterWarmup = append(afterWarmup, rss)
		}
		t.Logf("t=%s gateway rss=%.1fMB goroutines=%d runs active=%d queued=%d sent=%d terminal=%d",
			time.Since(start).Round(time.Second), rss, s.Process.Goroutines, s.Runs.Active, s.Runs.Queued, sent.Load(), terminal.Load())
	}
	sample.Stop()
	close(stop)
	wg.Wait()

	deadline := time.Now().Add(2 * time.Minute)
	for s := status(); s.Runs.Active+s.Runs.Queued > 0; s = status() {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs active, %d queued two minutes after the load stopped", s.Runs.Active, s.Runs.Queued)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var goroutines int
	// Idle keep-alive connections of the SDK (2 goroutines each) close after
	// net/http's 90 s idle timeout; wait them out.
	for deadline = time.Now().Add(3 * time.Minute); ; {
		goroutines = status().Process.Goroutines
		if goroutines <= baseline+10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Medians of the first and the last minute after warm-up: a single
	// sample can land on a burst of queued runs (the machine is shared) and
	// say nothing about growth.
	if len(afterWarmup) < 8 {
		t.Fatalf("only %d RSS samples after warm-up; run longer", len(afterWarmup))
	}
	warmRSS := median(afterWarmup[:4])
	lastRSS := median(afterWarmup[len(afterWarmup)-4:])
	growth := (lastRSS - warmRSS) / warmRSS * 100
	t.Logf("SOAK SUMMARY: %s; %d messages sent, %d terminal chat events seen by their senders; gateway RSS (median of a minute) after warm-up %.1f MB, peak %.1f MB, at the end %.1f MB (growth %.1f%%); goroutines %d (baseline %d)",
		total, sent.Load(), terminal.Load(), warmRSS, peakRSS, lastRSS, growth, goroutines, baseline)
	if growth > 10 {
		t.Errorf("gateway RSS grew %.1f%% after warm-up (limit 10%%)", growth)
	}
	if goroutines > baseline+10 {
		t.Errorf("goroutines %d did not return to the baseline %d", goroutines, baseline)
	}
	_ = gw.Process.Signal(syscall.SIGTERM)
	_ = gw.Wait()
	files, _ := filepath.Glob(filepath.Join(dir, "sessions", "*.jsonl"))
	bad := 0
	for _, f := range files {
		tr, err := session.LoadTranscript(f)
		if err != nil || tr.Torn || tr.Skipped > 0 {
			bad++
			t.Errorf("transcript %s: err=%v torn=%v skipped=%d", f, err, tr.Torn, tr.Skipped)
		}
	}
	t.Logf("%d transcripts, %d damaged", len(files), bad)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// churn is one client: connect, send a few messages (sometimes /new), wait
// a bit, drop the connection (half the time without a close frame), repeat.
func churn(url string, i int, stop <-chan struct{}, sent, terminal *atomic.Int64) {
	key := "agent:main:soak" + strconv.Itoa(i)
	for {
		select {
		case <-stop:
			return
		default:
		}
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var mu sync.Mutex
		write := func(v any) {
			mu.Lock()
			defer mu.Unlock()
			_ = ws.WriteJSON(v)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				_ = ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				var f struct {
					Event   string `json:"event"`
					Payload struct {
						SessionKey string `json:"sessionKey"`
						State      string `json:"state"`
					} `json:"payload"`
				}
				if json.Unmarshal(data, &f) == nil && f.Event == "chat" && f.Payload.SessionKey == key &&
					(f.Payload.State == "final" || f.Payload.State == "aborted" || f.Payload.State == "error") {
					terminal.Add(1)
				}
			}
		}()
		write(map[string]any{"type": "req", "id": "c", "method": "connect", "params": map[string]any{
			"minProtocol": 3, "maxProtocol": 4, "auth": map[string]any{"token": token},
			"client": map[string]any{"id": "soak", "version": "1", "platform": "linux", "mode": "test"}}})
		for n := rand.IntN(5); n >= 0; n-- {
			msg := "soak message"
			if rand.IntN(10) == 0 {
				msg = "/new" // keeps histories, and so requests, bounded as daily resets do
			}
			id := fmt.Sprintf("soak-%d-%d", i, time.Now().UnixNano())
			write(map[string]any{"type": "req", "id": id, "method": "chat.send", "params": map[string]any{
				"sessionKey": key, "message": msg, "idempotencyKey": id}})
			sent.Add(1)
			select {
			case <-stop:
			case <-time.After(time.Duration(200+rand.IntN(3000)) * time.Millisecond):
			}
		}
		if rand.IntN(2) == 0 {
			_ = ws.NetConn().Close()
		} else {
			mu.Lock()
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
			mu.Unlock()
			_ = ws.Close()
		}
		<-done
	}
}

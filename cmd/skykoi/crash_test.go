package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestKillNineMidRunThenRestart: the daemon dies by SIGKILL while a tool
// runs, between two transcript appends. After a restart the history holds
// everything written before the kill, and the next turn works: the
// unanswered tool call is sent to the model with an "interrupted" result.
func TestKillNineMidRunThenRestart(t *testing.T) {
	fake := bedrocktest.NewServer()
	defer fake.Close()
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Running it."), bedrocktest.ToolUse("t1", "exec", `{"command":"sleep 10"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Back after the crash.")})

	port, start := crashGateway(t, fake, "")
	gw := start()
	ws := dialWithToken(t, port, crashToken)
	sendChat(ws, "run something long", "k1")
	// Wait for the tool to start: its event means the assistant's tool call is on disk.
	readUntil(t, ws, `"stream":"tool"`)
	if err := gw.Process.Kill(); err != nil { // SIGKILL: no drain, no flush
		t.Fatal(err)
	}
	_ = gw.Wait()
	ws.Close()

	start()
	ws2 := dialWithToken(t, port, crashToken)
	_ = ws2.WriteJSON(map[string]any{"type": "req", "id": "h", "method": "chat.history", "params": map[string]any{"sessionKey": "main"}})
	hist := readUntil(t, ws2, `"id":"h"`)
	for _, want := range []string{"run something long", "Running it.", `"type":"toolCall"`} {
		if !strings.Contains(hist, want) {
			t.Errorf("history after kill -9 lacks %s: %s", want, hist)
		}
	}
	sendChat(ws2, "are you there?", "k2")
	final := readUntil(t, ws2, `"state":"final"`)
	if !strings.Contains(final, "Back after the crash.") {
		t.Fatalf("next turn: %s", final)
	}
	reqs := fake.Requests()
	body := string(reqs[len(reqs)-1].Body)
	if !strings.Contains(body, "interrupted") || !strings.Contains(body, `"toolUseId":"t1"`) {
		t.Errorf("the model did not get an interrupted result for the dangling tool call: %s", body)
	}
}

const crashToken = "crash-test-token-0123456789abcdefghijklmnopqrs"

// crashGateway writes a config for the real binary against fake (exec at
// "full"; agentsDefaults adds keys to agents.defaults) and returns the
// gateway's port and a start that waits until it is ready. Each start is
// killed at cleanup, so a test may kill -9 one and start another.
func crashGateway(t *testing.T, fake *bedrocktest.Server, agentsDefaults string) (int, func() *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	port := freeTCPPort(t)
	cfgPath := filepath.Join(dir, "skykoi.json")
	cfg := fmt.Sprintf(`{gateway: {mode: "local", port: %d, auth: {tokenSha256: %q}},
		agents: {defaults: {workspace: %q%s}}, tools: {exec: {security: "full"}},
		models: {providers: {"amazon-bedrock": {region: "us-east-1", endpoint: %q}}}}`,
		port, configgen.HashSecret(crashToken), filepath.Join(dir, "koi"), agentsDefaults, fake.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return port, func() *exec.Cmd {
		cmd := exec.Command(binary, "gateway", "run", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "HOME="+dir, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitReady(t, port)
		return cmd
	}
}

// sendChat sends one chat.send to the main session, its id the
// idempotency key.
func sendChat(ws *websocket.Conn, msg, key string) {
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": key, "method": "chat.send",
		"params": map[string]any{"sessionKey": "main", "message": msg, "idempotencyKey": key}})
}

func dialWithToken(t *testing.T, port int, token string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	_ = ws.ReadJSON(&f)
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": map[string]any{
		"minProtocol": 3, "maxProtocol": 4, "auth": map[string]any{"token": token}, "caps": []string{"tool-events"},
		"client": map[string]any{"id": "t", "version": "1", "platform": "linux", "mode": "test"}}})
	readUntil(t, ws, `"id":"c"`)
	return ws
}

// readUntil returns the first frame containing sub.
func readUntil(t *testing.T, ws *websocket.Conn, sub string) string {
	t.Helper()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(patience(t)))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", sub, err)
		}
		if strings.Contains(string(data), sub) {
			return string(data)
		}
	}
}

// TestKillNineMidCompaction: kill -9 while the model is summarising the
// session (the summary request in flight) leaves a transcript that loads
// with every message, and the next turn compacts and answers.
func TestKillNineMidCompaction(t *testing.T) {
	fake := bedrocktest.NewServer()
	defer fake.Close()
	var hangSummaries atomic.Bool
	hangSummaries.Store(true)
	isSummary := func(r bedrocktest.Request) bool {
		for _, s := range r.System {
			if s.Text != nil && strings.Contains(*s.Text, "You are compacting a conversation") {
				return true
			}
		}
		return false
	}
	fake.Handle(func(r bedrocktest.Request) bedrocktest.Reply {
		if isSummary(r) {
			if hangSummaries.Load() {
				return bedrocktest.Reply{bedrocktest.Hang()}
			}
			return bedrocktest.Reply{bedrocktest.Text("SUMMARY of the earlier turns.")}
		}
		if strings.Contains(string(r.Body), "[memory flush]") {
			return bedrocktest.Reply{bedrocktest.Text("NO_REPLY")}
		}
		return bedrocktest.Reply{bedrocktest.Text("ok")}
	})

	port, start := crashGateway(t, fake, ", contextTokens: 20000")
	gw := start()
	ws := dialWithToken(t, port, crashToken)
	big := strings.Repeat("word ", 2000) // 10 kB a turn
	for i := range 4 {
		key := fmt.Sprintf("k%d", i)
		sendChat(ws, fmt.Sprintf("turn %d %s", i, big), key)
		readUntil(t, ws, `"state":"final"`)
	}
	sendChat(ws, "/compact", "c1")
	for deadline := time.Now().Add(patience(t)); !slices.ContainsFunc(fake.Requests(), isSummary); {
		if time.Now().After(deadline) {
			t.Fatal("the summary request never came")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := gw.Process.Kill(); err != nil { // SIGKILL mid-compaction
		t.Fatal(err)
	}
	_ = gw.Wait()
	ws.Close()

	hangSummaries.Store(false)
	start()
	ws2 := dialWithToken(t, port, crashToken)
	_ = ws2.WriteJSON(map[string]any{"type": "req", "id": "h", "method": "chat.history", "params": map[string]any{"sessionKey": "main", "limit": 200}})
	hist := readUntil(t, ws2, `"id":"h"`)
	for i := range 4 {
		if !strings.Contains(hist, fmt.Sprintf("turn %d word", i)) {
			t.Errorf("history after kill -9 mid-compaction lacks turn %d", i)
		}
	}
	if n := strings.Count(hist, `"role":"assistant"`); n != 4 {
		t.Errorf("history after kill -9 has %d answers, want 4", n)
	}
	sendChat(ws2, "/compact", "c2")
	if done := readUntil(t, ws2, `"id":"c2"`); !strings.Contains(done, `"ok":true`) {
		t.Fatalf("/compact after the restart: %s", done)
	}
	sendChat(ws2, "still there?", "k9")
	for {
		f := readUntil(t, ws2, `"state":"final"`)
		if strings.Contains(f, `"runId":"k9"`) {
			break
		}
	}
	reqs := fake.Requests()
	if body := string(reqs[len(reqs)-1].Body); !strings.Contains(body, "SUMMARY of the earlier turns.") {
		t.Errorf("the turn after the restart does not carry the new summary: %.600s", body)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// cronCall sends one request and returns its response payload (failing the
// test on an error response).
func cronCall(t *testing.T, ws *websocket.Conn, id, method string, params any) map[string]any {
	t.Helper()
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": id, "method": method, "params": params})
	raw := readUntil(t, ws, `"id":"`+id+`"`)
	var f struct {
		OK      bool            `json:"ok"`
		Payload map[string]any  `json:"payload"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &f); err != nil || !f.OK {
		t.Fatalf("%s: %s", method, raw)
	}
	return f.Payload
}

func dialAdmin(t *testing.T, port int) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	var f map[string]any
	_ = ws.ReadJSON(&f)
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": map[string]any{
		"minProtocol": 3, "maxProtocol": 4, "auth": map[string]any{"token": crashToken}, "scopes": []string{"operator.admin"},
		"client": map[string]any{"id": "t", "version": "1", "platform": "linux", "mode": "test"}}})
	readUntil(t, ws, `"id":"c"`)
	return ws
}

func runsOf(t *testing.T, ws *websocket.Conn, id, jobID string) []any {
	t.Helper()
	p := cronCall(t, ws, id, "cron.runs", map[string]any{"id": jobID})
	entries, _ := p["entries"].([]any)
	return entries
}

// TestKillNineCron: the real binary is killed with SIGKILL while one job
// runs and before another comes due. After the restart every job and its
// history is there, the interrupted run is recorded and not repeated, and
// the job that came due while the gateway was down runs exactly once —
// also across a second kill -9.
func TestKillNineCron(t *testing.T) {
	fake := bedrocktest.NewServer()
	defer fake.Close()
	fake.Handle(func(req bedrocktest.Request) bedrocktest.Reply {
		if strings.Contains(string(req.Body), "long task") {
			return bedrocktest.Reply{bedrocktest.Hang()}
		}
		return bedrocktest.Reply{bedrocktest.Text("caught up")}
	})
	port, start := crashGateway(t, fake, "")
	gw := start()
	ws := dialAdmin(t, port)
	msg := func(m string) map[string]any { return map[string]any{"kind": "agentTurn", "message": m} }
	long := cronCall(t, ws, "a1", "cron.add", map[string]any{"name": "long", "schedule": map[string]any{"kind": "at", "at": "1s"}, "payload": msg("long task")})
	hourly := cronCall(t, ws, "a2", "cron.add", map[string]any{"name": "hourly", "schedule": map[string]any{"kind": "every", "everyMs": 3600000}, "payload": msg("hourly task")})
	readUntil(t, ws, `"action":"started"`) // the long job is running, its model call hanging
	overdue := cronCall(t, ws, "a3", "cron.add", map[string]any{"name": "overdue", "deleteAfterRun": false,
		"schedule": map[string]any{"kind": "at", "at": "3s"}, "payload": msg("overdue task")})
	if err := gw.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()
	// Wait (on the clock, not a fixed sleep) until the job's time has passed
	// while nothing is running.
	due := time.UnixMilli(int64(overdue["state"].(map[string]any)["nextRunAtMs"].(float64)))
	for time.Now().Before(due.Add(200 * time.Millisecond)) {
		time.Sleep(time.Until(due.Add(200 * time.Millisecond)))
	}

	gw2 := start()
	ws2 := dialAdmin(t, port)
	deadline := time.Now().Add(patience(t))
	for len(runsOf(t, ws2, "r", overdue["id"].(string))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the overdue job did not run after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	list := cronCall(t, ws2, "l", "cron.list", map[string]any{"includeDisabled": true})
	ids := map[string]bool{}
	for _, j := range list["jobs"].([]any) {
		ids[j.(map[string]any)["id"].(string)] = true
	}
	for _, j := range []map[string]any{long, hourly, overdue} {
		if !ids[j["id"].(string)] {
			t.Errorf("job %s lost after kill -9", j["name"])
		}
	}
	lr := runsOf(t, ws2, "r2", long["id"].(string))
	if len(lr) != 1 || !strings.Contains(fmt.Sprint(lr[0]), "interrupted") {
		t.Fatalf("the interrupted run's history: %v", lr)
	}
	// A second kill -9 and start: nothing runs again.
	if err := gw2.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gw2.Wait()
	start()
	ws3 := dialAdmin(t, port)
	or := runsOf(t, ws3, "r3", overdue["id"].(string))
	if len(or) != 1 || or[0].(map[string]any)["status"] != "ok" {
		t.Fatalf("the overdue job ran %d times, want exactly once: %v", len(or), or)
	}
	if lr := runsOf(t, ws3, "r4", long["id"].(string)); len(lr) != 1 {
		t.Fatalf("the interrupted job has %d runs after two restarts, want 1: %v", len(lr), lr)
	}
	n := 0
	for _, r := range fake.Requests() {
		if strings.Contains(string(r.Body), "overdue task") {
			n++
		}
		if strings.Contains(string(r.Body), "long task") && n > 0 {
			t.Error("the interrupted job's turn was sent to the model again")
		}
	}
	if n != 1 {
		t.Fatalf("the overdue job reached the model %d times, want 1", n)
	}
}

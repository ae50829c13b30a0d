package gateway

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/session"
)

// smallDisk mounts a tmpfs of size bytes at a temp dir, so a test can fill
// it or remount it read-only for real. It needs root (CI runs as root); a
// developer without it gets a skip with the reason, CI a failure.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := "cannot mount a tmpfs for the disk fault test (needs root): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestStateDiskFullAndReadOnly: when the state dir's disk fills up or turns
// read-only, runs fail with a clear error, the gateway keeps serving, it
// recovers when the disk does, and nothing already written is damaged.
func TestStateDiskFullAndReadOnly(t *testing.T) {
	disk := smallDisk(t, "512k")
	ts, fake := agentServer(t, withOptions(func(o *Options) { o.StateDir = disk }))
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("recorded answer")})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", ts.logs.String())
			buf := make([]byte, 1<<20)
			t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
	})
	c, _ := dialConnected(t, ts)
	turn := func(key string) chatEvent {
		// The padding makes each append need fresh pages: a short line
		// could still fit the last, partly used page of a full disk.
		msg := "hello " + key + "\n" + strings.Repeat("pad ", 4096)
		r := c.call("chat.send", map[string]any{"sessionKey": "main", "message": msg, "idempotencyKey": key})
		if !r.OK {
			t.Fatalf("chat.send %s: %+v", key, r.Error)
		}
		e := lastChat(t, c, key)
		t.Logf("turn %s: %s %s", key, e.State, e.ErrorMessage)
		return e
	}
	if e := turn("before"); e.State != "final" {
		t.Fatalf("first turn: %+v", e)
	}
	before, err := session.LoadTranscript(firstTranscript(t, disk))
	if err != nil || len(before.Messages) != 2 {
		t.Fatalf("transcript before the fault: %+v %v", before, err)
	}

	// Disk full.
	filler := filepath.Join(disk, "filler")
	big := make([]byte, 1<<20)
	f, _ := os.Create(filler)
	_, _ = f.Write(big) // ENOSPC part-way is the point
	f.Close()
	e := turn("full")
	if e.State != "error" || !strings.Contains(e.ErrorMessage, "full") {
		t.Errorf("turn on a full disk ended %q %q, want an error saying the disk is full", e.State, e.ErrorMessage)
	}
	if r := c.call("health", nil); !r.OK {
		t.Fatal("gateway stopped serving on a full disk")
	}
	_ = os.Remove(filler)
	if e := turn("after-full"); e.State != "final" {
		t.Errorf("no recovery after space was freed: %+v", e)
	}

	// Read-only.
	if out, err := exec.Command("mount", "-o", "remount,ro", disk).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	e = turn("ro")
	if e.State != "error" || !strings.Contains(e.ErrorMessage, "read-only") {
		t.Errorf("turn on a read-only disk ended %q %q, want an error saying it is read-only", e.State, e.ErrorMessage)
	}
	if r := c.call("health", nil); !r.OK {
		t.Fatal("gateway stopped serving on a read-only disk")
	}
	if out, err := exec.Command("mount", "-o", "remount,rw", disk).CombinedOutput(); err != nil {
		t.Fatalf("remount rw: %v %s", err, out)
	}
	if e := turn("after-ro"); e.State != "final" {
		t.Errorf("no recovery after the disk turned writable: %+v", e)
	}

	// Nothing written before was damaged, and the transcript is valid JSONL.
	after, err := session.LoadTranscript(firstTranscript(t, disk))
	if err != nil || after.Torn || after.Skipped > 0 {
		t.Fatalf("transcript after the faults: torn=%v skipped=%d err=%v", after.Torn, after.Skipped, err)
	}
	for i, m := range before.Messages {
		a, _ := json.Marshal(m)
		b, _ := json.Marshal(after.Messages[i])
		if string(a) != string(b) {
			t.Errorf("message %d changed:\n%s\n%s", i, a, b)
		}
	}
	var texts []string
	for _, m := range after.Messages {
		texts = append(texts, m.Role+":"+strings.SplitN(m.Text(), "\n", 2)[0])
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"user:hello before", "user:hello after-full", "user:hello after-ro"} {
		if !strings.Contains(joined, want) {
			t.Errorf("transcript lacks %q: %s", want, joined)
		}
	}
}

func firstTranscript(t *testing.T, stateDir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(stateDir, "sessions", "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("%d transcripts in %s", len(files), stateDir)
	}
	return files[0]
}

// TestRunTimesOutOnHungModel: Bedrock stops mid-stream and never finishes;
// the run ends at its timeout with AGENT_TIMEOUT and says so.
func TestRunTimesOutOnHungModel(t *testing.T) {
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("starting…"), bedrocktest.Hang()})
	c, _ := dialConnected(t, ts)
	id := c.request("agent", map[string]any{"message": "go", "timeout": 1})
	c.readRes(id) // ack
	start := time.Now()
	final := c.readRes(id)
	if final.OK || final.Error.Code != "AGENT_TIMEOUT" || !strings.Contains(final.Error.Message, "timed out after 1s") {
		t.Fatalf("final %+v", final.Error)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("the timeout did not stop the run")
	}
	if h := historyLines(t, c); strings.Join(h, "|") != "user:go|assistant:starting…|assistant: [error]" {
		t.Errorf("history %v", h)
	}
}

// TestManyRunsThrottled: twenty sessions hit a throttling storm at once;
// every run retries and finishes.
func TestManyRunsThrottled(t *testing.T) {
	ts, fake := agentServer(t)
	calls := map[string]int{}
	var mu = make(chan struct{}, 1)
	fake.Handle(func(req bedrocktest.Request) bedrocktest.Reply {
		mu <- struct{}{}
		defer func() { <-mu }()
		k := string(req.Body)
		calls[k]++
		if calls[k] <= 2 {
			return bedrocktest.Reply{bedrocktest.HTTPError(429, "ThrottlingException", "Rate exceeded")}
		}
		return bedrocktest.Reply{bedrocktest.Text("through")}
	})
	c, _ := dialConnected(t, ts)
	for i := 0; i < 20; i++ {
		key := "storm" + string(rune('a'+i))
		c.request("chat.send", map[string]any{"sessionKey": key, "message": "go " + key, "idempotencyKey": key})
	}
	done := 0
	for done < 20 {
		f := c.mustRead()
		if f.Event == "chat" && strings.Contains(string(f.Payload), `"state":"`) {
			var e chatEvent
			_ = json.Unmarshal(f.Payload, &e)
			switch e.State {
			case "final":
				done++
			case "error":
				t.Fatalf("a throttled run failed: %s", e.ErrorMessage)
			}
		}
	}
}

// TestDrainWithTwentyRuns: SIGTERM with 20 runs in flight (all hung in the
// model): each ends with exactly one terminal answer, the gateway exits, and
// every transcript loads cleanly.
func TestDrainWithTwentyRuns(t *testing.T) {
	ts, fake := agentServer(t, withOptions(func(o *Options) { o.DrainTimeout = 500 * time.Millisecond }))
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("working"), bedrocktest.Hang()})
	c, _ := dialConnected(t, ts)
	ids := map[string]string{}
	for i := 0; i < 20; i++ {
		key := "drain" + string(rune('a'+i))
		ids[c.request("agent", map[string]any{"message": "go", "sessionKey": key, "idempotencyKey": key})] = key
	}
	acks := 0
	for acks < 20 {
		if f := c.mustRead(); f.Type == "res" && f.OK {
			acks++
		}
	}
	waitFor(t, "all 20 runs to be active", func() bool { a, _ := ts.runtime.Counts(); return a == 20 })
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop(t) }()
	finals := map[string]int{}
	for {
		f, err := c.read()
		if err != nil {
			break // closed with 1012 after the finals
		}
		if f.Type == "res" && ids[f.ID] != "" {
			finals[f.ID]++
			if f.OK || !strings.Contains(f.Error.Message, "shut down") {
				t.Errorf("run %s ended %+v", ids[f.ID], f.Error)
			}
		}
	}
	if len(finals) != 20 {
		t.Fatalf("%d of 20 runs got a final answer", len(finals))
	}
	for id, n := range finals {
		if n != 1 {
			t.Errorf("run %s answered %d times", ids[id], n)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(ts.dir, "sessions", "*.jsonl"))
	if len(files) != 20 {
		t.Fatalf("%d transcripts", len(files))
	}
	for _, f := range files {
		tr, err := session.LoadTranscript(f)
		if err != nil || tr.Torn || tr.Skipped > 0 {
			t.Errorf("%s: torn=%v skipped=%d err=%v", f, tr.Torn, tr.Skipped, err)
			continue
		}
		// The question, the partial answer when the model's first delta
		// arrived before the drain (on a loaded machine it may not have),
		// and the shutdown error.
		m := tr.Messages
		ok := (len(m) == 2 || len(m) == 3) && m[0].Role == "user" && m[len(m)-1].StopReason == "error"
		if ok && len(m) == 3 {
			ok = m[1].Role == "assistant" && len(m[1].Content) > 0 && strings.HasPrefix(m[1].Content[0].Text, "working")
		}
		if !ok {
			t.Errorf("%s: %d messages %+v; want the question, maybe the partial answer, and the shutdown error", f, len(m), m)
		}
	}
}

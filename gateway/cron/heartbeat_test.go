package cron

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/internal/testwait"
)

func TestSilent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"HEARTBEAT_OK", true}, {"  heartbeat_ok  ", false}, {"NO_REPLY", true}, {"", true},
		{"HEARTBEAT_OK all quiet", true}, {"All quiet. HEARTBEAT_OK", true},
		{"The disk is 95% full; clean /var/log.", false},
		{"HEARTBEAT_OK " + string(make([]byte, 301)), false},
		{"Before HEARTBEAT_OK after", false},
	} {
		if got := Silent(tc.in); got != tc.want {
			t.Errorf("Silent(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestEffectivelyEmpty(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true}, {"# Heartbeat\n\n## Tasks\n", true}, {"<!-- notes\nmore -->\n- [ ]\n* [ ] \n```\n```", true},
		{"- [ ] check the disk", false}, {"Check the backup log.", false}, {"<!-- x --> real text", false},
	} {
		if got := EffectivelyEmpty(tc.in); got != tc.want {
			t.Errorf("EffectivelyEmpty(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestHeartbeatWindow(t *testing.T) {
	h := &Heartbeat{anchor: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	p := plan{every: 30 * time.Minute, start: 9 * 60, end: 22 * 60, loc: time.UTC}
	cases := []struct{ now, want time.Time }{
		{time.Date(2026, 12, 7, 10, 10, 0, 0, time.UTC), time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)},
		{time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 7, 21, 50, 0, 0, time.UTC), time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		if got := h.nextTick(p, tc.now); !got.Equal(tc.want) {
			t.Errorf("nextTick(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
	wrap := plan{every: time.Hour, start: 22 * 60, end: 6 * 60, loc: time.UTC}
	if !wrap.inWindow(time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)) || wrap.inWindow(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)) {
		t.Error("a window past midnight is read wrongly")
	}
}

// TestHeartbeatBeat: NextDue follows HEARTBEAT.md; a tick runs the turn
// with the file in the prompt and announces only what is not an
// acknowledgement.
func TestHeartbeatBeat(t *testing.T) {
	ws := t.TempDir()
	var mu sync.Mutex
	var announced []string
	replies := make(chan string, 2)
	prompts := make(chan string, 2)
	h := NewHeartbeat(HeartbeatOptions{
		Config: func() HeartbeatConfig {
			return HeartbeatConfig{Enabled: true, Every: "30m", Start: "00:00", End: "24:00"}
		},
		Workspace: func() string { return ws },
		Turn: func(ctx context.Context, runID, message string) (string, error) {
			prompts <- message
			return <-replies, nil
		},
		Announce: func(runID, text string) error {
			mu.Lock()
			announced = append(announced, text)
			mu.Unlock()
			return nil
		},
	})
	if _, ok := h.NextDue(); ok {
		t.Fatal("NextDue without HEARTBEAT.md")
	}
	if err := os.WriteFile(filepath.Join(ws, HeartbeatFile), []byte("# Tasks\n- [ ] check the disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next, ok := h.NextDue()
	if !ok || time.Until(next) > 31*time.Minute || time.Until(next) < 29*time.Minute {
		t.Fatalf("NextDue = %v %v, want in about 30 minutes", next, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitArmed(t, h)
	for _, reply := range []string{"HEARTBEAT_OK", "The disk is 95% full."} {
		replies <- reply
		h.fire()
		select {
		case p := <-prompts:
			if !strings.Contains(p, "check the disk") {
				t.Fatalf("the prompt lacks HEARTBEAT.md: %q", p)
			}
		case <-time.After(testwait.Patience(t)):
			t.Fatal("no heartbeat turn")
		}
		waitIdle(t, h)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(announced) != 1 || announced[0] != "The disk is 95% full." {
		t.Fatalf("announced %q; want only the real finding", announced)
	}
}

func waitArmed(t *testing.T, h *Heartbeat) {
	t.Helper()
	waitCond(t, h, func() bool { return h.timer != nil })
}

func waitIdle(t *testing.T, h *Heartbeat) {
	t.Helper()
	waitCond(t, h, func() bool { return !h.running })
}

// waitCond waits for cond, read under h.mu.
func waitCond(t *testing.T, h *Heartbeat, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		h.mu.Lock()
		ok := cond()
		h.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

package tools

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/internal/testwait"
)

// safety bounds how long a test waits for something that should happen; it
// only keeps a broken build from hanging, and is never a timing assertion.
// It follows the test's -timeout, so a loaded machine only slows it down.
func safety(tb testing.TB) time.Duration { return testwait.Patience(tb) }

// newSet builds a Set on a fresh workspace with exec at security "full";
// mod adjusts the options first.
func newSet(t *testing.T, mod func(*Options)) *Set {
	t.Helper()
	opts := Options{
		Workspace: filepath.Join(t.TempDir(), "ws"),
		Exec:      configgen.Exec{Security: SecurityFull, Host: "gateway", TimeoutSec: 600},
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func run(t *testing.T, s *Set, tool string, args any) Result {
	t.Helper()
	var raw json.RawMessage
	switch a := args.(type) {
	case string:
		raw = json.RawMessage(a)
	default:
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		raw = b
	}
	return s.Run(context.Background(), tool, raw)
}

func mustOK(t *testing.T, r Result) Result {
	t.Helper()
	if r.IsError {
		t.Fatalf("unexpected error result: %s", r.Text)
	}
	return r
}

func mustFail(t *testing.T, r Result, wants ...string) {
	t.Helper()
	if !r.IsError {
		t.Fatalf("expected an error result, got: %s", r.Text)
	}
	if strings.TrimSpace(r.Text) == "" {
		t.Fatal("error result with empty text")
	}
	for _, w := range wants {
		if !strings.Contains(r.Text, w) {
			t.Errorf("error text %q does not contain %q", r.Text, w)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(safety(t))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procGone reports whether pid no longer runs. A zombie counts as gone: it
// was killed, and reaping it is its new parent's job (in a container that may
// be a PID 1 that never reaps).
func procGone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] == 'Z' || s[i+2] == 'X'
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

package memory

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skykoi/skykoi/internal/testwait"
)

// newTestStore is a Store on a fresh workspace and state directory whose
// clock reads now in loc.
func newTestStore(t testing.TB, now time.Time) (*Store, string) {
	t.Helper()
	ws, state := t.TempDir(), t.TempDir()
	s := New(Options{Workspace: func() string { return ws }, StateDir: state, Now: func() time.Time { return now }, Location: now.Location()})
	t.Cleanup(func() { _ = s.Close() })
	return s, ws
}

func writeFile(t testing.TB, ws, rel, text string) {
	t.Helper()
	p := filepath.Join(ws, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPromptSection(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	// 00:30 on 3 March in Tokyo is still 2 March in UTC: "today" must be the
	// Koi's local day.
	now := time.Date(2026, 3, 3, 0, 30, 0, 0, tokyo)
	big := func(c string, n int) string { return strings.Repeat(c+"\n", n/2) }
	tests := []struct {
		name     string
		files    map[string]string
		contains []string
		absent   []string
		maxLen   int
	}{
		{name: "nothing", files: nil, maxLen: 0},
		{name: "long-term and two days, in order",
			files: map[string]string{
				"MEMORY.md":                  "dog is called Biscuit",
				"memory/2026-03-03.md":       "today: booked dentist",
				"memory/2026-03-02.md":       "yesterday: fixed the boiler",
				"memory/2026-03-01.md":       "three days ago: old note",
				"memory/2026-03-03-trip.md":  "today slug: train at 9",
				"memory/notes/2026-03-03.md": "nested: not a daily note",
			},
			contains: []string{"### MEMORY.md\ndog is called Biscuit", "### memory/2026-03-03.md\ntoday: booked dentist",
				"### memory/2026-03-03-trip.md", "### memory/2026-03-02.md\nyesterday: fixed the boiler", "memory/2026-03-03.md for today's notes"},
			absent: []string{"old note", "nested", TruncatedMarker}},
		{name: "huge MEMORY.md is cut and today's note still fits",
			files:    map[string]string{"MEMORY.md": big("m", 100<<10), "memory/2026-03-03.md": "today: still here"},
			contains: []string{TruncatedMarker, "today: still here"}, maxLen: PromptBudget},
		{name: "everything huge: budget holds, newest day first",
			files: map[string]string{"MEMORY.md": big("m", 100<<10), "memory/2026-03-03.md": big("t", 100<<10),
				"memory/2026-03-02.md": big("y", 100<<10)},
			contains: []string{"### MEMORY.md", "### memory/2026-03-03.md"}, absent: []string{"\ny\n"}, maxLen: PromptBudget},
		{name: "blank files are left out",
			files:  map[string]string{"MEMORY.md": "  \n\n", "memory/2026-03-02.md": "y note"},
			absent: []string{"### MEMORY.md"}, contains: []string{"y note"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ws := newTestStore(t, now)
			for rel, text := range tt.files {
				writeFile(t, ws, rel, text)
			}
			got := s.PromptSection()
			if tt.files == nil && got != "" {
				t.Fatalf("section %q without memory files", got)
			}
			if tt.maxLen > 0 && len(got) > tt.maxLen {
				t.Errorf("section is %d bytes, budget %d", len(got), tt.maxLen)
			}
			for _, c := range tt.contains {
				if !strings.Contains(got, c) {
					t.Errorf("section lacks %q", c)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("section has %q", a)
				}
			}
			if i, j := strings.Index(got, "### MEMORY.md"), strings.Index(got, "### memory/2026-03-03.md"); i >= 0 && j >= 0 && i > j {
				t.Error("MEMORY.md comes after today's note")
			}
			if i, j := strings.Index(got, "### memory/2026-03-03.md"), strings.Index(got, "### memory/2026-03-02.md"); i >= 0 && j >= 0 && i > j {
				t.Error("yesterday comes before today")
			}
		})
	}
}

func TestPromptSectionRefusesSymlinks(t *testing.T) {
	s, ws := newTestStore(t, time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC))
	outside := filepath.Join(t.TempDir(), "secret.md")
	if err := os.WriteFile(outside, []byte("ssh key here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ws, "MEMORY.md")); err != nil {
		t.Fatal(err)
	}
	if got := s.PromptSection(); strings.Contains(got, "ssh key") {
		t.Fatalf("a MEMORY.md symlink out of the workspace was read into the prompt: %q", got)
	}
}

// TestFIFOsDoNotHang: a FIFO named MEMORY.md (or a note) is refused, not
// waited on: opening one for reading blocks until a writer comes, which
// would hang every turn's system prompt and memory_get.
func TestFIFOsDoNotHang(t *testing.T) {
	s, ws := newTestStore(t, time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC))
	writeFile(t, ws, "memory/2026-03-03.md", "- the dentist is on Friday\n")
	if err := syscall.Mkfifo(filepath.Join(ws, "MEMORY.md"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() { done <- s.PromptSection() }()
	select {
	case got := <-done:
		if !strings.Contains(got, "dentist") {
			t.Errorf("the prompt lost today's note beside the FIFO: %q", got)
		}
	case <-time.After(testwait.Patience(t)):
		t.Fatal("PromptSection hung on a FIFO named MEMORY.md")
	}
	errc := make(chan error, 1)
	go func() { _, err := s.Get("MEMORY.md", 0, 0); errc <- err }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("memory_get of a FIFO: %v, want it refused as not a regular file", err)
		}
	case <-time.After(testwait.Patience(t)):
		t.Fatal("Get hung on a FIFO named MEMORY.md")
	}
}

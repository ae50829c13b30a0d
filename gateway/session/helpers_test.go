package session

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "time/tzdata" // DST tests need America/New_York whatever the host has installed
)

// clock is the injected time source: tests never read the wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuf collects log output so tests can check what was reported.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var t0 = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

type env struct {
	dir  string
	clk  *clock
	logs *logBuf
	opts Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dir: filepath.Join(t.TempDir(), "sessions"), clk: newClock(t0), logs: &logBuf{}}
	e.opts = Options{Dir: e.dir, Now: e.clk.Now, Location: time.UTC,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return e
}

func (e *env) open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(e.opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustResolve(t *testing.T, s *Store, key string) Entry {
	t.Helper()
	e, _, err := s.Resolve(key)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", key, err)
	}
	return e
}

func mustAppend(t *testing.T, s *Store, key string, m Message) Entry {
	t.Helper()
	e, err := s.Append(key, m)
	if err != nil {
		t.Fatalf("Append(%q): %v", key, err)
	}
	return e
}

func textMsg(role, text string) Message {
	return Message{Role: role, Content: []Content{{Type: "text", Text: text}}}
}

func withUsage(m Message, model string, in, out, cr, cw int) Message {
	m.Model = model
	m.Usage = &Usage{InputTokens: in, OutputTokens: out, CacheReadTokens: cr, CacheWriteTokens: cw}
	return m
}

func historyTexts(t *testing.T, s *Store, key string) []string {
	t.Helper()
	_, msgs, err := s.History(key, 0)
	if err != nil {
		t.Fatalf("History(%q): %v", key, err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Text())
	}
	return out
}

// checkJSONL fails unless every line of path is a JSON object and the file
// ends with a newline; it returns the number of lines.
func checkJSONL(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: %q", filepath.Base(path), tail(data))
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		n++
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s line %d is not a JSON object: %v: %q", filepath.Base(path), n, err, sc.Text())
		}
	}
	return n
}

func tail(b []byte) []byte {
	if len(b) > 80 {
		return b[len(b)-80:]
	}
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot returns every file in dir by name, to prove a failed operation
// changed nothing on disk.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, de := range des {
		out[de.Name()] = string(readFile(t, filepath.Join(dir, de.Name())))
	}
	return out
}

func diffSnapshots(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	return d
}

func transcriptFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func globN(t *testing.T, pattern string) int {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

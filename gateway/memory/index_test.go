package memory

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTranscript writes a session transcript the way the session store
// lays it out: a header line, then one message line per message.
func writeTranscript(t testing.TB, state, sid string, msgs ...[2]string) string {
	t.Helper()
	dir := filepath.Join(state, "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"type":"session","version":1,"sessionId":"` + sid + `","key":"agent:main:main","createdAt":1}` + "\n")
	for i, m := range msgs {
		line, _ := json.Marshal(map[string]any{"type": "message", "id": fmt.Sprint(i), "message": map[string]any{
			"role": m[0], "content": []map[string]any{{"type": "text", "text": m[1]}}, "timestamp": 1}})
		b.Write(line)
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, sid+".jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func search(t testing.TB, s *Store, q string) []Result {
	t.Helper()
	res, err := s.Search(context.Background(), q, 10, 0)
	if err != nil {
		t.Fatalf("Search(%q): %v", q, err)
	}
	return res
}

func hasHit(res []Result, path, text string) bool {
	for _, r := range res {
		if r.Path == path && strings.Contains(r.Snippet, text) {
			return true
		}
	}
	return false
}

func TestSearchFindsFacts(t *testing.T) {
	s, ws := newTestStore(t, time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC))
	state := s.opts.StateDir
	writeFile(t, ws, "MEMORY.md", "# People\nThe person's dog is called Biscuit.\n\n# Work\nDeploys happen on Thursdays.\n")
	writeFile(t, ws, "memory/2026-02-10.md", "Booked the dentist for the 14th at Harwood Clinic.\n")
	writeFile(t, ws, "memory/projects/garden.md", "Tomatoes go in the east bed.\n")
	writeFile(t, ws, "notes.md", "Zanzibar is not memory.\n") // outside memory: not indexed
	writeTranscript(t, state, "s1", [2]string{"user", "my locker code is 4471"}, [2]string{"assistant", "Noted: locker 4471."})

	tests := []struct {
		query, path, text string
		startLine         int
	}{
		{"what is the dog called", "MEMORY.md", "Biscuit", 1},
		{"Thursdays deploy", "MEMORY.md", "Deploys", 4},
		{"dentist clinic", "memory/2026-02-10.md", "Harwood", 1},
		{"tomatoes", "memory/projects/garden.md", "east bed", 1},
		{"locker code", "sessions/s1.jsonl", "4471", 2},
	}
	for _, tt := range tests {
		res := search(t, s, tt.query)
		if len(res) == 0 || res[0].Path != tt.path || !strings.Contains(res[0].Snippet, tt.text) || res[0].StartLine != tt.startLine {
			t.Errorf("Search(%q) = %+v; want first hit %s line %d with %q", tt.query, res, tt.path, tt.startLine, tt.text)
		}
		if len(res) > 0 && (res[0].Score <= 0 || res[0].Score >= 1) {
			t.Errorf("Search(%q) score %v, want in (0,1)", tt.query, res[0].Score)
		}
	}
	if res := search(t, s, "Zanzibar"); len(res) != 0 {
		t.Errorf("a file outside memory/ was indexed: %+v", res)
	}
	if res, _ := s.Search(context.Background(), "dog", 10, 0.999); len(res) != 0 {
		t.Errorf("minScore 0.999 kept %+v", res)
	}
	if _, err := s.Search(context.Background(), `"(*)"`, 10, 0); err == nil {
		t.Error("a query with no words was accepted")
	}
}

func TestSearchIncremental(t *testing.T) {
	s, ws := newTestStore(t, time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC))
	writeFile(t, ws, "MEMORY.md", "The car is blue.\n")
	p := writeTranscript(t, s.opts.StateDir, "s1", [2]string{"user", "first message about apricots"})
	if !hasHit(search(t, s, "blue car"), "MEMORY.md", "blue") {
		t.Fatal("first sync missed MEMORY.md")
	}
	// Edit the file (a different size, so even a coarse mtime sees it).
	writeFile(t, ws, "MEMORY.md", "The car is a green hatchback now.\n")
	if res := search(t, s, "blue"); len(res) != 0 {
		t.Errorf("stale text still found after the edit: %+v", res)
	}
	if !hasHit(search(t, s, "hatchback"), "MEMORY.md", "green") {
		t.Error("the edited text was not indexed")
	}
	// Append to the transcript: only the new line is read, the old stays.
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"type":"message","id":"9","message":{"role":"assistant","content":[{"type":"text","text":"second about plums"}]}}`)
	fmt.Fprint(f, `{"type":"message","id":"10","message":{"role":"user","content":[{"type":"text","text":"torn quince`) // no newline yet
	f.Close()
	if !hasHit(search(t, s, "plums"), "sessions/s1.jsonl", "plums") || !hasHit(search(t, s, "apricots"), "sessions/s1.jsonl", "apricots") {
		t.Error("appended transcript line not found, or the earlier one lost")
	}
	if res := search(t, s, "quince"); len(res) != 0 {
		t.Errorf("a torn last line was indexed: %+v", res)
	}
	if got := countChunks(t, s, "sessions/s1.jsonl"); got != 2 {
		t.Errorf("%d chunks for the transcript, want 2 (the first line must not be indexed twice)", got)
	}
	// A deleted file leaves the index.
	if err := os.Remove(filepath.Join(ws, "MEMORY.md")); err != nil {
		t.Fatal(err)
	}
	if res := search(t, s, "hatchback"); len(res) != 0 {
		t.Errorf("a deleted file is still found: %+v", res)
	}
}

func countChunks(t testing.TB, s *Store, path string) int {
	t.Helper()
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	var n int
	if err := s.idx.db.QueryRow(`SELECT count(*) FROM chunks WHERE path = ?`, path).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIndexRebuiltWhenMissingOrCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage over the file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
				t.Fatal(err)
			}
			_ = os.Remove(path + "-wal")
			_ = os.Remove(path + "-shm")
		}},
		{"deleted", func(t *testing.T, path string) {
			for _, sfx := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(path + sfx)
			}
		}},
		{"another schema version", func(t *testing.T, path string) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`UPDATE meta SET value = 'old' WHERE key = 'schema'`); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ws := newTestStore(t, time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC))
			writeFile(t, ws, "memory/2026-03-01.md", "The wifi password hint is heron.\n")
			writeTranscript(t, s.opts.StateDir, "s1", [2]string{"user", "remember the boat is moored at pier seven"})
			if len(search(t, s, "heron")) != 1 {
				t.Fatal("not found before the damage")
			}
			// As after a restart: the gateway opens the index anew.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, s.idx.path)
			if !hasHit(search(t, s, "heron"), "memory/2026-03-01.md", "heron") || !hasHit(search(t, s, "pier"), "sessions/s1.jsonl", "seven") {
				t.Fatal("the rebuilt index does not find the facts")
			}
		})
	}
}

// FuzzMatchExpr: whatever a person types, the query built from it is valid
// FTS5 (no syntax error reaches the model as a failure).
func FuzzMatchExpr(f *testing.F) {
	for _, seed := range []string{"dog", `"unbalanced`, "a AND OR NOT b", "col:value", "x*", "(a", "^start", "NEAR(a b)",
		"ümlaut 日本語", "-minus +plus", "'single'", "\x00", "a\u0301", "🐟 koi", "1.5e10", ""} {
		f.Add(seed)
	}
	db, err := sql.Open("sqlite", filepath.Join(f.TempDir(), "fuzz.sqlite"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'unicode61'); INSERT INTO t(body) VALUES ('dog koi ümlaut 日本語')`); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q string) {
		m := matchExpr(q)
		if m == "" {
			return
		}
		rows, err := db.Query(`SELECT rowid FROM t WHERE t MATCH ?`, m)
		if err != nil {
			t.Fatalf("matchExpr(%q) = %q: %v", q, m, err)
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("matchExpr(%q) = %q: %v", q, m, err)
		}
		rows.Close()
	})
}

package memory

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// TestFTS5Compiled guards the one SQLite feature the index stands on: a
// modernc build without FTS5 would fail every search at run time.
func TestFTS5Compiled(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE VIRTUAL TABLE t USING fts5(body)`); err != nil {
		t.Fatalf("FTS5 is not compiled into modernc.org/sqlite: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO t(body) VALUES ('the koi remembers'), ('nothing here')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t WHERE t MATCH '"remembers"'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("MATCH found %d rows, err %v; want 1", n, err)
	}
}

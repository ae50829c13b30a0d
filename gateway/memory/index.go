package memory

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode"

	"github.com/skykoi/skykoi/gateway/session"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// schemaVersion changes whenever the tables change; an index of another
// version is rebuilt from the files.
const schemaVersion = "1"

// Chunking: memory files split at headings and blank lines, and a chunk
// grows to about maxChunk bytes so a hit is a readable passage rather than
// one line or a whole file.
const (
	maxChunk = 1200
	// SnippetChars caps the text of one search result.
	SnippetChars = 700
	// DefaultMaxResults is memory_search's default maxResults.
	DefaultMaxResults = 6
	// MaxResultsCap bounds maxResults whatever the caller asks.
	MaxResultsCap = 50
)

// Sources of a search result.
const (
	SourceMemory   = "memory"
	SourceSessions = "sessions"
)

// index is the FTS5 database under StateDir/memory. It is a cache of the
// files: every search first brings it up to date (files whose size or mtime
// changed are re-read, transcripts are read from where the last sync
// stopped), and a database that is missing, unreadable or of another schema
// is deleted and rebuilt.
type index struct {
	store *Store
	path  string

	mu sync.Mutex
	db *sql.DB
	// known mirrors the files table (loaded on the first sync after open),
	// so a search that finds nothing changed reads no rows for it.
	known map[string]fileRow
}

func (ix *index) close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.db == nil {
		return nil
	}
	err := ix.db.Close()
	ix.db, ix.known = nil, nil
	return err
}

// open opens or creates the database; ix.mu is held.
func (ix *index) open() error {
	if ix.db != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(ix.path), 0o700); err != nil {
		return fmt.Errorf("creating the memory index directory: %w", err)
	}
	// WAL: a write is a commit in the log, so a crash (kill -9) mid-sync
	// leaves the last committed index, which the next sync completes.
	db, err := sql.Open("sqlite", ix.path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("opening the memory index: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := initSchema(db); err != nil {
		_ = db.Close()
		return err
	}
	ix.db = db
	return nil
}

func initSchema(db *sql.DB) error {
	var v string
	err := db.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&v)
	if err == nil && v == schemaVersion {
		return nil
	}
	if err == nil || !isNoTable(err) {
		if err == nil {
			err = fmt.Errorf("schema %q, want %q", v, schemaVersion)
		}
		return fmt.Errorf("memory index: %w: %w", errDamaged, err)
	}
	stmts := []string{
		`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
		// files: what has been indexed of each source file. For memory
		// files size and mtime say whether it changed; for transcripts
		// size is the byte offset read up to and lines the line count there.
		`CREATE TABLE files (path TEXT PRIMARY KEY, source TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL, lines INTEGER NOT NULL)`,
		`CREATE VIRTUAL TABLE chunks USING fts5(text, path UNINDEXED, source UNINDEXED, start_line UNINDEXED, end_line UNINDEXED, tokenize = 'unicode61')`,
		`INSERT INTO meta (key, value) VALUES ('schema', '` + schemaVersion + `')`,
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("memory index: %w: %w", errDamaged, err)
	}
	defer tx.Rollback()
	for _, q := range stmts {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("memory index: %w: creating the schema: %w", errDamaged, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("memory index: %w: %w", errDamaged, err)
	}
	return nil
}

// errDamaged marks an index that must be rebuilt.
var errDamaged = errors.New("the index is damaged or from another version")

func isNoTable(err error) bool { return strings.Contains(err.Error(), "no such table") }

// isCorrupt: SQLite says the file is not (or no longer) a database.
func isCorrupt(err error) bool {
	if errors.Is(err, errDamaged) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
	}
	return false
}

// rebuild deletes the database and its WAL; ix.mu is held.
func (ix *index) rebuild(why error) error {
	ix.store.log.Warn("memory: rebuilding the index from the files", "path", ix.path, "reason", why)
	if ix.db != nil {
		_ = ix.db.Close()
		ix.db, ix.known = nil, nil
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(ix.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the damaged memory index: %w", err)
		}
	}
	return ix.open()
}

// Result is one memory_search hit, in OpenClaw's field names.
type Result struct {
	Path      string  `json:"path"` // "MEMORY.md", "memory/2026-03-03.md" or "sessions/<sessionId>.jsonl"
	StartLine int     `json:"startLine"`
	EndLine   int     `json:"endLine"`
	Score     float64 `json:"score"` // 0..1, higher is better
	Snippet   string  `json:"snippet"`
	Source    string  `json:"source"` // "memory" or "sessions"
}

// Search brings the index up to date and returns the best matches for the
// words of query (any word matches; rarer words and more of them rank
// higher). maxResults <= 0 means DefaultMaxResults; results scoring below
// minScore are left out.
func (s *Store) Search(ctx context.Context, query string, maxResults int, minScore float64) ([]Result, error) {
	match := matchExpr(query)
	if match == "" {
		return nil, errors.New("the query has no words to search for; give a few keywords")
	}
	if maxResults <= 0 {
		maxResults = DefaultMaxResults
	}
	maxResults = min(maxResults, MaxResultsCap)
	ix := s.idx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var res []Result
	err := ix.withRebuild(func() error {
		if err := ix.sync(ctx); err != nil {
			return err
		}
		var err error
		res, err = ix.query(ctx, match, maxResults, minScore)
		return err
	})
	return res, err
}

// syncIndex brings the index up to date without searching (for the
// benchmark, which measures searches of a warm index).
func (s *Store) syncIndex(ctx context.Context) error {
	ix := s.idx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.withRebuild(func() error { return ix.sync(ctx) })
}

// withRebuild runs f on an open index; when the index turns out damaged it
// is rebuilt from the files and f runs once more. ix.mu is held.
func (ix *index) withRebuild(f func() error) error {
	err := ix.open()
	if err == nil {
		err = f()
	}
	if err == nil || !isCorrupt(err) {
		if err != nil {
			return fmt.Errorf("searching memory: %w", err)
		}
		return nil
	}
	if rerr := ix.rebuild(err); rerr != nil {
		return fmt.Errorf("searching memory: rebuilding the index: %w", rerr)
	}
	if err := f(); err != nil {
		return fmt.Errorf("searching memory after rebuilding the index: %w", err)
	}
	return nil
}

func (ix *index) query(ctx context.Context, match string, limit int, minScore float64) ([]Result, error) {
	rows, err := ix.db.QueryContext(ctx, `SELECT path, source, start_line, end_line, text, bm25(chunks)
		FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks) LIMIT ?`, match, limit)
	if err != nil {
		return nil, fmt.Errorf("querying the index: %w", err)
	}
	defer rows.Close()
	out := []Result{}
	for rows.Next() {
		var r Result
		var rank float64
		if err := rows.Scan(&r.Path, &r.Source, &r.StartLine, &r.EndLine, &r.Snippet, &rank); err != nil {
			return nil, fmt.Errorf("reading a search result: %w", err)
		}
		r.Score = bm25Score(rank)
		if r.Score < minScore {
			continue
		}
		r.Snippet = cutUTF8(r.Snippet, SnippetChars)
		out = append(out, r)
	}
	return out, rows.Err()
}

// bm25Score maps FTS5's bm25 (negative, lower is better, unbounded) onto
// 0..1 so minScore means the same whatever the corpus size: x/(1+x).
func bm25Score(rank float64) float64 {
	x := math.Max(-rank, 0)
	return math.Round(x/(1+x)*1000) / 1000
}

// sync updates the index from the workspace's memory files and the session
// transcripts; ix.mu is held.
func (ix *index) sync(ctx context.Context) error {
	if ix.known == nil {
		if err := ix.loadKnown(ctx); err != nil {
			return err
		}
	}
	known := ix.known
	ws := ix.store.opts.Workspace()
	seen := map[string]bool{}
	for _, rel := range memoryFiles(ws) {
		seen[rel] = true
		fi, err := os.Lstat(filepath.Join(ws, filepath.FromSlash(rel)))
		if err != nil {
			continue
		}
		if k, ok := known[rel]; ok && k.size == fi.Size() && k.mtime == fi.ModTime().UnixNano() {
			continue
		}
		data, err := readRegular(ws, rel, maxMemoryFile)
		if err != nil {
			ix.store.log.Warn("memory: skipping a file the index cannot read", "file", rel, "err", err)
			continue
		}
		chunks := chunkMarkdown(string(data))
		if err := ix.replace(ctx, fileRow{path: rel, source: SourceMemory, size: fi.Size(), mtime: fi.ModTime().UnixNano()}, chunks, true); err != nil {
			return err
		}
	}

	sessDir := ix.store.opts.SessionsDir
	paths, _ := filepath.Glob(filepath.Join(sessDir, "*.jsonl"))
	for _, p := range paths {
		rel := SourceSessions + "/" + filepath.Base(p)
		seen[rel] = true
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		k, had := known[rel]
		if had && k.size == fi.Size() {
			continue
		}
		from := fileRow{path: rel, source: SourceSessions}
		if had && fi.Size() > k.size {
			from = k // appended to: read on from where the last sync stopped
		}
		chunks, row, err := readTranscript(p, from)
		if err != nil {
			ix.store.log.Warn("memory: skipping a transcript the index cannot read", "file", rel, "err", err)
			continue
		}
		if err := ix.replace(ctx, row, chunks, from.size == 0); err != nil {
			return err
		}
	}

	for path := range known {
		if seen[path] {
			continue
		}
		if err := ix.replace(ctx, fileRow{path: path}, nil, true); err != nil {
			return err
		}
	}
	return nil
}

func (ix *index) loadKnown(ctx context.Context) error {
	known := map[string]fileRow{}
	rows, err := ix.db.QueryContext(ctx, `SELECT path, source, size, mtime, lines FROM files`)
	if err != nil {
		return fmt.Errorf("reading the index's file list: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r fileRow
		if err := rows.Scan(&r.path, &r.source, &r.size, &r.mtime, &r.lines); err != nil {
			return fmt.Errorf("reading the index's file list: %w", err)
		}
		known[r.path] = r
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the index's file list: %w", err)
	}
	ix.known = known
	return nil
}

type fileRow struct {
	path, source string
	size, mtime  int64
	lines        int
}

type chunk struct {
	text       string
	start, end int // 1-based lines, inclusive
}

// replace records row and adds chunks in one transaction; whole drops the
// path's earlier chunks first. A row with no source deletes the path.
func (ix *index) replace(ctx context.Context, row fileRow, chunks []chunk, whole bool) error {
	tx, err := ix.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("updating the index for %s: %w", row.path, err)
	}
	defer tx.Rollback()
	if whole {
		if _, err := tx.ExecContext(ctx, `DELETE FROM chunks WHERE path = ?`, row.path); err != nil {
			return fmt.Errorf("updating the index for %s: %w", row.path, err)
		}
	}
	if row.source == "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM files WHERE path = ?`, row.path); err != nil {
			return fmt.Errorf("removing %s from the index: %w", row.path, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("removing %s from the index: %w", row.path, err)
		}
		delete(ix.known, row.path)
		return nil
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO chunks (text, path, source, start_line, end_line) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("updating the index for %s: %w", row.path, err)
	}
	defer ins.Close()
	for _, c := range chunks {
		if _, err := ins.ExecContext(ctx, c.text, row.path, row.source, c.start, c.end); err != nil {
			return fmt.Errorf("indexing %s: %w", row.path, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO files (path, source, size, mtime, lines) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(path) DO UPDATE SET source = excluded.source, size = excluded.size, mtime = excluded.mtime, lines = excluded.lines`,
		row.path, row.source, row.size, row.mtime, row.lines); err != nil {
		return fmt.Errorf("updating the index for %s: %w", row.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("updating the index for %s: %w", row.path, err)
	}
	ix.known[row.path] = row
	return nil
}

// chunkMarkdown splits a note at headings and blank lines into passages of
// up to about maxChunk bytes, each with its line range.
func chunkMarkdown(text string) []chunk {
	var out []chunk
	var cur strings.Builder
	start := 0
	emit := func(end int) {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, chunk{text: s, start: start, end: end})
		}
		cur.Reset()
		start = 0
	}
	lines := strings.Split(text, "\n")
	last := 0
	for i, line := range lines {
		n := i + 1
		isHeading := strings.HasPrefix(line, "#")
		if isHeading || (strings.TrimSpace(line) == "" && cur.Len() >= maxChunk/2) || cur.Len()+len(line) > maxChunk {
			emit(last)
		}
		if strings.TrimSpace(line) == "" && cur.Len() == 0 {
			continue
		}
		if start == 0 {
			start = n
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		last = n
	}
	emit(last)
	return out
}

// readTranscript reads the complete lines of a transcript after from.size
// and returns one chunk per user or assistant text message (tool calls and
// results are left out: they are machine talk, and large), and the row that
// records how far it read.
func readTranscript(path string, from fileRow) ([]chunk, fileRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, from, err
	}
	defer f.Close()
	if _, err := f.Seek(from.size, io.SeekStart); err != nil {
		return nil, from, err
	}
	row := from
	r := bufio.NewReaderSize(f, 64<<10)
	var out []chunk
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			// A line without its newline is still being written (or was
			// torn by a crash): it is read on the next sync, once complete.
			if errors.Is(err, io.EOF) {
				return out, row, nil
			}
			return out, row, err
		}
		row.size += int64(len(line))
		row.lines++
		m, ok := session.MessageOfLine(bytes.TrimSpace(line))
		if !ok || m.Role != "user" && m.Role != "assistant" {
			continue
		}
		body := m.Text()
		if strings.TrimSpace(body) == "" {
			continue
		}
		text := m.Role + ": " + body
		out = append(out, chunk{text: cutUTF8(text, 16<<10), start: row.lines, end: row.lines})
	}
}

// matchExpr turns free text into an FTS5 query that cannot be a syntax
// error: every word (a run of letters and digits) becomes a quoted string,
// joined with OR, so operators, quotes, parentheses and column filters in
// the person's text are only words. "" means there is nothing to search.
func matchExpr(query string) string {
	const maxTerms = 32
	var terms []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(query, func(r rune) bool { return !isWordRune(r) }) {
		w = strings.ToLower(w)
		if seen[w] {
			continue
		}
		seen[w] = true
		terms = append(terms, `"`+w+`"`)
		if len(terms) == maxTerms {
			break
		}
	}
	return strings.Join(terms, " OR ")
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// Package memory is what the Koi keeps between sessions: MEMORY.md and the
// daily notes memory/YYYY-MM-DD.md in the workspace (OpenClaw's layout),
// the part of them that goes into every system prompt, and a full-text index
// (SQLite FTS5) over those files and past session transcripts for the
// memory_search and memory_get tools.
//
// The files are the record: the index under the state directory can be
// deleted at any time and is rebuilt from them.
package memory

import (
	"errors"
	"fmt"
	"github.com/skykoi/skykoi/internal/regularfile"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Prompt budget. MEMORY.md and the daily notes are read into every system
// prompt, so they are bounded like the other workspace prompt files: enough
// for a curated memory and two days of notes, small beside a context window.
const (
	// PromptBudget bounds the whole memory section in bytes.
	PromptBudget = 24 << 10
	// PromptFileCap bounds one file's part of it, so a long MEMORY.md
	// cannot crowd out today's notes.
	PromptFileCap = 12 << 10
	// TruncatedMarker ends a file cut to fit; it tells the model how to
	// read the rest.
	TruncatedMarker = "\n[… truncated to fit the prompt; read the rest with memory_get]"
)

// LongTermFile is the curated memory at the workspace root.
const LongTermFile = "MEMORY.md"

// NotesDir holds the daily notes.
const NotesDir = "memory"

// dailyName matches memory/YYYY-MM-DD.md and memory/YYYY-MM-DD-<slug>.md.
var dailyName = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(-[^/]+)?\.md$`)

// Options configure a Store.
type Options struct {
	// Workspace returns the agent's workspace in force (it changes on reload).
	Workspace func() string
	// StateDir is the gateway's state directory: the index lives in
	// StateDir/memory.
	StateDir string
	// SessionsDir holds the session transcripts the index also covers
	// (the session store's Dir; default StateDir/sessions).
	SessionsDir string
	// Now is the clock; Location the Koi's local time zone, which decides
	// what "today" is (default time.Local).
	Now      func() time.Time
	Location *time.Location
	Logger   *slog.Logger
}

// Store reads memory files and owns the search index.
type Store struct {
	opts Options
	log  *slog.Logger
	idx  *index
}

// New builds a Store. The index is opened on first search.
func New(o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: o, log: o.Logger}
	if s.opts.SessionsDir == "" {
		s.opts.SessionsDir = filepath.Join(o.StateDir, "sessions")
	}
	s.idx = &index{store: s, path: filepath.Join(o.StateDir, "memory", "index.sqlite")}
	return s
}

// Close releases the index.
func (s *Store) Close() error { return s.idx.close() }

// Today is the daily note's name for the Koi's current local day,
// "memory/YYYY-MM-DD.md".
func (s *Store) Today() string { return dailyPath(s.opts.Now().In(s.opts.Location)) }

func dailyPath(t time.Time) string { return NotesDir + "/" + t.Format(time.DateOnly) + ".md" }

// promptFiles are the files the prompt shows, in priority order: MEMORY.md,
// then today's notes, then yesterday's (each day's plain file before its
// slugged variants).
func (s *Store) promptFiles(ws string) []string {
	now := s.opts.Now().In(s.opts.Location)
	today := now.Format(time.DateOnly)
	// AddDate on the local calendar, so a 23- or 25-hour day still gives
	// the previous date.
	yesterday := now.AddDate(0, 0, -1).Format(time.DateOnly)
	files := []string{LongTermFile}
	entries, _ := os.ReadDir(filepath.Join(ws, NotesDir))
	for _, day := range []string{today, yesterday} {
		var slugged []string
		for _, e := range entries {
			m := dailyName.FindStringSubmatch(e.Name())
			if m == nil || m[1] != day || !e.Type().IsRegular() {
				continue
			}
			if m[2] == "" {
				files = append(files, NotesDir+"/"+e.Name())
			} else {
				slugged = append(slugged, NotesDir+"/"+e.Name())
			}
		}
		slices.Sort(slugged)
		files = append(files, slugged...)
	}
	return files
}

// PromptSection is the memory part of the system prompt: MEMORY.md and
// today's and yesterday's notes, within PromptBudget. It is "" when there
// is nothing to show. Files are read on every call, so the agent's own
// writes show up on the next turn.
func (s *Store) PromptSection() string {
	ws := s.opts.Workspace()
	var parts []promptPart
	for _, rel := range s.promptFiles(ws) {
		data, err := readRegular(ws, rel, PromptFileCap+1)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("memory: reading a file for the prompt", "file", rel, "err", err)
			}
			continue
		}
		if strings.TrimSpace(string(data)) == "" {
			continue
		}
		parts = append(parts, promptPart{name: rel, text: string(data)})
	}
	return buildSection(parts, s.Today())
}

type promptPart struct{ name, text string }

// sectionIntro opens the section; it tells the model where memory lives.
const sectionIntro = "\n## Memory\nYou keep memory in files in your workspace: MEMORY.md for durable facts and decisions, " +
	"%s for today's notes (one file per day, in your local time). Write to them with the write and edit tools when you " +
	"learn something worth keeping; search all memory and past conversations with memory_search and read a file with memory_get.\n"

// buildSection lays out parts in order within the budget: each file is cut
// to PromptFileCap, and once the budget is spent the rest is left out.
func buildSection(parts []promptPart, today string) string {
	if len(parts) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, sectionIntro, today)
	left := PromptBudget - b.Len()
	for _, p := range parts {
		header := "\n### " + p.name + "\n"
		room := min(left-len(header)-1, PromptFileCap)
		if room <= len(TruncatedMarker)+64 {
			break // not even a useful excerpt fits
		}
		text := strings.TrimSpace(p.text)
		if len(text) > room {
			text = cutUTF8(text, room-len(TruncatedMarker)) + TruncatedMarker
		}
		b.WriteString(header)
		b.WriteString(text)
		b.WriteString("\n")
		left -= len(header) + len(text) + 1
	}
	return b.String()
}

// cutUTF8 shortens s to at most n bytes without splitting a rune, at the last
// line break when there is one in the last quarter.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	s = s[:n]
	if i := strings.LastIndexByte(s, '\n'); i > n*3/4 {
		s = s[:i]
	}
	return s
}

// readRegular reads up to limit bytes of the workspace file rel, refusing
// anything that is not a regular file inside the workspace once symlinks are
// resolved: memory is the agent's own files, never a link elsewhere.
func readRegular(ws, rel string, limit int64) ([]byte, error) {
	real, err := confined(ws, rel)
	if err != nil {
		return nil, err
	}
	f, _, err := regularfile.Open(real)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rel, err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// ErrNotMemory refuses a path that is not a memory file.
var ErrNotMemory = errors.New("not a memory file")

// IsMemoryPath reports whether rel (slash-separated, relative to the
// workspace) names a memory file: MEMORY.md or a .md file under memory/.
func IsMemoryPath(rel string) bool {
	if rel == LongTermFile {
		return true
	}
	if !strings.HasPrefix(rel, NotesDir+"/") || !strings.HasSuffix(rel, ".md") {
		return false
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// confined resolves the memory path rel in ws and refuses it unless it is a
// memory file whose real location (symlinks resolved) is still that memory
// file's place inside the workspace.
func confined(ws, rel string) (string, error) {
	if strings.ContainsRune(rel, 0) || !IsMemoryPath(rel) {
		return "", fmt.Errorf("%w: %q (memory is MEMORY.md and memory/*.md in the workspace)", ErrNotMemory, rel)
	}
	realWS, err := filepath.EvalSymlinks(ws)
	if err != nil {
		return "", fmt.Errorf("resolving the workspace: %w", err)
	}
	want := filepath.Join(realWS, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(want)
	if err != nil {
		return "", err // fs.ErrNotExist for a missing file
	}
	if real != want {
		return "", fmt.Errorf("%w: %q is a symlink (to %s); memory files must be plain files in the workspace", ErrNotMemory, rel, real)
	}
	return real, nil
}

// memoryFiles lists every memory file in ws (relative, slash-separated),
// without following symlinks.
func memoryFiles(ws string) []string {
	var out []string
	if fi, err := os.Lstat(filepath.Join(ws, LongTermFile)); err == nil && fi.Mode().IsRegular() {
		out = append(out, LongTermFile)
	}
	root := filepath.Join(ws, NotesDir)
	if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
		return out
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".md") {
			if rel, err := filepath.Rel(ws, p); err == nil {
				out = append(out, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	return out
}

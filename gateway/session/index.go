package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/skykoi/skykoi/internal/atomicfile"
)

// removeStaleTemps deletes temp files atomicfile.Write leaves behind when the
// process dies mid-write; they are never the only copy of anything.
func (s *Store) removeStaleTemps() {
	for _, name := range []string{indexName, usageName} {
		matches, _ := filepath.Glob(filepath.Join(s.dir, "."+name+".tmp-*"))
		for _, m := range matches {
			_ = os.Remove(m)
		}
	}
}

// keepCorrupt moves an unreadable file aside so rebuilding never overwrites
// the only evidence of what went wrong.
func (s *Store) keepCorrupt(path string) (string, error) {
	base := path + ".corrupt-" + strconv.FormatInt(s.now().UnixMilli(), 10)
	kept := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(kept); errors.Is(err, fs.ErrNotExist) {
			break
		}
		kept = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(path, kept); err != nil {
		return "", wrapDisk("setting aside unreadable "+filepath.Base(path)+" (it is left untouched; move it away by hand to start over)", s.dir, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		s.log.Warn("could not sync the session directory", "error", err)
	}
	return kept, nil
}

type indexFile struct {
	Version  int                    `json:"version"`
	Sessions map[string]indexRecord `json:"sessions"`
}

type indexRecord struct {
	Entry
	// TranscriptBytes is the transcript length this record describes; a
	// different length on Open means the index lags and must be re-derived.
	TranscriptBytes int64 `json:"transcriptBytes"`
	// Where the model context starts (see keptHint); verified on read.
	keptHint
}

// loadIndex returns the index records to adopt. A missing index, or one that
// is (partly) unreadable, is rebuilt from transcript headers; an unreadable
// index is first kept as sessions.json.corrupt-<ts>.
func (s *Store) loadIndex() (recs []indexRecord, dirty bool, err error) {
	path := filepath.Join(s.dir, indexName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		recs = s.rebuild()
		if len(recs) > 0 {
			s.log.Warn("no session index; rebuilt it from transcripts (labels and overrides are lost)", "dir", s.dir, "sessions", len(recs))
		}
		return recs, len(recs) > 0, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("opening session store: reading the index: %w", err)
	}
	var f indexFile
	problem := json.Unmarshal(data, &f)
	if problem == nil && f.Version > indexVer {
		return nil, false, fmt.Errorf("opening session store: %s has version %d, newer than this gateway understands", path, f.Version)
	}
	seen := map[string]bool{}
	if problem == nil {
		for k, r := range f.Sessions {
			nk, kerr := NormalizeKey(k)
			switch {
			case kerr != nil || nk != k || r.Key != k:
				problem = fmt.Errorf("record %q: bad key", k)
			case !validSessionID(r.SessionID):
				problem = fmt.Errorf("record %q: bad sessionId %q", k, r.SessionID)
			case seen[r.SessionID]:
				problem = fmt.Errorf("record %q: sessionId %q used twice", k, r.SessionID)
			}
			if problem != nil {
				break
			}
			seen[r.SessionID] = true
			recs = append(recs, r)
		}
	}
	if problem == nil {
		return recs, false, nil
	}
	kept, err := s.keepCorrupt(path)
	if err != nil {
		return nil, false, fmt.Errorf("opening session store: the index is unreadable (%v): %w", problem, err)
	}
	// Salvage nothing from a damaged file: one bad record says the rest may
	// be wrong too, and every transcript names its own key.
	recs = s.rebuild()
	s.log.Warn("session index was unreadable; kept it and rebuilt the index from transcripts (labels and overrides are lost)",
		"error", problem.Error(), "kept", kept, "sessions", len(recs))
	return recs, true, nil
}

// rebuild makes index records from transcript headers: per key, the
// transcript created last (resets create newer ones) is the current one,
// unless the key was deleted after it was created (a delete renames only the
// current transcript, so older ones from resets must not bring it back).
func (s *Store) rebuild() []indexRecord {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("could not list transcripts to rebuild the index", "error", err)
		return nil
	}
	live := map[string][]Header{}
	deletedAt := map[string]int64{} // key → createdAt of its newest deleted transcript
	for _, de := range names {
		name := de.Name()
		sid, deleted := name, false
		if i := strings.Index(name, ".jsonl.deleted-"); i > 0 {
			sid, deleted = name[:i], true
		} else if base, ok := strings.CutSuffix(name, ".jsonl"); ok {
			sid = base
		} else {
			continue
		}
		if !de.Type().IsRegular() || !validSessionID(sid) {
			continue
		}
		h, err := readHeader(filepath.Join(s.dir, name))
		if err != nil || h.SessionID != sid {
			if !deleted {
				s.log.Warn("transcript has no usable header; not indexed", "file", name, "error", err)
			}
			continue
		}
		if k, err := NormalizeKey(h.Key); err != nil || k != h.Key {
			s.log.Warn("transcript header has a bad key; not indexed", "file", name)
			continue
		}
		if deleted {
			if d, ok := deletedAt[h.Key]; !ok || h.CreatedAt > d {
				deletedAt[h.Key] = h.CreatedAt
			}
			continue
		}
		live[h.Key] = append(live[h.Key], h)
	}
	var recs []indexRecord
	for key, hs := range live {
		var best Header
		n := 0
		for _, h := range hs {
			if d, ok := deletedAt[key]; ok && h.CreatedAt <= d {
				continue // from before the key was deleted
			}
			n++
			if n == 1 || h.CreatedAt > best.CreatedAt || (h.CreatedAt == best.CreatedAt && h.SessionID > best.SessionID) {
				best = h
			}
		}
		if n == 0 {
			continue
		}
		e := Entry{Key: key, SessionID: best.SessionID, CreatedAt: best.CreatedAt, UpdatedAt: best.CreatedAt}
		if n > 1 {
			// Other live transcripts for the key exist only because of
			// resets, so the newest one began with a reset.
			e.ResetAt = best.CreatedAt
		}
		// TranscriptBytes -1 never matches, so adopt re-derives everything.
		recs = append(recs, indexRecord{Entry: e, TranscriptBytes: -1})
	}
	return recs
}

// readHeader reads only the first line: rebuilding must not read every old
// transcript in full.
func readHeader(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Header{}, err
	}
	first, _, ok := bytes.Cut(buf[:n], []byte{'\n'})
	if !ok {
		return Header{}, errors.New("no complete first line")
	}
	t := ParseTranscript(append(first, '\n'))
	if t.Header == nil {
		return Header{}, errors.New("first line is not a session header")
	}
	return *t.Header, nil
}

// adopt turns an index record into live state, checking it against its
// transcript. It reports whether the index needs rewriting.
func (s *Store) adopt(rec indexRecord) (*sessionState, bool) {
	path := s.transcriptPath(rec.SessionID)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if m, _ := filepath.Glob(path + ".deleted-*"); len(m) > 0 {
			// A Delete renamed the transcript and the process died before
			// the index said so: finish the delete.
			s.log.Info("finishing an interrupted session delete", "key", rec.Key, "sessionId", rec.SessionID)
			return nil, true
		}
		s.log.Warn("session transcript is missing; the next message starts a new file", "key", rec.Key, "sessionId", rec.SessionID)
		return &sessionState{entry: derive(rec.Entry, Transcript{}), size: -1}, true
	}
	if err == nil && fi.Size() == rec.TranscriptBytes {
		return &sessionState{entry: rec.Entry, size: rec.TranscriptBytes, hint: rec.keptHint}, false
	}
	var t Transcript
	if err == nil {
		t, err = LoadTranscript(path)
	}
	if err != nil {
		// Unreadable now (permissions?) but maybe not later: keep the record
		// as it was, and let the next append find where the lines end.
		s.log.Warn("could not read session transcript", "key", rec.Key, "error", err)
		return &sessionState{entry: rec.Entry, size: -1}, false
	}
	st := &sessionState{entry: derive(rec.Entry, t), size: t.End, hint: hintFor(t, 0)}
	if rec.TranscriptBytes >= 0 {
		s.log.Info("session index was behind its transcript; re-derived the entry", "key", rec.Key, "sessionId", rec.SessionID)
	}
	s.reportDamage(st, t, fi.Size())
	return st, true
}

// reportDamage logs, once per session, lines that reading had to drop.
func (s *Store) reportDamage(st *sessionState, t Transcript, fileSize int64) {
	unacked := st.size >= 0 && fileSize > st.size
	if st.warned || (!t.Torn && t.Skipped == 0 && !unacked) {
		return
	}
	st.warned = true
	s.log.Warn("session transcript has damaged lines; they are ignored (an unterminated tail is cut off on the next append)",
		"key", st.entry.Key, "sessionId", st.entry.SessionID, "tornLastLine", t.Torn || unacked, "skippedLines", t.Skipped)
}

// reconcileUsage counts usage the last run recorded in transcripts but did
// not get into usage.json, then forgets offsets of sessions no longer current.
func (s *Store) reconcileUsage() {
	l := s.usage
	l.mu.Lock()
	defer l.mu.Unlock()
	current := map[string]bool{}
	for _, st := range s.sessions {
		sid, end := st.entry.SessionID, st.size
		current[sid] = true
		if end < 0 {
			continue // transcript missing or unreadable: nothing to count now
		}
		off := l.data.Counted[sid]
		if off >= end {
			if off > end {
				l.data.Counted[sid] = end
				l.dirty = true
			}
			continue
		}
		seg, err := readRange(s.transcriptPath(sid), off, end)
		if err != nil {
			s.log.Warn("could not read a transcript to recount usage", "sessionId", sid, "error", err)
			continue
		}
		t := ParseTranscript(seg)
		for i := range t.Messages {
			if t.Messages[i].Usage != nil {
				l.add(&t.Messages[i], st.entry.Model, s.loc)
			}
		}
		l.data.Counted[sid] = end
		l.dirty = true
	}
	for sid := range l.data.Counted {
		if !current[sid] {
			delete(l.data.Counted, sid)
			l.dirty = true
		}
	}
}

func readRange(path string, off, end int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, end-off)
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// persistIndex writes the index if it is older than the newest change. If
// the write fails, undo (when not nil) runs under s.mu before any other write
// can start, so no later snapshot carries the change being taken back.
func (s *Store) persistIndex(undo func()) error {
	s.mu.RLock()
	want := s.gen
	s.mu.RUnlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.written >= want {
		return nil
	}
	s.mu.RLock()
	gen := s.gen
	f := indexFile{Version: indexVer, Sessions: make(map[string]indexRecord, len(s.sessions))}
	for k, st := range s.sessions {
		if st.pending || st.deleting {
			continue
		}
		f.Sessions[k] = indexRecord{Entry: st.entry, TranscriptBytes: st.size, keptHint: st.hint}
	}
	s.mu.RUnlock()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the session index: %w", err)
	}
	if err := s.hooks.writeAtomic(filepath.Join(s.dir, indexName), append(b, '\n'), 0o600); err != nil {
		if undo != nil {
			s.mu.Lock()
			undo()
			s.gen++
			s.mu.Unlock()
		}
		return err
	}
	s.written = gen
	return nil
}

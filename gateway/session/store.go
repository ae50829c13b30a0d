package session

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/internal/atomicfile"
)

const (
	indexName = "sessions.json"
	usageName = "usage.json"
	indexVer  = 1
)

// Entry is one session as the index and sessions.list know it.
type Entry struct {
	Key       string `json:"key"`
	SessionID string `json:"sessionId"`
	CreatedAt int64  `json:"createdAt"` // unix ms, of the current sessionId
	UpdatedAt int64  `json:"updatedAt"` // unix ms of the last message, creation or reset (not of a patch)

	// Overrides set by sessions.patch; they survive resets.
	Label        string `json:"label,omitempty"`
	Model        string `json:"model,omitempty"`
	ExecSecurity string `json:"execSecurity,omitempty"`

	// Counters of the current transcript; a reset zeroes them. TotalTokens is
	// the sum of the other four.
	InputTokens      int `json:"inputTokens"`
	OutputTokens     int `json:"outputTokens"`
	CacheReadTokens  int `json:"cacheReadTokens"`
	CacheWriteTokens int `json:"cacheWriteTokens"`
	TotalTokens      int `json:"totalTokens"`
	MessageCount     int `json:"messageCount"`
	// ContextTokens is the size of the model context after the last answer:
	// Bedrock's reported prompt tokens (cached ones included) plus the
	// answer's, or a compaction's estimate of what it kept.
	ContextTokens int `json:"contextTokens,omitempty"`

	LastMessageID      string `json:"lastMessageId,omitempty"`      // id of the last appended message (chat.inject's messageId)
	LastMessagePreview string `json:"lastMessagePreview,omitempty"` // first 120 characters of the last text, on one line
	DerivedTitle       string `json:"derivedTitle,omitempty"`       // from the first user message
	ResetAt            int64  `json:"resetAt,omitempty"`            // unix ms of the last reset
}

// apply folds one message into the derived fields. UpdatedAt is left to the
// caller: Append uses the store clock, re-derivation the message timestamps.
func (e *Entry) apply(id string, m *Message) {
	if u := m.Usage; u != nil {
		e.InputTokens += u.InputTokens
		e.OutputTokens += u.OutputTokens
		e.CacheReadTokens += u.CacheReadTokens
		e.CacheWriteTokens += u.CacheWriteTokens
		e.TotalTokens = e.InputTokens + e.OutputTokens + e.CacheReadTokens + e.CacheWriteTokens
		if m.Role == "assistant" {
			e.ContextTokens = u.Total()
		}
	}
	if txt := oneLine(m.Text()); txt != "" {
		e.LastMessagePreview = cut(txt, previewChars)
		if e.DerivedTitle == "" && m.Role == "user" {
			e.DerivedTitle = cut(txt, titleChars)
		}
	}
	e.MessageCount++
	e.LastMessageID = id
}

// derive recomputes e's transcript-derived fields from t.
func derive(e Entry, t Transcript) Entry {
	e.InputTokens, e.OutputTokens, e.CacheReadTokens, e.CacheWriteTokens, e.TotalTokens = 0, 0, 0, 0, 0
	e.MessageCount, e.LastMessageID, e.LastMessagePreview, e.DerivedTitle, e.ContextTokens = 0, "", "", "", 0
	for i := range t.Messages {
		e.apply(t.IDs[i], &t.Messages[i])
		e.UpdatedAt = max(e.UpdatedAt, t.Messages[i].Timestamp)
	}
	if c := t.Compaction; c != nil {
		answered := false
		for _, m := range t.Messages[t.compactedAt:] {
			answered = answered || m.Role == "assistant" && m.Usage != nil
		}
		if !answered {
			e.ContextTokens = c.TokensAfter
		}
	}
	return e
}

// Options configure Open.
type Options struct {
	Dir      string          // <stateDir>/sessions; created 0700 when missing
	Reset    configgen.Reset // session.reset; the zero value never resets
	Now      func() time.Time
	Location *time.Location // local time for reset.atHour and usage days; default time.Local
	Logger   *slog.Logger   // default slog.Default()

	hooks hooks // tests inject disk faults here
}

// file is the part of *os.File a transcript append uses.
type file interface {
	io.Writer
	Sync() error
	Close() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

type hooks struct {
	openFile    func(name string, flag int, perm os.FileMode) (file, error)
	writeAtomic func(path string, data []byte, perm os.FileMode) error
}

func osOpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not f: a nil *os.File in an interface is not nil
	}
	return f, nil
}

// Store is the session store. All methods are safe for concurrent use;
// operations on one session run one at a time.
type Store struct {
	dir   string
	now   func() time.Time
	loc   *time.Location
	log   *slog.Logger
	hooks hooks
	usage *ledger

	// mu guards sessions, policy, gen and every sessionState's entry, size,
	// pending and deleting. Those fields change only while the session's own
	// mutex is held too, so holding either lock is enough to read them.
	mu       sync.RWMutex
	sessions map[string]*sessionState
	policy   resetPolicy
	gen      uint64 // bumped on every change the index should record

	// writeMu serializes index writes; written is the gen last on disk.
	// Whoever writes takes the newest snapshot, so concurrent changes share
	// one write (a write never goes back to an older state).
	writeMu sync.Mutex
	written uint64

	// Appends leave the index and usage.json to a deferred flush: both are
	// re-derived from the transcripts on open, so writing them with every
	// message would only add two fsyncs (and a directory sync each) to the
	// hot path. flushMu guards flushTimer; closed stops new timers.
	flushMu    sync.Mutex
	flushTimer *time.Timer
	closed     bool
}

// appendFlushDelay bounds how stale the index and usage files may be on
// disk after an append; a crash in that window loses nothing, because open
// re-derives both from the transcripts.
const appendFlushDelay = 500 * time.Millisecond

// flushSoon schedules one deferred write of the index and usage files.
func (s *Store) flushSoon() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed || s.flushTimer != nil {
		return
	}
	s.flushTimer = time.AfterFunc(appendFlushDelay, func() {
		s.flushMu.Lock()
		s.flushTimer = nil
		s.flushMu.Unlock()
		s.flushCaches("after appends")
	})
}

func (s *Store) flushCaches(why string) {
	if err := s.persistIndex(nil); err != nil {
		s.log.Warn("the session index could not be written; it is retried with the next change",
			"when", why, "error", wrapDisk("writing the session index", s.dir, err))
	}
	if err := s.usage.flush(s.hooks.writeAtomic); err != nil {
		s.log.Warn("usage could not be written; it is retried with the next change",
			"when", why, "error", wrapDisk("recording usage", s.dir, err))
	}
}

type sessionState struct {
	mu    sync.Mutex // serializes operations on this session
	entry Entry
	// size is the length of the transcript's acknowledged lines: where the
	// next line goes. Bytes beyond it were never acknowledged (a failed or
	// interrupted append) and are cut off. -1: unknown (the transcript was
	// missing or unreadable at Open); the next append finds the last newline.
	size     int64
	pending  bool // being created: not listed, not indexed yet
	deleting bool // being deleted: left out of index snapshots
	gone     bool // removed from the map; retry the lookup
	warned   bool // a torn or skipped line was already logged
	hint     keptHint
}

// Open loads (or creates) the store in o.Dir.
// Dir is the directory of the transcripts and the index.
func (s *Store) Dir() string { return s.dir }

func Open(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("opening session store: no directory given")
	}
	pol, err := newPolicy(o.Reset)
	if err != nil {
		return nil, fmt.Errorf("opening session store: %w", err)
	}
	s := &Store{dir: o.Dir, now: o.Now, loc: o.Location, log: o.Logger, hooks: o.hooks, policy: pol, sessions: map[string]*sessionState{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.loc == nil {
		s.loc = time.Local
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.hooks.openFile == nil {
		s.hooks.openFile = osOpenFile
	}
	if s.hooks.writeAtomic == nil {
		s.hooks.writeAtomic = atomicfile.Write
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, wrapDisk("opening session store: creating "+s.dir, s.dir, err)
	}
	s.removeStaleTemps()

	recs, dirty, err := s.loadIndex()
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		st, changed := s.adopt(rec)
		if changed {
			dirty = true
		}
		if st != nil {
			s.sessions[st.entry.Key] = st
		}
	}

	s.usage, err = loadLedger(filepath.Join(s.dir, usageName), s.keepCorrupt, s.log.Warn)
	if err != nil {
		return nil, fmt.Errorf("opening session store: %w", err)
	}
	s.reconcileUsage()

	if dirty {
		s.gen++
		if err := s.persistIndex(nil); err != nil {
			// Reading still works on a full or read-only disk; the index is
			// rewritten with the next change.
			s.log.Warn("could not rewrite the session index", "error", wrapDisk("opening session store", s.dir, err))
		}
	}
	if err := s.usage.flush(s.hooks.writeAtomic); err != nil {
		s.log.Warn("could not rewrite usage", "error", wrapDisk("opening session store", s.dir, err))
	}
	return s, nil
}

// Close writes anything a failed write left only in memory. The Store must
// not be used afterwards.
func (s *Store) Close() error {
	s.flushMu.Lock()
	s.closed = true
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
	s.flushMu.Unlock()
	return errors.Join(
		wrapDisk("closing session store: writing the index", s.dir, s.persistIndex(nil)),
		wrapDisk("closing session store: writing usage", s.dir, s.usage.flush(s.hooks.writeAtomic)),
	)
}

// SetResetPolicy applies a reloaded session.reset. It is checked on the next
// Resolve of each session, like the policy given to Open.
func (s *Store) SetResetPolicy(r configgen.Reset) error {
	p, err := newPolicy(r)
	if err != nil {
		return fmt.Errorf("setting the reset policy: %w", err)
	}
	s.mu.Lock()
	s.policy = p
	s.mu.Unlock()
	return nil
}

func (s *Store) transcriptPath(sid string) string { return filepath.Join(s.dir, sid+".jsonl") }

// set changes a session's state and marks the index stale.
func (s *Store) set(st *sessionState, f func()) {
	s.mu.Lock()
	f()
	s.gen++
	s.mu.Unlock()
}

func (s *Store) lookup(k string) *sessionState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions[k]
}

// locked returns the session for k with its mutex held, or nil.
func (s *Store) locked(k string) *sessionState {
	for {
		st := s.lookup(k)
		if st == nil {
			return nil
		}
		st.mu.Lock()
		if !st.gone {
			return st
		}
		st.mu.Unlock()
	}
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newMessageID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validSessionID keeps index-supplied ids from naming files outside the
// directory: they become file names.
func validSessionID(sid string) bool {
	if sid == "" || len(sid) > 128 {
		return false
	}
	for _, r := range sid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// createTranscript writes a new transcript holding only its header.
func (s *Store) createTranscript(sid, key string, createdAt int64) (int64, error) {
	path := s.transcriptPath(sid)
	f, err := s.hooks.openFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	hdr := encodeHeader(sid, key, createdAt)
	_, err = f.Write(hdr)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = atomicfile.SyncDir(s.dir)
	}
	if err != nil {
		_ = os.Remove(path) // holds no messages: nothing is lost
		return 0, err
	}
	return int64(len(hdr)), nil
}

// appendLine appends line to st's transcript after its acknowledged lines
// and returns the new end. On failure the file is cut back, so a failed
// append leaves no partial line behind (and if even that fails, the next
// append or read drops the tail). When the file is not what the store last
// saw, the lines it holds are returned in resynced so the entry can be
// re-derived from them.
func (s *Store) appendLine(st *sessionState, line []byte) (end int64, resynced *Transcript, err error) {
	e, known := st.entry, st.size
	path := s.transcriptPath(e.SessionID)
	f, err := s.hooks.openFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := fi.Size()
	if known < 0 || size < known {
		// Not what this store wrote (it was missing, unreadable or replaced):
		// keep every complete line and cut only an unterminated tail.
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, nil, err
		}
		known = int64(bytes.LastIndexByte(data, '\n') + 1)
		t := ParseTranscript(data[:known])
		resynced = &t
		if st.size >= 0 {
			s.log.Warn("session transcript changed behind the store's back", "key", e.Key, "sessionId", e.SessionID)
		}
	}
	buf := line
	if size == 0 || known == 0 {
		// Every transcript starts with its header so the index can be rebuilt.
		buf = append(encodeHeader(e.SessionID, e.Key, e.CreatedAt), line...)
		known = 0
	}
	if size > known {
		// Bytes past the last good line are a write cut short by a crash or
		// a failed append: remove them so the file stays valid JSONL.
		if err := f.Truncate(known); err != nil {
			return 0, nil, err
		}
		s.log.Info("cut a torn line off the end of a session transcript", "key", e.Key, "sessionId", e.SessionID, "bytes", size-known)
	}
	n, err := f.Write(buf)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil && known == 0 {
		err = atomicfile.SyncDir(s.dir)
	}
	if err != nil {
		if terr := f.Truncate(known); terr != nil {
			s.log.Warn("could not cut a failed append off a session transcript; it is dropped on the next read or append", "key", e.Key, "error", terr)
		}
		return 0, nil, err
	}
	return known + int64(len(buf)), resynced, nil
}

// Resolve returns the session for key, creating it if new, after applying the
// reset policy: called when a message arrives, it is where a session that is
// due ("daily": last update before the latest atHour; "idle": quiet for
// idleMinutes) gets a new sessionId. The old transcript is kept.
func (s *Store) Resolve(key string) (Entry, ResetInfo, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return Entry{}, ResetInfo{}, fmt.Errorf("resolving session: %w", err)
	}
	for {
		s.mu.Lock()
		st := s.sessions[k]
		created := st == nil
		if created {
			now := s.now().UnixMilli()
			st = &sessionState{pending: true, entry: Entry{Key: k, SessionID: newSessionID(), CreatedAt: now, UpdatedAt: now}}
			st.mu.Lock() // before it is visible, so others wait for the creation
			s.sessions[k] = st
		}
		s.mu.Unlock()
		if created {
			e, err := s.create(st)
			st.mu.Unlock()
			if err != nil {
				return Entry{}, ResetInfo{}, wrapDisk("creating session "+k, s.dir, err)
			}
			return e, ResetInfo{}, nil
		}
		st.mu.Lock()
		if st.gone {
			st.mu.Unlock()
			continue
		}
		now := s.now()
		s.mu.RLock()
		reason := s.policy.due(st.entry.UpdatedAt, now, s.loc)
		s.mu.RUnlock()
		old := st.entry
		if reason == "" {
			st.mu.Unlock()
			return old, ResetInfo{}, nil
		}
		e, err := s.reset(st, now)
		st.mu.Unlock()
		if err != nil {
			return Entry{}, ResetInfo{}, wrapDisk("resetting session "+k+" ("+reason+" reset)", s.dir, err)
		}
		s.log.Info("session reset", "key", k, "reason", reason, "previousSessionId", old.SessionID, "sessionId", e.SessionID)
		return e, ResetInfo{Reset: true, Reason: reason, PreviousSessionID: old.SessionID}, nil
	}
}

// create makes a pending session real, or removes it again.
func (s *Store) create(st *sessionState) (Entry, error) {
	e := st.entry
	size, err := s.createTranscript(e.SessionID, e.Key, e.CreatedAt)
	if err == nil {
		s.set(st, func() { st.pending, st.size = false, size })
		err = s.persistIndex(func() { st.pending = true })
		if err != nil {
			_ = os.Remove(s.transcriptPath(e.SessionID)) // header only
		}
	}
	if err != nil {
		s.set(st, func() {
			delete(s.sessions, e.Key)
			st.gone = true
		})
		return Entry{}, err
	}
	return e, nil
}

// reset gives st a new sessionId and transcript; st.mu is held. Overrides
// (label, model, execSecurity) carry over; counters start again at zero.
func (s *Store) reset(st *sessionState, now time.Time) (Entry, error) {
	old, oldSize := st.entry, st.size
	ms := max(now.UnixMilli(), old.UpdatedAt)
	e := Entry{Key: old.Key, SessionID: newSessionID(), CreatedAt: ms, UpdatedAt: ms, ResetAt: ms,
		Label: old.Label, Model: old.Model, ExecSecurity: old.ExecSecurity}
	size, err := s.createTranscript(e.SessionID, e.Key, e.CreatedAt)
	if err != nil {
		return Entry{}, err
	}
	s.set(st, func() { st.entry, st.size, st.warned, st.hint = e, size, false, keptHint{} })
	if err := s.persistIndex(func() { st.entry, st.size = old, oldSize }); err != nil {
		_ = os.Remove(s.transcriptPath(e.SessionID)) // header only
		return Entry{}, err
	}
	return e, nil
}

// Reset starts key's session over now (sessions.reset, "/new", "/reset").
func (s *Store) Reset(key string) (Entry, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return Entry{}, fmt.Errorf("resetting session: %w", err)
	}
	st := s.locked(k)
	if st == nil {
		return Entry{}, fmt.Errorf("resetting session %s: %w", k, ErrNotFound)
	}
	defer st.mu.Unlock()
	e, err := s.reset(st, s.now())
	if err != nil {
		return Entry{}, wrapDisk("resetting session "+k, s.dir, err)
	}
	s.log.Info("session reset", "key", k, "reason", "manual", "sessionId", e.SessionID)
	return e, nil
}

// Append adds m to key's current transcript (fsynced before it returns) and
// updates the entry and usage. The session must exist (see Resolve). A zero
// m.Timestamp is set to now. If the transcript write fails nothing changes;
// if only the index or usage write fails afterwards the message still counts
// (the transcript is the record), the failure is logged, and the next write
// or Close catches up.
func (s *Store) Append(key string, m Message) (Entry, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return Entry{}, fmt.Errorf("appending to session: %w", err)
	}
	if err := m.validate(); err != nil {
		return Entry{}, fmt.Errorf("appending to session %s: %w", k, err)
	}
	st := s.locked(k)
	if st == nil {
		return Entry{}, fmt.Errorf("appending to session %s: %w", k, ErrNotFound)
	}
	now := s.now().UnixMilli()
	if m.Timestamp == 0 {
		m.Timestamp = now
	}
	if m.Content == nil {
		m.Content = []Content{}
	}
	id := newMessageID()
	line, err := encodeMessage(id, &m)
	if err != nil {
		st.mu.Unlock()
		return Entry{}, fmt.Errorf("appending to session %s: %w", k, err)
	}
	end, resynced, err := s.appendLine(st, line)
	if err != nil {
		st.mu.Unlock()
		return Entry{}, wrapDisk("appending to session "+k, s.dir, err)
	}
	e := st.entry
	if resynced != nil {
		e = derive(e, *resynced)
	}
	e.apply(id, &m)
	e.UpdatedAt = max(e.UpdatedAt, now)
	s.set(st, func() { st.entry, st.size = e, end })
	// Noted under the session lock so usage offsets advance in file order:
	// otherwise a later append's offset could be saved before an earlier
	// append's tokens, and a crash would lose them.
	s.usage.note(e.SessionID, end, &m, e.Model, s.loc)
	st.mu.Unlock()

	// Both files are catch-up-able caches of the transcript: write them a
	// little later, once for a burst of appends.
	s.flushSoon()
	return e, nil
}

// readCurrent reads st's transcript up to its known end; st.mu is held.
func (s *Store) readCurrent(st *sessionState) (Transcript, error) {
	data, err := os.ReadFile(s.transcriptPath(st.entry.SessionID))
	if errors.Is(err, fs.ErrNotExist) {
		return Transcript{}, nil
	}
	if err != nil {
		return Transcript{}, err
	}
	size := int64(len(data))
	if st.size >= 0 && size > st.size {
		// Never acknowledged (a failed append whose cleanup failed too): not
		// part of the conversation, and cut off by the next append.
		data = data[:st.size]
	}
	t := ParseTranscript(data)
	s.reportDamage(st, t, size)
	return t, nil
}

// History returns the current sessionId and its last limit messages (all of
// them when limit <= 0), oldest first.
func (s *Store) History(key string, limit int) (string, []Message, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return "", nil, fmt.Errorf("reading history: %w", err)
	}
	st := s.locked(k)
	if st == nil {
		return "", nil, fmt.Errorf("reading history of %s: %w", k, ErrNotFound)
	}
	defer st.mu.Unlock()
	t, err := s.readCurrent(st)
	if err != nil {
		return "", nil, fmt.Errorf("reading history of %s: %w", k, err)
	}
	msgs := t.Messages
	if limit > 0 && len(msgs) > limit {
		msgs = msgs[len(msgs)-limit:]
	}
	if msgs == nil {
		msgs = []Message{}
	}
	return st.entry.SessionID, msgs, nil
}

// PreviewItem is one line of a sessions.preview.
type PreviewItem struct {
	Role string `json:"role"`
	Text string `json:"text"`
}

// Preview is one session's entry in sessions.preview.
type Preview struct {
	Key    string        `json:"key"`    // as requested
	Status string        `json:"status"` // "ok", "empty" (no text yet) or "missing" (unknown or invalid key)
	Items  []PreviewItem `json:"items"`
	// Truncated marks a preview whose items were left out to keep the
	// response within its size bound (set by the gateway, not the store).
	Truncated bool `json:"truncated,omitempty"`
}

// Preview returns, per key, the text of its last limit messages (default 12)
// cut to maxChars characters each (default 240). Messages without text (pure
// tool calls) are left out.
func (s *Store) Preview(keys []string, limit, maxChars int) []Preview {
	if limit <= 0 {
		limit = 12
	}
	if maxChars <= 0 {
		maxChars = 240
	}
	out := make([]Preview, 0, len(keys))
	for _, key := range keys {
		p := Preview{Key: key, Status: "missing", Items: []PreviewItem{}}
		if k, err := NormalizeKey(key); err == nil {
			if st := s.locked(k); st != nil {
				t, err := s.readCurrent(st)
				st.mu.Unlock()
				if err != nil {
					s.log.Warn("could not read a transcript for a preview", "key", k, "error", err)
				}
				for i := len(t.Messages) - 1; i >= 0 && len(p.Items) < limit; i-- {
					if txt := oneLine(t.Messages[i].Text()); txt != "" {
						p.Items = append(p.Items, PreviewItem{Role: t.Messages[i].Role, Text: cut(txt, maxChars)})
					}
				}
				for i, j := 0, len(p.Items)-1; i < j; i, j = i+1, j-1 {
					p.Items[i], p.Items[j] = p.Items[j], p.Items[i]
				}
				p.Status = "empty"
				if len(p.Items) > 0 {
					p.Status = "ok"
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// Get returns the entry for key.
func (s *Store) Get(key string) (Entry, bool) {
	k, err := NormalizeKey(key)
	if err != nil {
		return Entry{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.sessions[k]
	if st == nil || st.pending || st.deleting {
		return Entry{}, false
	}
	return st.entry, true
}

// ListOptions filter List.
type ListOptions struct {
	Limit         int    // > 0: at most this many
	ActiveMinutes int    // > 0: only sessions updated within this many minutes
	Search        string // case-insensitive substring of key, label or derived title
}

// List returns sessions, most recently updated first.
func (s *Store) List(o ListOptions) []Entry {
	var since int64
	if o.ActiveMinutes > 0 {
		since = s.now().Add(-time.Duration(o.ActiveMinutes) * time.Minute).UnixMilli()
	}
	q := strings.ToLower(strings.TrimSpace(o.Search))
	out := []Entry{}
	s.mu.RLock()
	for _, st := range s.sessions {
		e := st.entry
		if st.pending || st.deleting || e.UpdatedAt < since {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(e.Key), q) && !strings.Contains(strings.ToLower(e.Label), q) &&
			!strings.Contains(strings.ToLower(e.DerivedTitle), q) {
			continue
		}
		out = append(out, e)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].UpdatedAt != out[j].UpdatedAt {
			return out[i].UpdatedAt > out[j].UpdatedAt
		}
		return out[i].Key < out[j].Key
	})
	if o.Limit > 0 && len(out) > o.Limit {
		out = out[:o.Limit]
	}
	return out
}

// Count is the number of sessions.
func (s *Store) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, st := range s.sessions {
		if !st.pending && !st.deleting {
			n++
		}
	}
	return n
}

// Recent returns the n most recently updated sessions.
func (s *Store) Recent(n int) []Entry {
	_, recent := s.Summary(n)
	return recent
}

// Summary returns the number of sessions and the n most recently updated,
// in List's order, in one pass and without copying or sorting them all:
// health asks on every connect.
func (s *Store) Summary(n int) (count int, recent []Entry) {
	recent = make([]Entry, 0, max(n, 0))
	newer := func(a, b Entry) bool {
		if a.UpdatedAt != b.UpdatedAt {
			return a.UpdatedAt > b.UpdatedAt
		}
		return a.Key < b.Key
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, st := range s.sessions {
		if st.pending || st.deleting {
			continue
		}
		count++
		e := st.entry
		if n <= 0 || len(recent) == n && !newer(e, recent[n-1]) {
			continue
		}
		i := len(recent)
		for i > 0 && newer(e, recent[i-1]) {
			i--
		}
		if len(recent) == n {
			recent = recent[:n-1]
		}
		recent = slices.Insert(recent, i, e)
	}
	return count, recent
}

// Usage reports token usage over the last days local days, today included
// (default 30).
func (s *Store) Usage(days int) UsageReport {
	return s.usage.report(days, s.now(), s.loc)
}

// Delete removes key's session. The transcript is renamed to
// <sessionId>.jsonl.deleted-<unix>, never erased. Deleting an unknown session
// is not an error (deleted is false); the main session cannot be deleted.
func (s *Store) Delete(key string) (bool, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return false, fmt.Errorf("deleting session: %w", err)
	}
	if k == MainKey {
		return false, fmt.Errorf("deleting session %s: %w", k, ErrMainSession)
	}
	st := s.locked(k)
	if st == nil {
		return false, nil
	}
	defer st.mu.Unlock()
	op := "deleting session " + k
	src := s.transcriptPath(st.entry.SessionID)
	dst := src + ".deleted-" + strconv.FormatInt(s.now().Unix(), 10)
	renamed := true
	if err := os.Rename(src, dst); errors.Is(err, fs.ErrNotExist) {
		renamed = false
	} else if err != nil {
		return false, wrapDisk(op, s.dir, err)
	}
	// Rename first, index second: a crash in between leaves a record whose
	// transcript is gone and a .deleted- file, which Open treats as a
	// finished delete.
	s.set(st, func() { st.deleting = true })
	if err := s.persistIndex(func() { st.deleting = false }); err != nil {
		if renamed {
			if rerr := os.Rename(dst, src); rerr != nil {
				s.log.Error("could not undo a transcript rename after a failed delete", "key", k, "from", dst, "error", rerr)
			}
		}
		return false, wrapDisk(op, s.dir, err)
	}
	s.set(st, func() {
		delete(s.sessions, k)
		st.gone = true
	})
	if err := atomicfile.SyncDir(s.dir); err != nil {
		s.log.Warn("could not sync the session directory", "error", err)
	}
	return true, nil
}

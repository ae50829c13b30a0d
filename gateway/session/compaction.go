package session

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Compaction is a transcript entry that stands for the messages before
// FirstKeptID: the model sees Summary instead of them. The transcript stays
// append-only: the summarised messages keep their lines (chat.history still
// returns them); only what a run sends to the model starts here. Its line:
//
//	{"type":"compaction","id","summary","firstKeptId","tokensBefore","tokensAfter","timestamp"}
//
// An empty FirstKeptID keeps no message: everything before the entry is in
// the summary.
type Compaction struct {
	ID           string `json:"id"`
	Summary      string `json:"summary"`
	FirstKeptID  string `json:"firstKeptId,omitempty"`
	TokensBefore int    `json:"tokensBefore"`          // estimated context before
	TokensAfter  int    `json:"tokensAfter,omitempty"` // estimated context after
	Timestamp    int64  `json:"timestamp"`             // unix ms
}

type compactionLine struct {
	Type string `json:"type"` // "compaction"
	Compaction
}

// Context is what a run sends to the model: the last compaction's summary
// (nil without one) and the messages after it, oldest first.
type Context struct {
	SessionID  string
	Compaction *Compaction
	Messages   []Message
	IDs        []string
}

// keptHint remembers where the model's context starts in a transcript (the
// line of the last compaction's first kept message, or the compaction line
// when it kept none), so a turn reads only that tail. It is only a hint,
// verified on every read: the line at Off must be a message with ID (or the
// compaction itself), and the tail must hold the compaction that named it.
type keptHint struct {
	Off int64  `json:"keptOffset,omitempty"`
	ID  string `json:"keptId,omitempty"` // the line id found at Off
}

// ContextMessages returns key's model context: the latest compaction and
// the messages it kept plus those after it, at most limit of them (the
// latest; all when limit <= 0). It reads the transcript from the offset the
// store remembered for the last compaction, not from the top, and falls back
// to the whole file when that offset no longer checks out.
func (s *Store) ContextMessages(key string, limit int) (Context, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return Context{}, fmt.Errorf("reading the model context: %w", err)
	}
	st := s.locked(k)
	if st == nil {
		return Context{}, fmt.Errorf("reading the model context of %s: %w", k, ErrNotFound)
	}
	defer st.mu.Unlock()
	c, err := s.readContext(st)
	if err != nil {
		return Context{}, fmt.Errorf("reading the model context of %s: %w", k, err)
	}
	if limit > 0 && len(c.Messages) > limit {
		c.Messages = c.Messages[len(c.Messages)-limit:]
		c.IDs = c.IDs[len(c.IDs)-limit:]
	}
	if c.Messages == nil {
		c.Messages = []Message{}
	}
	return c, nil
}

// readContext reads st's model context; st.mu is held.
func (s *Store) readContext(st *sessionState) (Context, error) {
	ctx := Context{SessionID: st.entry.SessionID}
	if h := st.hint; h.ID != "" {
		if h.Off >= 0 && st.size > h.Off {
			t, ok, err := s.readTail(st, h)
			if err != nil {
				return ctx, err
			}
			if ok {
				ctx.Compaction = t.Compaction
				ctx.Messages, ctx.IDs = t.Messages[t.KeptFrom:], t.IDs[t.KeptFrom:]
				return ctx, nil
			}
		}
		s.log.Info("the remembered start of a session's context did not check out; reading the whole transcript",
			"key", st.entry.Key, "sessionId", st.entry.SessionID)
	}
	t, err := s.readCurrent(st)
	if err != nil {
		return ctx, err
	}
	s.setHint(st, hintFor(t, 0))
	ctx.Compaction = t.Compaction
	ctx.Messages, ctx.IDs = t.Messages[t.KeptFrom:], t.IDs[t.KeptFrom:]
	return ctx, nil
}

// readTail parses st's transcript from h.Off to its acknowledged end and
// reports whether h still describes it: the tail's first line is the one h
// names, and the last compaction in the tail keeps exactly from there.
func (s *Store) readTail(st *sessionState, h keptHint) (Transcript, bool, error) {
	data, err := s.readFrom(st.entry.SessionID, h.Off, st.size)
	if errors.Is(err, fs.ErrNotExist) {
		return Transcript{}, false, nil
	}
	if err != nil {
		return Transcript{}, false, err
	}
	t := ParseTranscript(data)
	c := t.Compaction
	if c == nil || t.Header != nil || t.firstAt != 0 || t.firstID != h.ID {
		return t, false, nil
	}
	if c.FirstKeptID == "" {
		return t, h.ID == c.ID, nil
	}
	return t, t.KeptFrom == 0 && len(t.IDs) > 0 && t.IDs[0] == c.FirstKeptID, nil
}

// readFrom reads sid's transcript from off to end.
func (s *Store) readFrom(sid string, off, end int64) ([]byte, error) {
	f, err := os.Open(s.transcriptPath(sid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, max(end-off, 0))
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// hintFor is the hint for transcript t, read from base.
func hintFor(t Transcript, base int64) keptHint {
	c := t.Compaction
	if c == nil {
		return keptHint{}
	}
	if t.KeptFrom < len(t.Messages) {
		return keptHint{Off: base + t.starts[t.KeptFrom], ID: t.IDs[t.KeptFrom]}
	}
	return keptHint{Off: base + t.compactionAt, ID: c.ID}
}

func (s *Store) setHint(st *sessionState, h keptHint) {
	if st.hint == h {
		return
	}
	s.set(st, func() { st.hint = h })
}

// AppendCompaction adds a compaction entry to key's transcript (fsynced
// before it returns). c.FirstKeptID must name a message of the current
// context, or be empty to keep none; the ID and a zero Timestamp are filled
// in. Later ContextMessages start from it.
func (s *Store) AppendCompaction(key string, c Compaction) (Compaction, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return Compaction{}, fmt.Errorf("recording a compaction: %w", err)
	}
	if c.Summary == "" {
		return Compaction{}, fmt.Errorf("recording a compaction of %s: %w: empty summary", k, ErrInvalid)
	}
	st := s.locked(k)
	if st == nil {
		return Compaction{}, fmt.Errorf("recording a compaction of %s: %w", k, ErrNotFound)
	}
	defer st.mu.Unlock()
	cur, err := s.readContext(st)
	if err != nil {
		return Compaction{}, fmt.Errorf("recording a compaction of %s: %w", k, err)
	}
	kept := -1
	for i, id := range cur.IDs {
		if id == c.FirstKeptID {
			kept = i
		}
	}
	if c.FirstKeptID != "" && kept < 0 {
		return Compaction{}, fmt.Errorf("recording a compaction of %s: %w: message %q is not in the current context", k, ErrInvalid, c.FirstKeptID)
	}
	c.ID = newMessageID()
	if c.Timestamp == 0 {
		c.Timestamp = s.now().UnixMilli()
	}
	line, err := encodeCompaction(&c)
	if err != nil {
		return Compaction{}, fmt.Errorf("recording a compaction of %s: %w", k, err)
	}
	start := st.size
	end, resynced, err := s.appendLine(st, line)
	if err != nil {
		return Compaction{}, wrapDisk("recording a compaction of "+k, s.dir, err)
	}
	e := st.entry
	if resynced != nil {
		e = derive(e, *resynced)
	}
	e.ContextTokens = c.TokensAfter
	// The new start: the kept message's line (found by reading from the old
	// hint or the top again, cheaply, since it is in the current context) or
	// the compaction line itself.
	h := keptHint{Off: end - int64(len(line)), ID: c.ID}
	if resynced != nil || start < 0 {
		h = keptHint{}
	} else if c.FirstKeptID != "" {
		h = s.findLine(st, end, c.FirstKeptID)
	}
	s.set(st, func() { st.entry, st.size, st.hint = e, end, h })
	s.flushSoon()
	return c, nil
}

// findLine returns the hint for the message line with id, searched from the
// current hint (or the top); the zero hint when it is not found. st.size
func (s *Store) findLine(st *sessionState, end int64, id string) keptHint {
	base := st.hint.Off
	if st.hint.ID == "" || base < 0 || base >= end {
		base = 0
	}
	data, err := s.readFrom(st.entry.SessionID, base, end)
	if err != nil {
		return keptHint{}
	}
	t := ParseTranscript(data)
	for i := len(t.IDs) - 1; i >= 0; i-- {
		if t.IDs[i] == id {
			return keptHint{Off: base + t.starts[i], ID: id}
		}
	}
	return keptHint{}
}

package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// Logging keeps the gateway's own recent log lines in memory for logs.tail.
// The ring is bounded in lines and line size, so a chatty gateway cannot use
// more than a few MiB for it.
const (
	logRingLines    = 2000
	logRingLineSize = 8 << 10
)

// LogRing holds the most recent log lines. Cursors count lines since start,
// so a client that polls with the cursor it was given sees each line once.
type LogRing struct {
	mu    sync.Mutex
	lines []string
	next  uint64 // cursor of the next line to be written
	max   int
}

// NewLogRing returns a ring of at most max lines.
func NewLogRing(max int) *LogRing { return &LogRing{max: max} }

// Write appends each complete line of p (slog handlers write whole lines).
func (r *LogRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if len(line) > logRingLineSize {
			line = line[:logRingLineSize] + "…"
		}
		if len(r.lines) == r.max {
			copy(r.lines, r.lines[1:])
			r.lines = r.lines[:r.max-1]
		}
		r.lines = append(r.lines, line)
		r.next++
	}
	return len(p), nil
}

// Tail returns lines from cursor on (or the last limit lines when cursor is
// nil), at most limit lines and maxBytes bytes. truncated reports that lines
// were skipped: the cursor had fallen out of the ring, or a limit cut the
// answer short.
func (r *LogRing) Tail(cursor *uint64, limit, maxBytes int) (lines []string, next uint64, truncated bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.next - uint64(len(r.lines))
	var from uint64
	switch {
	case cursor == nil:
		from = oldest
		if n := uint64(len(r.lines)); n > uint64(limit) {
			from = r.next - uint64(limit)
		}
	case *cursor < oldest:
		from, truncated = oldest, true
	case *cursor > r.next:
		from = r.next
	default:
		from = *cursor
	}
	size := 0
	i := from
	for ; i < r.next; i++ {
		line := r.lines[i-oldest]
		if len(lines) == limit || size+len(line) > maxBytes {
			truncated = true
			break
		}
		lines = append(lines, line)
		size += len(line)
	}
	if lines == nil {
		lines = []string{}
	}
	return lines, i, truncated
}

// NewLogger builds the gateway's logger: text on a terminal, JSON otherwise,
// and always JSON into ring. level is shared so a reload can change it.
func NewLogger(w io.Writer, level *slog.LevelVar, ring *LogRing) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var primary slog.Handler
	if isTerminal(w) {
		primary = slog.NewTextHandler(w, opts)
	} else {
		primary = slog.NewJSONHandler(w, opts)
	}
	if ring == nil {
		return slog.New(primary)
	}
	return slog.New(teeHandler{primary, slog.NewJSONHandler(ring, opts)})
}

// ParseLevel maps the config's logging.level to a slog level.
func ParseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

type teeHandler [2]slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t[0].Enabled(ctx, l) || t[1].Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t[0].WithAttrs(as), t[1].WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t[0].WithGroup(name), t[1].WithGroup(name)}
}

// isTerminal reports whether w is a character device (a terminal), where
// people read logs; anywhere else (journald, files) JSON is easier to query.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

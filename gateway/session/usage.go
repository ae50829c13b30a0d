package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"
)

// Totals is summed token usage; Requests counts model responses.
type Totals struct {
	InputTokens      int `json:"inputTokens"`
	OutputTokens     int `json:"outputTokens"`
	CacheReadTokens  int `json:"cacheReadTokens"`
	CacheWriteTokens int `json:"cacheWriteTokens"`
	Requests         int `json:"requests"`
}

func (t *Totals) add(u Usage) {
	t.InputTokens += u.InputTokens
	t.OutputTokens += u.OutputTokens
	t.CacheReadTokens += u.CacheReadTokens
	t.CacheWriteTokens += u.CacheWriteTokens
	t.Requests++
}

func (t *Totals) merge(o Totals) {
	t.InputTokens += o.InputTokens
	t.OutputTokens += o.OutputTokens
	t.CacheReadTokens += o.CacheReadTokens
	t.CacheWriteTokens += o.CacheWriteTokens
	t.Requests += o.Requests
}

// DayUsage is one local day's totals; its JSON is {date, inputTokens, ...}.
type DayUsage struct {
	Date string `json:"date"` // YYYY-MM-DD in the store's Location
	Totals
}

// UsageReport is the payload of usage.status.
type UsageReport struct {
	Totals  Totals            `json:"totals"`
	ByModel map[string]Totals `json:"byModel"`
	ByDay   []DayUsage        `json:"byDay"` // oldest first; days without usage are left out
}

type dayRecord struct {
	Totals  Totals            `json:"totals"`
	ByModel map[string]Totals `json:"byModel"`
}

type usageFile struct {
	Version int                   `json:"version"`
	Days    map[string]*dayRecord `json:"days"`
	// Counted is, per current sessionId, the transcript offset up to which
	// usage has been added, so Open can count what a crash left uncounted
	// without counting anything twice.
	Counted map[string]int64 `json:"counted"`
}

// ledger is usage.json in memory. Memory is authoritative (it always matches
// the transcripts); the file is a snapshot that may lag, which the Counted
// offsets make recoverable.
type ledger struct {
	mu    sync.Mutex
	path  string
	data  usageFile
	dirty bool
}

func loadLedger(path string, keepCorrupt func(string) (string, error), log func(msg string, args ...any)) (*ledger, error) {
	l := &ledger{path: path, data: usageFile{Version: 1, Days: map[string]*dayRecord{}, Counted: map[string]int64{}}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading usage: %w", err)
	}
	var f usageFile
	if err := json.Unmarshal(raw, &f); err != nil {
		kept, kerr := keepCorrupt(path)
		if kerr != nil {
			return nil, kerr
		}
		log("usage file is unreadable; kept it and started a new one (usage of current sessions is recounted from their transcripts)", "kept", kept, "error", err)
		l.dirty = true
		return l, nil
	}
	if f.Version > 1 {
		return nil, fmt.Errorf("reading usage: %s has version %d, newer than this gateway understands", path, f.Version)
	}
	for d, r := range f.Days {
		if r == nil {
			continue
		}
		if r.ByModel == nil {
			r.ByModel = map[string]Totals{}
		}
		l.data.Days[d] = r
	}
	for sid, off := range f.Counted {
		l.data.Counted[sid] = off
	}
	return l, nil
}

// add counts one model response; the caller holds l.mu.
func (l *ledger) add(m *Message, fallbackModel string, loc *time.Location) {
	date := time.UnixMilli(m.Timestamp).In(loc).Format(time.DateOnly)
	d := l.data.Days[date]
	if d == nil {
		d = &dayRecord{ByModel: map[string]Totals{}}
		l.data.Days[date] = d
	}
	d.Totals.add(*m.Usage)
	model := m.Model
	if model == "" {
		model = fallbackModel
	}
	if model == "" {
		model = "unknown"
	}
	t := d.ByModel[model]
	t.add(*m.Usage)
	d.ByModel[model] = t
	l.dirty = true
}

// note counts m (if it carries usage) and advances sid's counted offset to
// end. Only a count makes the file dirty: offsets alone are cheap to
// recompute on Open.
func (l *ledger) note(sid string, end int64, m *Message, fallbackModel string, loc *time.Location) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if end > l.data.Counted[sid] {
		l.data.Counted[sid] = end
	}
	if m.Usage != nil {
		l.add(m, fallbackModel, loc)
	}
}

func (l *ledger) flush(write func(string, []byte, os.FileMode) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.dirty {
		return nil
	}
	return l.flushLocked(write)
}

func (l *ledger) flushLocked(write func(string, []byte, os.FileMode) error) error {
	b, err := json.MarshalIndent(l.data, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding usage: %w", err)
	}
	if err := write(l.path, append(b, '\n'), 0o600); err != nil {
		return err
	}
	l.dirty = false
	return nil
}

func (l *ledger) report(days int, now time.Time, loc *time.Location) UsageReport {
	if days <= 0 {
		days = 30
	}
	days = min(days, 3660)
	lt := now.In(loc)
	from := time.Date(lt.Year(), lt.Month(), lt.Day()-(days-1), 0, 0, 0, 0, loc).Format(time.DateOnly)
	r := UsageReport{ByModel: map[string]Totals{}, ByDay: []DayUsage{}}
	l.mu.Lock()
	defer l.mu.Unlock()
	for date, d := range l.data.Days {
		if date < from { // YYYY-MM-DD sorts as text
			continue
		}
		r.ByDay = append(r.ByDay, DayUsage{Date: date, Totals: d.Totals})
		r.Totals.merge(d.Totals)
		for model, t := range d.ByModel {
			mt := r.ByModel[model]
			mt.merge(t)
			r.ByModel[model] = mt
		}
	}
	sort.Slice(r.ByDay, func(i, j int) bool { return r.ByDay[i].Date < r.ByDay[j].Date })
	return r
}

package cron

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/skykoi/skykoi/internal/atomicfile"
)

// The store is a snapshot plus a journal, both under <stateDir>/cron:
// every change is one fsynced line appended to journal.jsonl, so adding the
// ten-thousandth job costs one small write, not a rewrite of all of them;
// when the journal outgrows the live data it is folded into snapshot.json
// (atomically replaced) and started afresh. A line torn by kill -9 is the
// last one and is dropped on load: the change it carried was never
// acknowledged.
const (
	snapshotName = "snapshot.json"
	journalName  = "journal.jsonl"
	// maxRunsPerJob bounds each job's history, as OpenClaw's 2000 rows.
	maxRunsPerJob = 2000
	// minCompactLines keeps small stores from compacting on every change.
	minCompactLines = 1000
)

// RunEntry is one finished run in the history, shaped as OpenClaw's run
// log entries.
type RunEntry struct {
	TS             int64  `json:"ts"`
	JobID          string `json:"jobId"`
	JobName        string `json:"jobName,omitempty"`
	Action         string `json:"action"`
	Status         string `json:"status"` // ok, error, skipped
	Error          string `json:"error,omitempty"`
	Summary        string `json:"summary,omitempty"`
	RunAtMs        int64  `json:"runAtMs"`
	DurationMs     int64  `json:"durationMs"`
	NextRunAtMs    *int64 `json:"nextRunAtMs,omitempty"`
	SessionID      string `json:"sessionId,omitempty"`
	SessionKey     string `json:"sessionKey"`
	RunID          string `json:"runId"`
	Model          string `json:"model,omitempty"`
	Delivered      bool   `json:"delivered"`
	DeliveryStatus string `json:"deliveryStatus"`
	// Manual marks a run started with cron.run rather than by the schedule.
	Manual bool `json:"manual,omitempty"`
}

// record is one journal line.
type record struct {
	Op  string    `json:"op"` // put, del, run
	Job *Job      `json:"job,omitempty"`
	ID  string    `json:"id,omitempty"`
	Run *RunEntry `json:"run,omitempty"`
}

type snapshot struct {
	Version int         `json:"version"`
	Jobs    []*Job      `json:"jobs"`
	Runs    []*RunEntry `json:"runs"`
}

// store owns the files; the service serialises calls to it. The journal is
// opened for each append and closed after it, as the session transcripts
// are: a write descriptor held for the gateway's life would keep the data
// volume from being remounted read-only when its disk fails.
type store struct {
	dir     string
	journal string // its path
	lines   int    // journal lines since the last compaction
}

// loaded is what openStore read back.
type loaded struct {
	jobs    map[string]*Job
	order   []string // job ids in creation order
	runs    map[string][]*RunEntry
	dropped int // torn or unreadable journal lines skipped
}

func openStore(dir string) (*store, *loaded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the cron store %s: %w", dir, err)
	}
	l := &loaded{jobs: map[string]*Job{}, runs: map[string][]*RunEntry{}}
	seenRun := map[string]bool{}
	addRun := func(r *RunEntry) {
		// Replaying a journal already folded into the snapshot (a crash
		// between the two writes of a compaction) must not repeat a run.
		if r == nil || seenRun[r.RunID] {
			return
		}
		seenRun[r.RunID] = true
		l.runs[r.JobID] = append(l.runs[r.JobID], r)
	}
	put := func(j *Job) {
		if j == nil || j.ID == "" {
			return
		}
		if _, ok := l.jobs[j.ID]; !ok {
			l.order = append(l.order, j.ID)
		}
		l.jobs[j.ID] = j
	}
	raw, err := os.ReadFile(filepath.Join(dir, snapshotName))
	switch {
	case err == nil:
		var snap snapshot
		if err := json.Unmarshal(raw, &snap); err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w (move it aside to start with no jobs)", filepath.Join(dir, snapshotName), err)
		}
		for _, j := range snap.Jobs {
			put(j)
		}
		for _, r := range snap.Runs {
			addRun(r)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, nil, fmt.Errorf("reading the cron snapshot: %w", err)
	}
	jpath := filepath.Join(dir, journalName)
	f, err := os.OpenFile(jpath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the cron journal: %w", err)
	}
	defer f.Close()
	s := &store{dir: dir, journal: jpath}
	good, lines, dropped, err := replay(f, func(rec record) {
		switch rec.Op {
		case "put":
			put(rec.Job)
		case "del":
			if _, ok := l.jobs[rec.ID]; ok {
				delete(l.jobs, rec.ID)
				for i, id := range l.order {
					if id == rec.ID {
						l.order = append(l.order[:i], l.order[i+1:]...)
						break
					}
				}
			}
		case "run":
			addRun(rec.Run)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	l.dropped = dropped
	// Cut a torn tail so the next append starts on a line of its own.
	if err := f.Truncate(good); err != nil {
		return nil, nil, fmt.Errorf("trimming the cron journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, nil, fmt.Errorf("syncing the trimmed cron journal: %w", err)
	}
	s.lines = lines
	for id, rs := range l.runs {
		if len(rs) > maxRunsPerJob {
			l.runs[id] = rs[len(rs)-maxRunsPerJob:]
		}
	}
	return s, l, nil
}

// replay feeds each complete journal line to fn and returns the offset
// after the last good line.
func replay(f *os.File, fn func(record)) (good int64, lines, dropped int, err error) {
	r := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for {
		line, rerr := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var rec record
			if json.Unmarshal(bytes.TrimSpace(line), &rec) == nil {
				fn(rec)
				lines++
			} else {
				dropped++
			}
			off += int64(len(line))
			good = off
		} else if len(line) > 0 {
			dropped++ // a torn last line: never acknowledged
		}
		if rerr == io.EOF {
			return good, lines, dropped, nil
		}
		if rerr != nil {
			return 0, 0, 0, fmt.Errorf("reading the cron journal: %w", rerr)
		}
	}
}

// append writes one record and syncs it: when append returns nil the
// change survives kill -9 and a power cut.
func (s *store) append(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding a cron journal record: %w", err)
	}
	b = append(b, '\n')
	f, err := os.OpenFile(s.journal, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening the cron journal: %w", err)
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("writing the cron journal: %w", werr)
	}
	s.lines++
	return nil
}

// needsCompaction reports a journal much longer than the data it describes.
func (s *store) needsCompaction(live int) bool {
	return s.lines > minCompactLines && s.lines > 2*live
}

// compact writes the live state as the snapshot, then empties the journal.
func (s *store) compact(jobs []*Job, runs []*RunEntry) error {
	b, err := json.Marshal(snapshot{Version: 1, Jobs: jobs, Runs: runs})
	if err != nil {
		return fmt.Errorf("encoding the cron snapshot: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, snapshotName), b, 0o600); err != nil {
		return fmt.Errorf("writing the cron snapshot: %w", err)
	}
	// The snapshot now holds everything; a crash before the truncate only
	// replays records the snapshot already has, which load tolerates.
	f, err := os.OpenFile(s.journal, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("emptying the cron journal: %w", err)
	}
	serr := f.Sync()
	if cerr := f.Close(); serr == nil {
		serr = cerr
	}
	if serr != nil {
		return fmt.Errorf("syncing the emptied cron journal: %w", serr)
	}
	s.lines = 0
	return nil
}

func (s *store) close() error { return nil }

// nowMs is a helper for optional millisecond fields.
func msPtr(t time.Time) *int64 {
	v := t.UnixMilli()
	return &v
}

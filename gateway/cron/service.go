// Package cron runs the Koi's scheduled jobs: a durable job store with run
// history, schedule parsing (at, every, cron expressions in an IANA zone),
// one timer to the next due time, and catch-up after a restart. Each run is
// an agent turn the gateway carries out through Options.Run; the package
// knows nothing of sessions or the wire.
package cron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event actions, as OpenClaw's cron event spells them.
const (
	ActionAdded    = "added"
	ActionUpdated  = "updated"
	ActionRemoved  = "removed"
	ActionStarted  = "started"
	ActionFinished = "finished"
)

// Run statuses.
const (
	StatusOK      = "ok"
	StatusError   = "error"
	StatusSkipped = "skipped"
)

// Event is the payload of the gateway's cron event.
type Event struct {
	JobID       string `json:"jobId"`
	Action      string `json:"action"`
	Job         *Job   `json:"job,omitempty"`
	RunAtMs     int64  `json:"runAtMs,omitempty"`
	DurationMs  *int64 `json:"durationMs,omitempty"`
	Status      string `json:"status,omitempty"`
	Error       string `json:"error,omitempty"`
	Summary     string `json:"summary,omitempty"`
	SessionID   string `json:"sessionId,omitempty"`
	SessionKey  string `json:"sessionKey,omitempty"`
	RunID       string `json:"runId,omitempty"`
	NextRunAtMs *int64 `json:"nextRunAtMs"`
}

// RunRequest is one run the gateway is asked to carry out.
type RunRequest struct {
	Job        Job
	RunID      string
	SessionKey string
	Manual     bool
}

// RunResult is how a run ended.
type RunResult struct {
	Status    string // ok or error
	Error     string
	Summary   string
	SessionID string
	Model     string
	// Delivered tells whether the answer was announced to the main session;
	// DeliveryStatus is OpenClaw's delivered, not-delivered or
	// not-requested.
	Delivered      bool
	DeliveryStatus string
}

// Options configure a Service. Dir and Run are required.
type Options struct {
	// Dir holds the snapshot and journal (<stateDir>/cron).
	Dir string
	// Run carries out one run and returns when it has ended; ctx ends when
	// the service stops.
	Run func(ctx context.Context, req RunRequest) RunResult
	// Emit sends a cron event to clients (nothing when unset).
	Emit func(Event)
	// CheckModel refuses a payload.model the gateway cannot use.
	CheckModel func(string) error
	// Enabled reports cron.enabled: when false jobs are kept and can be run
	// by hand, but none starts on its own (default: always enabled).
	Enabled func() bool
	Now     func() time.Time
	Logger  *slog.Logger
	NewID   func() string
	// OnFire, when set, is called each time the timer fires (benchmarks
	// count wake-ups with it).
	OnFire func()
}

// Service owns the jobs and the one timer.
type Service struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	st      *store
	jobs    map[string]*Job
	order   []string // creation order
	sched   map[string]*compiled
	runs    map[string][]*RunEntry
	rev     uint64
	timer   *time.Timer
	timerAt time.Time
	ctx     context.Context
	running map[string]string // job id → run id
	// listCache keeps the last filtered, sorted selection: paging through
	// 10,000 jobs 200 at a time would otherwise sort them all per page.
	listKey string
	listRev uint64
	listSel []*Job
	wg      sync.WaitGroup
	closed  bool
	started bool
}

// Open loads the store. A run that was in progress when the gateway last
// stopped (kill -9, power loss) is recorded as interrupted and not run
// again: the agent may already have acted on it, and a job must never run
// twice. Jobs that came due while the gateway was down run once, when Run
// starts, however many times they would have fired.
func Open(o Options) (*Service, error) {
	if o.Dir == "" || o.Run == nil {
		return nil, errors.New("cron: Options.Dir and Options.Run are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Emit == nil {
		o.Emit = func(Event) {}
	}
	if o.Enabled == nil {
		o.Enabled = func() bool { return true }
	}
	if o.NewID == nil {
		o.NewID = func() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }
	}
	st, l, err := openStore(o.Dir)
	if err != nil {
		return nil, err
	}
	s := &Service{opts: o, log: o.Logger, st: st, jobs: l.jobs, order: l.order, runs: l.runs,
		sched: map[string]*compiled{}, running: map[string]string{}}
	if l.dropped > 0 {
		s.log.Warn("cron journal: skipped lines a crash left incomplete", "lines", l.dropped)
	}
	now := o.Now()
	for _, id := range s.order {
		j := s.jobs[id]
		c, err := compile(j.Schedule)
		if err != nil {
			// A job that no longer compiles (a zone removed from the
			// system's database) stays listed, disabled, with the reason.
			s.log.Warn("cron: a stored job's schedule is unusable; disabling it", "job", id, "err", err)
			j.Enabled = false
			j.State.NextRunAtMs = nil
			j.State.LastError = "schedule unusable: " + err.Error()
			if err := s.st.append(record{Op: "put", Job: j}); err != nil {
				return nil, err
			}
			continue
		}
		s.sched[id] = c
		if j.State.RunningAtMs != nil {
			if err := s.recordInterrupted(j, now); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// recordInterrupted closes a run the last gateway process left open.
func (s *Service) recordInterrupted(j *Job, now time.Time) error {
	started := *j.State.RunningAtMs
	e := &RunEntry{TS: now.UnixMilli(), JobID: j.ID, JobName: j.Name, Action: ActionFinished, Status: StatusError,
		Error:   "interrupted: the gateway stopped during this run (crash, kill or power loss); it is not run again automatically — use cron.run to run it now",
		RunAtMs: started, DurationMs: max(0, now.UnixMilli()-started), SessionKey: SessionKey(j.ID),
		RunID: j.State.RunningRunID, DeliveryStatus: "unknown"}
	if e.RunID == "" {
		e.RunID = "interrupted:" + j.ID + ":" + strconv.FormatInt(started, 10)
	}
	j.State.RunningAtMs, j.State.RunningRunID = nil, ""
	s.noteResult(j, e)
	if j.Schedule.Kind == KindAt && j.State.NextRunAtMs == nil {
		j.Enabled = false
	}
	if err := s.st.append(record{Op: "run", Run: e}); err != nil {
		return err
	}
	s.runs[j.ID] = appendRun(s.runs[j.ID], e)
	return s.st.append(record{Op: "put", Job: j})
}

// Run starts the timer and serves until ctx ends, then stops the timer and
// waits for runs in progress (which end when ctx does).
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.started = true
	s.armLocked()
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.close()
}

// armLocked points the one timer at the earliest due time, or stops it
// when nothing is due: between jobs the service costs nothing.
func (s *Service) armLocked() {
	if !s.started || s.closed {
		return
	}
	next, ok := s.nextDueLocked()
	if !ok {
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		return
	}
	if s.timer != nil && s.timerAt.Equal(next) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerAt = next
	d := max(next.Sub(s.opts.Now()), 0)
	s.timer = time.AfterFunc(d, s.fire)
}

// armForLocked re-arms for a job just added: when the timer already points
// at or before its next run, the earliest due time cannot have changed, and
// with 10,000 jobs the full scan of armLocked would be most of an add.
func (s *Service) armForLocked(j *Job) {
	if s.started && !s.closed && s.timer != nil && s.opts.Enabled() &&
		(!j.Enabled || j.State.NextRunAtMs == nil || !time.UnixMilli(*j.State.NextRunAtMs).Before(s.timerAt)) {
		return
	}
	s.armLocked()
}

// NextDue is the earliest next run of any enabled job that is not running,
// false when there is none or cron is disabled. The wake planner uses it to
// decide when to start a stopped Koi.
func (s *Service) NextDue() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextDueLocked()
}

func (s *Service) nextDueLocked() (time.Time, bool) {
	if !s.opts.Enabled() {
		return time.Time{}, false
	}
	best := int64(0)
	for id, j := range s.jobs {
		if !j.Enabled || j.State.NextRunAtMs == nil {
			continue
		}
		if _, busy := s.running[id]; busy {
			continue
		}
		if n := *j.State.NextRunAtMs; best == 0 || n < best {
			best = n
		}
	}
	if best == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(best), true
}

// Rearm re-reads Enabled (after a config reload).
func (s *Service) Rearm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timerAt = time.Time{}
	s.armLocked()
}

// fire starts every job that is due.
func (s *Service) fire() {
	if s.opts.OnFire != nil {
		s.opts.OnFire()
	}
	var events []Event
	s.mu.Lock()
	s.timer = nil
	if s.closed {
		s.mu.Unlock()
		return
	}
	now := s.opts.Now()
	if s.opts.Enabled() {
		for _, id := range s.order {
			j := s.jobs[id]
			if !j.Enabled || j.State.NextRunAtMs == nil || *j.State.NextRunAtMs > now.UnixMilli() {
				continue
			}
			if _, busy := s.running[id]; busy {
				continue
			}
			ev, err := s.startLocked(j, now, false)
			if err != nil {
				s.log.Error("cron: could not record a job's start; it will be tried again", "job", id, "err", err)
				continue
			}
			events = append(events, ev)
		}
	}
	s.armLocked()
	s.mu.Unlock()
	for _, ev := range events {
		s.opts.Emit(ev)
	}
}

// startLocked claims a run of j: the claim, with the schedule advanced past
// now, is on disk before the run starts, so a crash can never run the same
// slot twice.
func (s *Service) startLocked(j *Job, now time.Time, manual bool) (Event, error) {
	runID := s.opts.NewID()
	next := j.State.NextRunAtMs
	if !manual {
		next = s.nextAfter(j, now)
		if j.Schedule.Kind == KindAt {
			next = nil // a one-shot that fired is spent, even a hair early
		}
	}
	upd := *j
	upd.State.RunningAtMs = msPtr(now)
	upd.State.RunningRunID = runID
	upd.State.NextRunAtMs = next
	upd.UpdatedAtMs = now.UnixMilli()
	if err := s.st.append(record{Op: "put", Job: &upd}); err != nil {
		return Event{}, err
	}
	*j = upd
	s.rev++
	s.running[j.ID] = runID
	req := RunRequest{Job: upd, RunID: runID, SessionKey: SessionKey(j.ID), Manual: manual}
	s.wg.Add(1)
	go s.execute(req, now)
	return Event{JobID: j.ID, Action: ActionStarted, RunAtMs: now.UnixMilli(), RunID: runID,
		SessionKey: req.SessionKey, NextRunAtMs: next}, nil
}

// nextAfter is j's next run strictly after now (nil: none).
func (s *Service) nextAfter(j *Job, now time.Time) *int64 {
	c := s.sched[j.ID]
	if c == nil {
		return nil
	}
	if t, ok := c.next(now); ok {
		return msPtr(t)
	}
	return nil
}

func (s *Service) execute(req RunRequest, started time.Time) {
	defer s.wg.Done()
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	res := s.opts.Run(ctx, req)
	s.finish(req, started, res)
}

// finish records a run's end in the history and the job's state.
func (s *Service) finish(req RunRequest, started time.Time, res RunResult) {
	now := s.opts.Now()
	if res.Status == "" {
		res.Status = StatusOK
	}
	if res.DeliveryStatus == "" {
		res.DeliveryStatus = "not-requested"
	}
	e := &RunEntry{TS: now.UnixMilli(), JobID: req.Job.ID, JobName: req.Job.Name, Action: ActionFinished,
		Status: res.Status, Error: res.Error, Summary: res.Summary, RunAtMs: started.UnixMilli(),
		DurationMs: max(0, now.Sub(started).Milliseconds()), SessionID: res.SessionID, SessionKey: req.SessionKey,
		RunID: req.RunID, Model: res.Model, Delivered: res.Delivered, DeliveryStatus: res.DeliveryStatus, Manual: req.Manual}
	var events []Event
	s.mu.Lock()
	delete(s.running, req.Job.ID)
	if err := s.st.append(record{Op: "run", Run: e}); err != nil {
		s.log.Error("cron: could not record a finished run", "job", req.Job.ID, "run", req.RunID, "err", err)
	}
	s.runs[req.Job.ID] = appendRun(s.runs[req.Job.ID], e)
	j := s.jobs[req.Job.ID]
	if j != nil {
		upd := *j
		upd.State.RunningAtMs, upd.State.RunningRunID = nil, ""
		s.noteResult(&upd, e)
		if upd.State.NextRunAtMs != nil && *upd.State.NextRunAtMs <= now.UnixMilli() && !req.Manual {
			// The run outlasted its next slot: that slot is skipped, not
			// queued behind it.
			upd.State.NextRunAtMs = s.nextAfter(&upd, now)
		}
		remove := false
		if upd.Schedule.Kind == KindAt && !req.Manual && upd.State.NextRunAtMs == nil {
			if upd.DeleteAfterRun && e.Status == StatusOK {
				remove = true
			} else {
				upd.Enabled = false // a spent one-shot stays listed, disabled
			}
		}
		upd.UpdatedAtMs = now.UnixMilli()
		var err error
		if remove {
			err = s.st.append(record{Op: "del", ID: upd.ID})
		} else {
			err = s.st.append(record{Op: "put", Job: &upd})
		}
		if err != nil {
			s.log.Error("cron: could not record a job's state after its run", "job", upd.ID, "err", err)
		} else if remove {
			s.deleteLocked(upd.ID)
			events = append(events, Event{JobID: upd.ID, Action: ActionRemoved, Job: &upd})
		} else {
			*j = upd
		}
		s.rev++
		e.NextRunAtMs = upd.State.NextRunAtMs
	}
	ev := Event{JobID: req.Job.ID, Action: ActionFinished, RunAtMs: e.RunAtMs, DurationMs: &e.DurationMs,
		Status: e.Status, Error: e.Error, Summary: e.Summary, SessionID: e.SessionID, SessionKey: e.SessionKey,
		RunID: e.RunID, NextRunAtMs: e.NextRunAtMs}
	events = append([]Event{ev}, events...)
	s.maybeCompactLocked()
	s.armLocked()
	s.mu.Unlock()
	for _, ev := range events {
		s.opts.Emit(ev)
	}
}

// noteResult copies a run's outcome into the job's state.
func (s *Service) noteResult(j *Job, e *RunEntry) {
	j.State.LastRunAtMs = &e.RunAtMs
	d := e.DurationMs
	j.State.LastDurationMs = &d
	j.State.LastRunStatus, j.State.LastStatus = e.Status, e.Status
	j.State.LastError = e.Error
	if e.Status == StatusError {
		j.State.ConsecutiveErrors++
	} else {
		j.State.ConsecutiveErrors = 0
	}
}

func appendRun(rs []*RunEntry, e *RunEntry) []*RunEntry {
	rs = append(rs, e)
	if len(rs) > maxRunsPerJob {
		rs = slices.Delete(rs, 0, len(rs)-maxRunsPerJob)
	}
	return rs
}

func (s *Service) deleteLocked(id string) {
	delete(s.jobs, id)
	delete(s.sched, id)
	if i := slices.Index(s.order, id); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

// maybeCompactLocked folds the journal into the snapshot when it has grown
// well past the live data.
func (s *Service) maybeCompactLocked() {
	live := len(s.jobs)
	for _, rs := range s.runs {
		live += len(rs)
	}
	if !s.st.needsCompaction(live) {
		return
	}
	jobs := make([]*Job, 0, len(s.order))
	for _, id := range s.order {
		jobs = append(jobs, s.jobs[id])
	}
	var runs []*RunEntry
	for _, id := range s.order {
		runs = append(runs, s.runs[id]...)
	}
	// History of removed jobs goes with them.
	for id := range s.runs {
		if _, ok := s.jobs[id]; !ok {
			delete(s.runs, id)
		}
	}
	if err := s.st.compact(jobs, runs); err != nil {
		s.log.Error("cron: compacting the journal failed; it keeps growing until the next try", "err", err)
	}
}

// Add validates in and stores a new job. Bad input is an *InvalidError and
// nothing is stored.
func (s *Service) Add(in Input) (Job, error) {
	now := s.opts.Now()
	j := &Job{Enabled: true, CreatedAtMs: now.UnixMilli(), UpdatedAtMs: now.UnixMilli()}
	if err := applyInput(j, in, s.opts.CheckModel, true); err != nil {
		return Job{}, err
	}
	if in.Schedule == nil {
		return Job{}, invalidf("schedule is required: {\"kind\":\"at\",\"at\":\"20m\"}, {\"kind\":\"every\",\"everyMs\":60000} or {\"kind\":\"cron\",\"expr\":\"0 7 * * *\",\"tz\":\"Europe/Berlin\"}")
	}
	sched, err := normalize(*in.Schedule, now)
	if err != nil {
		return Job{}, &InvalidError{msg: err.Error()}
	}
	j.Schedule = sched
	if in.DeleteAfterRun == nil && sched.Kind == KindAt {
		j.DeleteAfterRun = true // a reminder is done once it has run
	}
	c, err := compile(sched)
	if err != nil {
		return Job{}, &InvalidError{msg: err.Error()}
	}
	s.mu.Lock()
	if len(s.jobs) >= MaxJobs {
		s.mu.Unlock()
		return Job{}, invalidf("this Koi already has %d jobs, the most it keeps; remove some first", MaxJobs)
	}
	j.ID = s.opts.NewID()
	if j.Enabled {
		if t, ok := c.next(now); ok {
			j.State.NextRunAtMs = msPtr(t)
		}
	}
	if err := s.st.append(record{Op: "put", Job: j}); err != nil {
		s.mu.Unlock()
		return Job{}, fmt.Errorf("storing the job: %w", err)
	}
	s.jobs[j.ID] = j
	s.order = append(s.order, j.ID)
	s.sched[j.ID] = c
	s.rev++
	s.maybeCompactLocked()
	s.armForLocked(j)
	out := *j
	s.mu.Unlock()
	s.opts.Emit(Event{JobID: out.ID, Action: ActionAdded, Job: &out, NextRunAtMs: out.State.NextRunAtMs})
	return out, nil
}

// Update applies a patch (the same fields as Add, each optional).
func (s *Service) Update(id string, in Input) (Job, error) {
	now := s.opts.Now()
	s.mu.Lock()
	cur := s.jobs[id]
	if cur == nil {
		s.mu.Unlock()
		return Job{}, &NotFoundError{ID: id}
	}
	upd := *cur
	if err := applyInput(&upd, in, s.opts.CheckModel, false); err != nil {
		s.mu.Unlock()
		return Job{}, err
	}
	c := s.sched[id]
	if in.Schedule != nil {
		sched, err := normalize(*in.Schedule, now)
		if err != nil {
			s.mu.Unlock()
			return Job{}, &InvalidError{msg: err.Error()}
		}
		if c, err = compile(sched); err != nil {
			s.mu.Unlock()
			return Job{}, &InvalidError{msg: err.Error()}
		}
		upd.Schedule = sched
		upd.State.NextRunAtMs = nil
	}
	if !upd.Enabled {
		upd.State.NextRunAtMs = nil
	} else if upd.State.NextRunAtMs == nil || in.Schedule != nil {
		if c == nil {
			s.mu.Unlock()
			return Job{}, invalidf("the job's schedule is unusable (%s); give it a new one", cur.State.LastError)
		}
		t, ok := c.next(now)
		if !ok {
			s.mu.Unlock()
			return Job{}, invalidf("the job's time (%s) has passed; give it a new one (schedule.at) to enable it", upd.Schedule.At)
		}
		upd.State.NextRunAtMs = msPtr(t)
	}
	upd.UpdatedAtMs = now.UnixMilli()
	if err := s.st.append(record{Op: "put", Job: &upd}); err != nil {
		s.mu.Unlock()
		return Job{}, fmt.Errorf("storing the job: %w", err)
	}
	*cur = upd
	s.sched[id] = c
	s.rev++
	s.maybeCompactLocked()
	s.armLocked()
	s.mu.Unlock()
	s.opts.Emit(Event{JobID: id, Action: ActionUpdated, Job: &upd, NextRunAtMs: upd.State.NextRunAtMs})
	return upd, nil
}

// Remove deletes a job; its history stays readable until the next
// compaction.
func (s *Service) Remove(id string) error {
	s.mu.Lock()
	j := s.jobs[id]
	if j == nil {
		s.mu.Unlock()
		return &NotFoundError{ID: id}
	}
	if err := s.st.append(record{Op: "del", ID: id}); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("removing the job: %w", err)
	}
	gone := *j
	s.deleteLocked(id)
	s.rev++
	s.maybeCompactLocked()
	s.armLocked()
	s.mu.Unlock()
	s.opts.Emit(Event{JobID: id, Action: ActionRemoved, Job: &gone})
	return nil
}

// Get returns a copy of one job.
func (s *Service) Get(id string) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return Job{}, false
	}
	return *j, true
}

// RunNow is cron.run: mode "force" runs the job now; "due" only if its time
// has come. It returns at once; the run goes on in the background.
func (s *Service) RunNow(id, mode string) (map[string]any, error) {
	switch mode {
	case "", "force", "due":
	default:
		return nil, invalidf("mode must be force or due, got %q", mode)
	}
	s.mu.Lock()
	j := s.jobs[id]
	if j == nil {
		s.mu.Unlock()
		return nil, &NotFoundError{ID: id}
	}
	if _, busy := s.running[id]; busy {
		s.mu.Unlock()
		return map[string]any{"ok": true, "ran": false, "reason": "already-running"}, nil
	}
	now := s.opts.Now()
	due := j.Enabled && j.State.NextRunAtMs != nil && *j.State.NextRunAtMs <= now.UnixMilli()
	if mode == "due" && !due {
		s.mu.Unlock()
		return map[string]any{"ok": true, "ran": false, "reason": "not-due"}, nil
	}
	if !s.started || s.closed {
		s.mu.Unlock()
		return nil, errors.New("the scheduler is not running (the gateway is starting or stopping); try again in a moment")
	}
	ev, err := s.startLocked(j, now, !due)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("starting the run: %w", err)
	}
	s.armLocked()
	s.mu.Unlock()
	s.opts.Emit(ev)
	return map[string]any{"ok": true, "enqueued": true, "runId": ev.RunID}, nil
}

// Status is cron.status.
func (s *Service) Status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next any
	if t, ok := s.nextDueLocked(); ok {
		next = t.UnixMilli()
	}
	return map[string]any{"enabled": s.opts.Enabled(), "storePath": filepath.Join(s.opts.Dir, journalName),
		"storage": "journal", "jobs": len(s.jobs), "running": len(s.running), "nextWakeAtMs": next}
}

// ListOptions are cron.list's filters and paging.
type ListOptions struct {
	IncludeDisabled bool
	Enabled         string // all, enabled, disabled ("" follows IncludeDisabled)
	Query           string
	ScheduleKind    string
	SortBy          string // nextRunAtMs (default), name, createdAtMs, updatedAtMs
	SortDir         string // asc (default) or desc
	Offset, Limit   int
}

// MaxListLimit is the most jobs one cron.list page carries.
const MaxListLimit = 200

// ListPage is one page of cron.list.
type ListPage struct {
	Jobs             []Job  `json:"jobs"`
	SnapshotRevision string `json:"snapshotRevision"`
	Total            int    `json:"total"`
	Offset           int    `json:"offset"`
	Limit            int    `json:"limit"`
	HasMore          bool   `json:"hasMore"`
	NextOffset       *int   `json:"nextOffset"`
}

// List returns one page of jobs, soonest first by default.
func (s *Service) List(o ListOptions) (ListPage, error) {
	enabled := o.Enabled
	if enabled == "" {
		enabled = "enabled"
		if o.IncludeDisabled {
			enabled = "all"
		}
	}
	switch enabled {
	case "all", "enabled", "disabled":
	default:
		return ListPage{}, invalidf("enabled must be all, enabled or disabled, got %q", o.Enabled)
	}
	switch o.SortBy {
	case "", "nextRunAtMs", "name", "createdAtMs", "updatedAtMs":
	default:
		return ListPage{}, invalidf("sortBy must be nextRunAtMs, name, createdAtMs or updatedAtMs, got %q", o.SortBy)
	}
	switch o.SortDir {
	case "", "asc", "desc":
	default:
		return ListPage{}, invalidf("sortDir must be asc or desc, got %q", o.SortDir)
	}
	if o.Offset < 0 || o.Limit < 0 || o.Limit > MaxListLimit {
		return ListPage{}, invalidf("offset must not be negative and limit must be from 1 to %d", MaxListLimit)
	}
	q := strings.ToLower(strings.TrimSpace(o.Query))
	s.mu.Lock()
	rev := s.rev
	cacheKey := enabled + "\x00" + q + "\x00" + o.ScheduleKind + "\x00" + o.SortBy + "\x00" + o.SortDir
	sel := s.listSel
	if s.listSel == nil || s.listKey != cacheKey || s.listRev != rev {
		sel = s.selectLocked(enabled, q, o)
		s.listKey, s.listRev, s.listSel = cacheKey, rev, sel
	}
	total := len(sel)
	limit := o.Limit
	if limit == 0 {
		limit = MaxListLimit
	}
	off := min(o.Offset, total)
	end := min(off+limit, total)
	page := ListPage{Jobs: make([]Job, 0, end-off), SnapshotRevision: "r" + strconv.FormatUint(rev, 10),
		Total: total, Offset: off, Limit: limit, HasMore: end < total}
	for _, j := range sel[off:end] {
		page.Jobs = append(page.Jobs, *j)
	}
	s.mu.Unlock()
	if page.HasMore {
		page.NextOffset = &end
	}
	return page, nil
}

// selectLocked filters and sorts the jobs for List.
func (s *Service) selectLocked(enabled, q string, o ListOptions) []*Job {
	sel := make([]*Job, 0, len(s.jobs))
	for _, id := range s.order {
		j := s.jobs[id]
		if enabled == "enabled" && !j.Enabled || enabled == "disabled" && j.Enabled {
			continue
		}
		if o.ScheduleKind != "" && o.ScheduleKind != "all" && j.Schedule.Kind != o.ScheduleKind {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(j.ID+" "+j.Name+" "+j.Description), q) {
			continue
		}
		sel = append(sel, j)
	}
	key := func(j *Job) int64 {
		switch o.SortBy {
		case "createdAtMs":
			return j.CreatedAtMs
		case "updatedAtMs":
			return j.UpdatedAtMs
		}
		if j.State.NextRunAtMs == nil {
			return 1<<63 - 1 // never: last
		}
		return *j.State.NextRunAtMs
	}
	slices.SortStableFunc(sel, func(a, b *Job) int {
		var c int
		if o.SortBy == "name" {
			c = strings.Compare(a.Name, b.Name)
		} else {
			ka, kb := key(a), key(b)
			c = compareInt(ka, kb)
		}
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if o.SortDir == "desc" {
			c = -c
		}
		return c
	})
	return sel
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RunsOptions are cron.runs' filters and paging.
type RunsOptions struct {
	JobID          string
	RunID          string
	Status         string // all, ok, error, skipped
	DeliveryStatus string
	Query          string
	SortDir        string // desc (default) or asc
	Offset, Limit  int
}

// RunsPage is one page of cron.runs.
type RunsPage struct {
	Entries    []RunEntry `json:"entries"`
	Total      int        `json:"total"`
	Offset     int        `json:"offset"`
	Limit      int        `json:"limit"`
	HasMore    bool       `json:"hasMore"`
	NextOffset *int       `json:"nextOffset"`
}

// Runs returns one page of a job's history (every job's when JobID is "").
func (s *Service) Runs(o RunsOptions) (RunsPage, error) {
	switch o.Status {
	case "", "all", StatusOK, StatusError, StatusSkipped:
	default:
		return RunsPage{}, invalidf("status must be all, ok, error or skipped, got %q", o.Status)
	}
	switch o.SortDir {
	case "", "asc", "desc":
	default:
		return RunsPage{}, invalidf("sortDir must be asc or desc, got %q", o.SortDir)
	}
	if o.Offset < 0 || o.Limit < 0 || o.Limit > MaxListLimit {
		return RunsPage{}, invalidf("offset must not be negative and limit must be from 1 to %d", MaxListLimit)
	}
	q := strings.ToLower(strings.TrimSpace(o.Query))
	s.mu.Lock()
	var src []*RunEntry
	if o.JobID != "" {
		src = s.runs[o.JobID]
		if _, ok := s.jobs[o.JobID]; !ok && len(src) == 0 {
			s.mu.Unlock()
			return RunsPage{}, &NotFoundError{ID: o.JobID}
		}
	} else {
		for _, rs := range s.runs {
			src = append(src, rs...)
		}
	}
	sel := make([]RunEntry, 0, len(src))
	for _, e := range src {
		if o.RunID != "" && e.RunID != o.RunID ||
			o.Status != "" && o.Status != "all" && e.Status != o.Status ||
			o.DeliveryStatus != "" && e.DeliveryStatus != o.DeliveryStatus ||
			q != "" && !strings.Contains(strings.ToLower(e.Summary+" "+e.Error), q) {
			continue
		}
		sel = append(sel, *e)
	}
	s.mu.Unlock()
	slices.SortStableFunc(sel, func(a, b RunEntry) int {
		c := compareInt(a.TS, b.TS)
		if o.SortDir != "asc" {
			c = -c
		}
		return c
	})
	limit := o.Limit
	if limit == 0 {
		limit = 50
	}
	total := len(sel)
	off := min(o.Offset, total)
	end := min(off+limit, total)
	p := RunsPage{Entries: sel[off:end], Total: total, Offset: off, Limit: limit, HasMore: end < total}
	if p.HasMore {
		p.NextOffset = &end
	}
	return p, nil
}

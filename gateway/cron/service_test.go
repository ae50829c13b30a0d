package cron

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skykoi/skykoi/internal/testwait"
)

// recorder is a Run that records requests and answers from a channel, or
// at once when release is nil.
type recorder struct {
	mu      sync.Mutex
	reqs    []RunRequest
	started chan RunRequest
	release chan RunResult
}

func newRecorder() *recorder { return &recorder{started: make(chan RunRequest, 100)} }

func (r *recorder) run(ctx context.Context, req RunRequest) RunResult {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	r.started <- req
	if r.release == nil {
		return RunResult{Status: StatusOK, Summary: "done " + req.Job.Name}
	}
	select {
	case res := <-r.release:
		return res
	case <-ctx.Done():
		return RunResult{Status: StatusError, Error: "stopped"}
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

var idSeq atomic.Int64

func testID() string { return fmt.Sprintf("job-%d", idSeq.Add(1)) }

// startService opens a service on dir and runs it until the test ends.
func startService(t *testing.T, dir string, rec *recorder, events chan<- Event) (*Service, context.CancelFunc) {
	t.Helper()
	s, err := Open(Options{Dir: dir, Run: rec.run, NewID: testID, Emit: func(e Event) {
		if events != nil {
			events <- e
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(stop) })
	waitStarted(t, s)
	return s, func() { once.Do(stop) }
}

func msg(m string) *PayloadInput { return &PayloadInput{Kind: PayloadAgentTurn, Message: &m} }
func str(s string) *string       { return &s }

func waitRun(t *testing.T, rec *recorder) RunRequest {
	t.Helper()
	select {
	case r := <-rec.started:
		return r
	case <-time.After(testwait.Patience(t)):
		t.Fatal("no run started")
	}
	return RunRequest{}
}

func waitEvent(t *testing.T, ch <-chan Event, action string) Event {
	t.Helper()
	deadline := time.After(testwait.Patience(t))
	for {
		select {
		case e := <-ch:
			if e.Action == action {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event", action)
		}
	}
}

func TestAddBadInputStoresNothing(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Hour).UTC().Format(time.RFC3339)
	huge := strings.Repeat("x", MaxMessageBytes+1)
	cases := []struct {
		name string
		in   Input
		want string
	}{
		{"bad cron expr", Input{Name: str("a"), Schedule: &Schedule{Kind: "cron", Expr: "61 * * * *"}, Payload: msg("hi")}, "not a cron expression"},
		{"cron never fires", Input{Name: str("a"), Schedule: &Schedule{Kind: "cron", Expr: "0 0 30 2 *"}, Payload: msg("hi")}, "never fires"},
		{"unknown tz", Input{Name: str("a"), Schedule: &Schedule{Kind: "cron", Expr: "0 7 * * *", TZ: "Mars/Olympus"}, Payload: msg("hi")}, "is not a known IANA time zone"},
		{"tz path", Input{Name: str("a"), Schedule: &Schedule{Kind: "cron", Expr: "0 7 * * *", TZ: "../../etc/passwd"}, Payload: msg("hi")}, "is not an IANA time zone"},
		{"tz prefix", Input{Name: str("a"), Schedule: &Schedule{Kind: "cron", Expr: "TZ=UTC 0 7 * * *"}, Payload: msg("hi")}, "TZ= prefix"},
		{"at in the past", Input{Name: str("a"), Schedule: &Schedule{Kind: "at", At: past}, Payload: msg("hi")}, "in the past"},
		{"at garbage", Input{Name: str("a"), Schedule: &Schedule{Kind: "at", At: "tomorrowish"}, Payload: msg("hi")}, "neither an ISO time"},
		{"every too short", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 5}, Payload: msg("hi")}, "at least 1000"},
		{"unknown kind", Input{Name: str("a"), Schedule: &Schedule{Kind: "on-exit"}, Payload: msg("hi")}, "not supported"},
		{"no schedule", Input{Name: str("a"), Payload: msg("hi")}, "schedule is required"},
		{"huge payload", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: msg(huge)}, "at most 65536"},
		{"empty message", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: msg("  ")}, "payload.message is required"},
		{"no name", Input{Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: msg("hi")}, "name is required"},
		{"system event", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: &PayloadInput{Kind: "systemEvent", Text: "x"}}, "systemEvent"},
		{"main session", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: msg("hi"), SessionTarget: str("main")}, "sessionTarget main"},
		{"webhook", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: msg("hi"), Delivery: &DeliveryInput{Mode: "webhook"}}, "webhook"},
		{"other agent", Input{Name: str("a"), AgentID: str("ops"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: msg("hi")}, "unknown agent"},
		{"tools allow", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: &PayloadInput{Message: str("hi"), ToolsAllow: []string{"exec"}}}, "toolsAllow"},
		{"bad thinking", Input{Name: str("a"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: &PayloadInput{Message: str("hi"), Thinking: rawp(`"max"`)}}, "thinking"},
		{"control chars in name", Input{Name: str("a\x1b[2J"), Schedule: &Schedule{Kind: "every", EveryMs: 60000}, Payload: msg("hi")}, "control characters"},
	}
	dir := t.TempDir()
	rec := newRecorder()
	s, _ := startService(t, dir, rec, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Add(tc.in)
			if err == nil || !IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Add = %v; want an invalid-input error containing %q", err, tc.want)
			}
		})
	}
	page, err := s.List(ListOptions{IncludeDisabled: true})
	if err != nil || page.Total != 0 {
		t.Fatalf("after bad input: %d jobs listed (err %v); want none", page.Total, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, journalName)); len(b) != 0 {
		t.Fatalf("bad input reached the journal: %q", b)
	}
}

func rawp(s string) *json.RawMessage { r := json.RawMessage(s); return &r }

func TestEveryJobFiresAndRecordsHistory(t *testing.T) {
	rec := newRecorder()
	events := make(chan Event, 100)
	s, _ := startService(t, t.TempDir(), rec, events)
	j, err := s.Add(Input{Name: str("tick"), Schedule: &Schedule{Kind: "every", EveryMs: 1000}, Payload: msg("check the log")})
	if err != nil {
		t.Fatal(err)
	}
	if j.State.NextRunAtMs == nil || *j.State.NextRunAtMs <= j.CreatedAtMs {
		t.Fatalf("next run %v, want after creation %d", j.State.NextRunAtMs, j.CreatedAtMs)
	}
	r := waitRun(t, rec)
	if r.SessionKey != "cron:"+j.ID || r.Job.Payload.Message != "check the log" {
		t.Fatalf("run request %+v", r)
	}
	fin := waitEvent(t, events, ActionFinished)
	if fin.Status != StatusOK || fin.NextRunAtMs == nil {
		t.Fatalf("finished event %+v", fin)
	}
	page, err := s.Runs(RunsOptions{JobID: j.ID})
	if err != nil || page.Total < 1 || page.Entries[0].Status != StatusOK || page.Entries[0].RunID != r.RunID {
		t.Fatalf("runs = %+v, %v", page, err)
	}
	got, _ := s.Get(j.ID)
	if got.State.LastRunStatus != StatusOK || got.State.RunningAtMs != nil {
		t.Fatalf("state after run %+v", got.State)
	}
}

func TestAtJobDeletedAfterRun(t *testing.T) {
	rec := newRecorder()
	events := make(chan Event, 100)
	s, _ := startService(t, t.TempDir(), rec, events)
	j, err := s.Add(Input{Name: str("remind"), Schedule: &Schedule{Kind: "at", At: "1s"}, Payload: msg("stretch")})
	if err != nil {
		t.Fatal(err)
	}
	if !j.DeleteAfterRun {
		t.Fatal("an at job deletes itself after its run unless told to keep")
	}
	waitRun(t, rec)
	waitEvent(t, events, ActionRemoved)
	if _, ok := s.Get(j.ID); ok {
		t.Fatal("the one-shot is still stored after its run")
	}
	if p, err := s.Runs(RunsOptions{JobID: j.ID}); err != nil || p.Total != 1 {
		t.Fatalf("history of the removed one-shot: %+v %v", p, err)
	}
}

func TestDisabledJobNeverFiresAndNextDue(t *testing.T) {
	rec := newRecorder()
	s, _ := startService(t, t.TempDir(), rec, nil)
	if _, ok := s.NextDue(); ok {
		t.Fatal("NextDue with no jobs")
	}
	off := false
	j, err := s.Add(Input{Name: str("off"), Enabled: &off, Schedule: &Schedule{Kind: "every", EveryMs: 1000}, Payload: msg("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.NextDue(); ok {
		t.Fatal("NextDue counts a disabled job")
	}
	on := true
	j, err = s.Update(j.ID, Input{Enabled: &on})
	if err != nil {
		t.Fatal(err)
	}
	next, ok := s.NextDue()
	if !ok || next.UnixMilli() != *j.State.NextRunAtMs {
		t.Fatalf("NextDue = %v %v, want %d", next, ok, *j.State.NextRunAtMs)
	}
	waitRun(t, rec)
}

// TestRestartCatchUpAndInterrupted: a job due while the service was down
// runs once on start; a run left open by a crash is recorded as
// interrupted and not run again.
func TestRestartCatchUpAndInterrupted(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder()
	rec.release = make(chan RunResult)
	s, stop := startService(t, dir, rec, nil)
	busy, err := s.Add(Input{Name: str("busy"), Schedule: &Schedule{Kind: "every", EveryMs: 1000}, Payload: msg("long")})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, rec) // now running; a crash here leaves it open on disk
	overdue, err := s.Add(Input{Name: str("later"), Schedule: &Schedule{Kind: "every", EveryMs: 3600_000, AnchorMs: time.Now().Add(-30 * time.Minute).UnixMilli()}, Payload: msg("x")})
	if err != nil {
		t.Fatal(err)
	}
	// Simulate kill -9: copy the files as they are while the run is open.
	crash := t.TempDir()
	for _, n := range []string{journalName, snapshotName} {
		if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
			if err := os.WriteFile(filepath.Join(crash, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop()
	// Make "later" overdue: its next slot is pushed into the past on disk.
	patchJournal(t, crash, overdue.ID, time.Now().Add(-time.Minute).UnixMilli())

	rec2 := newRecorder()
	s2, _ := startService(t, crash, rec2, nil)
	r := waitRun(t, rec2)
	if r.Job.ID != overdue.ID {
		t.Fatalf("catch-up ran %s, want the overdue job %s", r.Job.Name, overdue.Name)
	}
	got, _ := s2.Get(busy.ID)
	if got.State.LastRunStatus != StatusError || !strings.Contains(got.State.LastError, "interrupted") {
		t.Fatalf("interrupted job state %+v", got.State)
	}
	p, _ := s2.Runs(RunsOptions{JobID: busy.ID})
	if p.Total != 1 || !strings.Contains(p.Entries[0].Error, "interrupted") {
		t.Fatalf("interrupted run history %+v", p)
	}
	// Exactly once: the overdue job's next slot is an hour away.
	o, _ := s2.Get(overdue.ID)
	if o.State.NextRunAtMs == nil || time.Until(time.UnixMilli(*o.State.NextRunAtMs)) < 10*time.Minute {
		t.Fatalf("after catch-up the next slot is %v; missed slots must not queue", o.State.NextRunAtMs)
	}
	for _, q := range rec2.reqs {
		if q.Job.ID == busy.ID {
			t.Fatal("the interrupted run was run again")
		}
	}
}

// patchJournal appends a put that moves a job's next run.
func patchJournal(t *testing.T, dir, id string, nextMs int64) {
	t.Helper()
	st, l, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	j := l.jobs[id]
	j.State.NextRunAtMs = &nextMs
	if err := st.append(record{Op: "put", Job: j}); err != nil {
		t.Fatal(err)
	}
	st.close()
}

func TestTornJournalLineIsDropped(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder()
	s, stop := startService(t, dir, rec, nil)
	j, err := s.Add(Input{Name: str("keep"), Schedule: &Schedule{Kind: "every", EveryMs: 3600_000}, Payload: msg("x")})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"put","job":{"id":"half`)
	f.Close()
	s2, _ := startService(t, dir, newRecorder(), nil)
	if _, ok := s2.Get(j.ID); !ok {
		t.Fatal("the job before the torn line is lost")
	}
	if _, err := s2.Add(Input{Name: str("after"), Schedule: &Schedule{Kind: "every", EveryMs: 3600_000}, Payload: msg("x")}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, journalName))
	if strings.Contains(string(b), "half") {
		t.Fatal("the torn line was kept; the next record would join it")
	}
}

func TestCompactionKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, stop := startService(t, dir, newRecorder(), nil)
	var ids []string
	for i := 0; i < minCompactLines+50; i++ {
		j, err := s.Add(Input{Name: str("j"), Schedule: &Schedule{Kind: "every", EveryMs: 3600_000}, Payload: msg("x")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
		if i%2 == 1 {
			if err := s.Remove(j.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop()
	if _, err := os.Stat(filepath.Join(dir, snapshotName)); err != nil {
		t.Fatalf("no snapshot after %d changes: %v", 2*minCompactLines, err)
	}
	s2, _ := startService(t, dir, newRecorder(), nil)
	for i, id := range ids {
		_, ok := s2.Get(id)
		if ok != (i%2 == 0) {
			t.Fatalf("job %d present=%v after reload", i, ok)
		}
	}
}

func TestRunNowAndNotFound(t *testing.T) {
	rec := newRecorder()
	s, _ := startService(t, t.TempDir(), rec, nil)
	j, err := s.Add(Input{Name: str("manual"), Schedule: &Schedule{Kind: "cron", Expr: "0 7 * * *", TZ: "Europe/Berlin"}, Payload: msg("x")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RunNow(j.ID, "due")
	if err != nil || res["ran"] != false || res["reason"] != "not-due" {
		t.Fatalf("due run of a job not due: %v %v", res, err)
	}
	res, err = s.RunNow(j.ID, "force")
	if err != nil || res["enqueued"] != true {
		t.Fatalf("forced run: %v %v", res, err)
	}
	if r := waitRun(t, rec); !r.Manual || r.RunID != res["runId"] {
		t.Fatalf("run %+v", r)
	}
	var nf *NotFoundError
	if _, err := s.RunNow("nope", ""); !errors.As(err, &nf) {
		t.Fatalf("RunNow unknown = %v", err)
	}
	if err := s.Remove("nope"); !errors.As(err, &nf) {
		t.Fatalf("Remove unknown = %v", err)
	}
}

// TestCronDisabledKeepsJobs: with cron.enabled false nothing starts on its
// own and NextDue is empty, but a job can still be run by hand.
func TestCronDisabledKeepsJobs(t *testing.T) {
	var on atomic.Bool
	rec := newRecorder()
	s, err := Open(Options{Dir: t.TempDir(), Run: rec.run, NewID: testID, Enabled: on.Load})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	j, err := s.Add(Input{Name: str("due"), Schedule: &Schedule{Kind: KindEvery, EveryMs: 1000}, Payload: msg("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.NextDue(); ok {
		t.Fatal("NextDue while cron is disabled")
	}
	waitStarted(t, s)
	if res, err := s.RunNow(j.ID, "force"); err != nil || res["enqueued"] != true {
		t.Fatalf("a manual run while disabled: %v %v", res, err)
	}
	if r := waitRun(t, rec); !r.Manual {
		t.Fatalf("the run %+v should be the manual one", r)
	}
	on.Store(true)
	s.Rearm()
	if r := waitRun(t, rec); r.Manual {
		t.Fatal("after enabling, the schedule should start the job")
	}
}

// waitStarted waits for a service's Run to have armed it.
func waitStarted(t *testing.T, s *Service) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		s.mu.Lock()
		up := s.started
		s.mu.Unlock()
		if up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the service did not start")
		}
		time.Sleep(time.Millisecond)
	}
}

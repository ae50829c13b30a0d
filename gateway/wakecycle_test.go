package gateway

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/cron"
	"github.com/skykoi/skykoi/gateway/wake"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// TestWakeCycleRunsTheJobOnce drives the whole sleep-and-wake cycle with a
// real cron job: the job is added, the idle stop leaves a schedule for it
// (through the real Scheduler and EC2 clients, at the AWS stand-in), the
// gateway goes down with the instance, the schedule's time arrives and the
// stand-in starts the instance with the wake role, the gateway comes back
// on the same data, and the job runs once, at its time, announced to the
// main session.
//
// It runs in real time: the job is due two minutes out (the lead is one
// minute, the least there is), so the test takes that long.
func TestWakeCycleRunsTheJobOnce(t *testing.T) {
	const self = "i-0fedcba9876543210"
	const role = "arn:aws:iam::123456789012:role/skykoi-dev-wake"
	imds := ec2test.NewIMDS(self, "us-east-1")
	defer imds.Close()
	imds.SetTag(wake.RoleTag, role)
	aws3 := ec2test.NewServer()
	defer aws3.Close()
	aws3.AllowRole(role)
	aws3.AddInstance(ec2test.Instance{ID: self, State: "running"})

	state := t.TempDir()
	koi := func(clock *manualClock) []serverOpt {
		return []serverOpt{
			withConfig("gateway.idle.stopAfterMinutes", 30),
			withConfig("gateway.idle.wakeLeadMinutes", 1),
			withConfig("agents.defaults.workspace", filepath.Join(state, "koi")),
			withOptions(func(o *Options) {
				o.StateDir = state
				o.IMDSEndpoint, o.EC2Endpoint, o.SchedulerEndpoint = imds.URL(), aws3.URL(), aws3.URL()
				o.IdleClock, o.IdleCheckEvery = clock, time.Minute
				o.AWSCredentials = aws3.Credentials()
			}),
		}
	}

	// Before the sleep: the owner asks for a job in two minutes, then leaves.
	clock1 := &manualClock{now: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	ts1, fake1 := agentServer(t, koi(clock1)...)
	due := time.Now().Add(2 * time.Minute).UTC().Truncate(time.Second)
	c, _ := dialConnected(t, ts1, asAdmin)
	res := c.call("cron.add", map[string]any{"name": "log check", "schedule": map[string]any{"kind": "at", "at": due.Format(time.RFC3339)},
		"payload": map[string]any{"kind": "agentTurn", "message": "look at the log"}})
	if !res.OK {
		t.Fatalf("cron.add: %+v", res.Error)
	}
	job := unmarshal[cron.Job](t, res.Payload)
	if next, ok := ts1.NextWake(); !ok || !next.Equal(due) {
		t.Fatalf("NextWake = %s %v, want the job's %s", next, ok, due)
	}
	c.ws.Close()

	waitFor(t, "the idle watcher to start", func() bool { return ts1.idle.Load() != nil && clock1.pending() > 0 })
	for i := 0; i < 40 && len(aws3.CallsOf("StopInstances")) == 0; i++ {
		waitFor(t, "the next idle check", func() bool {
			return clock1.pending() > 0 || len(aws3.CallsOf("StopInstances")) > 0
		})
		clock1.Advance(time.Minute)
	}
	waitFor(t, "StopInstances", func() bool { return len(aws3.CallsOf("StopInstances")) == 1 })
	if !time.Now().Before(due.Add(-time.Minute)) {
		t.Fatalf("the idle stop came later than the job's lead (%s); the machine is too slow for this test's two minutes", due.Add(-time.Minute))
	}
	sc, ok := aws3.ScheduleNamed(wake.ScheduleName(self))
	if !ok {
		t.Fatalf("no wake schedule after the idle stop; schedules %+v", aws3.Schedules())
	}
	wakeAt := due.Add(-time.Minute)
	if !sc.At.Equal(wakeAt) || sc.RoleARN != role || sc.TargetARN != ec2test.StartInstancesTarget ||
		sc.Input != `{"InstanceIds":["`+self+`"]}` {
		t.Fatalf("wake schedule %+v, want a start of %s at %s with %s", sc, self, wakeAt, role)
	}
	// The instance goes down, and the gateway with it.
	if err := ts1.stop(t); err != nil {
		t.Fatalf("gateway drain: %v", err)
	}
	if st := aws3.Advance(self); st != "stopped" {
		t.Fatalf("instance state %s after the stop, want stopped", st)
	}
	if n := len(fake1.Requests()); n != 0 {
		t.Fatalf("the job ran before its time: %d model requests", n)
	}

	// The schedule's time arrives: Scheduler starts the instance with the
	// wake role.
	waitFor(t, "the wake time", func() bool { return !time.Now().Before(wakeAt) })
	fired := aws3.FireDue(time.Now())
	if len(fired) != 1 || fired[0].Err != "" || len(fired[0].Started) != 1 || fired[0].Started[0] != self {
		t.Fatalf("firings %+v, want one that starts %s", fired, self)
	}
	if st := aws3.Advance(self); st != "running" {
		t.Fatalf("instance state %s after the wake, want running", st)
	}
	if _, left := aws3.ScheduleNamed(wake.ScheduleName(self)); left {
		t.Error("the one-time schedule outlived its run (ActionAfterCompletion DELETE)")
	}

	// The gateway comes back on the same volume, before the job is due.
	if !time.Now().Before(due) {
		t.Fatalf("woke after the job's time %s", due)
	}
	clock2 := &manualClock{now: time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)}
	ts2, fake2 := agentServer(t, koi(clock2)...)
	fake2.SetDefault(bedrocktest.Reply{bedrocktest.Text("The log is quiet.")})
	c2, _ := dialConnected(t, ts2, asAdmin)
	waitFor(t, "the job's run", func() bool {
		r := c2.call("cron.runs", map[string]any{"id": job.ID})
		p := unmarshal[cron.RunsPage](t, r.Payload)
		return r.OK && p.Total == 1 && p.Entries[0].Status == cron.StatusOK
	})
	r := c2.call("cron.runs", map[string]any{"id": job.ID})
	p := unmarshal[cron.RunsPage](t, r.Payload)
	if ran := time.UnixMilli(p.Entries[0].RunAtMs); ran.Before(due) {
		t.Errorf("the job ran at %s, before its time %s", ran, due)
	}
	hist := c2.call("chat.history", map[string]any{"sessionKey": "main"})
	if !strings.Contains(string(hist.Payload), "[cron: log check] The log is quiet.") {
		t.Fatalf("the main session lacks the announcement: %s", hist.Payload)
	}
	// Once: one model request for the job, and nothing left to run.
	n := 0
	for _, req := range fake2.Requests() {
		if strings.Contains(string(req.Body), "look at the log") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the job reached the model %d times, want once", n)
	}
	if _, ok := ts2.NextWake(); ok {
		t.Error("something is still due after the one-shot ran")
	}
}

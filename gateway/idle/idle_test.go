package idle_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/idle"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
	"github.com/skykoi/skykoi/internal/testwait"
)

// fakeClock only moves when the test says so. After registers a waiter;
// Advance fires the ones that are due.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// waitForWaiter blocks until the watcher sleeps again, which means it has
// finished handling the last tick.
func (c *fakeClock) waitForWaiter(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		c.mu.Lock()
		n := len(c.waiters)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher never went back to sleep")
		}
		time.Sleep(time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const every = time.Minute

type harness struct {
	t           *testing.T
	clock       *fakeClock
	conns, runs atomic.Int64
	stops       atomic.Int64
	failFirst   int64 // this many Stop calls fail
	logs        *lockedBuffer
	done        chan error
	w           *idle.Watcher
}

func startWatcher(t *testing.T, stopAfter time.Duration, failFirst int64) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), logs: &lockedBuffer{}, done: make(chan error, 1), failFirst: failFirst}
	w, err := idle.New(idle.Options{
		StopAfter: stopAfter,
		Activity:  func() (int, int) { return int(h.conns.Load()), int(h.runs.Load()) },
		Stop: func(context.Context) error {
			if n := h.stops.Add(1); n <= h.failFirst {
				return fmt.Errorf("UnauthorizedOperation (attempt %d)", n)
			}
			return nil
		},
		Clock:      h.clock,
		CheckEvery: every,
		Logger:     slog.New(slog.NewTextHandler(h.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testwait.Patience(t)):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

// tick lets n check intervals pass, one at a time.
func (h *harness) tick(n int) {
	h.t.Helper()
	for range n {
		h.clock.waitForWaiter(h.t)
		h.clock.Advance(every)
	}
	h.clock.waitForWaiter(h.t)
}

func (h *harness) wantStops(n int64, when string) {
	h.t.Helper()
	if got := h.stops.Load(); got != n {
		h.t.Fatalf("%s: %d Stop calls, want %d\nlogs:\n%s", when, got, n, h.logs)
	}
}

func TestStopsAfterIdlePeriod(t *testing.T) {
	h := startWatcher(t, 30*time.Minute, 0)
	h.tick(29)
	h.wantStops(0, "after 29 idle minutes")
	h.tick(1)
	h.wantStops(1, "after 30 idle minutes")
	logs := h.logs.String()
	if !strings.Contains(logs, "no connection and no run for 30m0s: stopping this instance (gateway.idle.stopAfterMinutes)") {
		t.Errorf("the log does not say why:\n%s", logs)
	}
	h.tick(90)
	h.wantStops(1, "long after the stop")
}

func TestNeverWhileConnected(t *testing.T) {
	h := startWatcher(t, 30*time.Minute, 0)
	h.conns.Store(1)
	h.tick(240)
	h.wantStops(0, "with a client connected for 4 hours")
	h.conns.Store(0)
	h.tick(29)
	h.wantStops(0, "29 minutes after the client left")
	h.tick(1)
	h.wantStops(1, "30 minutes after the client left")
}

func TestNeverWhileRunActive(t *testing.T) {
	h := startWatcher(t, 30*time.Minute, 0)
	// A long agent run with nobody watching (the client went away) still
	// counts as use.
	h.runs.Store(1)
	h.tick(240)
	h.wantStops(0, "with a run active for 4 hours")
	h.runs.Store(0)
	h.tick(30)
	h.wantStops(1, "30 minutes after the run ended")
}

func TestActivityResetsTimer(t *testing.T) {
	h := startWatcher(t, 30*time.Minute, 0)
	h.tick(20)
	h.conns.Store(2)
	h.tick(1)
	h.conns.Store(0)
	h.tick(29)
	h.wantStops(0, "29 minutes after the last activity")
	h.tick(1)
	h.wantStops(1, "30 minutes after the last activity")

	// After a stop, new activity (the stop has not taken effect yet, or
	// failed silently) arms it again.
	h.runs.Store(1)
	h.tick(1)
	h.runs.Store(0)
	h.tick(30)
	h.wantStops(2, "idle again after activity")
	if !strings.Contains(h.logs.String(), "activity resumed") {
		t.Errorf("logs:\n%s", h.logs)
	}
}

func TestTouchCountsActivityBetweenChecks(t *testing.T) {
	h := startWatcher(t, 30*time.Minute, 0)
	h.tick(20)
	// A client came and went between two checks: Activity never saw it.
	h.clock.Advance(30 * time.Second)
	h.w.Touch()
	h.tick(29)
	h.wantStops(0, "29.5 minutes after the touch")
	h.tick(1)
	h.wantStops(1, "30.5 minutes after the touch")
}

func TestNilWatcher(t *testing.T) {
	var w *idle.Watcher // what Setup returns when idle stop is off
	w.Touch()
	if err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFailingStopIsRetriedWithBackoff(t *testing.T) {
	h := startWatcher(t, 30*time.Minute, 3)
	h.tick(30)
	h.wantStops(1, "first attempt")
	h.tick(1) // backoff 1 interval: the next check retries
	h.wantStops(2, "second attempt")
	h.tick(1)
	h.wantStops(2, "within the 2-interval backoff")
	h.tick(1)
	h.wantStops(3, "third attempt")
	h.tick(3)
	h.wantStops(3, "within the 4-interval backoff")
	h.tick(1)
	h.wantStops(4, "fourth attempt, which succeeds")
	h.tick(120)
	h.wantStops(4, "after success")
	logs := h.logs.String()
	if strings.Count(logs, "stopping this instance failed; will try again") != 3 || !strings.Contains(logs, "UnauthorizedOperation (attempt 3)") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestBackoffIsCapped(t *testing.T) {
	h := startWatcher(t, 5*time.Minute, 1000)
	h.tick(5)
	// 1, 2, 4, 8, 16, 30, 30 … intervals with the default 30-minute cap.
	h.tick(1 + 2 + 4 + 8 + 16 + 30 + 30)
	h.wantStops(8, "with a lasting failure")
}

func TestNewRejectsBadOptions(t *testing.T) {
	stop := func(context.Context) error { return nil }
	act := func() (int, int) { return 0, 0 }
	for name, o := range map[string]idle.Options{
		"zero period":  {Activity: act, Stop: stop},
		"no activity":  {StopAfter: time.Minute, Stop: stop},
		"no stop func": {StopAfter: time.Minute, Activity: act},
	} {
		if _, err := idle.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The whole path with the real SDK clients: the instance ID comes from the
// (fake) metadata service, and the stop reaches the (fake) EC2 API.
func TestIdleStopsItsOwnInstance(t *testing.T) {
	const self, other = "i-0123456789abcdef0", "i-0fedcba9876543210"
	ec2 := ec2test.NewServer()
	defer ec2.Close()
	ec2.AddInstance(ec2test.Instance{ID: self, State: ec2test.Running})
	ec2.AddInstance(ec2test.Instance{ID: other, State: ec2test.Running})
	md := ec2test.NewIMDS(self, "eu-central-1")
	defer md.Close()

	clock := newFakeClock()
	logs := &lockedBuffer{}
	var conns atomic.Int64
	w, err := idle.Setup(context.Background(), idle.SetupOptions{
		StopAfter:    30 * time.Minute,
		Activity:     func() (int, int) { return int(conns.Load()), 0 },
		Logger:       slog.New(slog.NewTextHandler(logs, nil)),
		IMDSEndpoint: md.URL(),
		EC2Endpoint:  ec2.URL(),
		Credentials:  ec2.Credentials(),
		Clock:        clock,
		CheckEvery:   every,
	})
	if err != nil || w == nil {
		t.Fatalf("Setup = %v, %v\n%s", w, err, logs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	h := &harness{t: t, clock: clock}

	conns.Store(1)
	h.tick(60)
	if n := len(ec2.CallsOf("StopInstances")); n != 0 {
		t.Fatalf("%d stops while a client was connected", n)
	}
	conns.Store(0)
	h.tick(30)
	stops := ec2.CallsOf("StopInstances")
	if len(stops) != 1 || len(stops[0].InstanceIDs) != 1 || stops[0].InstanceIDs[0] != self || stops[0].Region != "eu-central-1" {
		t.Fatalf("StopInstances calls = %+v\nlogs:\n%s", stops, logs)
	}
	if ec2.State(self) != ec2test.Stopping || ec2.State(other) != ec2test.Running {
		t.Errorf("states: self %s, other %s", ec2.State(self), ec2.State(other))
	}
	for _, want := range []string{"idle stop is on", "instance=" + self, "region=eu-central-1", "stopping this instance"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestIdleStopRetriesRefusedStop(t *testing.T) {
	const self = "i-0123456789abcdef0"
	ec2 := ec2test.NewServer()
	defer ec2.Close()
	ec2.AddInstance(ec2test.Instance{ID: self, State: ec2test.Running})
	ec2.SetError("StopInstances", "UnauthorizedOperation", "You are not authorized to perform this operation.")
	md := ec2test.NewIMDS(self, "eu-central-1")
	defer md.Close()
	clock := newFakeClock()
	logs := &lockedBuffer{}
	w, err := idle.Setup(context.Background(), idle.SetupOptions{
		StopAfter: 10 * time.Minute, Activity: func() (int, int) { return 0, 0 },
		Logger:       slog.New(slog.NewTextHandler(logs, nil)),
		IMDSEndpoint: md.URL(), EC2Endpoint: ec2.URL(),
		Credentials: ec2.Credentials(),
		Clock:       clock, CheckEvery: every,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h := &harness{t: t, clock: clock}
	h.tick(10)
	if !strings.Contains(logs.String(), "ec2:StopInstances") {
		t.Errorf("the log does not name the missing permission:\n%s", logs)
	}
	ec2.SetError("StopInstances", "", "")
	h.tick(1)
	if ec2.State(self) != ec2test.Stopping || len(ec2.CallsOf("StopInstances")) != 2 {
		t.Errorf("after the permission was fixed: %s, %d calls", ec2.State(self), len(ec2.CallsOf("StopInstances")))
	}
}

func TestSetupOffEC2(t *testing.T) {
	md := ec2test.NewIMDS("i-0123456789abcdef0", "eu-central-1")
	addr := md.URL()
	md.Close() // nothing answers there now, as off EC2
	logs := &lockedBuffer{}
	w, err := idle.Setup(context.Background(), idle.SetupOptions{
		StopAfter: 30 * time.Minute, Activity: func() (int, int) { return 0, 0 },
		Logger: slog.New(slog.NewTextHandler(logs, nil)), IMDSEndpoint: addr,
	})
	if w != nil || err != nil {
		t.Fatalf("off EC2: %v, %v", w, err)
	}
	if !strings.Contains(logs.String(), "not running on EC2") {
		t.Errorf("Setup did not say why it does nothing:\n%s", logs)
	}

	logs = &lockedBuffer{}
	w, err = idle.Setup(context.Background(), idle.SetupOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if w != nil || err != nil || !strings.Contains(logs.String(), "idle stop is off") {
		t.Errorf("StopAfter 0: %v, %v, logs %s", w, err, logs)
	}
}

func TestSetupBadIdentity(t *testing.T) {
	// A metadata service that answers, but with an identity document for
	// another instance: on EC2 yet unusable. That is an error, not "off
	// EC2", since stopping the wrong instance would be far worse.
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/latest/api/token":
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
			fmt.Fprint(w, "token")
		case "/latest/meta-data/instance-id":
			fmt.Fprint(w, "i-0123456789abcdef0")
		case "/latest/dynamic/instance-identity/document":
			fmt.Fprint(w, `{"instanceId":"i-0fedcba9876543210","region":"eu-central-1"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer md.Close()
	w, err := idle.Setup(context.Background(), idle.SetupOptions{
		StopAfter: time.Minute, Activity: func() (int, int) { return 0, 0 },
		IMDSEndpoint: md.URL,
	})
	if err == nil || w != nil || !strings.Contains(err.Error(), "i-0fedcba9876543210") {
		t.Fatalf("Setup with a confused metadata service: %v, %v", w, err)
	}
}

// TestBeforeStopHook: the wake planner's answer gates every stop; an error
// from it is a failed stop (retried, logged), never a stop without a wake.
func TestBeforeStopHook(t *testing.T) {
	tests := []struct {
		name string
		// answers are BeforeStop's results, one per call; the last repeats.
		answers   []error // nil: stop; errStay: stay up; other: failure
		ticks     int
		wantStops int64
		wantCalls int64
		wantLog   string
	}{
		{"planner agrees", []error{nil}, 10, 1, 1, "stop requested"},
		{"something due soon, then not", []error{errStay, errStay, nil}, 12, 1, 3, "something is due soon"},
		{"schedule cannot be written", []error{fmt.Errorf("wake: writing schedule: AccessDeniedException")}, 20, 0, 4, "AccessDeniedException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			logs := &lockedBuffer{}
			var stops, calls atomic.Int64
			w, err := idle.New(idle.Options{
				StopAfter: 10 * time.Minute,
				Activity:  func() (int, int) { return 0, 0 },
				Stop:      func(context.Context) error { stops.Add(1); return nil },
				BeforeStop: func(context.Context) (bool, error) {
					n := calls.Add(1)
					a := tt.answers[min(int(n), len(tt.answers))-1]
					switch {
					case a == nil:
						return true, nil
					case a == errStay:
						return false, nil
					}
					return false, a
				},
				Clock: clock, CheckEvery: every,
				Logger: slog.New(slog.NewTextHandler(logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() { cancel(); <-done }()
			h := &harness{t: t, clock: clock}
			h.tick(tt.ticks)
			if stops.Load() != tt.wantStops || calls.Load() != tt.wantCalls {
				t.Errorf("%d stops, %d planner calls; want %d, %d\n%s", stops.Load(), calls.Load(), tt.wantStops, tt.wantCalls, logs)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("logs lack %q:\n%s", tt.wantLog, logs)
			}
		})
	}
}

var errStay = fmt.Errorf("stay up")

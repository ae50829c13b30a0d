// Package idle stops a Koi's own EC2 instance when nobody has used it for a
// while (gateway.idle.stopAfterMinutes): an idle agent should not bill by
// the hour. `skykoi koi start` and `skykoi koi wait` wake it again; its
// volumes, and so its sessions and workspace, survive the stop.
//
// A Watcher asks the gateway for its activity at a fixed interval. Any
// connected client or active run counts as use and restarts the idle
// period; once the period has passed with neither, the Watcher logs why and
// stops the instance, once. Setup builds a Watcher for the instance the
// gateway runs on, and does nothing (saying so) off EC2.
package idle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultCheckEvery = time.Minute
	// DefaultMaxBackoff caps the wait between attempts of a failing stop.
	DefaultMaxBackoff = 30 * time.Minute
	// stopTimeout bounds one Stop call, so a hung request cannot stall the
	// watcher (the next check retries).
	stopTimeout = time.Minute
)

// Clock is the time source of a Watcher; tests replace it.
type Clock interface {
	Now() time.Time
	// After sends the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Watcher.
type Options struct {
	// StopAfter is how long the gateway must go without a connection and
	// without a run before the instance stops. Must be positive.
	StopAfter time.Duration
	// Activity reports the gateway's open client connections and active
	// runs. It is called from the Watcher's goroutine and must be safe to
	// call concurrently with the gateway's work.
	Activity func() (connections, activeRuns int)
	// Stop stops this instance (koi.Client.Stop on its own ID).
	Stop func(ctx context.Context) error
	// BeforeStop, when set, runs before each Stop (the wake planner:
	// gateway/wake). stop false means stay up for now, and the next check
	// asks again; an error means the wake could not be arranged, which is
	// handled like a failed Stop (no stop, retried with backoff), so a
	// due job is never slept through.
	BeforeStop func(ctx context.Context) (stop bool, err error)
	// Clock defaults to the real one.
	Clock Clock
	// CheckEvery is the interval between looks at Activity; default
	// DefaultCheckEvery. The stop comes at most this late.
	CheckEvery time.Duration
	// MaxBackoff caps the delay between retries of a failing Stop; default
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Watcher watches for idleness and stops the instance. Run it once.
type Watcher struct {
	o Options

	mu      sync.Mutex
	touched time.Time
}

// New checks opts and fills in defaults.
func New(opts Options) (*Watcher, error) {
	if opts.StopAfter <= 0 {
		return nil, fmt.Errorf("idle: StopAfter must be positive, got %s", opts.StopAfter)
	}
	if opts.Activity == nil || opts.Stop == nil {
		return nil, errors.New("idle: Activity and Stop are required")
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = DefaultCheckEvery
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.CheckEvery {
		opts.MaxBackoff = opts.CheckEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{o: opts}, nil
}

// Touch records activity now. Activity is only sampled every CheckEvery,
// so a connection or run that begins and ends between two checks would go
// unseen; the gateway calls Touch when a connection closes or a run ends
// to count it. Safe for concurrent use, and a no-op on a nil Watcher (what
// Setup returns when idle stop is off).
func (w *Watcher) Touch() {
	if w == nil {
		return
	}
	now := w.o.Clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.After(w.touched) {
		w.touched = now
	}
}

func (w *Watcher) lastTouch() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.touched
}

// Run watches until ctx ends, then returns nil; on a nil Watcher it
// returns nil at once. The idle period starts when Run does: a gateway
// that has just started (perhaps just woken) gets the full period before
// anyone must connect.
func (w *Watcher) Run(ctx context.Context) error {
	if w == nil {
		return nil
	}
	o := w.o
	idleSince := o.Clock.Now()
	// stopped: Stop succeeded, and is not called again until activity
	// resumes (the instance is on its way down; the state change itself
	// will end this process).
	stopped := false
	failures := 0
	var retryAt time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.Clock.After(o.CheckEvery):
		}
		now := o.Clock.Now()
		conns, runs := o.Activity()
		touched := w.lastTouch()
		if conns > 0 || runs > 0 || touched.After(idleSince) {
			if stopped || failures > 0 {
				o.Logger.Info("idle: activity resumed; the idle period starts again",
					"connections", conns, "activeRuns", runs)
			}
			idleSince, stopped, failures, retryAt = now, false, 0, time.Time{}
			if conns == 0 && runs == 0 {
				// Only a touch: the idle period counts from it, not from
				// this check.
				idleSince = touched
			}
			continue
		}
		idleFor := now.Sub(idleSince)
		if stopped || idleFor < o.StopAfter || now.Before(retryAt) {
			continue
		}
		o.Logger.Info(fmt.Sprintf("idle: no connection and no run for %s: stopping this instance (gateway.idle.stopAfterMinutes)", o.StopAfter),
			"idleFor", idleFor.Round(time.Second).String(), "stopAfter", o.StopAfter.String(), "attempt", failures+1)
		stopCtx, cancel := context.WithTimeout(ctx, stopTimeout)
		stop, err := true, error(nil)
		if o.BeforeStop != nil {
			stop, err = o.BeforeStop(stopCtx)
		}
		if err == nil && !stop {
			cancel()
			o.Logger.Info("idle: not stopping now: something is due soon")
			continue
		}
		if err == nil {
			err = o.Stop(stopCtx)
		}
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			delay := w.backoff(failures)
			retryAt = now.Add(delay)
			o.Logger.Error("idle: stopping this instance failed; will try again",
				"err", err, "attempt", failures, "retryIn", delay.String())
			continue
		}
		stopped = true
		o.Logger.Info("idle: stop requested; `skykoi koi start` and `skykoi koi wait` wake this Koi")
	}
}

// backoff is the wait after the n-th failed stop (from 1): one check
// interval, doubling, capped, so a lasting failure (a missing IAM
// permission) is logged now and then rather than every minute forever.
func (w *Watcher) backoff(n int) time.Duration {
	d := w.o.CheckEvery
	for i := 1; i < n && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.o.MaxBackoff)
}

package agent

import (
	"sync"
	"time"
)

// Clock is the time source of the agent runtime; tests inject a fake one.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is what AfterFunc returns.
type Timer interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// RealClock returns the wall clock.
func RealClock() Clock { return realClock{} }

// coalescer turns a stream of text deltas into at most one emission per
// interval: the first delta goes out at once (leading edge), later ones
// accumulate and go out when the interval has passed (trailing edge), and
// Flush sends whatever is pending immediately (before a tool event, the end
// of a run, a final or an error), so nothing is lost or reordered.
type coalescer struct {
	interval time.Duration
	clock    Clock
	emit     func(delta string) // called with mu held: emissions stay in order

	// mu guards the state below and serialises emissions between the
	// caller and the timer.
	mu       sync.Mutex
	pending  []byte
	lastSent time.Time
	timer    Timer
	closed   bool
}

func newCoalescer(interval time.Duration, clock Clock, emit func(string)) *coalescer {
	return &coalescer{interval: interval, clock: clock, emit: emit}
}

// Add queues delta and emits now if the interval allows.
func (c *coalescer) Add(delta string) {
	if delta == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.pending = append(c.pending, delta...)
	now := c.clock.Now()
	if c.lastSent.IsZero() || now.Sub(c.lastSent) >= c.interval {
		c.emit(c.take(now))
		return
	}
	if c.timer == nil {
		c.timer = c.clock.AfterFunc(c.interval-now.Sub(c.lastSent), c.onTimer)
	}
}

// take returns the pending text and marks it sent; c.mu is held.
func (c *coalescer) take(now time.Time) string {
	out := string(c.pending)
	c.pending = c.pending[:0]
	c.lastSent = now
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	return out
}

func (c *coalescer) onTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	if c.closed || len(c.pending) == 0 {
		return
	}
	c.emit(c.take(c.clock.Now()))
}

// Flush emits pending text now.
func (c *coalescer) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
}

func (c *coalescer) flushLocked() {
	if len(c.pending) == 0 {
		if c.timer != nil {
			c.timer.Stop()
			c.timer = nil
		}
		return
	}
	c.emit(c.take(c.clock.Now()))
}

// Close flushes and stops the coalescer; later Adds are ignored.
func (c *coalescer) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
	c.closed = true
}

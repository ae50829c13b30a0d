package gateway

import (
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// manualClock implements idle.Clock; time moves only by Advance.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []manualWaiter
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, manualWaiter{c.now.Add(d), ch})
	return ch
}

func (c *manualClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// TestIdleStopWiredIn: on "EC2" (fake IMDS), the gateway stops its own
// instance after the idle period, but never while a client is connected.
func TestIdleStopWiredIn(t *testing.T) {
	imds := ec2test.NewIMDS("i-0123456789abcdef0", "us-east-1")
	defer imds.Close()
	ec2 := ec2test.NewServer()
	defer ec2.Close()
	ec2.AddInstance(ec2test.Instance{ID: "i-0123456789abcdef0", State: "running"})
	clock := &manualClock{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	ts := startServer(t, withConfig("gateway.idle.stopAfterMinutes", 30), withOptions(func(o *Options) {
		o.IMDSEndpoint, o.EC2Endpoint = imds.URL(), ec2.URL()
		o.IdleClock, o.IdleCheckEvery = clock, time.Minute
	}))
	waitFor(t, "the idle watcher to start", func() bool { return ts.idle.Load() != nil && clock.pending() > 0 })
	c, _ := dialConnected(t, ts)
	// Two idle hours with a client connected: no stop.
	for i := 0; i < 120; i++ {
		waitFor(t, "the next idle check", func() bool { return clock.pending() > 0 })
		clock.Advance(time.Minute)
	}
	waitFor(t, "the check after two hours", func() bool { return clock.pending() > 0 })
	if n := len(ec2.CallsOf("StopInstances")); n != 0 {
		t.Fatalf("stopped %d times with a client connected", n)
	}
	c.ws.Close()
	waitFor(t, "the client to leave", func() bool { return len(ts.connList()) == 0 })
	for i := 0; i < 31 && len(ec2.CallsOf("StopInstances")) == 0; i++ {
		waitFor(t, "the next idle check", func() bool { return clock.pending() > 0 })
		clock.Advance(time.Minute)
	}
	waitFor(t, "StopInstances", func() bool { return len(ec2.CallsOf("StopInstances")) == 1 })
	if calls := ec2.CallsOf("StopInstances"); calls[0].InstanceIDs[0] != "i-0123456789abcdef0" {
		t.Errorf("stopped %v", calls[0].InstanceIDs)
	}
}

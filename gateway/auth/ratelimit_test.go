package auth

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestLimiter(c *fakeClock) *RateLimiter {
	return NewRateLimiter(DefaultMaxAttempts, DefaultWindow, DefaultLockout, c.Now)
}

// step is one action in a limiter script. op is "fail", "allow" or
// "succeed"; n repeats it; wantOK is Allow's ok or Fail's !locked (checked on
// the last repetition, every earlier one must be ok); wantRetry is checked
// on the last repetition.
type step struct {
	advance   time.Duration
	op        string
	ip        string
	n         int
	wantOK    bool
	wantRetry time.Duration
}

func TestRateLimiterScripts(t *testing.T) {
	const ip = "203.0.113.7"
	tests := []struct {
		name  string
		steps []step
	}{
		{"nine failures are fine", []step{
			{op: "fail", ip: ip, n: 9, wantOK: true},
			{op: "allow", ip: ip, n: 1, wantOK: true},
		}},
		{"tenth failure locks for the lockout", []step{
			{op: "fail", ip: ip, n: 10, wantOK: false, wantRetry: DefaultLockout},
		}},
		{"lockout counts down and ends", []step{
			{op: "fail", ip: ip, n: 10, wantOK: false, wantRetry: 5 * time.Minute},
			{op: "allow", ip: ip, n: 1, wantOK: false, wantRetry: 5 * time.Minute},
			{advance: time.Minute, op: "allow", ip: ip, n: 1, wantOK: false, wantRetry: 4 * time.Minute},
			{advance: 3*time.Minute + 59*time.Second, op: "allow", ip: ip, n: 1, wantOK: false, wantRetry: time.Second},
			{advance: time.Second, op: "allow", ip: ip, n: 1, wantOK: true},
			// A fresh count after the lockout.
			{op: "fail", ip: ip, n: 9, wantOK: true},
			{op: "fail", ip: ip, n: 1, wantOK: false, wantRetry: DefaultLockout},
		}},
		{"failure during lockout does not extend it", []step{
			{op: "fail", ip: ip, n: 10, wantOK: false, wantRetry: 5 * time.Minute},
			{advance: 2 * time.Minute, op: "fail", ip: ip, n: 1, wantOK: false, wantRetry: 3 * time.Minute},
			{op: "allow", ip: ip, n: 1, wantOK: false, wantRetry: 3 * time.Minute},
		}},
		{"failures older than the window do not count", []step{
			{op: "fail", ip: ip, n: 9, wantOK: true},
			{advance: DefaultWindow, op: "fail", ip: ip, n: 9, wantOK: true},
			{op: "allow", ip: ip, n: 1, wantOK: true},
		}},
		{"the window slides", []step{
			{op: "fail", ip: ip, n: 5, wantOK: true},
			{advance: 30 * time.Second, op: "fail", ip: ip, n: 4, wantOK: true},
			{advance: 29 * time.Second, op: "fail", ip: ip, n: 1, wantOK: false, wantRetry: DefaultLockout},
		}},
		{"the window slides past the oldest", []step{
			{op: "fail", ip: ip, n: 5, wantOK: true},
			{advance: 30 * time.Second, op: "fail", ip: ip, n: 4, wantOK: true},
			// The first five are now exactly a window old.
			{advance: 30 * time.Second, op: "fail", ip: ip, n: 5, wantOK: true},
			{op: "fail", ip: ip, n: 1, wantOK: false, wantRetry: DefaultLockout},
		}},
		{"succeed clears failures", []step{
			{op: "fail", ip: ip, n: 9, wantOK: true},
			{op: "succeed", ip: ip, n: 1},
			{op: "fail", ip: ip, n: 9, wantOK: true},
			{op: "fail", ip: ip, n: 1, wantOK: false, wantRetry: DefaultLockout},
		}},
		{"ipv4-mapped shares the ipv4 bucket", []step{
			{op: "fail", ip: "::ffff:203.0.113.7", n: 5, wantOK: true},
			{op: "fail", ip: "203.0.113.7", n: 4, wantOK: true},
			{op: "fail", ip: "::ffff:cb00:7107", n: 1, wantOK: false, wantRetry: DefaultLockout},
			{op: "allow", ip: "203.0.113.7", n: 1, wantOK: false, wantRetry: DefaultLockout},
			{op: "allow", ip: "::ffff:203.0.113.7", n: 1, wantOK: false, wantRetry: DefaultLockout},
		}},
		{"succeed through the mapped form", []step{
			{op: "fail", ip: "203.0.113.7", n: 9, wantOK: true},
			{op: "succeed", ip: "::ffff:203.0.113.7", n: 1},
			{op: "fail", ip: "203.0.113.7", n: 9, wantOK: true},
		}},
		{"distinct ipv6 addresses are distinct", []step{
			{op: "fail", ip: "2001:db8::1", n: 9, wantOK: true},
			{op: "fail", ip: "2001:db8::2", n: 9, wantOK: true},
			{op: "fail", ip: "2001:db8::2", n: 1, wantOK: false, wantRetry: DefaultLockout},
			{op: "allow", ip: "2001:db8::1", n: 1, wantOK: true},
		}},
		{"ipv6 spellings and zones share a bucket", []step{
			{op: "fail", ip: "2001:DB8:0::1", n: 5, wantOK: true},
			{op: "fail", ip: "fe80::1%eth0", n: 9, wantOK: true},
			{op: "fail", ip: "2001:db8::1", n: 4, wantOK: true},
			{op: "fail", ip: "2001:0db8::0001", n: 1, wantOK: false, wantRetry: DefaultLockout},
			{op: "fail", ip: "fe80::1", n: 1, wantOK: false, wantRetry: DefaultLockout},
		}},
		{"an address is not locked by a neighbour", []step{
			{op: "fail", ip: "203.0.113.8", n: 10, wantOK: false, wantRetry: DefaultLockout},
			{op: "allow", ip: ip, n: 1, wantOK: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newTestLimiter(clock)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				for k := range s.n {
					last := k == s.n-1
					var ok bool
					var retry time.Duration
					switch s.op {
					case "fail":
						var locked bool
						locked, retry = l.Fail(s.ip)
						ok = !locked
					case "allow":
						ok, retry = l.Allow(s.ip)
					case "succeed":
						l.Succeed(s.ip)
						continue
					default:
						t.Fatalf("bad op %q", s.op)
					}
					if !last && !ok {
						t.Fatalf("step %d (%s %s) repetition %d: not ok (retry %v) before the last", i, s.op, s.ip, k+1, retry)
					}
					if last && (ok != s.wantOK || retry != s.wantRetry) {
						t.Fatalf("step %d (%s %s ×%d): ok=%v retry=%v, want ok=%v retry=%v", i, s.op, s.ip, s.n, ok, retry, s.wantOK, s.wantRetry)
					}
				}
			}
		})
	}
}

func TestNormalizeIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.2.3.4", "1.2.3.4"},
		{"::ffff:1.2.3.4", "1.2.3.4"},
		{"::FFFF:0102:0304", "1.2.3.4"},
		{"2001:DB8:0:0::1", "2001:db8::1"},
		{"fe80::1%eth0", "fe80::1"},
		{"::ffff:1.2.3.4%eth0", "1.2.3.4"},
		{"::1", "::1"},
		{"not an ip", "not an ip"},
		{"1.2.3.4:80", "1.2.3.4:80"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := NormalizeIP(tt.in); got != tt.want {
			t.Errorf("NormalizeIP(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRateLimiterPrunesExpired(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock)
	l.Fail("192.0.2.1")
	for range 10 {
		l.Fail("192.0.2.2")
	}
	if got := l.Len(); got != 2 {
		t.Fatalf("Len = %d, want 2", got)
	}
	clock.Advance(DefaultWindow)
	if got := l.Len(); got != 1 {
		t.Fatalf("after the window Len = %d, want 1 (the lockout remains)", got)
	}
	clock.Advance(DefaultLockout - DefaultWindow)
	if got := l.Len(); got != 0 {
		t.Fatalf("after the lockout Len = %d, want 0", got)
	}
}

func TestRateLimiterCap(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock)
	const locked = "198.51.100.1"
	for range DefaultMaxAttempts {
		l.Fail(locked)
	}
	base := netip.MustParseAddr("2001:db8::")
	a := base
	for i := range MaxTrackedIPs + 1000 {
		a = a.Next()
		l.Fail(a.String())
		if i%4096 == 0 {
			clock.Advance(time.Millisecond)
			if n := l.Len(); n > MaxTrackedIPs {
				t.Fatalf("after %d addresses Len = %d, over the cap %d", i+1, n, MaxTrackedIPs)
			}
		}
	}
	if n := l.Len(); n != MaxTrackedIPs {
		t.Fatalf("Len = %d, want exactly the cap %d", n, MaxTrackedIPs)
	}
	// Eviction takes what expires soonest: the spray's single failures,
	// not a running lockout.
	if ok, _ := l.Allow(locked); ok {
		t.Errorf("a locked-out address was evicted by a spray of new addresses")
	}
	// The oldest of the spray went first, the newest is still counted.
	if !l.tracked(a.String()) {
		t.Errorf("the newest address %s is not tracked", a)
	}
	if l.tracked(base.Next().String()) {
		t.Errorf("the oldest address %s is still tracked", base.Next())
	}
}

// tracked reports whether ip has an entry; only tests need to look inside.
func (l *RateLimiter) tracked(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.entries[NormalizeIP(ip)]
	return ok
}

func TestRateLimiterConcurrent(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock)
	const (
		workers = 8
		each    = 25
		shared  = "192.0.2.50"
	)
	var mu sync.Mutex
	notLocked := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			own := fmt.Sprintf("192.0.2.%d", 100+w)
			for i := range each {
				if locked, _ := l.Fail(shared); !locked {
					mu.Lock()
					notLocked++
					mu.Unlock()
				}
				l.Allow(shared)
				l.Fail(own)
				if i%3 == 0 {
					l.Succeed(own)
				}
				l.Len()
			}
		})
	}
	wg.Wait()
	// The clock did not move, so exactly maxAttempts-1 failures on the
	// shared address got through before the lockout, whatever the
	// interleaving.
	if notLocked != DefaultMaxAttempts-1 {
		t.Errorf("%d failures on the shared address were not locked, want %d", notLocked, DefaultMaxAttempts-1)
	}
	if ok, retry := l.Allow(shared); ok || retry != DefaultLockout {
		t.Errorf("Allow(shared) = %v, %v; want false, %v", ok, retry, DefaultLockout)
	}
}

func TestNewRateLimiterClamps(t *testing.T) {
	clock := newFakeClock()
	l := NewRateLimiter(0, -time.Second, time.Minute, clock.Now)
	if locked, retry := l.Fail("192.0.2.1"); !locked || retry != time.Minute {
		t.Errorf("maxAttempts 0: first Fail = %v, %v; want locked for 1m", locked, retry)
	}
}

package auth

import (
	"container/heap"
	"net/netip"
	"sync"
	"time"
)

// The protocol's failed-auth policy: 10 failures from one client IP within
// 60 s lock that IP out for 5 minutes. Ten is generous for a person mistyping
// a password and negligible for guessing a 256-bit token.
const (
	DefaultMaxAttempts = 10
	DefaultWindow      = 60 * time.Second
	DefaultLockout     = 5 * time.Minute
)

// MaxTrackedIPs caps how many client addresses the limiter remembers. With
// the default policy an entry measures about 175 bytes after one failure and
// 300 after nine (a long IPv6 key, the timestamps, the map and heap slots),
// so the cap holds the limiter under about 20 MiB even when an attacker with
// an IPv6 prefix sprays failures from fresh addresses. A personal gateway
// sees a handful of real client addresses, far below the cap, so in normal
// use nothing is ever evicted.
const MaxTrackedIPs = 1 << 16

// RateLimiter counts failed authentication attempts per client IP in a
// sliding window and locks an IP out once it reaches the limit. It is safe
// for concurrent use.
//
// Memory stays bounded: entries are dropped as soon as they carry no
// information (no failure within the window and no lockout running), and
// when MaxTrackedIPs addresses are tracked the one whose information expires
// soonest is evicted to make room. Evicting soonest-to-expire keeps running
// lockouts, which expire last, in preference to single failures, so spraying
// new addresses does not cheaply free an address that is locked out.
type RateLimiter struct {
	maxAttempts int
	window      time.Duration
	lockout     time.Duration
	now         func() time.Time
	maxEntries  int

	mu sync.Mutex
	// epoch anchors stored times as offsets: a time.Duration is 8 bytes
	// against time.Time's 24, and offsets taken with Sub keep the monotonic
	// clock, so a wall-clock step neither unlocks nor extends a lockout.
	epoch   time.Time
	entries map[string]*limitEntry
	byExp   expiryHeap
}

type limitEntry struct {
	ip string
	// failures holds the times of recent failures, oldest first; it never
	// exceeds maxAttempts because reaching that locks and clears it.
	failures    []time.Duration
	locked      bool
	lockedUntil time.Duration
	expires     time.Duration // when this entry stops mattering
	index       int           // position in byExp
}

// NewRateLimiter makes a limiter that locks an IP out for lockout once it
// has failed maxAttempts times within window. now is the clock (nil means
// time.Now); tests pass a fake one. A maxAttempts below 1 is taken as 1, and
// negative durations as zero.
func NewRateLimiter(maxAttempts int, window, lockout time.Duration, now func() time.Time) *RateLimiter {
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{
		maxAttempts: max(maxAttempts, 1),
		window:      max(window, 0),
		lockout:     max(lockout, 0),
		now:         now,
		maxEntries:  MaxTrackedIPs,
		epoch:       now(),
		entries:     make(map[string]*limitEntry),
	}
}

// Allow reports whether ip may attempt to authenticate now, and if not, how
// long until it may.
func (l *RateLimiter) Allow(ip string) (ok bool, retryAfter time.Duration) {
	ip = NormalizeIP(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tick()
	e := l.entries[ip]
	if e == nil || !e.locked || e.lockedUntil <= t {
		return true, 0
	}
	return false, e.lockedUntil - t
}

// Fail records a failed attempt from ip. It reports whether ip is now locked
// out and for how long. A failure while already locked out does not extend
// the lockout: the protocol promises a fixed lockout, and callers check
// Allow first anyway.
func (l *RateLimiter) Fail(ip string) (locked bool, retryAfter time.Duration) {
	ip = NormalizeIP(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tick()
	e := l.entries[ip]
	if e != nil && e.locked && e.lockedUntil > t {
		return true, e.lockedUntil - t
	}
	if e == nil {
		if len(l.entries) >= l.maxEntries {
			l.remove(l.byExp[0])
		}
		e = &limitEntry{ip: ip}
		l.entries[ip] = e
		heap.Push(&l.byExp, e)
	}
	e.locked = false
	// A failure counts while it is less than window old.
	keep := 0
	for keep < len(e.failures) && e.failures[keep] <= t-l.window {
		keep++
	}
	e.failures = append(e.failures[:0], e.failures[keep:]...)
	e.failures = append(e.failures, t)
	if len(e.failures) >= l.maxAttempts {
		e.failures = nil
		e.locked = true
		e.lockedUntil = t + l.lockout
		e.expires = e.lockedUntil
		heap.Fix(&l.byExp, e.index)
		return true, l.lockout
	}
	e.expires = t + l.window
	heap.Fix(&l.byExp, e.index)
	return false, 0
}

// Succeed forgets ip's failures, so a user who mistyped a few times and then
// got it right starts afresh. It would end a running lockout too, but a
// caller that checks Allow first never authenticates a locked-out IP.
func (l *RateLimiter) Succeed(ip string) {
	ip = NormalizeIP(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tick()
	if e := l.entries[ip]; e != nil {
		l.remove(e)
	}
}

// Len is the number of IPs currently tracked.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tick()
	return len(l.entries)
}

// tick returns the current time as an offset and drops entries that have
// expired by then. Every entry expires in heap order, so this costs
// O(log n) per dropped entry and nothing otherwise.
func (l *RateLimiter) tick() time.Duration {
	t := l.now().Sub(l.epoch)
	for len(l.byExp) > 0 && l.byExp[0].expires <= t {
		l.remove(l.byExp[0])
	}
	return t
}

func (l *RateLimiter) remove(e *limitEntry) {
	heap.Remove(&l.byExp, e.index)
	delete(l.entries, e.ip)
}

// NormalizeIP returns the form of a client address used as its rate-limit
// key: an IPv4-mapped IPv6 address (::ffff:1.2.3.4) becomes the IPv4 address,
// so a dual-stack listener cannot give one client two buckets; a zone is
// dropped, since it names the local interface rather than the client; IPv6 is
// printed canonically. A string that is not an IP address is returned
// unchanged.
func NormalizeIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	return a.WithZone("").Unmap().String()
}

// expiryHeap orders entries by expiry, soonest first: the front is both the
// next entry to drop and the cheapest one to evict.
type expiryHeap []*limitEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*limitEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

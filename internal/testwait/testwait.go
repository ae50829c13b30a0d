// Package testwait says how long a test may wait for a readiness signal or
// an asynchronous effect. The machines tests run on are shared: a fixed
// deadline that holds on a quiet laptop fails under a load average of 12,
// so waits follow the test binary's own -timeout instead.
package testwait

import (
	"testing"
	"time"
)

// noDeadline is the wait for benchmarks and -timeout 0, which have no
// deadline to follow.
const noDeadline = 10 * time.Minute

// Patience is three quarters of the time left before the test binary's
// -timeout: a loaded machine slows a test down instead of failing it, and a
// real hang still fails with the test's own message before the binary
// panics.
func Patience(tb testing.TB) time.Duration {
	t, ok := tb.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return noDeadline
	}
	d, ok := t.Deadline()
	if !ok {
		return noDeadline
	}
	return max(time.Until(d)*3/4, time.Second)
}

package gateway

import (
	"testing"
	"time"
)

// patience is how long a test waits for a readiness signal or an
// asynchronous effect: three quarters of the time left before the test
// binary's -timeout, so a loaded machine slows a test down instead of
// failing it, while a real hang still fails with the test's own message
// before the binary panics. Benchmarks and -timeout 0 have no deadline and
// get a generous constant.
func patience(tb testing.TB) time.Duration {
	const noDeadline = 10 * time.Minute
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

func TestPatienceScales(t *testing.T) {
	d, ok := t.Deadline()
	p := patience(t)
	switch {
	case !ok && p < time.Minute:
		t.Errorf("patience %v without a deadline, want minutes", p)
	case ok && (p < time.Until(d)/2 || p >= time.Until(d)):
		t.Errorf("patience %v, want most of the %v left but not all", p, time.Until(d))
	}
}

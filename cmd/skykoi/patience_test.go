package main

import (
	"testing"
	"time"
)

// patience is how long a test waits for a readiness signal before it
// gives up: three quarters of the time left before the test binary's
// -timeout. A loaded machine then slows a test down instead of failing it,
// and a real hang still fails with the test's own message, before the
// binary's panic, rather than with a fixed deadline that a busy CI box can
// miss. With -timeout 0 (no deadline) it is a generous constant.
func patience(t *testing.T) time.Duration {
	const noDeadline = 10 * time.Minute
	d, ok := t.Deadline()
	if !ok {
		return noDeadline
	}
	return max(time.Until(d)*3/4, time.Second)
}

// TestPatienceScales: the wait follows the test's -timeout, which the
// coordinator raises on a loaded machine, instead of a fixed 20 s.
func TestPatienceScales(t *testing.T) {
	d, ok := t.Deadline()
	p := patience(t)
	switch {
	case !ok && p < time.Minute:
		t.Errorf("patience %v without a deadline, want minutes", p)
	case ok && p < time.Until(d)/2:
		t.Errorf("patience %v, want most of the %v left", p, time.Until(d))
	case ok && p >= time.Until(d):
		t.Errorf("patience %v outlasts the test's deadline in %v", p, time.Until(d))
	}
}

package testwait

import (
	"testing"
	"time"
)

// TestPatienceScales: the wait follows the test's -timeout instead of a
// fixed 20 s, and still ends before the binary's own panic.
func TestPatienceScales(t *testing.T) {
	d, ok := t.Deadline()
	p := Patience(t)
	switch {
	case !ok && p < time.Minute:
		t.Errorf("patience %v without a deadline, want minutes", p)
	case ok && p < time.Until(d)/2:
		t.Errorf("patience %v, want most of the %v left", p, time.Until(d))
	case ok && p >= time.Until(d):
		t.Errorf("patience %v outlasts the test's deadline in %v", p, time.Until(d))
	}
}

// withoutDeadline is a test run with -timeout 0.
type withoutDeadline struct{ testing.TB }

func (withoutDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }

// TestPatienceWithoutDeadline: -timeout 0 and benchmarks (no Deadline
// method) both get the generous constant.
func TestPatienceWithoutDeadline(t *testing.T) {
	for name, tb := range map[string]testing.TB{"-timeout 0": withoutDeadline{t}, "benchmark": &testing.B{}} {
		if p := Patience(tb); p != noDeadline {
			t.Errorf("%s: patience %v, want %v", name, p, noDeadline)
		}
	}
}

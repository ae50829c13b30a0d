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

func TestPatienceForBenchmarks(t *testing.T) {
	var b testing.B
	if p := Patience(&b); p != noDeadline {
		t.Errorf("a benchmark's patience is %v, want %v", p, noDeadline)
	}
}

package main

import (
	"testing"
	"time"

	"github.com/skykoi/skykoi/internal/testwait"
)

// patience is how long a test here waits for a readiness signal
// (internal/testwait: it follows the test binary's -timeout).
func patience(tb testing.TB) time.Duration { return testwait.Patience(tb) }

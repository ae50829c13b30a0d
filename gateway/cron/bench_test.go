package cron

import (
	"context"
	"sort"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFireLatency: how late an every-1s job starts after its
// scheduled time, through the real timer (reported: max and mean ms).
func BenchmarkFireLatency(b *testing.B) {
	var late []time.Duration
	started := make(chan time.Duration, 16)
	s, err := Open(Options{Dir: b.TempDir(), NewID: testID, Run: func(ctx context.Context, req RunRequest) RunResult {
		return RunResult{Status: StatusOK}
	}, Emit: func(e Event) {
		if e.Action == ActionStarted {
			started <- time.Since(time.UnixMilli(e.RunAtMs))
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j, err := s.Add(Input{Name: str("fire"), Schedule: &Schedule{Kind: KindAt, At: "1s"}, Payload: msg("x")})
		if err != nil {
			b.Fatal(err)
		}
		due := time.UnixMilli(*j.State.NextRunAtMs)
		<-started
		late = append(late, time.Since(due))
	}
	b.StopTimer()
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	var sum time.Duration
	for _, l := range late {
		sum += l
	}
	b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "max-late-ms")
	b.ReportMetric(float64(sum.Microseconds())/1000/float64(len(late)), "mean-late-ms")
}

// BenchmarkIdleWakeups: with 10,000 jobs due in an hour, the service's
// timer fires how many times over an idle 2 s (wanted: 0).
func BenchmarkIdleWakeups(b *testing.B) {
	var fires atomic.Int64
	s, err := Open(Options{Dir: b.TempDir(), NewID: testID, OnFire: func() { fires.Add(1) },
		Run: func(ctx context.Context, req RunRequest) RunResult { return RunResult{Status: StatusOK} }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	for i := 0; i < 10000; i++ {
		if _, err := s.Add(Input{Name: str("later"), Schedule: &Schedule{Kind: KindEvery, EveryMs: 3600_000}, Payload: msg("x")}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fires.Store(0)
		idle := time.NewTimer(2 * time.Second) // the interval observed, not a wait for a result
		<-idle.C
		b.ReportMetric(float64(fires.Load()), "wakeups/2s")
	}
}

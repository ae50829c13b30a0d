package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkMemorySearch: memory_search over 10,000 notes (a year of daily
// files, ~27 notes a day, plus MEMORY.md), index warm. Each iteration is one
// whole Search: the sync check (stat every file) and the FTS5 query. It
// reports p50 and p99 per search.
func BenchmarkMemorySearch(b *testing.B) {
	s, ws := newTestStore(b, time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC))
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("garden boiler dentist invoice train koi pond ferry recipe tomato gym locker cousin wedding " +
		"passport renewal deploy server backup router laptop printer budget rent insurance walk bicycle library novel")
	const notes, days = 10000, 365
	day := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	for d := range days {
		var bld strings.Builder
		for n := d; n < notes; n += days {
			fmt.Fprintf(&bld, "## note %d\n", n)
			for range 12 {
				bld.WriteString(words[rng.IntN(len(words))] + " ")
			}
			fmt.Fprintf(&bld, "fact%d\n\n", n)
		}
		writeFile(b, ws, dailyPath(day.AddDate(0, 0, d)), bld.String())
	}
	writeFile(b, ws, "MEMORY.md", "# Long term\nThe dog is called Biscuit.\n")
	ctx := context.Background()
	if err := s.syncIndex(ctx); err != nil {
		b.Fatal(err)
	}
	if got := countChunks(b, s, dailyPath(day)); got == 0 {
		b.Fatal("nothing indexed")
	}
	queries := []string{"gym locker", "fact4321", "passport renewal deadline", "dog called", "ferry to the island"}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := s.Search(ctx, queries[i%len(queries)], DefaultMaxResults, 0); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

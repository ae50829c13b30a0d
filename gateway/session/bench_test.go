package session

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkHistoryAssembly reads what one turn sends to the model from a
// 10,000-turn session (docs/PERFORMANCE.md):
//
//	go test ./gateway/session -run '^$' -bench HistoryAssembly -benchmem
//
// "context" is ContextMessages after a compaction that kept the last 20
// turns (what a turn reads now); "whole" is History over the whole
// transcript (what a turn read before compaction existed).
func BenchmarkHistoryAssembly(b *testing.B) {
	env := &env{dir: b.TempDir() + "/sessions", clk: newClock(t0), logs: &logBuf{}}
	env.opts = Options{Dir: env.dir, Now: env.clk.Now}
	s, err := Open(env.opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Resolve(""); err != nil {
		b.Fatal(err)
	}
	const turns = 10000
	text := strings.Repeat("a sentence of a typical chat turn. ", 12) // ~420 bytes
	var ids []string
	for i := range turns {
		for _, role := range []string{"user", "assistant"} {
			e, err := s.Append("", textMsg(role, fmt.Sprintf("%d %s", i, text)))
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, e.LastMessageID)
		}
	}
	if _, err := s.AppendCompaction("", Compaction{Summary: "summary", FirstKeptID: ids[len(ids)-40]}); err != nil {
		b.Fatal(err)
	}
	b.Run("context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := s.ContextMessages("", 1000)
			if err != nil || len(c.Messages) != 40 {
				b.Fatalf("%d messages, %v", len(c.Messages), err)
			}
		}
	})
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, m, err := s.History("", 1000); err != nil || len(m) != 1000 {
				b.Fatalf("%d messages, %v", len(m), err)
			}
		}
	})
}

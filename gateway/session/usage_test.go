package session

import (
	"reflect"
	"testing"
	"time"
)

func TestUsagePerDayAndModel(t *testing.T) {
	env := newEnv(t)
	tokyo := time.FixedZone("UTC+9", 9*3600)
	env.opts.Location = tokyo
	env.clk.Set(time.Date(2026, 1, 10, 23, 30, 0, 0, tokyo))
	s := env.open(t)
	mustResolve(t, s, "")
	mustResolve(t, s, "side")
	if _, err := s.Patch("side", Patch{Model: SetTo("amazon-bedrock/override")}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "", withUsage(textMsg("assistant", "a"), "amazon-bedrock/opus", 100, 10, 50, 5))
	mustAppend(t, s, "", textMsg("user", "no usage"))
	mustAppend(t, s, "side", withUsage(textMsg("assistant", "b"), "", 7, 3, 0, 0)) // falls back to the session model
	env.clk.Add(time.Hour)                                                         // 00:30 the next local day
	mustAppend(t, s, "", withUsage(textMsg("assistant", "c"), "amazon-bedrock/opus", 1, 2, 3, 4))
	mustAppend(t, s, "", withUsage(textMsg("assistant", "d"), "amazon-bedrock/haiku", 10, 20, 0, 0))
	// A message stamped by the caller counts on its own day.
	old := withUsage(textMsg("assistant", "e"), "amazon-bedrock/haiku", 1000, 0, 0, 0)
	old.Timestamp = time.Date(2025, 12, 1, 12, 0, 0, 0, tokyo).UnixMilli()
	mustAppend(t, s, "", old)

	want := UsageReport{
		Totals: Totals{InputTokens: 118, OutputTokens: 35, CacheReadTokens: 53, CacheWriteTokens: 9, Requests: 4},
		ByModel: map[string]Totals{
			"amazon-bedrock/opus":     {InputTokens: 101, OutputTokens: 12, CacheReadTokens: 53, CacheWriteTokens: 9, Requests: 2},
			"amazon-bedrock/override": {InputTokens: 7, OutputTokens: 3, Requests: 1},
			"amazon-bedrock/haiku":    {InputTokens: 10, OutputTokens: 20, Requests: 1},
		},
		ByDay: []DayUsage{
			{Date: "2026-01-10", Totals: Totals{InputTokens: 107, OutputTokens: 13, CacheReadTokens: 50, CacheWriteTokens: 5, Requests: 2}},
			{Date: "2026-01-11", Totals: Totals{InputTokens: 11, OutputTokens: 22, CacheReadTokens: 3, CacheWriteTokens: 4, Requests: 2}},
		},
	}
	if got := s.Usage(30); !reflect.DeepEqual(got, want) {
		t.Fatalf("Usage(30) =\n%+v\nwant\n%+v", got, want)
	}
	if got := s.Usage(1); len(got.ByDay) != 1 || got.ByDay[0].Date != "2026-01-11" || got.Totals.Requests != 2 {
		t.Errorf("Usage(1) = %+v", got)
	}
	if got := s.Usage(60); got.Totals.InputTokens != 1118 || len(got.ByDay) != 3 || got.ByDay[0].Date != "2025-12-01" {
		t.Errorf("Usage(60) = %+v", got)
	}
	// Per session: the entry's counters.
	if g, _ := s.Get(""); g.InputTokens != 1111 || g.TotalTokens != 1111+32+53+9 {
		t.Errorf("main counters = %+v", g)
	}
	_ = s.Close()
	s = env.open(t)
	if got := s.Usage(30); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen Usage(30) = %+v", got)
	}
}

func TestUsageEmpty(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	got := s.Usage(0)
	if got.ByModel == nil || got.ByDay == nil || got.Totals != (Totals{}) {
		t.Fatalf("empty report = %#v (maps and slices must encode as {} and [])", got)
	}
}

func TestCorruptUsageKeptAndRecounted(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "")
	mustAppend(t, s, "", withUsage(textMsg("assistant", "a"), "m", 3, 4, 0, 0))
	_ = s.Close()
	writeFile(t, env.dir+"/"+usageName, "{nope")
	s = env.open(t)
	if got := s.Usage(1); got.Totals.InputTokens != 3 || got.Totals.Requests != 1 {
		t.Fatalf("recounted usage = %+v", got.Totals)
	}
	if kept := globN(t, env.dir+"/"+usageName+".corrupt-*"); kept != 1 {
		t.Fatalf("%d kept copies", kept)
	}
}

package cron

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	base := time.Date(2026, 12, 7, 6, 59, 30, 0, time.UTC)
	cases := []struct {
		name string
		s    Schedule
		want time.Time
	}{
		{"at duration", Schedule{Kind: KindAt, At: "20m"}, base.Add(20 * time.Minute)},
		{"at iso", Schedule{Kind: KindAt, At: "2026-12-07T08:00:00Z"}, time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)},
		{"at offsetless in tz", Schedule{Kind: KindAt, At: "2026-12-07T09:00", TZ: "Europe/Berlin"}, time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)},
		{"every from anchor", Schedule{Kind: KindEvery, EveryMs: 60000}, base.Add(time.Minute)},
		{"cron 5 fields utc", Schedule{Kind: KindCron, Expr: "0 7 * * *", TZ: "UTC"}, time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)},
		{"cron 6 fields", Schedule{Kind: KindCron, Expr: "45 59 6 * * *", TZ: "UTC"}, time.Date(2026, 12, 7, 6, 59, 45, 0, time.UTC)},
		{"cron in tz", Schedule{Kind: KindCron, Expr: "0 7 * * *", TZ: "America/New_York"}, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)},
		{"descriptor", Schedule{Kind: KindCron, Expr: "@hourly", TZ: "UTC"}, time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := normalize(tc.s, base)
			if err != nil {
				t.Fatal(err)
			}
			c, err := compile(n)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := c.next(base)
			if !ok || !got.Equal(tc.want) {
				t.Fatalf("next = %v %v, want %v", got, ok, tc.want)
			}
		})
	}
}

// TestEverySkipsMissedSlots: after downtime the next slot is the first one
// ahead, not each one that passed.
func TestEverySkipsMissedSlots(t *testing.T) {
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := compile(Schedule{Kind: KindEvery, EveryMs: 3600_000, AnchorMs: anchor.UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	now := anchor.Add(50*time.Hour + 10*time.Minute)
	got, _ := c.next(now)
	if want := anchor.Add(51 * time.Hour); !got.Equal(want) {
		t.Fatalf("next = %v, want %v", got, want)
	}
}

// FuzzSchedule: no input makes normalize or next panic, and a schedule that
// normalizes compiles and, when it has a next time, that time is ahead.
func FuzzSchedule(f *testing.F) {
	for _, seed := range []struct{ kind, val, tz string }{
		{"cron", "0 7 * * *", "Europe/Berlin"}, {"cron", "*/5 * * * * *", ""}, {"cron", "@every 1h", ""},
		{"cron", "0 0 30 2 *", ""}, {"cron", "61 * * * *", "UTC"}, {"cron", "TZ=UTC 0 * * * *", ""},
		{"at", "20m", ""}, {"at", "2030-01-01T00:00:00Z", ""}, {"at", "2030-01-01T09:00", "Asia/Tokyo"},
		{"at", "+1h30m", ""}, {"at", "-5m", ""}, {"every", "60000", ""}, {"cron", "0 7 * * 1-5", "../x"},
	} {
		f.Add(seed.kind, seed.val, seed.tz)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, kind, val, tz string) {
		s := Schedule{Kind: kind, TZ: tz}
		switch kind {
		case KindAt:
			s.At = val
		case KindCron:
			s.Expr = val
		case KindEvery:
			s.EveryMs = int64(len(val)) * 1000
		}
		n, err := normalize(s, now)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		c, err := compile(n)
		if err != nil {
			t.Fatalf("normalized %+v does not compile: %v", n, err)
		}
		if next, ok := c.next(now); ok && !next.After(now) {
			t.Fatalf("next %v is not after %v for %+v", next, now, n)
		}
	})
}

package session

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

func TestResetPolicy(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, ny)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	daily := configgen.Reset{Mode: "daily", AtHour: 4}
	tests := []struct {
		name    string
		reset   configgen.Reset
		updated time.Time
		now     time.Time
		want    string // "" = no reset
	}{
		{"daily: before today's boundary", daily, at("2026-01-10 03:00"), at("2026-01-10 03:59"), ""},
		{"daily: at the boundary", daily, at("2026-01-10 03:00"), at("2026-01-10 04:00"), "daily"},
		{"daily: updated after the boundary", daily, at("2026-01-10 04:00"), at("2026-01-11 03:59"), ""},
		{"daily: next day's boundary", daily, at("2026-01-10 04:00"), at("2026-01-11 04:00"), "daily"},
		{"daily: across midnight, before", daily, at("2026-01-10 23:00"), at("2026-01-11 01:00"), ""},
		{"daily: across midnight, after", daily, at("2026-01-10 23:00"), at("2026-01-11 04:01"), "daily"},
		{"daily: a week later", daily, at("2026-01-10 05:00"), at("2026-01-17 02:00"), "daily"},
		{"daily: across month end", daily, at("2026-01-31 22:00"), at("2026-02-01 04:00"), "daily"},
		{"daily: atHour 0", configgen.Reset{Mode: "daily", AtHour: 0}, at("2026-01-10 23:59"), at("2026-01-11 00:00"), "daily"},
		// 2026-03-08: clocks go 02:00 EST → 03:00 EDT; that day is 23 hours.
		{"daily: spring forward, before", daily, at("2026-03-07 05:00"), at("2026-03-08 03:59"), ""},
		{"daily: spring forward, at 04:00 EDT", daily, at("2026-03-07 05:00"), at("2026-03-08 04:00"), "daily"},
		{"daily: spring forward, 24h would be late", daily, at("2026-03-07 04:30"), at("2026-03-08 04:10"), "daily"},
		{"daily: atHour in the skipped hour", configgen.Reset{Mode: "daily", AtHour: 2}, at("2026-03-07 12:00"), at("2026-03-08 01:59"), ""},
		{"daily: atHour in the skipped hour, after", configgen.Reset{Mode: "daily", AtHour: 2}, at("2026-03-07 12:00"), at("2026-03-08 03:00"), "daily"},
		// 2026-11-01: clocks go 02:00 EDT → 01:00 EST; that day is 25 hours.
		{"daily: fall back, 24h would be early", daily, at("2026-10-31 05:00"), at("2026-11-01 03:30"), ""},
		{"daily: fall back, at 04:00 EST", daily, at("2026-10-31 05:00"), at("2026-11-01 04:00"), "daily"},
		{"idle: just under", configgen.Reset{Mode: "idle", IdleMinutes: 60}, at("2026-01-10 12:00"), at("2026-01-10 12:59"), ""},
		{"idle: exactly", configgen.Reset{Mode: "idle", IdleMinutes: 60}, at("2026-01-10 12:00"), at("2026-01-10 13:00"), "idle"},
		{"idle: ignores atHour", configgen.Reset{Mode: "idle", AtHour: 4, IdleMinutes: 600}, at("2026-01-10 03:00"), at("2026-01-10 05:00"), ""},
		{"both: daily first", configgen.Reset{Mode: "daily", AtHour: 4, IdleMinutes: 120}, at("2026-01-10 03:00"), at("2026-01-10 05:30"), "daily"},
		{"both: idle first", configgen.Reset{Mode: "daily", AtHour: 4, IdleMinutes: 120}, at("2026-01-10 01:00"), at("2026-01-10 04:30"), "idle"},
		{"both: idle across midnight", configgen.Reset{Mode: "daily", AtHour: 4, IdleMinutes: 120}, at("2026-01-10 23:00"), at("2026-01-11 01:30"), "idle"},
		{"both: neither", configgen.Reset{Mode: "daily", AtHour: 4, IdleMinutes: 120}, at("2026-01-10 05:00"), at("2026-01-10 06:00"), ""},
		{"off", configgen.Reset{Mode: "off", AtHour: 4, IdleMinutes: 1}, at("2026-01-10 05:00"), at("2027-01-10 06:00"), ""},
		{"zero value is off", configgen.Reset{}, at("2026-01-10 05:00"), at("2027-01-10 06:00"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.opts.Reset, env.opts.Location = tt.reset, ny
			env.clk.Set(tt.updated)
			s := env.open(t)
			first := mustResolve(t, s, "")
			mustAppend(t, s, "", textMsg("user", "before"))
			env.clk.Set(tt.now)
			e, info, err := s.Resolve("")
			if err != nil {
				t.Fatal(err)
			}
			if info.Reason != tt.want || info.Reset != (tt.want != "") {
				t.Fatalf("Resolve at %s (updated %s) = %+v, want reason %q", tt.now, tt.updated, info, tt.want)
			}
			if tt.want == "" {
				if e.SessionID != first.SessionID {
					t.Fatal("sessionId changed without a reset")
				}
				return
			}
			if e.SessionID == first.SessionID || info.PreviousSessionID != first.SessionID || e.MessageCount != 0 || e.ResetAt != tt.now.UnixMilli() {
				t.Fatalf("after reset: %+v, %+v", e, info)
			}
			// The old transcript is kept, and the reset is durable.
			if tr, err := LoadTranscript(filepath.Join(env.dir, first.SessionID+".jsonl")); err != nil || len(tr.Messages) != 1 {
				t.Fatalf("old transcript: %d msgs, %v", len(tr.Messages), err)
			}
			_ = s.Close()
			s = env.open(t)
			if g, _ := s.Get(""); g.SessionID != e.SessionID {
				t.Fatal("reset not persisted")
			}
			// Right after a reset the session is not due again.
			if _, info, _ := s.Resolve(""); info.Reset {
				t.Fatalf("reset twice: %+v", info)
			}
		})
	}
}

func TestResetPolicyValidation(t *testing.T) {
	for _, r := range []configgen.Reset{{Mode: "weekly"}, {Mode: "daily", AtHour: 24}, {Mode: "daily", AtHour: -1}, {Mode: "idle", IdleMinutes: -5}} {
		env := newEnv(t)
		env.opts.Reset = r
		if _, err := Open(env.opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open with %+v: %v", r, err)
		}
	}
}

func TestSetResetPolicy(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	env.clk.Add(48 * time.Hour)
	if _, info, _ := s.Resolve(""); info.Reset {
		t.Fatal("zero policy reset")
	}
	if err := s.SetResetPolicy(configgen.Reset{Mode: "idle", IdleMinutes: 30}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetResetPolicy(configgen.Reset{Mode: "bogus"}); err == nil {
		t.Fatal("bad policy accepted")
	}
	n, info, err := s.Resolve("")
	if err != nil || !info.Reset || info.Reason != "idle" || n.SessionID == e.SessionID {
		t.Fatalf("after reload: %+v %+v %v", n, info, err)
	}
	if _, err := os.Stat(filepath.Join(env.dir, e.SessionID+".jsonl")); err != nil {
		t.Fatal("old transcript gone")
	}
}

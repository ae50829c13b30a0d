package cron

import (
	"errors"
	"fmt"
	"strings"
	"time"

	robfig "github.com/robfig/cron/v3"

	"github.com/skykoi/skykoi/configgen"
)

// Schedule kinds, as OpenClaw spells them on the wire.
const (
	KindAt    = "at"
	KindEvery = "every"
	KindCron  = "cron"
)

// MinEvery is the shortest interval an every job may have: shorter ones are
// almost surely a unit mistake (1 = 1 ms) and would keep the model busy.
const MinEvery = time.Second

// maxExprLen bounds a cron expression; real ones are tens of characters.
const maxExprLen = 256

// Schedule is when a job runs: once at a time (At, an RFC 3339 instant),
// every EveryMs milliseconds from AnchorMs, or on a cron expression in TZ.
type Schedule struct {
	Kind     string `json:"kind"`
	At       string `json:"at,omitempty"`
	EveryMs  int64  `json:"everyMs,omitempty"`
	AnchorMs int64  `json:"anchorMs,omitempty"`
	Expr     string `json:"expr,omitempty"`
	TZ       string `json:"tz,omitempty"`
	// StaggerMs is OpenClaw's spread for top-of-hour jobs; a Koi runs one
	// agent, so jobs run exactly on time and the field is kept as given.
	StaggerMs *int64 `json:"staggerMs,omitempty"`
}

// compiled is a checked schedule ready to answer "when next".
type compiled struct {
	s    Schedule
	at   time.Time
	cron robfig.Schedule
	loc  *time.Location
}

// cronParser takes 5 fields, or 6 with seconds first, and the @daily-style
// descriptors.
var cronParser = robfig.NewParser(robfig.SecondOptional | robfig.Minute | robfig.Hour |
	robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

// ErrPast refuses an at time that has already passed.
var ErrPast = errors.New("the time is in the past")

// normalize checks s as a new or replaced schedule at now and returns its
// stored form: an at given as a duration ("20m") or without an offset
// becomes an absolute UTC instant; an every job without an anchor is
// anchored at now.
func normalize(s Schedule, now time.Time) (Schedule, error) {
	s.Kind = strings.TrimSpace(s.Kind)
	switch s.Kind {
	case KindAt:
		t, err := parseAt(s.At, s.TZ, now)
		if err != nil {
			return s, err
		}
		if !t.After(now) {
			return s, fmt.Errorf("schedule.at %s: %w; give a future time or a duration such as 20m", t.UTC().Format(time.RFC3339), ErrPast)
		}
		// Whole milliseconds, like nextRunAtMs, so the timer never fires
		// before the stored instant.
		s.At = t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
		s.TZ, s.EveryMs, s.AnchorMs, s.Expr = "", 0, 0, ""
	case KindEvery:
		if s.EveryMs < MinEvery.Milliseconds() {
			return s, fmt.Errorf("schedule.everyMs must be at least %d (one second), got %d", MinEvery.Milliseconds(), s.EveryMs)
		}
		if s.EveryMs > int64(100*365*24*time.Hour/time.Millisecond) {
			return s, fmt.Errorf("schedule.everyMs must be at most 100 years, got %d", s.EveryMs)
		}
		if s.AnchorMs <= 0 {
			s.AnchorMs = now.UnixMilli()
		}
		s.At, s.TZ, s.Expr = "", "", ""
	case KindCron:
		if _, err := compileCron(s.Expr, s.TZ, now); err != nil {
			return s, err
		}
		s.Expr = strings.Join(strings.Fields(s.Expr), " ")
		s.At, s.EveryMs, s.AnchorMs = "", 0, 0
	case "":
		return s, errors.New("schedule.kind is required: at, every or cron")
	default:
		return s, fmt.Errorf("schedule.kind %q is not supported by this Koi; use at, every or cron", s.Kind)
	}
	return s, nil
}

// compile turns a stored (normalized) schedule into one that answers Next.
func compile(s Schedule) (*compiled, error) {
	c := &compiled{s: s}
	switch s.Kind {
	case KindAt:
		t, err := time.Parse(time.RFC3339Nano, s.At)
		if err != nil {
			return nil, fmt.Errorf("schedule.at %q: %w", s.At, err)
		}
		c.at = t
	case KindEvery:
		if s.EveryMs < MinEvery.Milliseconds() {
			return nil, fmt.Errorf("schedule.everyMs %d is below one second", s.EveryMs)
		}
	case KindCron:
		loc, err := loadTZ(s.TZ)
		if err != nil {
			return nil, err
		}
		sched, err := cronParser.Parse(s.Expr)
		if err != nil {
			return nil, fmt.Errorf("schedule.expr %q: %w", s.Expr, err)
		}
		c.cron, c.loc = sched, loc
	default:
		return nil, fmt.Errorf("schedule.kind %q is not supported", s.Kind)
	}
	return c, nil
}

// next is the first run time strictly after t, false when there is none
// (an at job whose time has come).
func (c *compiled) next(t time.Time) (time.Time, bool) {
	switch c.s.Kind {
	case KindAt:
		return c.at, c.at.After(t)
	case KindEvery:
		every := c.s.EveryMs
		anchor := c.s.AnchorMs
		ms := t.UnixMilli()
		if ms < anchor {
			return time.UnixMilli(anchor), true
		}
		// The next slot on the anchor's grid: missed slots are skipped, never
		// run one by one.
		k := (ms-anchor)/every + 1
		return time.UnixMilli(anchor + k*every), true
	case KindCron:
		n := c.cron.Next(t.In(c.loc))
		return n, !n.IsZero()
	}
	return time.Time{}, false
}

// compileCron parses expr in tz and checks it fires at all.
func compileCron(expr, tz string, now time.Time) (*compiled, error) {
	e := strings.TrimSpace(expr)
	if e == "" {
		return nil, errors.New("schedule.expr is required for a cron schedule, such as \"0 7 * * *\"")
	}
	if len(e) > maxExprLen {
		return nil, fmt.Errorf("schedule.expr is longer than %d characters", maxExprLen)
	}
	// The zone has one place, schedule.tz; robfig's own TZ= prefix would
	// make two that can disagree.
	if up := strings.ToUpper(e); strings.HasPrefix(up, "TZ=") || strings.HasPrefix(up, "CRON_TZ=") {
		return nil, errors.New("schedule.expr must not carry a TZ= prefix; put the zone in schedule.tz")
	}
	loc, err := loadTZ(tz)
	if err != nil {
		return nil, err
	}
	sched, err := cronParser.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("schedule.expr %q is not a cron expression (5 fields: minute hour day-of-month month day-of-week, or 6 with seconds first): %w", e, err)
	}
	if sched.Next(now.In(loc)).IsZero() {
		return nil, fmt.Errorf("schedule.expr %q never fires (no matching date within five years)", e)
	}
	return &compiled{s: Schedule{Kind: KindCron, Expr: e, TZ: tz}, cron: sched, loc: loc}, nil
}

// loadTZ reads an IANA zone; "" is the gateway host's local zone, as in
// OpenClaw.
func loadTZ(tz string) (*time.Location, error) {
	tz = strings.TrimSpace(tz)
	if tz == "" {
		return time.Local, nil
	}
	loc, err := configgen.LoadTimeZone(tz)
	if err != nil {
		return nil, fmt.Errorf("schedule.tz: %w", err)
	}
	return loc, nil
}

// isoLayouts are the at forms accepted besides RFC 3339: the same without
// seconds or without an offset (read in tz, else UTC).
var isoLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"}

// parseAt reads an ISO time or a duration from now ("20m", "+1h").
func parseAt(raw, tz string, now time.Time) (time.Time, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return time.Time{}, errors.New("schedule.at is required for an at schedule: an ISO time such as 2027-02-01T16:00:00Z or a duration such as 20m")
	}
	if len(s) > 64 {
		return time.Time{}, errors.New("schedule.at is longer than 64 characters")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04Z07:00", s); err == nil {
		return t, nil
	}
	loc := time.UTC
	if tz != "" {
		l, err := loadTZ(tz)
		if err != nil {
			return time.Time{}, err
		}
		loc = l
	}
	for _, layout := range isoLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	if d, err := configgen.ParseDuration(strings.TrimPrefix(s, "+")); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("schedule.at %q: %w; a duration must be more than zero", s, ErrPast)
		}
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("schedule.at %q is neither an ISO time (2027-02-01T16:00:00Z) nor a duration (20m, 1h, 1d)", s)
}

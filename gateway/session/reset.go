package session

import (
	"fmt"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

// ResetInfo says whether Resolve started a fresh conversation, and why.
type ResetInfo struct {
	Reset             bool   `json:"reset"`
	Reason            string `json:"reason,omitempty"` // "daily" or "idle"
	PreviousSessionID string `json:"previousSessionId,omitempty"`
}

// resetPolicy is session.reset, checked once at Open/SetResetPolicy so a bad
// value fails loudly instead of silently never resetting.
type resetPolicy struct {
	mode   string // "daily", "idle" or "off"
	atHour int
	idle   time.Duration // 0: no idle timeout
}

func newPolicy(r configgen.Reset) (resetPolicy, error) {
	p := resetPolicy{mode: r.Mode, atHour: r.AtHour, idle: time.Duration(r.IdleMinutes) * time.Minute}
	switch r.Mode {
	case "":
		// The zero Options never reset; a loaded config always names a mode.
		p.mode = "off"
	case "daily", "idle", "off":
	default:
		return p, fmt.Errorf("%w: session.reset.mode %q: want daily, idle or off", ErrInvalid, r.Mode)
	}
	if r.AtHour < 0 || r.AtHour > 23 {
		return p, fmt.Errorf("%w: session.reset.atHour %d: want 0-23", ErrInvalid, r.AtHour)
	}
	if r.IdleMinutes < 0 {
		return p, fmt.Errorf("%w: session.reset.idleMinutes %d: want >= 1", ErrInvalid, r.IdleMinutes)
	}
	return p, nil
}

// due reports why a session last updated at updatedMs must start over at now,
// or "" when it must not. With both daily and idle in force the reason is the
// one whose deadline passed first.
func (p resetPolicy) due(updatedMs int64, now time.Time, loc *time.Location) string {
	if p.mode == "off" {
		return ""
	}
	upd := time.UnixMilli(updatedMs)
	reason, at := "", time.Time{}
	if p.mode == "daily" {
		if b := nextBoundary(upd, p.atHour, loc); !now.Before(b) {
			reason, at = "daily", b
		}
	}
	if p.idle > 0 {
		if exp := upd.Add(p.idle); !now.Before(exp) && (reason == "" || exp.Before(at)) {
			reason = "idle"
		}
	}
	return reason
}

// nextBoundary is the first atHour:00 local time strictly after t. It is built
// from calendar fields with time.Date rather than by adding 24h, so days that
// are 23 or 25 hours long (DST changes) still put the boundary at atHour.
func nextBoundary(t time.Time, atHour int, loc *time.Location) time.Time {
	lt := t.In(loc)
	b := boundaryOn(lt.Year(), lt.Month(), lt.Day(), atHour, loc)
	if !b.After(t) {
		b = boundaryOn(lt.Year(), lt.Month(), lt.Day()+1, atHour, loc)
	}
	return b
}

// boundaryOn is atHour:00 on the given day. When the clocks jump over that
// hour (spring forward at atHour), time.Date may normalize to an instant an
// hour early; the boundary is then the jump itself, the first moment the
// local clock reads atHour:00 or later.
func boundaryOn(y int, m time.Month, d, atHour int, loc *time.Location) time.Time {
	b := time.Date(y, m, d, atHour, 0, 0, 0, loc)
	if b.Hour() == atHour {
		return b
	}
	start, end := b.ZoneBounds()
	switch {
	case b.Hour() < atHour && !end.IsZero():
		return end
	case b.Hour() > atHour && !start.IsZero():
		return start
	}
	return b
}

// ResetDue reports why key's session would start over if a message arrived
// now ("daily" or "idle"), or "" when it would not (or does not exist). It
// lets the agent flush memory before Resolve resets.
func (s *Store) ResetDue(key string) string {
	k, err := NormalizeKey(key)
	if err != nil {
		return ""
	}
	st := s.locked(k)
	if st == nil {
		return ""
	}
	updated := st.entry.UpdatedAt
	st.mu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.policy.due(updated, s.now(), s.loc)
}

package configgen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// durationUnits are the units OpenClaw's durations use ("20m", "1h30m",
// "1d"); Go's own parser lacks days and weeks.
var durationUnits = []struct {
	name string
	d    time.Duration
}{
	// Longest names first, so "ms" is not read as "m" then "s".
	{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute},
	{"h", time.Hour}, {"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour},
}

// maxDuration bounds a parsed duration at about 100 years: far past any
// schedule a person means, and far from time.Duration's overflow.
const maxDuration = 100 * 365 * 24 * time.Hour

// ParseDuration reads a duration such as "20m", "1h30m", "1.5h", "2d" or
// "0m". Every number needs a unit (ms, s, m, h, d or w).
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration; use a number with a unit, such as 20m, 1h or 1d")
	}
	rest := strings.ToLower(in)
	var total float64
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("bad duration %q: expected a number at %q (use e.g. 20m, 1h30m, 1d)", in, rest)
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: %q is not a number", in, rest[:i])
		}
		rest = rest[i:]
		unit := time.Duration(0)
		for _, u := range durationUnits {
			if strings.HasPrefix(rest, u.name) {
				unit, rest = u.d, rest[len(u.name):]
				break
			}
		}
		if unit == 0 {
			return 0, fmt.Errorf("bad duration %q: each number needs a unit (ms, s, m, h, d or w)", in)
		}
		total += n * float64(unit)
		if total > float64(maxDuration) || math.IsInf(total, 0) {
			return 0, fmt.Errorf("bad duration %q: longer than 100 years", in)
		}
	}
	return time.Duration(total), nil
}

// ClockMinutes reads "HH:MM" (00:00 to 24:00) as minutes after midnight.
func ClockMinutes(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, false
	}
	return h*60 + m, true
}

func validClock(s string) bool { _, ok := ClockMinutes(s); return ok }

// LoadTimeZone reads an IANA zone name; names that are paths, or "Local",
// are refused so a config or a job cannot make the gateway read files.
func LoadTimeZone(tz string) (*time.Location, error) {
	if tz == "" || strings.Contains(tz, "..") || strings.HasPrefix(tz, "/") || strings.EqualFold(tz, "local") || len(tz) > 64 {
		return nil, fmt.Errorf("%q is not an IANA time zone such as Europe/Berlin or UTC", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%q is not a known IANA time zone (such as Europe/Berlin or UTC)", tz)
	}
	return loc, nil
}

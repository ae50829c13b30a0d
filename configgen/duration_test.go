package configgen_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"20m", 20 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"2d", 48 * time.Hour, ""},
		{"1w", 7 * 24 * time.Hour, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"0m", 0, ""},
		{" 30S ", 30 * time.Second, ""},
		{"", 0, "empty duration"},
		{"20", 0, "needs a unit"},
		{"m", 0, "expected a number"},
		{"1..2h", 0, "not a number"},
		{"5y", 0, "needs a unit"},
		{"1000000w", 0, "longer than 100 years"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := configgen.ParseDuration(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"20m", "1h30m", "1.5d", "0m", "9999999999w", "1e9h", "ms", "-1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := configgen.ParseDuration(s)
		if err == nil && (d < 0 || d > 100*366*24*time.Hour) {
			t.Fatalf("ParseDuration(%q) = %v, out of range", s, d)
		}
	})
}

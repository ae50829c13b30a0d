package configgen_test

import (
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

func TestParsePrice(t *testing.T) {
	ok := configgen.Price{Model: "us.anthropic.claude-opus-4-6-v1", Input: 5, Output: 25, CacheRead: 0.5, CacheWrite: 6.25, Date: "2026-12-01"}
	for _, tc := range []struct {
		name, in string
		want     configgen.Price
		err      string
	}{
		{"all fields", "us.anthropic.claude-opus-4-6-v1 input=5 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01", ok, ""},
		{"any order and a ref", "amazon-bedrock/us.anthropic.claude-opus-4-6-v1 date=2026-12-01 cacheWrite=6.25 output=25 input=5 cacheRead=0.5", ok, ""},
		{"empty", "  ", configgen.Price{}, "empty string"},
		{"no model", "input=5 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01", configgen.Price{}, "must start with a model id"},
		{"missing date", "m input=5 output=25 cacheRead=0.5 cacheWrite=6.25", configgen.Price{}, "date=… is missing"},
		{"unknown key", "m input=5 out=25", configgen.Price{}, `"out=25" is not one of`},
		{"twice", "m input=5 input=6", configgen.Price{}, "input is given twice"},
		{"negative", "m input=-1 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01", configgen.Price{}, "from 0 to 10000"},
		{"too big", "m input=50000 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01", configgen.Price{}, "from 0 to 10000"},
		{"NaN", "m input=NaN output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01", configgen.Price{}, "from 0 to 10000"},
		{"bad date", "m input=5 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-13-01", configgen.Price{}, "YYYY-MM-DD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configgen.ParsePrice(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParsePrice(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePrice(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestUsageConfigKeys(t *testing.T) {
	cfg, err := configgen.ParseEnv([]byte(`{gateway: {mode: "local", auth: {mode: "none"}}, usage: {budget: {dailyUsd: 2.5, monthlyTokens: 1000000},
		prices: ["m input=1 output=2 cacheRead=0.1 cacheWrite=1.25 date=2026-12-01"]}}`), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Usage.Budget; b.DailyUSD != 2.5 || b.MonthlyTokens != 1000000 || b.DailyTokens != 0 || b.MonthlyUSD != 0 {
		t.Errorf("budget = %+v", b)
	}
	for _, tc := range []struct{ in, want string }{
		{`usage: {budget: {dailyUsd: -1}}`, "usage.budget.dailyUsd: must be a number from 0 to 1e+06, got -1"},
		{`usage: {budget: {monthlyUsd: "5"}}`, `usage.budget.monthlyUsd: must be a number from 0 to 1e+07, got "5"`},
		{`usage: {budget: {dailyUsd: Infinity}}`, "usage.budget.dailyUsd: must be a number"},
		{`usage: {prices: ["m input=1"]}`, "usage.prices[0]: \"m\": output=… is missing"},
	} {
		_, err := configgen.ParseEnv([]byte(`{gateway: {mode: "local", auth: {mode: "none"}}, `+tc.in+`}`), func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"us.anthropic.claude-opus-4-6-v1 input=5 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01",
		"m input=1e3 output=0x10 cacheRead=.5 cacheWrite=6 date=2026-02-29", "", "= = =", "m date=2026-12-01 date=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := configgen.ParsePrice(s)
		if err != nil {
			return
		}
		for _, v := range []float64{p.Input, p.Output, p.CacheRead, p.CacheWrite} {
			if !(v >= 0 && v <= 10000) {
				t.Fatalf("ParsePrice(%q) accepted price %v", s, v)
			}
		}
		if p.Model == "" || p.Date == "" {
			t.Fatalf("ParsePrice(%q) = %+v without model or date", s, p)
		}
	})
}

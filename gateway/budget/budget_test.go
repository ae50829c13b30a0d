package budget

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type events struct {
	mu   sync.Mutex
	list []map[string]any
}

func (e *events) emit(name string, p any) {
	if name != EventWarning {
		panic("unexpected event " + name)
	}
	e.mu.Lock()
	e.list = append(e.list, p.(map[string]any))
	e.mu.Unlock()
}

const opus = "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"

func open(t *testing.T, dir string, clk *clock, ev *events, b configgen.Budget, prices ...string) *Budget {
	t.Helper()
	loc := time.FixedZone("KOI", 2*3600)
	cfg := configgen.Config{Usage: configgen.Usage{Budget: b, Prices: prices}}
	bg, err := Open(Options{StateDir: dir, Location: loc, Now: clk.Now, Config: func() configgen.Config { return cfg }, Emit: ev.emit})
	if err != nil {
		t.Fatal(err)
	}
	return bg
}

func TestPrices(t *testing.T) {
	ps := newPriceSet([]string{"my.custom-model input=1 output=2 cacheRead=0.1 cacheWrite=1.5 date=2026-12-01",
		"us.anthropic.claude-haiku-4-5-20251001-v1:0 input=9 output=9 cacheRead=9 cacheWrite=9 date=2026-12-02"})
	for _, tc := range []struct {
		model         string
		input, output float64
		source        string
	}{
		{opus, 5, 25, "built-in"},
		{"us.anthropic.claude-opus-4-6-v1", 5, 25, "built-in"},
		{"global.anthropic.claude-sonnet-4-5-20250929-v1:0", 3, 15, "built-in"},
		{"anthropic.claude-opus-4-1-20250805-v1:0", 15, 75, "built-in"},
		{"anthropic.claude-opus-4-20250514-v1:0", 15, 75, "built-in"},
		{"us.amazon.nova-pro-v1:0", 0.8, 3.2, "built-in"},
		{"arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0", 0.035, 0.14, "built-in"},
		{"my.custom-model", 1, 2, "usage.prices"},
		{"us.anthropic.claude-haiku-4-5-20251001-v1:0", 9, 9, "usage.prices"},
		{"meta.llama3-1-70b-instruct-v1:0", 0, 0, ""},
		{"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc", 0, 0, ""},
	} {
		p, ok := ps.lookup(tc.model)
		if ok != (tc.source != "") || p.Input != tc.input || p.Output != tc.output || p.Source != tc.source {
			t.Errorf("%s: %+v %v; want input %v output %v from %q", tc.model, p, ok, tc.input, tc.output, tc.source)
		}
		if ok && p.Date == "" {
			t.Errorf("%s: price without a date", tc.model)
		}
	}
}

func TestCostOfACall(t *testing.T) {
	p, _ := newPriceSet(nil).lookup(opus)
	c := cost(p, Tokens{Input: 1_000_000, Output: 100_000, CacheRead: 2_000_000, CacheWrite: 400_000})
	want := Costs{Input: 5, Output: 2.5, CacheRead: 1, CacheWrite: 2.5}
	if c != want || c.Total() != 11 {
		t.Errorf("cost = %+v, want %+v", c, want)
	}
}

func TestCapsBlockAndLift(t *testing.T) {
	loc := time.FixedZone("KOI", 2*3600)
	for _, tc := range []struct {
		name    string
		caps    configgen.Budget
		calls   []Tokens
		key     string
		advance time.Time // a time at which the cap has lifted
		stillAt time.Time // a later time in the same period, still blocked
	}{
		{"daily tokens", configgen.Budget{DailyTokens: 1000}, []Tokens{{Input: 600}, {Output: 400}}, "usage.budget.dailyTokens",
			time.Date(2026, 12, 7, 0, 0, 0, 0, loc), time.Date(2026, 12, 6, 23, 59, 59, 0, loc)},
		{"daily usd", configgen.Budget{DailyUSD: 0.01}, []Tokens{{Input: 1000}, {Output: 400}}, "usage.budget.dailyUsd",
			time.Date(2026, 12, 7, 0, 0, 0, 0, loc), time.Date(2026, 12, 6, 23, 0, 0, 0, loc)},
		{"monthly tokens", configgen.Budget{MonthlyTokens: 500, DailyTokens: 400}, []Tokens{{Input: 300}, {Input: 300}}, "usage.budget.monthlyTokens",
			time.Date(2027, 1, 1, 0, 0, 0, 0, loc), time.Date(2026, 12, 31, 12, 0, 0, 0, loc)},
		{"monthly usd", configgen.Budget{MonthlyUSD: 0.005}, []Tokens{{Input: 1000}}, "usage.budget.monthlyUsd",
			time.Date(2027, 1, 1, 0, 0, 0, 0, loc), time.Date(2026, 12, 20, 0, 0, 0, 0, loc)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, loc)}
			ev := &events{}
			dir := t.TempDir()
			b := open(t, dir, clk, ev, tc.caps)
			for i, c := range tc.calls {
				if err := b.Check([]string{opus}); err != nil {
					t.Fatalf("call %d refused before the cap: %v", i, err)
				}
				b.Record(Call{SessionKey: "agent:main:main", SessionID: "s1", Model: opus, Tokens: c})
			}
			err := b.Check([]string{opus})
			var ce *CapError
			if !errors.As(err, &ce) || ce.Key != tc.key {
				t.Fatalf("after the cap: %v, want a CapError for %s", err, tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), "lifts at 00:00 on") {
				t.Errorf("message does not say the cap and when it lifts: %s", err)
			}
			if !ce.LiftsAt.Equal(tc.advance) {
				t.Errorf("lifts at %v, want %v", ce.LiftsAt, tc.advance)
			}
			// A restart keeps the spend.
			b2 := open(t, dir, clk, ev, tc.caps)
			if err := b2.Check([]string{opus}); !errors.As(err, &ce) {
				t.Fatalf("after reopening: %v, want the cap still reached", err)
			}
			clk.Set(tc.stillAt)
			if err := b2.Check([]string{opus}); !errors.As(err, &ce) {
				t.Fatalf("later in the same period: %v, want the cap still reached", err)
			}
			clk.Set(tc.advance)
			if err := b2.Check([]string{opus}); err != nil {
				t.Fatalf("in the next period: %v, want the cap lifted", err)
			}
		})
	}
}

func TestWarningAt80AndCap(t *testing.T) {
	loc := time.FixedZone("KOI", 2*3600)
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, loc)}
	ev := &events{}
	b := open(t, t.TempDir(), clk, ev, configgen.Budget{DailyTokens: 1000})
	rec := func(n int64) { b.Record(Call{SessionID: "s", Model: opus, Tokens: Tokens{Input: n}}) }
	rec(700)
	if len(ev.list) != 0 {
		t.Fatalf("warned at 70%%: %v", ev.list)
	}
	rec(100) // 80%
	rec(50)  // once only
	if len(ev.list) != 1 || ev.list[0]["percent"] != WarnPercent || ev.list[0]["cap"] != "usage.budget.dailyTokens" || ev.list[0]["reached"] != false {
		t.Fatalf("events at 85%% = %v, want one 80%% warning", ev.list)
	}
	rec(200)
	if len(ev.list) != 2 || ev.list[1]["percent"] != 100 || ev.list[1]["reached"] != true {
		t.Fatalf("events at the cap = %v, want a second, reached", ev.list)
	}
	clk.Set(time.Date(2026, 12, 7, 9, 0, 0, 0, loc))
	rec(900)
	if len(ev.list) != 3 || ev.list[2]["percent"] != WarnPercent {
		t.Fatalf("next day events = %v, want a new 80%% warning", ev.list)
	}
}

func TestUSDCapNeedsAPrice(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	b := open(t, t.TempDir(), clk, &events{}, configgen.Budget{MonthlyUSD: 10})
	err := b.Check([]string{opus, "amazon-bedrock/meta.llama3-1-70b-instruct-v1:0"})
	var np *NoPriceError
	if !errors.As(err, &np) || !strings.Contains(err.Error(), "usage.prices") || !strings.Contains(err.Error(), "meta.llama3-1-70b-instruct-v1:0") {
		t.Fatalf("Check = %v, want a NoPriceError naming the model and usage.prices", err)
	}
	b2 := open(t, t.TempDir(), clk, &events{}, configgen.Budget{MonthlyUSD: 10},
		"meta.llama3-1-70b-instruct-v1:0 input=1 output=1 cacheRead=1 cacheWrite=1 date=2026-12-01")
	if err := b2.Check([]string{opus, "amazon-bedrock/meta.llama3-1-70b-instruct-v1:0"}); err != nil {
		t.Fatalf("with a price: %v", err)
	}
}

func TestCorruptRecordIsKeptAside(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	b := open(t, dir, clk, &events{}, configgen.Budget{})
	b.Record(Call{SessionID: "s", Model: opus, Tokens: Tokens{Input: 1}})
	kept, _ := filepath.Glob(filepath.Join(dir, FileName+".corrupt-*"))
	if len(kept) != 1 {
		t.Fatalf("corrupt record not kept aside: %v", kept)
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil || !json.Valid(raw) {
		t.Fatalf("new record: %v %q", err, raw)
	}
}

func TestCostSummary(t *testing.T) {
	loc := time.UTC
	clk := &clock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, loc)}
	b := open(t, t.TempDir(), clk, &events{}, configgen.Budget{DailyUSD: 100})
	b.Record(Call{SessionKey: "agent:main:main", SessionID: "a", Model: opus, Tokens: Tokens{Input: 1_000_000}})
	clk.Set(time.Date(2026, 12, 6, 10, 0, 0, 0, loc))
	b.Record(Call{SessionKey: "agent:main:main", SessionID: "b", Model: opus, Tokens: Tokens{Output: 1_000_000}})
	b.Record(Call{SessionKey: "agent:main:work", SessionID: "c", Model: "amazon-bedrock/us.amazon.nova-pro-v1:0", Tokens: Tokens{Input: 1_000_000}})
	s := b.Cost(CostQuery{Days: 2})
	if len(s.Daily) != 2 || s.Daily[0].Date != "2026-12-05" || s.Daily[0].TotalCost != 5 || s.Daily[1].TotalCost != 25.8 {
		t.Errorf("daily = %+v", s.Daily)
	}
	if s.Totals.TotalCost != 30.8 || s.Totals.TotalTokens != 3_000_000 || s.Totals.Calls != 3 {
		t.Errorf("totals = %+v", s.Totals)
	}
	if len(s.ByModel) != 2 || s.ByModel[0].Model != "us.anthropic.claude-opus-4-6-v1" || s.ByModel[0].Totals.TotalCost != 30 {
		t.Errorf("byModel = %+v", s.ByModel)
	}
	if len(s.BySession) != 3 || s.BySession[0].SessionID != "b" || s.BySession[0].Key != "agent:main:main" {
		t.Errorf("bySession = %+v", s.BySession)
	}
	if one := b.Cost(CostQuery{Days: 1}); len(one.Daily) != 1 || one.Totals.TotalCost != 25.8 {
		t.Errorf("1 day = %+v", one.Totals)
	}
	if r := b.Cost(CostQuery{From: "2026-12-05", To: "2026-12-05"}); r.Days != 1 || r.Totals.TotalCost != 5 {
		t.Errorf("range = %+v", r.Totals)
	}
	if st := s.Budget.Day; st.USDCap != 100 || st.CostUSD != 25.8 || st.Start != "2026-12-06" || st.Exhausted {
		t.Errorf("status = %+v", st)
	}
}

func TestParseCostQuery(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want CostQuery
		err  string
	}{
		{``, CostQuery{Days: 30}, ""},
		{`{}`, CostQuery{Days: 30}, ""},
		{`{"days":7}`, CostQuery{Days: 7}, ""},
		{`{"days":"14"}`, CostQuery{Days: 14}, ""},
		{`{"days":7.9}`, CostQuery{Days: 7}, ""},
		{`{"days":99999}`, CostQuery{Days: MaxCostDays}, ""},
		{`{"range":"90d"}`, CostQuery{Days: 90}, ""},
		{`{"days":3,"agentScope":"all","mode":"gateway"}`, CostQuery{Days: 3}, ""},
		{`{"startDate":"2026-12-01","endDate":"2026-12-06"}`, CostQuery{From: "2026-12-01", To: "2026-12-06"}, ""},
		{`{"days":0}`, CostQuery{}, "days must be a positive integer"},
		{`{"days":"x"}`, CostQuery{}, "days must be a positive integer"},
		{`{"startDate":"2026-12-01"}`, CostQuery{}, "provided together"},
		{`{"startDate":"2026-12-07","endDate":"2026-12-06"}`, CostQuery{}, "must not be after"},
		{`{"startDate":"2026-02-30","endDate":"2026-03-01"}`, CostQuery{}, "valid YYYY-MM-DD"},
		{`{"timeZone":"Europe/Vienna"}`, CostQuery{}, "Koi's local days"},
		{`{"agentId":"work"}`, CostQuery{}, "one agent"},
		{`{"agentId":"main","agentScope":"all"}`, CostQuery{}, "cannot be combined"},
		{`{"range":"2w"}`, CostQuery{}, "range must be"},
		{`[1]`, CostQuery{}, "invalid params"},
	} {
		got, err := ParseCostQuery(json.RawMessage(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %+v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseCostQuery(f *testing.F) {
	for _, s := range []string{`{}`, `{"days":7}`, `{"days":"1e3"}`, `{"startDate":"2026-12-01","endDate":"2026-12-06"}`,
		`{"range":"all"}`, `{"days":-1}`, `{"days":1e400}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := ParseCostQuery(raw)
		if err != nil {
			return
		}
		if q.From == "" && (q.Days < 1 || q.Days > MaxCostDays) {
			t.Fatalf("ParseCostQuery(%q) = %+v: days out of range", raw, q)
		}
		if q.From != "" && q.From > q.To {
			t.Fatalf("ParseCostQuery(%q) = %+v: reversed range", raw, q)
		}
	})
}

func TestUSDFormat(t *testing.T) {
	for v, want := range map[float64]string{0: "$0.00", 5: "$5.00", 20.5: "$20.50", 0.5: "$0.50", 0.01: "$0.01", 0.005: "$0.005", 0.0123: "$0.0123"} {
		if got := usd(v); got != want {
			t.Errorf("usd(%v) = %s, want %s", v, got, want)
		}
	}
}

// BenchmarkCheck is the cost the budget adds before every model call, with
// every cap set (the slowest path that still allows the call).
func BenchmarkCheck(b *testing.B) {
	dir := b.TempDir()
	cfg := configgen.Config{Usage: configgen.Usage{Budget: configgen.Budget{DailyTokens: 1 << 40, MonthlyTokens: 1 << 41, DailyUSD: 1e5, MonthlyUSD: 1e6}}}
	cfg.Agents.Defaults.Model.Primary = opus
	bg, err := Open(Options{StateDir: dir, Config: func() configgen.Config { return cfg }})
	if err != nil {
		b.Fatal(err)
	}
	bg.Record(Call{SessionID: "s", Model: opus, Tokens: Tokens{Input: 1000}})
	models := []string{opus}
	b.ReportAllocs()
	// Timed in batches of 100 calls (one clock read per batch, so the
	// clock's own cost stays out), the median batch gives a p50 per call
	// that the preemptions of a loaded machine do not move as they move
	// the mean.
	const batch = 100
	samples := make([]time.Duration, 0, b.N/batch+1)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		start := time.Now()
		for j := 0; j < batch; j++ {
			if err := bg.Check(models); err != nil {
				b.Fatal(err)
			}
		}
		samples = append(samples, time.Since(start)/batch)
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns/call")
}

// Package budget keeps the Koi's spend within the caps of usage.budget: it
// prices every model call from a table in the code (overridable with
// usage.prices), records the spend per local day, model and session in
// <stateDir>/spend.json, refuses model calls once a daily or monthly cap is
// reached, warns at 80%, and answers usage.cost.
//
// The check before a model call reads atomics only: the period's bounds and
// its spend are kept in atomic integers, updated under the mutex by Record
// and by the roll to a new day, so the hot path takes no lock.
package budget

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/internal/atomicfile"
)

// FileName is the spend record under the state directory.
const FileName = "spend.json"

// EventWarning is the event sent when the spend of a period crosses
// WarnPercent of a cap, and again when it reaches the cap.
const EventWarning = "budget.warning"

// WarnPercent is where the warning fires.
const WarnPercent = 80

// keepDays bounds the record: a year and a month of days, enough for any
// monthly cap and a year's usage.cost.
const keepDays = 400

// Tokens are one model response's token counts.
type Tokens struct {
	Input, Output, CacheRead, CacheWrite int64
}

// Total is every token billed, cached ones included; the token caps count it.
func (t Tokens) Total() int64 { return t.Input + t.Output + t.CacheRead + t.CacheWrite }

// Totals is OpenClaw's cost usage totals shape (usage.cost), plus Calls.
type Totals struct {
	Input              int64   `json:"input"`
	Output             int64   `json:"output"`
	CacheRead          int64   `json:"cacheRead"`
	CacheWrite         int64   `json:"cacheWrite"`
	TotalTokens        int64   `json:"totalTokens"`
	TotalCost          float64 `json:"totalCost"`
	InputCost          float64 `json:"inputCost"`
	OutputCost         float64 `json:"outputCost"`
	CacheReadCost      float64 `json:"cacheReadCost"`
	CacheWriteCost     float64 `json:"cacheWriteCost"`
	MissingCostEntries int     `json:"missingCostEntries"`
	Calls              int     `json:"calls"`
}

func (t *Totals) add(tok Tokens, c Costs, priced bool) {
	t.Input += tok.Input
	t.Output += tok.Output
	t.CacheRead += tok.CacheRead
	t.CacheWrite += tok.CacheWrite
	t.TotalTokens += tok.Total()
	t.InputCost += c.Input
	t.OutputCost += c.Output
	t.CacheReadCost += c.CacheRead
	t.CacheWriteCost += c.CacheWrite
	t.TotalCost += c.Total()
	if !priced {
		t.MissingCostEntries++
	}
	t.Calls++
}

func (t *Totals) merge(o Totals) {
	t.Input += o.Input
	t.Output += o.Output
	t.CacheRead += o.CacheRead
	t.CacheWrite += o.CacheWrite
	t.TotalTokens += o.TotalTokens
	t.TotalCost += o.TotalCost
	t.InputCost += o.InputCost
	t.OutputCost += o.OutputCost
	t.CacheReadCost += o.CacheReadCost
	t.CacheWriteCost += o.CacheWriteCost
	t.MissingCostEntries += o.MissingCostEntries
	t.Calls += o.Calls
}

type sessionRecord struct {
	Key string `json:"key"`
	Totals
}

type dayRecord struct {
	Totals   Totals                    `json:"totals"`
	Models   map[string]*Totals        `json:"models"`   // by model id
	Sessions map[string]*sessionRecord `json:"sessions"` // by sessionId
}

type spendFile struct {
	Version int                   `json:"version"`
	Days    map[string]*dayRecord `json:"days"` // YYYY-MM-DD, the Koi's local day
}

// Options configure a Budget.
type Options struct {
	// StateDir holds FileName.
	StateDir string
	// Location is the Koi's local time, for day and month boundaries (the
	// session store's, so caps and session.reset agree); default time.Local.
	Location *time.Location
	// Now is the clock (time.Now).
	Now func() time.Time
	// Config returns the config in force, read for the caps and prices.
	Config func() configgen.Config
	// Emit sends EventWarning to clients.
	Emit   func(event string, payload any)
	Logger *slog.Logger
}

// Budget is the spend record and the caps' enforcement.
type Budget struct {
	opts Options
	log  *slog.Logger
	path string

	mu     sync.Mutex
	data   spendFile
	dirty  bool            // data not yet written (a failed write is retried)
	warned map[string]bool // cap|period|percent already announced
	noted  map[string]bool // models without a price, logged once

	// The current day and month, for the hot path: bounds in unix ns and
	// the spend so far (cost in micro-dollars).
	dayStart, dayEnd         atomic.Int64
	monthStart, monthEnd     atomic.Int64
	dayTokens, dayMicros     atomic.Int64
	monthTokens, monthMicros atomic.Int64
	prices                   atomic.Pointer[priceSet]
}

// Open reads the spend record (a missing one is empty; an unreadable one is
// set aside as spend.json.corrupt-<unixms> and started afresh, which the log
// says, since the caps then count from zero).
func Open(o Options) (*Budget, error) {
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Emit == nil {
		o.Emit = func(string, any) {}
	}
	if o.Config == nil {
		return nil, errors.New("budget: Options.Config is required")
	}
	b := &Budget{opts: o, log: o.Logger, path: filepath.Join(o.StateDir, FileName),
		data: spendFile{Version: 1, Days: map[string]*dayRecord{}}, warned: map[string]bool{}, noted: map[string]bool{}}
	raw, err := os.ReadFile(b.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading the spend record %s: %w", b.path, err)
	default:
		var f spendFile
		if jerr := json.Unmarshal(raw, &f); jerr != nil {
			kept := fmt.Sprintf("%s.corrupt-%d", b.path, time.Now().UnixMilli())
			if rerr := os.Rename(b.path, kept); rerr != nil {
				return nil, fmt.Errorf("setting aside the unreadable spend record %s: %w", b.path, rerr)
			}
			b.log.Error("the spend record was unreadable; kept it aside and started a new one, so the spend caps count from zero",
				"kept", kept, "err", jerr)
		} else {
			if f.Version > 1 {
				return nil, fmt.Errorf("reading the spend record: %s has version %d, newer than this gateway understands", b.path, f.Version)
			}
			for d, r := range f.Days {
				if r != nil {
					b.data.Days[d] = r.fill()
				}
			}
		}
	}
	b.mu.Lock()
	b.rollLocked(o.Now())
	b.mu.Unlock()
	return b, nil
}

func (r *dayRecord) fill() *dayRecord {
	if r.Models == nil {
		r.Models = map[string]*Totals{}
	}
	if r.Sessions == nil {
		r.Sessions = map[string]*sessionRecord{}
	}
	return r
}

// rollLocked points the hot-path counters at now's day and month.
func (b *Budget) rollLocked(now time.Time) {
	loc := b.opts.Location
	lt := now.In(loc)
	y, m, d := lt.Date()
	dayStart := time.Date(y, m, d, 0, 0, 0, 0, loc)
	monthStart := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	day, month := dayStart.Format(time.DateOnly), monthStart.Format("2006-01")
	var dt, mt Totals
	for k, r := range b.data.Days {
		if strings.HasPrefix(k, month) {
			mt.merge(r.Totals)
			if k == day {
				dt = r.Totals
			}
		}
	}
	b.dayTokens.Store(dt.TotalTokens)
	b.dayMicros.Store(micros(dt.TotalCost))
	b.monthTokens.Store(mt.TotalTokens)
	b.monthMicros.Store(micros(mt.TotalCost))
	b.dayStart.Store(dayStart.UnixNano())
	b.dayEnd.Store(time.Date(y, m, d+1, 0, 0, 0, 0, loc).UnixNano())
	b.monthStart.Store(monthStart.UnixNano())
	b.monthEnd.Store(time.Date(y, m+1, 1, 0, 0, 0, 0, loc).UnixNano())
}

func micros(usd float64) int64 { return int64(math.Round(usd * 1e6)) }

// current makes sure the counters are now's period's.
func (b *Budget) current(now time.Time) {
	ns := now.UnixNano()
	if ns >= b.dayStart.Load() && ns < b.dayEnd.Load() {
		return
	}
	b.mu.Lock()
	if ns < b.dayStart.Load() || ns >= b.dayEnd.Load() {
		b.rollLocked(now)
	}
	b.mu.Unlock()
}

func (b *Budget) priceSet(raw []string) *priceSet {
	ps := b.prices.Load()
	if ps != nil && slicesEqual(ps.raw, raw) {
		return ps
	}
	ps = newPriceSet(raw)
	b.prices.Store(ps)
	return ps
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// CapError refuses a model call at a cap. Its message is what the person
// sees in chat.
type CapError struct {
	Key     string // the config key, e.g. usage.budget.dailyUsd
	Period  string // "day" or "month"
	Unit    string // "usd" or "tokens"
	Limit   float64
	Spent   float64
	LiftsAt time.Time // in the Koi's local time
}

func (e *CapError) Error() string {
	period, when := "daily", "today"
	if e.Period == "month" {
		period, when = "monthly", "this month"
	}
	what := fmt.Sprintf("The %s spend cap is reached: %s spent %s of the %s allowed", period, usd(e.Spent), when, usd(e.Limit))
	if e.Unit == "tokens" {
		what = fmt.Sprintf("The %s token cap is reached: %s tokens used %s of the %s allowed", period, count(int64(e.Spent)), when, count(int64(e.Limit)))
	}
	return fmt.Sprintf("%s (%s). The Koi makes no model calls until the cap lifts at %s; to go on sooner, raise or remove %s in the config.",
		what, e.Key, e.LiftsAt.Format("15:04 on Mon 2 Jan 2006 (MST)"), e.Key)
}

// NoPriceError refuses a model call under a USD cap for a model without a
// price: its cost could not be counted, so the cap could not be kept.
type NoPriceError struct{ Model, Key string }

func (e *NoPriceError) Error() string {
	return fmt.Sprintf("%s is set, but no price is known for the model %s, so its cost cannot be counted; "+
		"add its prices to usage.prices (\"%s input=… output=… cacheRead=… cacheWrite=… date=YYYY-MM-DD\", US dollars per million tokens) or remove %s",
		e.Key, modelID(e.Model), modelID(e.Model), e.Key)
}

// count renders a token count with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Check says whether a model call may start now: nil, a *CapError at a
// reached cap, or a *NoPriceError when a USD cap is set and one of models
// (the refs the call may use) has no price. It takes no lock once the day's
// counters are current.
func (b *Budget) Check(models []string) error {
	now := b.opts.Now()
	b.current(now)
	cfg := b.opts.Config()
	c := cfg.Usage.Budget
	if c.DailyTokens <= 0 && c.MonthlyTokens <= 0 && c.DailyUSD <= 0 && c.MonthlyUSD <= 0 {
		return nil
	}
	if c.DailyUSD > 0 || c.MonthlyUSD > 0 {
		ps := b.priceSet(cfg.Usage.Prices)
		for _, m := range models {
			if _, ok := ps.lookup(m); !ok {
				key := "usage.budget.dailyUsd"
				if c.DailyUSD <= 0 {
					key = "usage.budget.monthlyUsd"
				}
				return &NoPriceError{Model: m, Key: key}
			}
		}
	}
	// The monthly caps first: when both are reached, the later lift is the
	// true one.
	if c.MonthlyTokens > 0 && b.monthTokens.Load() >= c.MonthlyTokens {
		return b.capError("usage.budget.monthlyTokens", "month", "tokens", float64(c.MonthlyTokens), float64(b.monthTokens.Load()))
	}
	if c.MonthlyUSD > 0 && b.monthMicros.Load() >= micros(c.MonthlyUSD) {
		return b.capError("usage.budget.monthlyUsd", "month", "usd", c.MonthlyUSD, float64(b.monthMicros.Load())/1e6)
	}
	if c.DailyTokens > 0 && b.dayTokens.Load() >= c.DailyTokens {
		return b.capError("usage.budget.dailyTokens", "day", "tokens", float64(c.DailyTokens), float64(b.dayTokens.Load()))
	}
	if c.DailyUSD > 0 && b.dayMicros.Load() >= micros(c.DailyUSD) {
		return b.capError("usage.budget.dailyUsd", "day", "usd", c.DailyUSD, float64(b.dayMicros.Load())/1e6)
	}
	return nil
}

func (b *Budget) capError(key, period, unit string, limit, spent float64) *CapError {
	end := b.dayEnd.Load()
	if period == "month" {
		end = b.monthEnd.Load()
	}
	return &CapError{Key: key, Period: period, Unit: unit, Limit: limit, Spent: spent,
		LiftsAt: time.Unix(0, end).In(b.opts.Location)}
}

// Call is one finished model call to record.
type Call struct {
	SessionKey, SessionID string
	Model                 string // the ref or id that answered
	Tokens                Tokens
}

// Record adds a call's tokens and estimated cost to today's spend, writes
// the record, and sends EventWarning for a cap the call took past
// WarnPercent or 100%. A failed write is logged and retried with the next
// call; the spend in memory still counts.
func (b *Budget) Record(c Call) {
	now := b.opts.Now()
	cfg := b.opts.Config()
	p, priced := b.priceSet(cfg.Usage.Prices).lookup(c.Model)
	var cs Costs
	if priced {
		cs = cost(p, c.Tokens)
	}
	id := modelID(c.Model)
	if id == "" {
		id = "unknown"
	}
	b.mu.Lock()
	if ns := now.UnixNano(); ns < b.dayStart.Load() || ns >= b.dayEnd.Load() {
		b.rollLocked(now)
	}
	day := now.In(b.opts.Location).Format(time.DateOnly)
	d := b.data.Days[day]
	if d == nil {
		d = (&dayRecord{}).fill()
		b.data.Days[day] = d
		b.pruneLocked(now)
	}
	d.Totals.add(c.Tokens, cs, priced)
	mt := d.Models[id]
	if mt == nil {
		mt = &Totals{}
		d.Models[id] = mt
	}
	mt.add(c.Tokens, cs, priced)
	if c.SessionID != "" || c.SessionKey != "" {
		sid := c.SessionID
		if sid == "" {
			sid = c.SessionKey
		}
		sr := d.Sessions[sid]
		if sr == nil {
			sr = &sessionRecord{Key: c.SessionKey}
			d.Sessions[sid] = sr
		}
		sr.add(c.Tokens, cs, priced)
	}
	b.dayTokens.Add(c.Tokens.Total())
	b.dayMicros.Add(micros(cs.Total()))
	b.monthTokens.Add(c.Tokens.Total())
	b.monthMicros.Add(micros(cs.Total()))
	b.dirty = true
	werr := b.writeLocked()
	events := b.warningsLocked(cfg.Usage.Budget, now)
	firstUnpriced := !priced && !b.noted[id]
	if firstUnpriced {
		b.noted[id] = true
	}
	b.mu.Unlock()
	if werr != nil {
		b.log.Warn("the spend record could not be written; it is retried with the next model call", "err", werr)
	}
	if firstUnpriced {
		b.log.Warn("no price is known for a model; its calls count toward the token caps but not the USD caps (add it to usage.prices)", "model", id)
	}
	for _, e := range events {
		b.log.Warn("spend cap warning", "cap", e["cap"], "percent", e["percent"])
		b.opts.Emit(EventWarning, e)
	}
}

func (b *Budget) writeLocked() error {
	if !b.dirty {
		return nil
	}
	raw, err := json.Marshal(b.data)
	if err != nil {
		return fmt.Errorf("encoding the spend record: %w", err)
	}
	if err := atomicfile.Write(b.path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the spend record: %w", err)
	}
	b.dirty = false
	return nil
}

func (b *Budget) pruneLocked(now time.Time) {
	oldest := now.In(b.opts.Location).AddDate(0, 0, -keepDays).Format(time.DateOnly)
	for k := range b.data.Days {
		if k < oldest {
			delete(b.data.Days, k)
		}
	}
}

// warningsLocked returns the EventWarning payloads due: each cap, each
// period, at WarnPercent and at 100%, once.
func (b *Budget) warningsLocked(c configgen.Budget, now time.Time) []map[string]any {
	type capState struct {
		key, period, unit string
		limit, spent      float64
	}
	caps := []capState{
		{"usage.budget.dailyTokens", "day", "tokens", float64(c.DailyTokens), float64(b.dayTokens.Load())},
		{"usage.budget.dailyUsd", "day", "usd", c.DailyUSD, float64(b.dayMicros.Load()) / 1e6},
		{"usage.budget.monthlyTokens", "month", "tokens", float64(c.MonthlyTokens), float64(b.monthTokens.Load())},
		{"usage.budget.monthlyUsd", "month", "usd", c.MonthlyUSD, float64(b.monthMicros.Load()) / 1e6},
	}
	var out []map[string]any
	for _, cs := range caps {
		if cs.limit <= 0 {
			continue
		}
		start, end := b.dayStart.Load(), b.dayEnd.Load()
		if cs.period == "month" {
			start, end = b.monthStart.Load(), b.monthEnd.Load()
		}
		for _, pct := range []int{100, WarnPercent} {
			if cs.spent < cs.limit*float64(pct)/100 {
				continue
			}
			mark := fmt.Sprintf("%s|%d|%d", cs.key, start, pct)
			if !b.warned[mark] {
				b.warned[mark] = true
				if pct == 100 {
					// Reaching the cap says all 80% would; do not send both.
					b.warned[fmt.Sprintf("%s|%d|%d", cs.key, start, WarnPercent)] = true
				}
				out = append(out, map[string]any{
					"cap": cs.key, "period": cs.period, "unit": cs.unit, "limit": cs.limit, "spent": cs.spent,
					"percent": pct, "reached": pct == 100, "liftsAt": time.Unix(0, end).UnixMilli(), "ts": now.UnixMilli(),
				})
			}
			break
		}
	}
	return out
}

// Period is one period's spend and caps (usage.cost's budget block).
type Period struct {
	Start     string  `json:"start"`   // YYYY-MM-DD, local
	LiftsAt   int64   `json:"liftsAt"` // unix ms: the period's end
	Tokens    int64   `json:"tokens"`
	CostUSD   float64 `json:"costUsd"`
	TokenCap  int64   `json:"tokenCap"` // 0 = none
	USDCap    float64 `json:"usdCap"`   // 0 = none
	Exhausted bool    `json:"exhausted"`
}

// Status is the spend of the current day and month against the caps.
type Status struct {
	TimeZone string `json:"timeZone"`
	Day      Period `json:"day"`
	Month    Period `json:"month"`
}

// Status reports the current period's spend.
func (b *Budget) Status() Status {
	now := b.opts.Now()
	b.current(now)
	c := b.opts.Config().Usage.Budget
	loc := b.opts.Location
	per := func(start, end, tok, mic int64, tokCap int64, usdCap float64) Period {
		p := Period{Start: time.Unix(0, start).In(loc).Format(time.DateOnly), LiftsAt: time.Unix(0, end).UnixMilli(),
			Tokens: tok, CostUSD: float64(mic) / 1e6, TokenCap: tokCap, USDCap: usdCap}
		p.Exhausted = tokCap > 0 && tok >= tokCap || usdCap > 0 && mic >= micros(usdCap)
		return p
	}
	return Status{TimeZone: loc.String(),
		Day:   per(b.dayStart.Load(), b.dayEnd.Load(), b.dayTokens.Load(), b.dayMicros.Load(), c.DailyTokens, c.DailyUSD),
		Month: per(b.monthStart.Load(), b.monthEnd.Load(), b.monthTokens.Load(), b.monthMicros.Load(), c.MonthlyTokens, c.MonthlyUSD)}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

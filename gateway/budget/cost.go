package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxCostDays bounds a usage.cost range (the record keeps keepDays).
const MaxCostDays = 3660

// CostQuery is a usage.cost range of local days, From to To inclusive
// (YYYY-MM-DD); empty From and To mean the last Days days, today included.
type CostQuery struct {
	Days     int
	From, To string
}

// ParseCostQuery reads usage.cost's params as OpenClaw sends them: days (a
// number or a numeric string), startDate and endDate together, or range
// (7d, 30d, 90d, 1y, all); agentId (only "main") or agentScope "all". Days
// are the Koi's local days, so mode "gateway" is accepted and other time
// zones are refused rather than answered in the wrong one.
func ParseCostQuery(raw json.RawMessage) (CostQuery, error) {
	var p struct {
		Days       json.RawMessage `json:"days"`
		StartDate  *string         `json:"startDate"`
		EndDate    *string         `json:"endDate"`
		Range      *string         `json:"range"`
		Mode       *string         `json:"mode"`
		TimeZone   *string         `json:"timeZone"`
		UTCOffset  *string         `json:"utcOffset"`
		AgentID    *string         `json:"agentId"`
		AgentScope *string         `json:"agentScope"`
	}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return CostQuery{}, fmt.Errorf("invalid params: want an object with days, or startDate and endDate (YYYY-MM-DD): %s", jsonText(err))
	}
	q := CostQuery{Days: 30}
	if p.AgentID != nil && strings.TrimSpace(*p.AgentID) != "" {
		if p.AgentScope != nil && *p.AgentScope == "all" {
			return CostQuery{}, errors.New("invalid params: agentScope=all cannot be combined with agentId")
		}
		if strings.TrimSpace(*p.AgentID) != "main" {
			return CostQuery{}, fmt.Errorf("invalid params: unknown agentId %q; this Koi has one agent, \"main\"", *p.AgentID)
		}
	}
	if p.AgentScope != nil && *p.AgentScope != "all" && *p.AgentScope != "" {
		return CostQuery{}, fmt.Errorf("invalid params: agentScope must be \"all\" or omitted, got %q", *p.AgentScope)
	}
	if p.Mode != nil && *p.Mode != "" && *p.Mode != "gateway" ||
		p.TimeZone != nil && *p.TimeZone != "" || p.UTCOffset != nil && strings.TrimSpace(*p.UTCOffset) != "" {
		return CostQuery{}, errors.New("invalid params: days are the Koi's local days (the time zone of session.reset); " +
			"omit mode, timeZone and utcOffset (or send mode \"gateway\")")
	}
	if (p.StartDate == nil) != (p.EndDate == nil) {
		return CostQuery{}, errors.New("invalid params: startDate and endDate must be provided together")
	}
	if p.StartDate != nil {
		from, err1 := time.Parse(time.DateOnly, *p.StartDate)
		to, err2 := time.Parse(time.DateOnly, *p.EndDate)
		if err1 != nil || err2 != nil {
			return CostQuery{}, errors.New("invalid params: startDate and endDate must be valid YYYY-MM-DD calendar dates")
		}
		if from.After(to) {
			return CostQuery{}, errors.New("invalid params: startDate must not be after endDate")
		}
		if to.Sub(from) > MaxCostDays*24*time.Hour {
			return CostQuery{}, fmt.Errorf("invalid params: the range is longer than %d days", MaxCostDays)
		}
		return CostQuery{From: *p.StartDate, To: *p.EndDate}, nil
	}
	if p.Range != nil && *p.Range != "" {
		n, ok := map[string]int{"7d": 7, "30d": 30, "90d": 90, "1y": 365, "all": keepDays}[*p.Range]
		if !ok {
			return CostQuery{}, fmt.Errorf("invalid params: range must be 7d, 30d, 90d, 1y or all, got %q", *p.Range)
		}
		q.Days = n
	}
	if d := bytes.TrimSpace(p.Days); len(d) > 0 && string(d) != "null" {
		var s string
		if d[0] == '"' {
			if err := json.Unmarshal(d, &s); err != nil {
				return CostQuery{}, errors.New("invalid params: days must be a positive integer")
			}
		} else {
			s = string(d)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || f < 1 || f != f {
			return CostQuery{}, fmt.Errorf("invalid params: days must be a positive integer, got %s", d)
		}
		// OpenClaw floors and caps rather than refusing.
		q.Days = int(min(f, MaxCostDays))
	}
	return q, nil
}

func jsonText(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return ute.Field + " has the wrong type"
	}
	return err.Error()
}

// DayTotals is one local day of usage.cost's daily list.
type DayTotals struct {
	Date string `json:"date"`
	Totals
}

// ModelTotals is one model's spend over the range.
type ModelTotals struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Totals   Totals `json:"totals"`
}

// SessionTotals is one session's spend over the range.
type SessionTotals struct {
	Key       string `json:"key"`
	SessionID string `json:"sessionId"`
	Totals    Totals `json:"totals"`
}

// CostSummary is usage.cost's result: OpenClaw's shape (updatedAt, days,
// daily, totals) plus the spend per model and session, the prices used and
// the caps' state.
type CostSummary struct {
	UpdatedAt int64           `json:"updatedAt"`
	Days      int             `json:"days"`
	StartDate string          `json:"startDate"`
	EndDate   string          `json:"endDate"`
	Daily     []DayTotals     `json:"daily"` // oldest first; days without calls are left out
	Totals    Totals          `json:"totals"`
	ByModel   []ModelTotals   `json:"byModel"`   // costliest first
	BySession []SessionTotals `json:"bySession"` // costliest first
	Prices    []Price         `json:"prices"`    // of the models in ByModel that have one
	Budget    Status          `json:"budget"`
}

// Cost sums the record over q's days.
func (b *Budget) Cost(q CostQuery) CostSummary {
	now := b.opts.Now()
	loc := b.opts.Location
	from, to := q.From, q.To
	days := q.Days
	if from == "" {
		lt := now.In(loc)
		to = lt.Format(time.DateOnly)
		from = time.Date(lt.Year(), lt.Month(), lt.Day()-(days-1), 0, 0, 0, 0, loc).Format(time.DateOnly)
	} else {
		f, _ := time.Parse(time.DateOnly, from)
		t, _ := time.Parse(time.DateOnly, to)
		days = int(t.Sub(f).Hours()/24) + 1
	}
	out := CostSummary{UpdatedAt: now.UnixMilli(), Days: days, StartDate: from, EndDate: to,
		Daily: []DayTotals{}, ByModel: []ModelTotals{}, BySession: []SessionTotals{}, Prices: []Price{}}
	models := map[string]*Totals{}
	sessions := map[string]*SessionTotals{}
	b.mu.Lock()
	for _, date := range sortedKeys(b.data.Days) {
		if date < from || date > to { // YYYY-MM-DD sorts as text
			continue
		}
		d := b.data.Days[date]
		out.Daily = append(out.Daily, DayTotals{Date: date, Totals: d.Totals})
		out.Totals.merge(d.Totals)
		for m, t := range d.Models {
			if models[m] == nil {
				models[m] = &Totals{}
			}
			models[m].merge(*t)
		}
		for sid, s := range d.Sessions {
			if sessions[sid] == nil {
				sessions[sid] = &SessionTotals{Key: s.Key, SessionID: sid}
			}
			sessions[sid].Totals.merge(s.Totals)
		}
	}
	b.mu.Unlock()
	ps := b.priceSet(b.opts.Config().Usage.Prices)
	for _, m := range sortedKeys(models) {
		out.ByModel = append(out.ByModel, ModelTotals{Provider: "amazon-bedrock", Model: m, Totals: *models[m]})
		if p, ok := ps.lookup(m); ok {
			out.Prices = append(out.Prices, p)
		}
	}
	for _, sid := range sortedKeys(sessions) {
		out.BySession = append(out.BySession, *sessions[sid])
	}
	sort.SliceStable(out.ByModel, func(i, j int) bool { return out.ByModel[i].Totals.TotalCost > out.ByModel[j].Totals.TotalCost })
	sort.SliceStable(out.BySession, func(i, j int) bool {
		return out.BySession[i].Totals.TotalCost > out.BySession[j].Totals.TotalCost
	})
	out.Budget = b.Status()
	return out
}

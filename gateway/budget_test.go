package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/budget"
	"github.com/skykoi/skykoi/gateway/cron"
	"github.com/skykoi/skykoi/gateway/session"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// sendAndCollect sends one message and reads until its run ends, returning
// the terminal chat event and the budget warnings seen on the way.
func sendAndCollect(t *testing.T, c *wsClient, key string) (chatEvent, []map[string]any) {
	t.Helper()
	c.request("agent", map[string]any{"message": "hello", "idempotencyKey": key})
	var warnings []map[string]any
	for {
		f := c.mustRead()
		if f.Type != "event" {
			continue
		}
		switch f.Event {
		case budget.EventWarning:
			warnings = append(warnings, unmarshal[map[string]any](t, f.Payload))
		case "chat":
			e := unmarshal[chatEvent](t, f.Payload)
			if e.RunID == key && (e.State == "final" || e.State == "error" || e.State == "aborted") {
				return e, warnings
			}
		}
	}
}

// TestSpendCapBlocksAndLifts is issue 15's "a cap reached mid-day blocks the
// next turn with a clear message, and lifts at the next period", through the
// real gateway, the real SDK and the fake Bedrock.
func TestSpendCapBlocksAndLifts(t *testing.T) {
	loc := time.FixedZone("KOI", 9*3600)
	clk := &testClock{t: time.Date(2026, 12, 6, 13, 0, 0, 0, loc)}
	ts, fake := agentServer(t,
		withConfig("usage.budget.dailyTokens", 1000),
		withConfig("usage.budget.monthlyUsd", 100),
		// No policy reset when the clock jumps a day: that would add a
		// memory flush turn to the model calls counted here.
		withConfig("session.reset.mode", "off"),
		withOptions(func(o *Options) { o.Now = clk.Now; o.Location = loc }))
	c, hello := dialConnected(t, ts)
	if !strings.Contains(strings.Join(hello.Features.Events, ","), budget.EventWarning) {
		t.Errorf("hello-ok events lack %s: %v", budget.EventWarning, hello.Features.Events)
	}

	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("one"), bedrocktest.Usage(700, 100, 0, 0)})
	end, warn := sendAndCollect(t, c, "run-1")
	if end.State != "final" {
		t.Fatalf("first turn: %+v", end)
	}
	if len(warn) != 1 || warn[0]["cap"] != "usage.budget.dailyTokens" || warn[0]["percent"] != float64(80) || warn[0]["spent"] != float64(800) {
		t.Fatalf("warnings at 80%% = %v, want one for usage.budget.dailyTokens", warn)
	}

	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("two"), bedrocktest.Usage(250, 50, 0, 0)})
	end, warn = sendAndCollect(t, c, "run-2")
	if end.State != "final" || len(warn) != 1 || warn[0]["reached"] != true {
		t.Fatalf("second turn: %+v, warnings %v; want it answered and the cap announced", end, warn)
	}

	// Mid-day, the cap is reached: the next turn fails before any model
	// call, with the cap, the spend and the lift time in the message.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("never sent"), bedrocktest.Usage(1, 1, 0, 0)})
	end, _ = sendAndCollect(t, c, "run-3")
	for _, want := range []string{"daily token cap is reached", "1,100 tokens used today of the 1,000 allowed",
		"usage.budget.dailyTokens", "lifts at 00:00 on Mon 7 Dec 2026 (KOI)"} {
		if end.State != "error" || !strings.Contains(end.ErrorMessage, want) {
			t.Fatalf("blocked turn: state %s, message %q; want it to contain %q", end.State, end.ErrorMessage, want)
		}
	}
	if n := len(fake.Requests()); n != 2 {
		t.Fatalf("the model got %d requests, want 2 (the blocked turn must not call it)", n)
	}
	// The failed turn is in the transcript with its error, as failed turns are.
	h := c.call("chat.history", map[string]any{"sessionKey": "main"})
	hist := unmarshal[struct{ Messages []session.Message }](t, h.Payload)
	if last := hist.Messages[len(hist.Messages)-1]; !strings.Contains(last.ErrorMessage, "usage.budget.dailyTokens") {
		t.Errorf("last transcript entry %+v, want the cap error", last)
	}

	// usage.cost: OpenClaw's shape, with the day, the model and the session.
	res := c.call("usage.cost", map[string]any{"days": 7})
	if !res.OK {
		t.Fatalf("usage.cost: %+v", res.Error)
	}
	var cost struct {
		UpdatedAt int64 `json:"updatedAt"`
		Days      int   `json:"days"`
		Daily     []struct {
			Date        string  `json:"date"`
			TotalTokens int64   `json:"totalTokens"`
			TotalCost   float64 `json:"totalCost"`
			InputCost   float64 `json:"inputCost"`
		} `json:"daily"`
		Totals struct {
			Input, Output, TotalTokens int64
			TotalCost                  float64 `json:"totalCost"`
			MissingCostEntries         int     `json:"missingCostEntries"`
		} `json:"totals"`
		ByModel []struct {
			Provider, Model string
		} `json:"byModel"`
		BySession []struct {
			Key, SessionID string
			Totals         struct{ TotalTokens int64 }
		} `json:"bySession"`
		Budget struct {
			Day struct {
				Exhausted bool  `json:"exhausted"`
				LiftsAt   int64 `json:"liftsAt"`
			} `json:"day"`
		} `json:"budget"`
	}
	if err := json.Unmarshal(res.Payload, &cost); err != nil {
		t.Fatal(err)
	}
	// 950 input at $5/M and 150 output at $25/M for Opus 4.6.
	wantCost := 950*5/1e6 + 150*25/1e6
	if cost.Days != 7 || len(cost.Daily) != 1 || cost.Daily[0].Date != "2026-12-06" || cost.Daily[0].TotalTokens != 1100 ||
		fmt.Sprintf("%.6f", cost.Daily[0].TotalCost) != fmt.Sprintf("%.6f", wantCost) || cost.Totals.Input != 950 || cost.Totals.MissingCostEntries != 0 {
		t.Errorf("usage.cost days/daily/totals: %s", res.Payload)
	}
	if len(cost.ByModel) != 1 || cost.ByModel[0].Model != testModel || cost.ByModel[0].Provider != "amazon-bedrock" {
		t.Errorf("usage.cost byModel: %+v", cost.ByModel)
	}
	if len(cost.BySession) != 1 || cost.BySession[0].Key != "agent:main:main" || cost.BySession[0].SessionID == "" || cost.BySession[0].Totals.TotalTokens != 1100 {
		t.Errorf("usage.cost bySession: %+v", cost.BySession)
	}
	if !cost.Budget.Day.Exhausted || cost.Budget.Day.LiftsAt != time.Date(2026, 12, 7, 0, 0, 0, 0, loc).UnixMilli() {
		t.Errorf("usage.cost budget: %+v", cost.Budget)
	}
	if bad := c.call("usage.cost", map[string]any{"startDate": "2026-12-01"}); bad.OK || !strings.Contains(bad.Error.Message, "together") {
		t.Errorf("bad params: %+v", bad.Error)
	}

	// The next local day the cap has lifted: the queued reply is used.
	clk.Set(time.Date(2026, 12, 7, 0, 0, 1, 0, loc))
	end, _ = sendAndCollect(t, c, "run-4")
	if end.State != "final" || len(end.Message.Content) == 0 || end.Message.Content[0].Text != "never sent" {
		t.Fatalf("next day: %+v, want the turn answered", end)
	}
}

// nonLoopbackIP is an address of this machine that is not loopback.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this machine has no non-loopback IPv4 address to test a remote scrape from")
	}
	t.Skip("this machine has no non-loopback IPv4 address to test a remote scrape from")
	return ""
}

// TestMetricsEndpoint scrapes /metrics over real HTTP after a turn with a
// tool call, lints what it serves, and checks that a peer that is not on
// the Koi (or a request through a proxy on it) is refused.
func TestMetricsEndpoint(t *testing.T) {
	ip := nonLoopbackIP(t)
	ts, fake := agentServer(t, withOptions(func(o *Options) { o.Addr = "0.0.0.0:0" }))
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("t1", "read", `{"path":"nothing-here.txt"}`), bedrocktest.Usage(40, 5, 0, 0)})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("done"), bedrocktest.Usage(60, 7, 30, 0)})
	c, _ := dialConnected(t, ts)
	if end, _ := sendAndCollect(t, c, "m-1"); end.State != "final" {
		t.Fatalf("turn: %+v", end)
	}
	_, port, _ := net.SplitHostPort(ts.Addr().String())

	get := func(url string, h http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("http://127.0.0.1:"+port+"/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("loopback scrape: %d %s", code, body)
	}
	for _, want := range []string{
		"skykoi_gateway_connections 1",
		`skykoi_agent_runs_total{outcome="ok"} 1`,
		`skykoi_model_tokens_total{kind="input",model="amazon-bedrock/` + testModel + `"} 100`,
		`skykoi_model_tokens_total{kind="cache_read",model="amazon-bedrock/` + testModel + `"} 30`,
		`skykoi_model_call_duration_seconds_count{model="amazon-bedrock/` + testModel + `",outcome="ok"} 2`,
		`skykoi_model_first_token_seconds_count{model="amazon-bedrock/` + testModel + `"} 2`,
		`skykoi_tool_calls_total{outcome="error",tool="read"} 1`,
		"skykoi_gateway_slow_consumer_closes_total 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	for _, tc := range []struct {
		name string
		url  string
		h    http.Header
	}{
		{"non-loopback peer", "http://" + ip + ":" + port + "/metrics", nil},
		{"through a proxy on the Koi", "http://127.0.0.1:" + port + "/metrics", http.Header{"X-Forwarded-For": {"203.0.113.9"}}},
		{"rebinding name", "http://127.0.0.1:" + port + "/metrics", http.Header{"Host": {"attacker.test"}}},
	} {
		req, _ := http.NewRequest("GET", tc.url, nil)
		for k, v := range tc.h {
			req.Header[k] = v
		}
		if h := tc.h.Get("Host"); h != "" {
			req.Host = h
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "skykoi_") {
			t.Errorf("%s: %d, served the metrics: %.200s", tc.name, resp.StatusCode, b)
		}
	}
}

// TestCronRunsCountTowardTheCap: a scheduled run spends from the same caps
// as a chat turn, and once the cap is reached the next scheduled run fails
// before any model call, with the cap's message in its run history.
func TestCronRunsCountTowardTheCap(t *testing.T) {
	ts, fake := agentServer(t, withConfig("usage.budget.dailyTokens", 1000), withConfig("session.reset.mode", "off"))
	c, _ := dialConnected(t, ts, asAdmin)
	res := c.call("cron.add", map[string]any{"name": "hourly", "schedule": map[string]any{"kind": "every", "everyMs": 3600000},
		"payload": map[string]any{"kind": "agentTurn", "message": "look at the log"}})
	if !res.OK {
		t.Fatalf("cron.add: %+v", res.Error)
	}
	job := unmarshal[cron.Job](t, res.Payload)
	runs := func() cron.RunsPage {
		r := c.call("cron.runs", map[string]any{"id": job.ID})
		if !r.OK {
			t.Fatalf("cron.runs: %+v", r.Error)
		}
		return unmarshal[cron.RunsPage](t, r.Payload)
	}
	runOnce := func(n int) cron.RunEntry {
		if r := c.call("cron.run", map[string]any{"id": job.ID, "mode": "force"}); !r.OK {
			t.Fatalf("cron.run: %+v", r.Error)
		}
		waitFor(t, "the scheduled run's end", func() bool { return runs().Total == n })
		return runs().Entries[0]
	}

	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("all quiet"), bedrocktest.Usage(900, 200, 0, 0)})
	if e := runOnce(1); e.Status != cron.StatusOK {
		t.Fatalf("first scheduled run: %+v", e)
	}
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("never sent"), bedrocktest.Usage(1, 1, 0, 0)})
	e := runOnce(2)
	if e.Status != cron.StatusError || !strings.Contains(e.Error, "usage.budget.dailyTokens") {
		t.Fatalf("scheduled run past the cap: %+v, want an error naming usage.budget.dailyTokens", e)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Fatalf("the model got %d requests, want 1 (the run past the cap must not call it)", n)
	}
	cost := c.call("usage.cost", map[string]any{"days": 1})
	if !strings.Contains(string(cost.Payload), `"key":"agent:main:cron:`+job.ID+`"`) {
		t.Errorf("usage.cost has no entry for the job's session: %s", cost.Payload)
	}
}

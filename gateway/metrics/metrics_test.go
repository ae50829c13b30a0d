package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestRecordAndLint(t *testing.T) {
	m := New()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnClosed()
	m.SlowConsumerClosed()
	m.RunEnded("ok")
	m.RunEnded("error")
	m.RunEnded("ok")
	const model = "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"
	m.ModelCall(model, Tokens{Input: 10, Output: 5, CacheRead: 100}, 300*time.Millisecond, 2*time.Second, "")
	m.ModelCall("", Tokens{}, 0, time.Second, "throttled")
	m.ToolCall("exec", false)
	m.ToolCall("exec", true)
	m.Error("budget", "cap")

	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"connections", testutil.ToFloat64(m.connections), 1},
		{"slow consumers", testutil.ToFloat64(m.slowConsumers), 1},
		{"runs ok", testutil.ToFloat64(m.runs.WithLabelValues("ok")), 2},
		{"runs aborted (pre-created)", testutil.ToFloat64(m.runs.WithLabelValues("aborted")), 0},
		{"input tokens", testutil.ToFloat64(m.tokens.WithLabelValues(model, "input")), 10},
		{"cache read tokens", testutil.ToFloat64(m.tokens.WithLabelValues(model, "cache_read")), 100},
		{"tool errors", testutil.ToFloat64(m.toolCalls.WithLabelValues("exec", "error")), 1},
		{"model errors", testutil.ToFloat64(m.errors.WithLabelValues("model", "throttled")), 1},
		{"budget errors", testutil.ToFloat64(m.errors.WithLabelValues("budget", "cap")), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("duration series = %d, want 2 (ok for the model, error for none)", n)
	}

	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`skykoi_gateway_connections 1`,
		`skykoi_agent_runs_total{outcome="ok"} 2`,
		`skykoi_model_tokens_total{kind="output",model="` + model + `"} 5`,
		`skykoi_model_first_token_seconds_bucket{model="` + model + `",le="0.5"} 1`,
		`skykoi_tool_calls_total{outcome="ok",tool="exec"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// The exposition text lints clean too (what a scraper sees).
	if ps, err := promlint.New(strings.NewReader(body)).Lint(); err != nil || len(ps) > 0 {
		t.Errorf("scraped text lint: %v %v", ps, err)
	}
}

// BenchmarkScrape is one /metrics scrape of a gateway that has seen a few
// models and tools.
func BenchmarkScrape(b *testing.B) {
	m := New()
	for _, model := range []string{"a", "b", "c"} {
		for range 100 {
			m.ModelCall("amazon-bedrock/"+model, Tokens{Input: 10, Output: 10, CacheRead: 10, CacheWrite: 10}, time.Second, 3*time.Second, "")
		}
	}
	for _, tool := range []string{"exec", "process", "read", "write", "edit", "memory_search", "memory_get"} {
		m.ToolCall(tool, false)
		m.ToolCall(tool, true)
	}
	h := m.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkRecord is the hot path: a model call's tokens and latency.
func BenchmarkRecord(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ModelCall("amazon-bedrock/x", Tokens{Input: 1, Output: 1}, time.Second, time.Second, "")
		}
	})
}

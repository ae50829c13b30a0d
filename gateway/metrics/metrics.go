// Package metrics is the gateway's Prometheus instrumentation, served at
// /metrics. Each Metrics has its own registry (no global state), and the hot
// paths (a model call's tokens, a tool call, a connection) update the client
// library's atomic counters; the children for label values are cached in
// sync.Maps, so recording takes no lock once a label value has been seen.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "skykoi"

// Run outcomes, tool outcomes and token kinds: the label values.
var (
	RunOutcomes  = []string{"ok", "error", "aborted", "timeout"}
	TokenKinds   = []string{"input", "output", "cache_read", "cache_write"}
	toolOutcomes = []string{"ok", "error"}
)

// Metrics holds the gateway's collectors.
type Metrics struct {
	reg *prometheus.Registry

	connections   prometheus.Gauge
	slowConsumers prometheus.Counter
	runs          *prometheus.CounterVec
	tokens        *prometheus.CounterVec
	firstToken    *prometheus.HistogramVec
	duration      *prometheus.HistogramVec
	toolCalls     *prometheus.CounterVec
	errors        *prometheus.CounterVec

	// Children by label values, so the hot path skips the vectors' locks.
	cache sync.Map // string → prometheus.Counter or prometheus.Observer
}

// latencyBuckets span a model call: first tokens in under a second to
// long answers of minutes.
var latencyBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600}

// New builds the collectors, registered with a new registry together with
// the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "gateway_connections",
		Help: "Open WebSocket connections to the gateway."})
	m.slowConsumers = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "gateway_slow_consumer_closes_total",
		Help: "Connections closed because their outbound queue overflowed."})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "agent_runs_total",
		Help: "Agent runs ended, by outcome (ok, error, aborted, timeout)."}, []string{"outcome"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "model_tokens_total",
		Help: "Tokens billed by the model, by model and kind (input, output, cache_read, cache_write)."}, []string{"model", "kind"})
	m.firstToken = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "model_first_token_seconds",
		Help: "Time from a model call's start to its first streamed text or tool call.", Buckets: latencyBuckets}, []string{"model"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "model_call_duration_seconds",
		Help: "Duration of a whole model call, retries and fallbacks included, by model and outcome.", Buckets: latencyBuckets}, []string{"model", "outcome"})
	m.toolCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tool_calls_total",
		Help: "Tool calls, by tool and outcome (ok, error)."}, []string{"tool", "outcome"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "errors_total",
		Help: "Errors, by where they happened (model, budget, request) and kind."}, []string{"source", "kind"})
	m.reg.MustRegister(m.connections, m.slowConsumers, m.runs, m.tokens, m.firstToken, m.duration, m.toolCalls, m.errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Known label values exist from the start, so a rate over them is 0,
	// not absent, before the first event.
	for _, o := range RunOutcomes {
		m.runs.WithLabelValues(o)
	}
	return m
}

// Registry is the registry the collectors are in (for tests and extra
// collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func (m *Metrics) counter(vec *prometheus.CounterVec, key string, labels ...string) prometheus.Counter {
	if c, ok := m.cache.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c := vec.WithLabelValues(labels...)
	m.cache.Store(key, c)
	return c
}

func (m *Metrics) observer(vec *prometheus.HistogramVec, key string, labels ...string) prometheus.Observer {
	if o, ok := m.cache.Load(key); ok {
		return o.(prometheus.Observer)
	}
	o := vec.WithLabelValues(labels...)
	m.cache.Store(key, o)
	return o
}

// ConnOpened and ConnClosed move the connection gauge.
func (m *Metrics) ConnOpened() { m.connections.Inc() }
func (m *Metrics) ConnClosed() { m.connections.Dec() }

// SlowConsumerClosed counts a connection cut off for not reading.
func (m *Metrics) SlowConsumerClosed() { m.slowConsumers.Inc() }

// RunEnded counts a run by its terminal status.
func (m *Metrics) RunEnded(outcome string) {
	m.counter(m.runs, "run|"+outcome, outcome).Inc()
}

// Tokens are one model call's counts.
type Tokens struct{ Input, Output, CacheRead, CacheWrite int }

// ModelCall records a finished model call. model is the ref that answered
// ("" when none did); errKind names the failure ("" on success).
func (m *Metrics) ModelCall(model string, t Tokens, firstToken, total time.Duration, errKind string) {
	if model == "" {
		model = "none"
	}
	for i, n := range []int{t.Input, t.Output, t.CacheRead, t.CacheWrite} {
		if n > 0 {
			kind := TokenKinds[i]
			m.counter(m.tokens, "tok|"+model+"|"+kind, model, kind).Add(float64(n))
		}
	}
	if firstToken > 0 {
		m.observer(m.firstToken, "ftt|"+model, model).Observe(firstToken.Seconds())
	}
	outcome := "ok"
	if errKind != "" {
		outcome = "error"
		m.Error("model", errKind)
	}
	m.observer(m.duration, "dur|"+model+"|"+outcome, model, outcome).Observe(total.Seconds())
}

// ToolCall counts a tool call.
func (m *Metrics) ToolCall(tool string, isError bool) {
	o := toolOutcomes[0]
	if isError {
		o = toolOutcomes[1]
	}
	m.counter(m.toolCalls, "tool|"+tool+"|"+o, tool, o).Inc()
}

// Error counts an error from source (model, budget, request) of kind.
func (m *Metrics) Error(source, kind string) {
	m.counter(m.errors, "err|"+source+"|"+kind, source, kind).Inc()
}

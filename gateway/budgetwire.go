package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"

	"github.com/skykoi/skykoi/gateway/agent"
	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/budget"
	"github.com/skykoi/skykoi/gateway/metrics"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/tools"
)

// meter is the agent's Meter: the spend caps before a model call, the spend
// record and the metrics after it.
type meter struct{ s *Server }

func (m meter) Allow(_ context.Context, info agent.CallInfo) error {
	err := m.s.budget.Check(info.Models)
	if err != nil {
		m.s.metrics.Error("budget", "cap")
		m.s.log.Info("model call refused by a spend cap", "session", info.SessionKey, "purpose", info.Purpose, "reason", err.Error())
	}
	return err
}

func (m meter) Done(info agent.CallInfo, res agent.CallResult) {
	u := res.Usage
	if res.Err == nil || u != (bedrock.Usage{}) {
		m.s.budget.Record(budget.Call{SessionKey: info.SessionKey, SessionID: info.SessionID, Model: res.Model,
			Tokens: budget.Tokens{Input: int64(u.InputTokens), Output: int64(u.OutputTokens),
				CacheRead: int64(u.CacheReadTokens), CacheWrite: int64(u.CacheWriteTokens)}})
	}
	kind := ""
	if res.Err != nil {
		kind = "other"
		var be *bedrock.Error
		switch {
		case errors.As(res.Err, &be):
			kind = string(be.Kind)
		case errors.Is(res.Err, context.Canceled), errors.Is(res.Err, context.DeadlineExceeded):
			kind = "canceled"
		}
	}
	m.s.metrics.ModelCall(res.Model, metrics.Tokens{Input: u.InputTokens, Output: u.OutputTokens,
		CacheRead: u.CacheReadTokens, CacheWrite: u.CacheWriteTokens}, res.FirstEvent, res.Duration, kind)
}

// meteredTools counts the tool calls of a tool set.
type meteredTools struct {
	agent.Tools
	m *metrics.Metrics
}

func (t meteredTools) Run(ctx context.Context, name string, input json.RawMessage) tools.Result {
	res := t.Tools.Run(ctx, name, input)
	t.m.ToolCall(name, res.IsError)
	return res
}

// budgetMethods are usage.cost.
func (s *Server) budgetMethods() map[string]method {
	return map[string]method{"usage.cost": {protocol.ScopeRead, s.mUsageCost}}
}

func (s *Server) mUsageCost(cl *call) (any, *protocol.Error) {
	q, err := budget.ParseCostQuery(cl.req.Params)
	if err != nil {
		return nil, invalid(err.Error())
	}
	return s.budget.Cost(q), nil
}

// serveMetrics answers /metrics for loopback peers only. The port may be
// bound on every interface (gateway.bind lan or custom), so the peer is
// checked on each request; a request carrying forwarding headers came
// through a proxy on this host (nginx) from somewhere else and is refused
// too, as is a Host that is not this gateway's (DNS rebinding).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, lc *liveConfig) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	proxied := r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("X-Real-IP") != "" || r.Header.Get("Forwarded") != ""
	if err != nil || !peer.Addr().Unmap().IsLoopback() || proxied {
		s.log.Warn("metrics scrape refused: not from this host", "peer", r.RemoteAddr, "proxied", proxied)
		writeJSON(w, http.StatusForbidden, map[string]any{"ok": false,
			"error": "/metrics is served only to clients on the Koi itself; scrape it from the Koi (http://127.0.0.1:<port>/metrics), not through a proxy or another host"})
		return
	}
	if s.refuseHost(w, r, lc) {
		return
	}
	s.metrics.Handler().ServeHTTP(w, r)
}

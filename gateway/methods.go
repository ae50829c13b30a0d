package gateway

import (
	"encoding/json"
	"net"
	"runtime"
	"sort"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/mcp"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/procstat"
	"github.com/skykoi/skykoi/internal/version"
)

// method is one entry of the method table: the scope it needs and its
// handler. hello-ok's features.methods is derived from this table.
type method struct {
	scope   string
	handler func(*call) (any, *protocol.Error)
}

// call is one request being handled.
type call struct {
	s        *Server
	c        *conn
	req      *protocol.Request
	answered bool // the handler sent its own response(s)
}

// params decodes the request's params into v.
func (cl *call) params(v any) *protocol.Error { return protocol.DecodeParams(cl.req.Params, v) }

func (s *Server) coreMethods() map[string]method {
	return map[string]method{
		"health":          {protocol.ScopeRead, s.mHealth},
		"status":          {protocol.ScopeRead, s.mStatus},
		"system-presence": {protocol.ScopeRead, s.mPresence},
		"logs.tail":       {protocol.ScopeRead, s.mLogsTail},
		"config.get":      {protocol.ScopeAdmin, s.mConfigGet},
		"config.schema":   {protocol.ScopeAdmin, s.mConfigSchema},
		"config.set":      {protocol.ScopeAdmin, s.mConfigSet},
	}
}

// methodNames lists the method table, sorted.
func (s *Server) methodNames() []string {
	out := make([]string, 0, len(s.methods))
	for name := range s.methods {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// MethodScopes returns every method the server serves with the scope it
// needs; docs/protocol.md is checked against it.
func (s *Server) MethodScopes() map[string]string {
	out := make(map[string]string, len(s.methods))
	for name, m := range s.methods {
		out[name] = m.scope
	}
	return out
}

// Health is the health payload (method, event and hello-ok snapshot).
type Health struct {
	OK          bool           `json:"ok"`
	TS          int64          `json:"ts"`
	DurationMs  int64          `json:"durationMs"`
	UptimeMs    int64          `json:"uptimeMs"`
	Version     string         `json:"version"`
	Model       HealthModel    `json:"model"`
	Sessions    HealthSessions `json:"sessions"`
	Runs        HealthRuns     `json:"runs"`
	Connections int            `json:"connections"`
	// MCP lists the configured MCP servers (issue 14); a server that is
	// down does not make ok false: the agent works without its tools.
	MCP []mcp.Status `json:"mcp,omitempty"`
}

type HealthModel struct {
	Primary   string `json:"primary"`
	Provider  string `json:"provider"`
	Reachable *bool  `json:"reachable,omitempty"`
	// Error says why the model is unreachable and what to do.
	Error string `json:"error,omitempty"`
}

type HealthSessions struct {
	Count  int             `json:"count"`
	Recent []RecentSession `json:"recent"`
}

type RecentSession struct {
	Key       string `json:"key"`
	UpdatedAt int64  `json:"updatedAt"`
}

type HealthRuns struct {
	Active int `json:"active"`
}

func (s *Server) healthSnapshot() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthLocked()
}

// healthLocked assembles health; s.mu is held.
func (s *Server) healthLocked() Health {
	start := time.Now()
	now := s.opts.Now()
	cfg := s.cfg()
	provider, _ := configgen.SplitModelRef(cfg.Agents.Defaults.Model.Primary)
	h := Health{
		OK:          true,
		TS:          now.UnixMilli(),
		UptimeMs:    now.Sub(s.startedAt).Milliseconds(),
		Version:     version.Get().Version,
		Model:       HealthModel{Primary: cfg.Agents.Defaults.Model.Primary, Provider: provider},
		Sessions:    HealthSessions{Recent: []RecentSession{}},
		Connections: len(s.conns),
	}
	if s.model.known {
		r := s.model.reachable
		h.Model.Reachable = &r
		h.Model.Error = s.model.reason
	}
	if s.sessions != nil {
		count, recent := s.sessions.Summary(5)
		h.Sessions.Count = count
		for _, e := range recent {
			h.Sessions.Recent = append(h.Sessions.Recent, RecentSession{Key: e.Key, UpdatedAt: e.UpdatedAt})
		}
	}
	if s.runtime != nil {
		h.Runs.Active, _ = s.runtime.Counts()
	}
	if s.mcp != nil {
		h.MCP = s.mcp.Status()
	}
	h.DurationMs = time.Since(start).Milliseconds()
	return h
}

func (s *Server) mHealth(*call) (any, *protocol.Error) { return s.healthSnapshot(), nil }

func (s *Server) mStatus(*call) (any, *protocol.Error) {
	cfg := s.cfg()
	g := cfg.Gateway
	port := g.Port
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		port = a.Port // the bound port, which differs when tests listen on :0
	}
	active, queued := s.runtime.Counts()
	usage := s.sessions.Usage(30)
	return map[string]any{
		"ok": true,
		"ts": s.opts.Now().UnixMilli(),
		"gateway": map[string]any{
			"mode": g.Mode, "bind": g.Bind, "port": port, "authMode": g.Auth.Mode,
			"startedAt": s.startedAt.UnixMilli(),
		},
		"sessions": map[string]any{"count": s.sessions.Count()},
		"runs":     map[string]any{"active": active, "queued": queued},
		"usage":    map[string]any{"inputTokens": usage.Totals.InputTokens, "outputTokens": usage.Totals.OutputTokens},
		"process":  processStats(),
		"mcp":      s.mcp.Status(),
	}, nil
}

func (s *Server) mPresence(*call) (any, *protocol.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, _ := s.presenceLocked()
	return list, nil
}

// logs.tail bounds: the protocol's defaults, and ceilings so one request
// cannot ask for more than the ring holds anyway.
const (
	logsTailDefaultLimit = 500
	logsTailMaxLimit     = 5000
	logsTailDefaultBytes = 250000
	logsTailMaxBytes     = 5 << 20
)

func (s *Server) mLogsTail(cl *call) (any, *protocol.Error) {
	var p struct {
		Cursor   *uint64 `json:"cursor"`
		Limit    *int    `json:"limit"`
		MaxBytes *int    `json:"maxBytes"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	limit, maxBytes := logsTailDefaultLimit, logsTailDefaultBytes
	if p.Limit != nil {
		if *p.Limit < 1 || *p.Limit > logsTailMaxLimit {
			return nil, protocol.Errorf(protocol.CodeInvalidRequest, "invalid params: limit must be from 1 to 5000")
		}
		limit = *p.Limit
	}
	if p.MaxBytes != nil {
		if *p.MaxBytes < 1 || *p.MaxBytes > logsTailMaxBytes {
			return nil, protocol.Errorf(protocol.CodeInvalidRequest, "invalid params: maxBytes must be from 1 to 5242880")
		}
		maxBytes = *p.MaxBytes
	}
	lines, next, truncated := s.opts.LogRing.Tail(p.Cursor, limit, maxBytes)
	return map[string]any{"cursor": next, "lines": lines, "truncated": truncated}, nil
}

func (s *Server) mConfigSchema(*call) (any, *protocol.Error) {
	return map[string]any{"schema": json.RawMessage(configgen.SchemaJSON())}, nil
}

// processStats is what an operator (and the soak test) needs to see a leak
// from outside: goroutines, heap in use and resident memory.
func processStats() map[string]any {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := map[string]any{"goroutines": runtime.NumGoroutine(), "heapInuseBytes": ms.HeapInuse}
	if rss, ok := procstat.RSSBytes(0); ok {
		out["rssBytes"] = rss
	}
	return out
}

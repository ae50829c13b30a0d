package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/agent"
	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/budget"
	"github.com/skykoi/skykoi/gateway/mcp"
	"github.com/skykoi/skykoi/gateway/memory"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
	"github.com/skykoi/skykoi/gateway/skills"
	"github.com/skykoi/skykoi/gateway/tools"
	"github.com/skykoi/skykoi/gateway/tools/web"
)

// agentParts are the agent's dependencies that a reload may rebuild.
type agentParts struct {
	mu       sync.Mutex
	provider *bedrock.Provider
	provKey  string                // region|endpoint the provider was built for
	toolSets map[string]*tools.Set // by exec security (sessions may override it)
	toolsKey string                // the tools config the sets were built for
}

// setupAgent opens the session store and builds the runtime. Nothing here
// contacts AWS: credentials are resolved on the first model call, so a
// gateway without them still starts and says why when a run needs them.
func (s *Server) setupAgent(cfg configgen.Config) error {
	store, err := session.Open(session.Options{
		Dir:      filepath.Join(s.opts.StateDir, "sessions"),
		Reset:    cfg.Session.Reset,
		Now:      s.opts.Now,
		Location: s.opts.Location,
		Logger:   s.log.With("component", "sessions"),
	})
	if err != nil {
		return fmt.Errorf("opening the session store: %w", err)
	}
	s.sessions = store
	s.budget, err = budget.Open(budget.Options{StateDir: s.opts.StateDir, Location: s.opts.Location, Now: s.opts.Now,
		Config: s.cfg, Logger: s.log.With("component", "budget"),
		Emit: func(event string, payload any) { s.emitAgentEvent(event, payload, false) }})
	if err != nil {
		return fmt.Errorf("opening the spend record: %w", err)
	}
	// Memory files live in the workspace; their index in the state
	// directory, beside the transcripts it also covers.
	s.memory = memory.New(memory.Options{
		Workspace:   func() string { return s.workspace(s.cfg()) },
		StateDir:    s.opts.StateDir,
		SessionsDir: store.Dir(),
		Now:         s.opts.Now,
		Logger:      s.log.With("component", "memory"),
	})
	s.mcp = mcp.New(mcp.Options{
		Servers:   cfg.MCP.Servers,
		Workspace: func() string { return s.workspace(s.cfg()) },
		Getenv:    s.opts.Getenv,
		OnChange:  s.broadcastHealth,
		Logger:    s.log.With("component", "mcp"),
	})
	s.parts = &agentParts{toolSets: map[string]*tools.Set{}}
	s.skills = skills.New(s.log.With("component", "skills"))
	if err := s.rebuildAgentParts(cfg); err != nil {
		return err
	}
	s.runtime = agent.New(agent.Options{
		Sessions: store,
		ToolsFor: func(sec string) (agent.Tools, error) {
			set, err := s.toolSet(sec)
			if err != nil {
				return nil, err
			}
			return meteredTools{Tools: set, m: s.metrics}, nil
		},
		Model:     modelOf{s},
		Config:    s.cfg,
		Emit:      s.emitAgentEvent,
		Workspace: func() string { return s.workspace(s.cfg()) },
		Clock:     s.opts.AgentClock,
		// The retry hint stays the runtime's default.
		MaxQueuedPerSession: s.opts.MaxQueuedPerSession,
		MaxRuns:             s.opts.MaxRuns,
		Logger:              s.log.With("component", "agent"),
		NewID:               newID,
		// A run that just ended was activity, even with nobody connected.
		OnRunEnd: func() { s.idle.Load().Touch() },
		// Memory notes, then the skills list; both are bounded, and the
		// skills catalog caches, so a run pays a few reads and stat calls.
		PromptSections: func(ws string) string { return s.memory.PromptSection() + s.skills.Prompt(ws) },
		MemoryNote:     s.memory.Today,
		Meter:          meter{s},
		OnRunStatus:    s.metrics.RunEnded,
	})
	return nil
}

func (s *Server) workspace(cfg configgen.Config) string {
	ws, err := configgen.ExpandHome(cfg.Agents.Defaults.Workspace)
	if err != nil {
		return cfg.Agents.Defaults.Workspace
	}
	return ws
}

// rebuildAgentParts (re)creates the Bedrock provider and the tool sets when
// the config they depend on changed. Old tool sets are closed, which ends
// their background commands.
func (s *Server) rebuildAgentParts(cfg configgen.Config) error {
	p := s.parts
	p.mu.Lock()
	defer p.mu.Unlock()
	br := cfg.Models.Providers.AmazonBedrock
	if key := br.Region + "|" + br.Endpoint; p.provider == nil || key != p.provKey {
		prov, err := bedrock.New(context.Background(), bedrock.Options{
			Region: br.Region, Endpoint: br.Endpoint, Credentials: s.opts.AWSCredentials,
			Logger: s.log.With("component", "bedrock"), Getenv: s.opts.Getenv,
			BaseBackoff: s.opts.ModelBackoff,
		})
		if err != nil {
			return fmt.Errorf("setting up Amazon Bedrock: %w", err)
		}
		p.provider, p.provKey = prov, key
	}
	raw, _ := json.Marshal(struct {
		T configgen.Tools
		W string
	}{cfg.Tools, s.workspace(cfg)})
	if string(raw) != p.toolsKey {
		for _, set := range p.toolSets {
			_ = set.Close()
		}
		p.toolSets = map[string]*tools.Set{}
		p.toolsKey = string(raw)
	}
	return nil
}

// toolSet returns the tool set for an exec security level, building it on
// first use. The config's own level is the default; sessions.patch may set
// another for one session.
func (s *Server) toolSet(security string) (*tools.Set, error) {
	cfg := s.cfg()
	if security == "" {
		security = cfg.Tools.Exec.Security
	}
	p := s.parts
	p.mu.Lock()
	defer p.mu.Unlock()
	if set, ok := p.toolSets[security]; ok {
		return set, nil
	}
	ex := cfg.Tools.Exec
	ex.Security = security
	webOpts, err := web.FromConfig(cfg.Tools.Web, s.opts.Getenv)
	if err != nil {
		return nil, fmt.Errorf("setting up the web tools: %w", err)
	}
	// The config file and the state directory go in so the file tools
	// refuse them: a model able to write either could raise its own
	// tools.exec.security or pair a device of its choosing.
	set, err := tools.New(tools.Options{Workspace: s.workspace(cfg), Exec: ex, Allow: cfg.Tools.Allow,
		Deny: cfg.Tools.Deny, ConfigPath: s.opts.ConfigPath, StateDir: s.opts.StateDir,
		Logger: s.log.With("component", "tools"), Memory: s.memory, Web: &webOpts, External: s.mcp})
	if err != nil {
		return nil, fmt.Errorf("setting up tools: %w", err)
	}
	p.toolSets[security] = set
	return set, nil
}

// closeAgentParts ends background commands and closes the store (drain).
func (s *Server) closeAgentParts() {
	if s.parts != nil {
		s.parts.mu.Lock()
		for _, set := range s.parts.toolSets {
			_ = set.Close()
		}
		s.parts.toolSets = map[string]*tools.Set{}
		s.parts.mu.Unlock()
	}
	if s.memory != nil {
		if err := s.memory.Close(); err != nil {
			s.log.Error("closing the memory index", "err", err)
		}
	}
	if s.sessions != nil {
		if err := s.sessions.Close(); err != nil {
			s.log.Error("closing the session store", "err", err)
		}
	}
}

// modelOf adapts the current provider to agent.Model, so a reload that
// replaces the provider takes effect on the next model call.
type modelOf struct{ s *Server }

func (m modelOf) Stream(ctx context.Context, req bedrock.Request, on func(bedrock.Event)) (*bedrock.Response, error) {
	m.s.parts.mu.Lock()
	p := m.s.parts.provider
	m.s.parts.mu.Unlock()
	resp, err := p.Stream(ctx, req, on)
	var be *bedrock.Error
	switch {
	case err == nil:
		m.s.setModelReachable(true, "")
	case errors.As(err, &be) && (be.Kind == bedrock.NoCredentials || be.Kind == bedrock.AccessDenied || be.Kind == bedrock.ModelNotFound):
		// Only failures a person must fix change the verdict; throttling
		// and outages pass.
		m.s.setModelReachable(false, be.Brief())
	}
	return resp, err
}

// modelHealth is what health says about the model: unknown until a check or
// a call tells.
type modelHealth struct {
	known     bool
	reachable bool
	reason    string
}

// setModelReachable records the model's state and broadcasts health when it
// changed, so clients learn at once that runs will fail (or work again).
func (s *Server) setModelReachable(ok bool, reason string) {
	s.mu.Lock()
	changed := !s.model.known || s.model.reachable != ok || s.model.reason != reason
	s.model = modelHealth{known: true, reachable: ok, reason: reason}
	s.mu.Unlock()
	if changed {
		if !ok {
			s.log.Warn("the model is unreachable", "reason", reason)
		}
		s.broadcastHealth()
	}
}

// checkModelCredentials runs once at start-up: without credentials every
// run would fail, and health should say so before anyone tries.
func (s *Server) checkModelCredentials(ctx context.Context) {
	s.parts.mu.Lock()
	p := s.parts.provider
	s.parts.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.CheckCredentials(ctx); err != nil && ctx.Err() == nil {
		// Health carries the one sentence with the fix; the SDK's chain
		// is for whoever reads the debug log.
		reason := err.Error()
		var be *bedrock.Error
		if errors.As(err, &be) {
			reason = be.Brief()
		}
		s.log.Debug("checking the model credentials", "err", err, "cause", errors.Unwrap(err))
		s.setModelReachable(false, reason)
	}
}

// emitAgentEvent broadcasts run events to every client with operator.read;
// tool-stream events only to clients that declared the tool-events cap.
func (s *Server) emitAgentEvent(event string, payload any, toolEvents bool) {
	s.broadcast(event, payload, func(c *conn) bool {
		return c.scopes[protocol.ScopeRead] && (!toolEvents || c.caps[protocol.CapToolEvents])
	}, false)
}

// drainRuns waits up to DrainTimeout for runs, aborts the rest, then ends
// background commands and closes the store.
func (s *Server) drainRuns() {
	if s.runtime == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	s.runtime.Shutdown(ctx)
	s.closeAgentParts()
}

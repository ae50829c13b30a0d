package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/agent"
	"github.com/skykoi/skykoi/gateway/cron"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

// eventCron is OpenClaw's cron event: added, updated, removed, started and
// finished, each with the job's next run time.
const eventCron = "cron"

// summaryChars bounds the answer text kept in a run's history entry.
const summaryChars = 2000

// NextWake is the earliest time the Koi has work on its own: the next cron
// job or heartbeat; false when neither is due. The wake planner (gateway/wake)
// schedules the instance's start from it before an idle stop.
func (s *Server) NextWake() (time.Time, bool) {
	var best time.Time
	found := false
	for _, f := range []func() (time.Time, bool){s.cron.NextDue, s.heartbeat.NextDue} {
		if t, ok := f(); ok && (!found || t.Before(best)) {
			best, found = t, true
		}
	}
	return best, found
}

// setupCron opens the job store and the heartbeat; both start with Run.
func (s *Server) setupCron() error {
	svc, err := cron.Open(cron.Options{
		Dir:        filepath.Join(s.opts.StateDir, "cron"),
		Run:        s.runCronJob,
		Emit:       func(ev cron.Event) { s.emitAgentEvent(eventCron, ev, false) },
		CheckModel: checkJobModel,
		Enabled:    func() bool { return s.cfg().Cron.Enabled },
		Now:        s.opts.Now,
		Logger:     s.log.With("component", "cron"),
		NewID:      newID,
	})
	if err != nil {
		return fmt.Errorf("opening the cron store: %w", err)
	}
	s.cron = svc
	s.heartbeat = cron.NewHeartbeat(cron.HeartbeatOptions{
		Config: func() cron.HeartbeatConfig {
			cfg := s.cfg()
			hb := cfg.Agents.Defaults.Heartbeat
			return cron.HeartbeatConfig{Enabled: cfg.Cron.Enabled, Every: hb.Every, Start: hb.ActiveHours.Start,
				End: hb.ActiveHours.End, TimeZone: hb.ActiveHours.Timezone, Prompt: hb.Prompt}
		},
		Workspace: func() string { return s.workspace(s.cfg()) },
		Turn:      s.heartbeatTurn,
		Announce:  func(runID, text string) error { return s.announce(runID, "heartbeat", text) },
		Now:       s.opts.Now,
		Logger:    s.log.With("component", "heartbeat"),
	})
	return nil
}

// runCron serves the scheduler and the heartbeat until ctx ends.
func (s *Server) runCron(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); s.heartbeat.Run(ctx) }()
	if err := s.cron.Run(ctx); err != nil {
		s.log.Error("closing the cron store", "err", err)
	}
	<-done
}

// cronReloaded re-reads cron.enabled and the heartbeat settings.
func (s *Server) cronReloaded() {
	if s.cron != nil {
		s.cron.Rearm()
		s.heartbeat.Rearm()
	}
}

func checkJobModel(m string) error {
	if provider, id := configgen.SplitModelRef(m); provider != configgen.Provider || id == "" {
		return fmt.Errorf(`must be "amazon-bedrock/<modelId>", got %q`, m)
	}
	return nil
}

// runCronJob carries out one job run: an agent turn in the job's own
// session, with the job's model (or none: the config's), then the answer
// announced to the main session.
func (s *Server) runCronJob(ctx context.Context, req cron.RunRequest) cron.RunResult {
	key, err := session.NormalizeKey(req.SessionKey)
	if err != nil {
		return cron.RunResult{Status: cron.StatusError, Error: err.Error()}
	}
	if _, _, err := s.sessions.Resolve(key); err != nil {
		return cron.RunResult{Status: cron.StatusError, Error: "opening the job's session: " + err.Error()}
	}
	p := req.Job.Payload
	model := session.Cleared[string]()
	if p.Model != "" {
		model = session.SetTo(p.Model)
	}
	if _, err := s.sessions.Patch(key, session.Patch{Model: model}); err != nil {
		return cron.RunResult{Status: cron.StatusError, Error: "setting the job's model: " + err.Error()}
	}
	res, err := s.turn(ctx, agent.SubmitParams{SessionKey: key, Message: p.Message, IdempotencyKey: req.RunID,
		Thinking: p.Thinking, Timeout: time.Duration(p.TimeoutSeconds) * time.Second})
	if err != nil {
		return cron.RunResult{Status: cron.StatusError, Error: err.Error()}
	}
	out := cron.RunResult{SessionID: res.SessionID, Model: res.Model, Summary: clipText(res.Text, summaryChars)}
	if res.Status != agent.StatusOK {
		out.Status, out.Error = cron.StatusError, firstNonEmpty(res.Error, res.Summary, "the run ended without an answer")
		return out
	}
	out.Status = cron.StatusOK
	switch {
	case req.Job.Delivery.Mode != cron.DeliveryAnnounce:
		out.DeliveryStatus = "not-requested"
	case cron.Silent(res.Text):
		out.DeliveryStatus = "not-delivered" // intentional silence (NO_REPLY)
	default:
		if err := s.announce(req.RunID, "cron: "+req.Job.Name, res.Text); err != nil {
			s.log.Warn("cron: announcing a job's answer to the main session failed", "job", req.Job.ID, "err", err)
			out.DeliveryStatus = "not-delivered"
		} else {
			out.Delivered, out.DeliveryStatus = true, "delivered"
		}
	}
	return out
}

// heartbeatTurn runs one heartbeat turn in its own session, so the polls
// and their HEARTBEAT_OK answers never crowd the main conversation.
func (s *Server) heartbeatTurn(ctx context.Context, runID, message string) (string, error) {
	key, err := session.NormalizeKey(cron.HeartbeatSessionKey)
	if err != nil {
		return "", err
	}
	if _, _, err := s.sessions.Resolve(key); err != nil {
		return "", fmt.Errorf("opening the heartbeat session: %w", err)
	}
	res, err := s.turn(ctx, agent.SubmitParams{SessionKey: key, Message: message, IdempotencyKey: runID})
	if err != nil {
		return "", err
	}
	if res.Status != agent.StatusOK {
		return "", errors.New(firstNonEmpty(res.Error, res.Summary, "the heartbeat turn ended without an answer"))
	}
	return res.Text, nil
}

// turn submits p and waits for its end; when ctx ends first the run is
// aborted and waited for.
func (s *Server) turn(ctx context.Context, p agent.SubmitParams) (agent.Result, error) {
	run, _, err := s.runtime.Submit(p)
	if err != nil {
		return agent.Result{}, fmt.Errorf("starting the agent turn: %w", err)
	}
	select {
	case <-run.Done():
	case <-ctx.Done():
		s.runtime.Abort(p.SessionKey, run.ID)
		<-run.Done()
	}
	return run.Result(), nil
}

// announce puts text in the main session as an assistant note labelled
// with its source, and tells clients: a chat final event for the main
// session (the web page and skykoi chat show it) and sessions.changed.
func (s *Server) announce(runID, label, text string) error {
	if _, _, err := s.sessions.Resolve(session.MainKey); err != nil {
		return fmt.Errorf("opening the main session: %w", err)
	}
	body := "[" + label + "] " + text
	msg := session.Message{Role: "assistant", Content: []session.Content{{Type: "text", Text: body}}, StopReason: "cron", RunID: runID}
	entry, err := s.sessions.Append(session.MainKey, msg)
	if err != nil {
		return fmt.Errorf("writing to the main session: %w", err)
	}
	s.emitAgentEvent(protocol.EventChat, map[string]any{"runId": runID, "sessionKey": session.MainKey,
		"agentId": protocol.DefaultAgentID, "seq": 1, "state": "final",
		"message": map[string]any{"role": "assistant", "content": []map[string]any{{"type": "text", "text": body}},
			"timestamp": s.opts.Now().UnixMilli()}}, false)
	s.emitAgentEvent(protocol.EventSessionsChanged, map[string]any{"keys": []string{session.MainKey}, "reason": "cron",
		"messageId": entry.LastMessageID}, false)
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func (s *Server) cronMethods() map[string]method {
	return map[string]method{
		"cron.list":   {protocol.ScopeRead, s.mCronList},
		"cron.get":    {protocol.ScopeRead, s.mCronGet},
		"cron.status": {protocol.ScopeRead, s.mCronStatus},
		"cron.runs":   {protocol.ScopeRead, s.mCronRuns},
		"cron.add":    {protocol.ScopeAdmin, s.mCronAdd},
		"cron.update": {protocol.ScopeAdmin, s.mCronUpdate},
		"cron.remove": {protocol.ScopeAdmin, s.mCronRemove},
		"cron.run":    {protocol.ScopeAdmin, s.mCronRun},
	}
}

// cronError maps the service's errors onto protocol errors, shaped as
// OpenClaw's (a missing job is INVALID_REQUEST with details.code
// CRON_JOB_NOT_FOUND, which its CLI recognises).
func cronError(err error) *protocol.Error {
	var nf *cron.NotFoundError
	switch {
	case errors.As(err, &nf):
		e := protocol.Errorf(protocol.CodeInvalidRequest, err.Error())
		e.Details = map[string]any{"code": "CRON_JOB_NOT_FOUND", "jobId": nf.ID}
		return e
	case cron.IsInvalid(err):
		return invalid("invalid params: " + err.Error())
	default:
		return &protocol.Error{Code: protocol.CodeUnavailable, Message: err.Error(), Retryable: true}
	}
}

// jobID reads id (or OpenClaw's older jobId).
func jobID(id, legacy string) (string, *protocol.Error) {
	if id = strings.TrimSpace(firstNonEmpty(id, legacy)); id == "" {
		return "", invalid("invalid params: id is required (the job id from cron.list)")
	}
	if len(id) > 128 {
		return "", invalid("invalid params: id is longer than 128 characters")
	}
	return id, nil
}

// jobParam reads the params of a method that names one job and nothing else.
func jobParam(cl *call) (string, *protocol.Error) {
	var p struct{ ID, JobID string }
	if e := cl.params(&p); e != nil {
		return "", e
	}
	return jobID(p.ID, p.JobID)
}

func (s *Server) mCronList(cl *call) (any, *protocol.Error) {
	var p struct {
		IncludeDisabled bool   `json:"includeDisabled"`
		Enabled         string `json:"enabled"`
		Query           string `json:"query"`
		ScheduleKind    string `json:"scheduleKind"`
		SortBy          string `json:"sortBy"`
		SortDir         string `json:"sortDir"`
		Offset          int    `json:"offset"`
		Limit           int    `json:"limit"`
		AgentID         string `json:"agentId"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if e := checkAgentID(p.AgentID); e != nil {
		return nil, e
	}
	page, err := s.cron.List(cron.ListOptions{IncludeDisabled: p.IncludeDisabled, Enabled: p.Enabled, Query: p.Query,
		ScheduleKind: p.ScheduleKind, SortBy: p.SortBy, SortDir: p.SortDir, Offset: p.Offset, Limit: p.Limit})
	if err != nil {
		return nil, cronError(err)
	}
	return page, nil
}

func (s *Server) mCronGet(cl *call) (any, *protocol.Error) {
	id, e := jobParam(cl)
	if e != nil {
		return nil, e
	}
	j, ok := s.cron.Get(id)
	if !ok {
		return nil, cronError(&cron.NotFoundError{ID: id})
	}
	return j, nil
}

func (s *Server) mCronStatus(*call) (any, *protocol.Error) {
	st := s.cron.Status()
	if t, ok := s.heartbeat.NextDue(); ok {
		st["heartbeatNextAtMs"] = t.UnixMilli()
	}
	return st, nil
}

func (s *Server) mCronRuns(cl *call) (any, *protocol.Error) {
	var p struct {
		ID             string `json:"id"`
		JobID          string `json:"jobId"`
		Scope          string `json:"scope"`
		RunID          string `json:"runId"`
		Status         string `json:"status"`
		DeliveryStatus string `json:"deliveryStatus"`
		Query          string `json:"query"`
		SortDir        string `json:"sortDir"`
		Offset         int    `json:"offset"`
		Limit          int    `json:"limit"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	o := cron.RunsOptions{RunID: p.RunID, Status: p.Status, DeliveryStatus: p.DeliveryStatus, Query: p.Query,
		SortDir: p.SortDir, Offset: p.Offset, Limit: p.Limit}
	switch p.Scope {
	case "all":
	case "", "job":
		id, e := jobID(p.ID, p.JobID)
		if e != nil {
			if p.Scope == "" && p.ID == "" && p.JobID == "" {
				break // no job named: every job's history, as OpenClaw
			}
			return nil, e
		}
		o.JobID = id
	default:
		return nil, invalid(`invalid params: scope must be "job" or "all"`)
	}
	page, err := s.cron.Runs(o)
	if err != nil {
		return nil, cronError(err)
	}
	return page, nil
}

func (s *Server) mCronAdd(cl *call) (any, *protocol.Error) {
	var in cron.Input
	if e := cl.params(&in); e != nil {
		return nil, e
	}
	j, err := s.cron.Add(in)
	if err != nil {
		return nil, cronError(err)
	}
	s.log.Info("cron: job added", "job", j.ID, "schedule", j.Schedule.Kind)
	return j, nil
}

func (s *Server) mCronUpdate(cl *call) (any, *protocol.Error) {
	var p struct {
		ID    string      `json:"id"`
		JobID string      `json:"jobId"`
		Patch *cron.Input `json:"patch"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	id, e := jobID(p.ID, p.JobID)
	if e != nil {
		return nil, e
	}
	if p.Patch == nil {
		return nil, invalid("invalid params: patch is required, such as {\"enabled\":false}")
	}
	j, err := s.cron.Update(id, *p.Patch)
	if err != nil {
		return nil, cronError(err)
	}
	return j, nil
}

func (s *Server) mCronRemove(cl *call) (any, *protocol.Error) {
	id, e := jobParam(cl)
	if e != nil {
		return nil, e
	}
	if err := s.cron.Remove(id); err != nil {
		return nil, cronError(err)
	}
	// A run in progress belongs to a job that is gone: stop it.
	if key, err := session.NormalizeKey(cron.SessionKey(id)); err == nil {
		s.runtime.Abort(key, "")
	}
	s.log.Info("cron: job removed", "job", id)
	return map[string]any{"ok": true, "removed": true}, nil
}

func (s *Server) mCronRun(cl *call) (any, *protocol.Error) {
	var p struct {
		ID    string `json:"id"`
		JobID string `json:"jobId"`
		Mode  string `json:"mode"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	id, e := jobID(p.ID, p.JobID)
	if e != nil {
		return nil, e
	}
	res, err := s.cron.RunNow(id, p.Mode)
	if err != nil {
		return nil, cronError(err)
	}
	return res, nil
}

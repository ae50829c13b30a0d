package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/agent"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

func (s *Server) agentMethods() map[string]method {
	return map[string]method{
		"agent":            {protocol.ScopeWrite, s.mAgent},
		"agent.wait":       {protocol.ScopeRead, s.mAgentWait},
		"chat.send":        {protocol.ScopeWrite, s.mChatSend},
		"chat.history":     {protocol.ScopeRead, s.mChatHistory},
		"chat.abort":       {protocol.ScopeWrite, s.mChatAbort},
		"chat.inject":      {protocol.ScopeWrite, s.mChatInject},
		"sessions.list":    {protocol.ScopeRead, s.mSessionsList},
		"sessions.preview": {protocol.ScopeRead, s.mSessionsPreview},
		"sessions.patch":   {protocol.ScopeAdmin, s.mSessionsPatch},
		"sessions.reset":   {protocol.ScopeAdmin, s.mSessionsReset},
		"sessions.delete":  {protocol.ScopeAdmin, s.mSessionsDelete},
		"sessions.compact": {protocol.ScopeAdmin, s.mSessionsCompact},
		"models.list":      {protocol.ScopeRead, s.mModelsList},
		"usage.status":     {protocol.ScopeRead, s.mUsageStatus},
		"skills.status":    {protocol.ScopeRead, s.mSkillsStatus},
	}
}

// resetAbortWait bounds how long a reset waits for the runs it aborted.
const resetAbortWait = 10 * time.Second

// Limits on what one request may carry.
const (
	maxMessageChars = 1 << 20 // a message larger than this is almost surely a mistake
	maxIdemKeyLen   = 256
	maxExtraPrompt  = 64 << 10
	// sessions.preview bounds; with them, one answer is at most about
	// 100 keys x 100 items x 4096 characters before the response budget.
	maxPreviewKeys  = 100
	maxPreviewLimit = 100
	maxPreviewChars = 4096
	// maxKeyJSON bounds one requested sessions.preview key, which is echoed
	// back as sent, valid or not.
	maxKeyJSON = 1024
)

func invalid(msg string) *protocol.Error { return protocol.Errorf(protocol.CodeInvalidRequest, msg) }

// sessionError maps session store errors to protocol errors.
func sessionError(err error) *protocol.Error {
	switch {
	case errors.Is(err, session.ErrNotFound):
		return protocol.Errorf(protocol.CodeNotFound, err.Error())
	case errors.Is(err, session.ErrUnknownAgent):
		return invalid("unknown agent: " + err.Error())
	case errors.Is(err, session.ErrInvalidKey), errors.Is(err, session.ErrInvalid), errors.Is(err, session.ErrMainSession):
		return invalid(err.Error())
	default:
		return &protocol.Error{Code: protocol.CodeUnavailable, Message: err.Error(), Retryable: true}
	}
}

// submitError maps a refused Submit: both refusals (a drain, a full queue)
// pass, so both are retryable; a full queue also says when to try again.
func submitError(err error) *protocol.Error {
	e := &protocol.Error{Code: protocol.CodeUnavailable, Message: err.Error(), Retryable: true}
	var qf *agent.QueueFullError
	if errors.As(err, &qf) {
		e.RetryAfterMs = qf.RetryAfter.Milliseconds()
		scope := "total"
		if qf.Session {
			scope = "session"
		}
		e.Details = map[string]any{"reason": "queue_full", "scope": scope, "limit": qf.Limit}
	}
	return e
}

// sessionKey normalizes an optional key ("" = main).
func sessionKey(k string) (string, *protocol.Error) {
	key, err := session.NormalizeKey(k)
	if err != nil {
		return "", sessionError(err)
	}
	return key, nil
}

func checkAgentID(id string) *protocol.Error {
	if id != "" && id != protocol.DefaultAgentID {
		return invalid("unknown agent: " + id + " (this Koi has one agent, \"main\")")
	}
	return nil
}

func checkMessage(msg string) *protocol.Error {
	if strings.TrimSpace(msg) == "" {
		return invalid("invalid params: message must be a non-empty string")
	}
	if len(msg) > maxMessageChars {
		return invalid("invalid params: message is larger than 1 MiB")
	}
	return nil
}

func checkThinking(t string) *protocol.Error {
	switch t {
	case "", "off", "low", "medium", "high":
		return nil
	}
	return invalid(`invalid params: thinking must be one of off, low, medium, high; got "` + t + `"`)
}

func checkIdem(k string) *protocol.Error {
	if len(k) > maxIdemKeyLen {
		return invalid("invalid params: idempotencyKey must be at most 256 characters")
	}
	return nil
}

type agentParams struct {
	Message           *string           `json:"message"`
	IdempotencyKey    string            `json:"idempotencyKey"`
	SessionKey        string            `json:"sessionKey"`
	AgentID           string            `json:"agentId"`
	Thinking          string            `json:"thinking"`
	Timeout           *int              `json:"timeout"` // seconds
	ExtraSystemPrompt string            `json:"extraSystemPrompt"`
	Attachments       []json.RawMessage `json:"attachments"`
}

// mAgent answers twice on the request's id: an ack at once, then the
// outcome when the run ends. The run does not depend on the connection.
func (s *Server) mAgent(cl *call) (any, *protocol.Error) {
	var p agentParams
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.Message == nil {
		return nil, invalid("invalid params: message is required")
	}
	for _, e := range []*protocol.Error{checkMessageWith(*p.Message, len(p.Attachments)), checkAgentID(p.AgentID), checkThinking(p.Thinking), checkIdem(p.IdempotencyKey)} {
		if e != nil {
			return nil, e
		}
	}
	atts, perr := decodeAttachments(p.Attachments)
	if perr != nil {
		return nil, perr
	}
	if len(p.ExtraSystemPrompt) > maxExtraPrompt {
		return nil, invalid("invalid params: extraSystemPrompt is larger than 64 KiB")
	}
	var timeout time.Duration
	if p.Timeout != nil {
		if *p.Timeout < 1 || *p.Timeout > 86400 {
			return nil, invalid("invalid params: timeout must be from 1 to 86400 seconds")
		}
		timeout = time.Duration(*p.Timeout) * time.Second
	}
	key, perr := sessionKey(p.SessionKey)
	if perr != nil {
		return nil, perr
	}
	refs, perr := s.saveAttachments(atts)
	if perr != nil {
		return nil, perr
	}
	run, existing, err := s.runtime.Submit(agent.SubmitParams{SessionKey: key, Message: *p.Message, IdempotencyKey: p.IdempotencyKey,
		Thinking: p.Thinking, Timeout: timeout, ExtraSystemPrompt: p.ExtraSystemPrompt, Attachments: refs})
	s.keepAttachments(refs, err == nil && !existing)
	if err != nil {
		return nil, submitError(err)
	}
	cl.answered = true
	cl.c.sendRes(cl.req.ID, map[string]any{"runId": run.ID, "sessionKey": run.SessionKey, "agentId": protocol.DefaultAgentID,
		"status": "accepted", "acceptedAt": run.AcceptedAt()})
	<-run.Done()
	res := run.Result()
	switch res.Status {
	case agent.StatusOK, agent.StatusAborted:
		provider, model := configgen.SplitModelRef(res.Model)
		summary := "completed"
		if res.Aborted {
			summary = "aborted"
		}
		cl.c.sendRes(cl.req.ID, map[string]any{"runId": run.ID, "status": "ok", "summary": summary,
			"result": map[string]any{
				"payloads": []map[string]any{{"text": res.Text}},
				"meta": map[string]any{"durationMs": run.EndedAt() - run.StartedAt(), "aborted": res.Aborted,
					"stopReason": res.StopReason, "compactions": res.Compactions,
					"agentMeta": map[string]any{"sessionId": res.SessionID, "provider": provider, "model": model, "usage": res.Usage}},
			}})
	default:
		code := res.ErrorCode
		if code == "" {
			code = protocol.CodeUnavailable
		}
		cl.c.sendErrorPayload(cl.req.ID, map[string]any{"runId": run.ID, "status": "error", "summary": res.Summary},
			protocol.Errorf(code, res.Error))
	}
	return nil, nil
}

// waitStatus maps a finished run onto agent.wait's status.
func waitStatus(run *agent.Run) map[string]any {
	res := run.Result()
	out := map[string]any{"runId": run.ID, "startedAt": run.StartedAt(), "endedAt": run.EndedAt()}
	switch res.Status {
	case agent.StatusOK, agent.StatusAborted:
		out["status"] = "ok"
		if res.Aborted {
			out["aborted"] = true
		}
	default:
		out["status"] = "error"
		out["error"] = res.Error
	}
	return out
}

func (s *Server) mAgentWait(cl *call) (any, *protocol.Error) {
	var p struct {
		RunID     string `json:"runId"`
		TimeoutMs *int   `json:"timeoutMs"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.RunID == "" {
		return nil, invalid("invalid params: runId is required")
	}
	wait := 30 * time.Second
	if p.TimeoutMs != nil {
		if *p.TimeoutMs < 0 || *p.TimeoutMs > 600000 {
			return nil, invalid("invalid params: timeoutMs must be from 0 to 600000")
		}
		wait = time.Duration(*p.TimeoutMs) * time.Millisecond
	}
	run, ok := s.runtime.Get(p.RunID)
	if !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "unknown run: "+p.RunID)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-run.Done():
		return waitStatus(run), nil
	case <-t.C:
		return map[string]any{"runId": run.ID, "status": "timeout", "startedAt": run.StartedAt(), "endedAt": nil}, nil
	}
}

func (s *Server) mChatSend(cl *call) (any, *protocol.Error) {
	var p struct {
		SessionKey     *string           `json:"sessionKey"`
		Message        *string           `json:"message"`
		IdempotencyKey string            `json:"idempotencyKey"`
		Thinking       string            `json:"thinking"`
		TimeoutMs      *int              `json:"timeoutMs"`
		Attachments    []json.RawMessage `json:"attachments"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.SessionKey == nil {
		return nil, invalid("invalid params: sessionKey is required")
	}
	if p.Message == nil {
		return nil, invalid("invalid params: message is required")
	}
	if p.IdempotencyKey == "" {
		return nil, invalid("invalid params: idempotencyKey is required")
	}
	for _, e := range []*protocol.Error{checkMessageWith(*p.Message, len(p.Attachments)), checkThinking(p.Thinking), checkIdem(p.IdempotencyKey)} {
		if e != nil {
			return nil, e
		}
	}
	atts, perr := decodeAttachments(p.Attachments)
	if perr != nil {
		return nil, perr
	}
	key, perr := sessionKey(*p.SessionKey)
	if perr != nil {
		return nil, perr
	}
	command := strings.TrimSpace(*p.Message)
	if len(atts) > 0 {
		command = "" // a message with files is a message, whatever its text
	}
	switch command {
	case "/new", "/reset":
		entry, aborted, err := s.resetSession(key)
		if err != nil {
			return nil, sessionError(err)
		}
		return map[string]any{"runId": p.IdempotencyKey, "status": "ok", "command": "reset", "sessionId": entry.SessionID, "abortedRunIds": aborted}, nil
	case "/compact":
		// A run of its own, queued behind the session's runs, so it never
		// summarises a turn still being written; its events are a normal
		// run's, with the compaction stream between start and end.
		run, _, err := s.runtime.Submit(agent.SubmitParams{SessionKey: key, Message: *p.Message,
			IdempotencyKey: p.IdempotencyKey, Compact: true})
		if err != nil {
			return nil, submitError(err)
		}
		return map[string]any{"runId": run.ID, "status": "started", "command": "compact"}, nil
	case "/stop":
		ids := s.runtime.Abort(key, "")
		return map[string]any{"runId": p.IdempotencyKey, "status": "ok", "command": "stop", "aborted": len(ids) > 0, "runIds": ids}, nil
	}
	var timeout time.Duration
	if p.TimeoutMs != nil {
		if *p.TimeoutMs < 1000 || *p.TimeoutMs > 86400000 {
			return nil, invalid("invalid params: timeoutMs must be from 1000 to 86400000")
		}
		timeout = time.Duration(*p.TimeoutMs) * time.Millisecond
	}
	refs, perr := s.saveAttachments(atts)
	if perr != nil {
		return nil, perr
	}
	run, existing, err := s.runtime.Submit(agent.SubmitParams{SessionKey: key, Message: *p.Message,
		IdempotencyKey: p.IdempotencyKey, Thinking: p.Thinking, Timeout: timeout, Attachments: refs})
	s.keepAttachments(refs, err == nil && !existing)
	if err != nil {
		return nil, submitError(err)
	}
	if !existing {
		return map[string]any{"runId": run.ID, "status": "started"}, nil
	}
	select {
	case <-run.Done():
		return map[string]any{"runId": run.ID, "status": run.Result().Status}, nil
	default:
		return map[string]any{"runId": run.ID, "status": "in_flight"}, nil
	}
}

// resetSession aborts key's runs (a run must not write into the new
// transcript), starts a fresh session and tells clients. It returns the
// aborted run ids.
func (s *Server) resetSession(key string) (session.Entry, []string, error) {
	aborted := s.runtime.Abort(key, "")
	// An aborted run still records what it streamed before it stops; that
	// belongs to the old transcript, so the new one starts only once the
	// runs have ended (they end as soon as their model stream and tools see
	// the abort; the bound is for a tool that ignores it).
	ctx, cancel := context.WithTimeout(context.Background(), resetAbortWait)
	defer cancel()
	for _, id := range aborted {
		run, ok := s.runtime.Get(id)
		if !ok {
			continue
		}
		select {
		case <-run.Done():
		case <-ctx.Done():
			s.log.Warn("reset: an aborted run has not ended; starting the new session anyway", "key", key, "run", id)
		}
	}
	// The conversation is about to leave the model's view: let the agent
	// keep what matters first (silent, bounded by agent.FlushTimeout).
	if err := s.runtime.FlushMemory(context.Background(), key); err != nil {
		s.log.Warn("reset: the memory flush failed; resetting anyway", "key", key, "err", err)
	}
	entry, err := s.sessions.Reset(key)
	if err != nil {
		return entry, aborted, err
	}
	s.emitAgentEvent(protocol.EventSessionsChanged, map[string]any{"keys": []string{key}, "reason": "reset"}, false)
	return entry, aborted, nil
}

func (s *Server) mChatHistory(cl *call) (any, *protocol.Error) {
	var p struct {
		SessionKey string `json:"sessionKey"`
		Limit      *int   `json:"limit"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	limit := 200
	if p.Limit != nil {
		if *p.Limit < 1 || *p.Limit > 1000 {
			return nil, invalid("invalid params: limit must be from 1 to 1000")
		}
		limit = *p.Limit
	}
	key, perr := sessionKey(p.SessionKey)
	if perr != nil {
		return nil, perr
	}
	sid, msgs, err := s.sessions.History(key, limit)
	if errors.Is(err, session.ErrNotFound) && key == session.MainKey {
		// The main session exists from the first message on; before that it
		// is simply empty.
		return map[string]any{"sessionKey": key, "sessionId": nil, "messages": []any{}, "truncated": false, "omitted": 0}, nil
	}
	if err != nil {
		return nil, sessionError(err)
	}
	kept, omitted := fitItems(msgs, responseBudget-envelopeSlack, true,
		func(m session.Message) historyMessage { return clipMessage(m, maxHistoryMessageBytes) })
	return map[string]any{"sessionKey": key, "sessionId": sid, "messages": kept,
		"truncated": omitted > 0 || slices.ContainsFunc(kept, func(m historyMessage) bool { return m.Truncated }),
		"omitted":   omitted}, nil
}

func (s *Server) mChatAbort(cl *call) (any, *protocol.Error) {
	var p struct {
		SessionKey *string `json:"sessionKey"`
		RunID      string  `json:"runId"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.SessionKey == nil {
		return nil, invalid("invalid params: sessionKey is required")
	}
	key, perr := sessionKey(*p.SessionKey)
	if perr != nil {
		return nil, perr
	}
	ids := s.runtime.Abort(key, p.RunID)
	return map[string]any{"ok": true, "aborted": len(ids) > 0, "runIds": ids}, nil
}

func (s *Server) mChatInject(cl *call) (any, *protocol.Error) {
	var p struct {
		SessionKey *string `json:"sessionKey"`
		Message    *string `json:"message"`
		Label      string  `json:"label"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.SessionKey == nil || p.Message == nil {
		return nil, invalid("invalid params: sessionKey and message are required")
	}
	if e := checkMessage(*p.Message); e != nil {
		return nil, e
	}
	key, perr := sessionKey(*p.SessionKey)
	if perr != nil {
		return nil, perr
	}
	if _, _, err := s.sessions.Resolve(key); err != nil {
		return nil, sessionError(err)
	}
	text := *p.Message
	if p.Label != "" {
		text = "[" + p.Label + "] " + text
	}
	entry, err := s.sessions.Append(key, session.Message{Role: "assistant", Content: []session.Content{{Type: "text", Text: text}}, StopReason: "injected"})
	if err != nil {
		return nil, sessionError(err)
	}
	// No run tells other clients about the note; without this they would
	// see it only on their next chat.history.
	s.emitAgentEvent(protocol.EventSessionsChanged, map[string]any{"keys": []string{key}, "reason": "inject",
		"messageId": entry.LastMessageID}, false)
	return map[string]any{"ok": true, "messageId": entry.LastMessageID}, nil
}

func (s *Server) mSessionsList(cl *call) (any, *protocol.Error) {
	var p struct {
		Limit         int    `json:"limit"`
		ActiveMinutes int    `json:"activeMinutes"`
		Search        string `json:"search"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.Limit < 0 || p.ActiveMinutes < 0 {
		return nil, invalid("invalid params: limit and activeMinutes must not be negative")
	}
	entries := s.sessions.List(session.ListOptions{Limit: p.Limit, ActiveMinutes: p.ActiveMinutes, Search: p.Search})
	// Most recently updated first, so what does not fit is the stalest.
	out, omitted := fitItems(entries, responseBudget-envelopeSlack, false, func(e session.Entry) map[string]any {
		row := map[string]any{"key": e.Key, "sessionId": e.SessionID, "kind": session.KeyKind(e.Key), "updatedAt": e.UpdatedAt,
			"inputTokens": e.InputTokens, "outputTokens": e.OutputTokens, "totalTokens": e.TotalTokens}
		for k, v := range map[string]string{"label": e.Label, "derivedTitle": e.DerivedTitle,
			"lastMessagePreview": e.LastMessagePreview, "model": e.Model} {
			if v != "" {
				row[k] = v
			}
		}
		return row
	})
	return map[string]any{"ts": s.opts.Now().UnixMilli(), "count": len(out), "sessions": out,
		"truncated": omitted > 0, "omitted": omitted}, nil
}

func (s *Server) mSessionsPreview(cl *call) (any, *protocol.Error) {
	var p struct {
		Keys     []string `json:"keys"`
		Limit    int      `json:"limit"`
		MaxChars int      `json:"maxChars"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if len(p.Keys) == 0 {
		return nil, invalid("invalid params: keys must be a non-empty array of session keys")
	}
	if len(p.Keys) > maxPreviewKeys {
		return nil, invalid("invalid params: at most 100 keys")
	}
	if p.Limit < 0 || p.Limit > maxPreviewLimit {
		return nil, invalid("invalid params: limit must be from 1 to 100 (0 or absent: 12)")
	}
	if p.MaxChars < 0 || p.MaxChars > maxPreviewChars {
		return nil, invalid("invalid params: maxChars must be from 1 to 4096 (0 or absent: 240)")
	}
	for _, k := range p.Keys {
		if len(k) > maxKeyJSON {
			return nil, invalid("invalid params: each key must be at most 1024 bytes")
		}
	}
	previews := s.sessions.Preview(p.Keys, p.Limit, p.MaxChars)
	// Every requested key keeps its entry, in order; the ones past the
	// budget come without items and marked, so room for those is set aside.
	stub := func(pv session.Preview) session.Preview {
		pv.Items, pv.Truncated = []session.PreviewItem{}, true
		return pv
	}
	reserve := 0
	for _, pv := range previews {
		b, _ := json.Marshal(stub(pv))
		reserve += len(b) + 1
	}
	kept, omitted := fitItems(previews, responseBudget-envelopeSlack-reserve, false,
		func(pv session.Preview) session.Preview { return pv })
	for _, pv := range previews[len(kept):] {
		kept = append(kept, stub(pv))
	}
	return map[string]any{"ts": s.opts.Now().UnixMilli(), "previews": kept, "truncated": omitted > 0}, nil
}

func (s *Server) mSessionsPatch(cl *call) (any, *protocol.Error) {
	var p struct {
		Key *string `json:"key"`
		session.Patch
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.Key == nil {
		return nil, invalid("invalid params: key is required")
	}
	key, perr := sessionKey(*p.Key)
	if perr != nil {
		return nil, perr
	}
	if m := p.Model; m.Present && !m.Null && m.Value != "" {
		if provider, id := configgen.SplitModelRef(m.Value); provider != configgen.Provider || id == "" {
			return nil, invalid(`invalid params: model must be "amazon-bedrock/<modelId>", got "` + m.Value + `"`)
		}
	}
	entry, err := s.sessions.Patch(key, p.Patch)
	if err != nil {
		return nil, sessionError(err)
	}
	s.emitAgentEvent(protocol.EventSessionsChanged, map[string]any{"keys": []string{key}, "reason": "patch"}, false)
	return map[string]any{"ok": true, "key": key, "entry": entry}, nil
}

// requiredKey reads the required, normalized "key" param of the
// sessions.reset and sessions.delete methods.
func requiredKey(cl *call) (string, *protocol.Error) {
	var p struct {
		Key *string `json:"key"`
	}
	if e := cl.params(&p); e != nil {
		return "", e
	}
	if p.Key == nil {
		return "", invalid("invalid params: key is required")
	}
	return sessionKey(*p.Key)
}

func (s *Server) mSessionsReset(cl *call) (any, *protocol.Error) {
	key, perr := requiredKey(cl)
	if perr != nil {
		return nil, perr
	}
	entry, _, err := s.resetSession(key)
	if err != nil {
		return nil, sessionError(err)
	}
	return map[string]any{"ok": true, "key": key, "entry": entry}, nil
}

// mSessionsCompact summarises a session's older turns now and answers when
// that is done: {ok, key, compacted, result{tokensBefore, tokensAfter}}.
func (s *Server) mSessionsCompact(cl *call) (any, *protocol.Error) {
	key, perr := requiredKey(cl)
	if perr != nil {
		return nil, perr
	}
	if _, ok := s.sessions.Get(key); !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no session "+key+" (sessions.list shows the keys)")
	}
	run, _, err := s.runtime.Submit(agent.SubmitParams{SessionKey: key, Compact: true})
	if err != nil {
		return nil, submitError(err)
	}
	<-run.Done() // bounded by the run's timeout, like any run
	res := run.Result()
	if res.Status != agent.StatusOK {
		return nil, &protocol.Error{Code: protocol.CodeUnavailable, Message: "compacting " + key + ": " + res.Error, Retryable: true}
	}
	out := map[string]any{"ok": true, "key": key, "compacted": res.Compactions > 0}
	if res.Compactions > 0 {
		out["result"] = map[string]any{"tokensBefore": res.TokensBefore, "tokensAfter": res.TokensAfter}
	} else {
		out["reason"] = res.Text
	}
	return out, nil
}

func (s *Server) mSessionsDelete(cl *call) (any, *protocol.Error) {
	key, perr := requiredKey(cl)
	if perr != nil {
		return nil, perr
	}
	if key != session.MainKey {
		s.runtime.Abort(key, "")
	}
	deleted, err := s.sessions.Delete(key)
	if err != nil {
		return nil, sessionError(err)
	}
	if deleted {
		s.emitAgentEvent(protocol.EventSessionsChanged, map[string]any{"keys": []string{key}, "reason": "delete"}, false)
	}
	return map[string]any{"ok": true, "key": key, "deleted": deleted}, nil
}

func (s *Server) mModelsList(*call) (any, *protocol.Error) {
	cfg := s.cfg()
	var out []map[string]any
	for _, ref := range cfg.ModelRefs() {
		provider, id := configgen.SplitModelRef(ref)
		out = append(out, map[string]any{"id": ref, "name": id, "provider": provider,
			"reasoning": strings.Contains(id, "claude") && (strings.Contains(id, "-4") || strings.Contains(id, "3-7"))})
	}
	return map[string]any{"models": out}, nil
}

func (s *Server) mUsageStatus(cl *call) (any, *protocol.Error) {
	var p struct {
		Days *int `json:"days"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	days := 30
	if p.Days != nil {
		if *p.Days < 1 || *p.Days > 366 {
			return nil, invalid("invalid params: days must be from 1 to 366")
		}
		days = *p.Days
	}
	return s.sessions.Usage(days), nil
}

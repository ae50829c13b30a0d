package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
	"github.com/skykoi/skykoi/gateway/tools"
)

// Run statuses.
const (
	StatusOK      = "ok"
	StatusError   = "error"
	StatusAborted = "aborted"
	StatusTimeout = "timeout"
)

// Result is a run's terminal state.
type Result struct {
	Status     string // ok, error, aborted, timeout
	Summary    string
	Text       string // the assistant's answer (all steps)
	Error      string // what went wrong, for a person
	ErrorCode  string // protocol error code for the final res
	Aborted    bool
	StopReason string
	Model      string
	SessionID  string
	Usage      session.Usage
	// Compactions is how many times the run summarised older turns to fit
	// the context window.
	Compactions int
	// TokensBefore and TokensAfter are the estimated context sizes around
	// the run's last compaction.
	TokensBefore, TokensAfter int
}

// Run is one message being answered.
type Run struct {
	ID         string
	SessionKey string
	params     SubmitParams
	accepted   time.Time

	mu        sync.Mutex
	started   time.Time
	ended     time.Time
	sessionID string
	cancel    context.CancelCauseFunc
	preCause  error // abort before start
	result    Result
	done      chan struct{}
}

// AcceptedAt, StartedAt and EndedAt are unix ms (0 when not yet).
func (r *Run) AcceptedAt() int64 { return r.accepted.UnixMilli() }

func (r *Run) StartedAt() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ms(r.started)
}

func (r *Run) EndedAt() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ms(r.ended)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (r *Run) endedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

// Done is closed when the run has its terminal state.
func (r *Run) Done() <-chan struct{} { return r.done }

// Result is the terminal state; valid after Done.
func (r *Run) Result() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result
}

func (r *Run) isDone() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *Run) hasStarted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.started.IsZero()
}

// abort cancels the run (or marks a queued one); false when already over.
func (r *Run) abort(cause error) bool {
	if r.isDone() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel(cause)
	} else {
		r.preCause = cause
	}
	return true
}

func (r *Run) setResult(res Result, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return false
	default:
	}
	if res.SessionID == "" {
		res.SessionID = r.sessionID
	}
	r.result = res
	r.ended = now
	close(r.done)
	return true
}

// emitter numbers a run's agent and chat events (seq per run, from 1).
type emitter struct {
	rt        *Runtime
	run       *Run
	sessionID string
	mu        sync.Mutex
	agentSeq  int
	chatSeq   int
}

func (e *emitter) agent(stream string, data any) {
	e.mu.Lock()
	e.agentSeq++
	p := map[string]any{
		"runId": e.run.ID, "seq": e.agentSeq, "stream": stream, "ts": e.rt.opts.Clock.Now().UnixMilli(),
		"sessionKey": e.run.SessionKey, "agentId": protocol.DefaultAgentID, "sessionId": e.sessionID, "data": data,
	}
	// Emit under the lock so seq order is send order.
	e.rt.opts.Emit(protocol.EventAgent, p, stream == "tool")
	e.mu.Unlock()
}

func (e *emitter) chat(state string, fields map[string]any) {
	e.mu.Lock()
	e.chatSeq++
	p := map[string]any{"runId": e.run.ID, "sessionKey": e.run.SessionKey, "agentId": protocol.DefaultAgentID,
		"seq": e.chatSeq, "state": state}
	for k, v := range fields {
		p[k] = v
	}
	e.rt.opts.Emit(protocol.EventChat, p, false)
	e.mu.Unlock()
}

// execute runs one run to its terminal state. Every path ends in finish.
func (r *Runtime) execute(run *Run) {
	cfg := r.opts.Config()
	now := r.opts.Clock.Now()
	timeout := run.params.Timeout
	if timeout <= 0 {
		timeout = time.Duration(cfg.Agents.Defaults.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithCancelCause(r.base)
	defer cancel(nil)
	ctx, cancelT := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancelT()

	run.mu.Lock()
	run.started = now
	run.cancel = cancel
	pre := run.preCause
	run.mu.Unlock()
	if pre != nil {
		r.finish(run, Result{Status: StatusAborted, Aborted: true, Summary: "aborted before it started"})
		return
	}
	// Before Resolve starts the session over: the run's own context, so
	// aborting the run (or its timeout) also ends the flush.
	r.flushIfResetDue(ctx, run)

	entry, reset, err := r.opts.Sessions.Resolve(run.SessionKey)
	em := &emitter{rt: r, run: run}
	if err != nil {
		r.fail(run, em, now, "could not open the session: "+err.Error())
		return
	}
	run.mu.Lock()
	run.sessionID = entry.SessionID
	run.mu.Unlock()
	em.sessionID = entry.SessionID
	if reset.Reset {
		r.opts.Emit(protocol.EventSessionsChanged, map[string]any{"keys": []string{run.SessionKey}, "reason": reset.Reason}, false)
	}
	em.agent("lifecycle", map[string]any{"phase": "start", "startedAt": now.UnixMilli()})

	if !run.params.Compact {
		var content []session.Content
		if run.params.Message != "" || len(run.params.Attachments) == 0 {
			content = append(content, session.Content{Type: "text", Text: run.params.Message})
		}
		content = append(content, run.params.Attachments...)
		e, err := r.opts.Sessions.Append(run.SessionKey, session.Message{Role: "user", Content: content, RunID: run.ID})
		if err != nil {
			r.fail(run, em, now, "could not record the message: "+err.Error())
			return
		}
		entry = e
	}
	cv, err := r.opts.Sessions.ContextMessages(run.SessionKey, historyLimit)
	if err != nil {
		r.fail(run, em, now, "could not read the session history: "+err.Error())
		return
	}
	tl, err := r.opts.ToolsFor(entry.ExecSecurity)
	if err != nil {
		r.fail(run, em, now, err.Error())
		return
	}
	l := &loop{rt: r, run: run, em: em, cfg: cfg, ctx: ctx, started: now, sessionModel: entry.Model, tools: tl}
	l.msgs = buildMessages(cv.Compaction, cv.Messages, l.window(), r.loadAttachment)
	if entry.ContextTokens > 0 && len(l.msgs) > 0 {
		// Bedrock's count for the context up to the last answer; what
		// follows it (this message) is estimated. A compaction run
		// appended nothing, so its context ends with that answer.
		l.base, l.baseLen = entry.ContextTokens, len(l.msgs)-1
		if run.params.Compact {
			l.baseLen = len(l.msgs)
		}
	}
	l.setup()
	if run.params.Compact {
		l.compactOnly()
		return
	}
	l.runSteps()
}

// loop is the model/tool loop of one run.
type loop struct {
	rt           *Runtime
	run          *Run
	em           *emitter
	cfg          configgen.Config
	ctx          context.Context
	started      time.Time
	sessionModel string
	msgs         []bedrock.Message
	tools        Tools

	textMu    sync.Mutex
	text      strings.Builder // the run's whole answer so far
	agentText strings.Builder // what agent assistant events have carried
	chatText  strings.Builder // what chat deltas have carried
	agentCo   *coalescer
	chatCo    *coalescer

	recorded int // length of text already in the transcript

	usage session.Usage
	model string
	stop  string

	// base is Bedrock's token count of the context up to l.msgs[:baseLen]
	// (the last request plus its answer); 0 when unknown.
	base, baseLen  int
	compactions    int
	lastCompaction compactResult
	// retried: the last request was refused as too long and retried after
	// a compaction; another refusal ends the run. noAutoCompact: a
	// compaction did not bring the context under the threshold, so the
	// rest of the run does not try again before every step.
	retried, noAutoCompact bool
}

func (l *loop) setup() {
	l.agentCo = newCoalescer(AgentDeltaInterval, l.rt.opts.Clock, func(d string) {
		l.textMu.Lock()
		l.agentText.WriteString(d)
		full := l.agentText.String()
		l.textMu.Unlock()
		l.em.agent("assistant", map[string]any{"text": full, "delta": d})
	})
	l.chatCo = newCoalescer(ChatDeltaInterval, l.rt.opts.Clock, func(d string) {
		l.textMu.Lock()
		l.chatText.WriteString(d)
		full := l.chatText.String()
		l.textMu.Unlock()
		l.em.chat("delta", map[string]any{"deltaText": d, "message": l.message(full)})
	})
}

func (l *loop) message(text string) map[string]any {
	return map[string]any{"role": "assistant", "content": []map[string]any{{"type": "text", "text": text}},
		"timestamp": l.rt.opts.Clock.Now().UnixMilli()}
}

func (l *loop) flush() {
	l.agentCo.Flush()
	l.chatCo.Flush()
}

func (l *loop) hasText() bool {
	l.textMu.Lock()
	defer l.textMu.Unlock()
	return l.text.Len() > 0
}

// addText feeds a model delta to the run's text and both coalescers.
func (l *loop) addText(d string) {
	l.textMu.Lock()
	l.text.WriteString(d)
	l.textMu.Unlock()
	l.agentCo.Add(d)
	l.chatCo.Add(d)
}

func (l *loop) modelRefs() []string { return modelRefs(l.cfg, l.sessionModel) }

func (l *loop) callInfo(purpose string) CallInfo {
	return CallInfo{SessionKey: l.run.SessionKey, SessionID: l.em.sessionID, Purpose: purpose}
}

// modelRefs is the config's models with the session's own choice, if it
// has one, tried first.
func modelRefs(cfg configgen.Config, sessionModel string) []string {
	refs := cfg.ModelRefs()
	if sessionModel == "" {
		return refs
	}
	out := []string{sessionModel}
	for _, m := range refs {
		if m != sessionModel {
			out = append(out, m)
		}
	}
	return out
}

// addUsage counts one model response's tokens (an answer's or a summary's)
// toward the run.
func (l *loop) addUsage(u bedrock.Usage) {
	l.usage.InputTokens += u.InputTokens
	l.usage.OutputTokens += u.OutputTokens
	l.usage.CacheReadTokens += u.CacheReadTokens
	l.usage.CacheWriteTokens += u.CacheWriteTokens
}

// modelSpecs is the tool list as the model gets it; with only, just the
// named tools.
func modelSpecs(specs []tools.Spec, only []string) []bedrock.ToolSpec {
	out := make([]bedrock.ToolSpec, 0, len(specs))
	for _, s := range specs {
		if only == nil || slices.Contains(only, s.Name) {
			out = append(out, bedrock.ToolSpec{Name: s.Name, Description: s.Description, InputSchema: s.InputSchema})
		}
	}
	return out
}

func (l *loop) runSteps() {
	rt := l.rt
	system := rt.systemPrompt(l.run.params.ExtraSystemPrompt)
	toolSpecs := modelSpecs(l.tools.Specs(), nil)
	thinking := l.cfg.Agents.Defaults.Thinking
	if l.run.params.Thinking != "" {
		thinking = l.run.params.Thinking
	}
	for step := 0; ; step++ {
		if step >= rt.opts.MaxSteps {
			l.end(StatusError, "the run stopped after "+strconv.Itoa(rt.opts.MaxSteps)+" model calls without finishing (step limit)", protocol.CodeUnavailable)
			return
		}
		stepText := 0
		window := l.window()
		size := l.contextSize(system, toolSpecs)
		if !l.noAutoCompact && size >= window*CompactPercent/100 {
			err := l.compactNow("threshold", size, false)
			if l.ctx.Err() != nil {
				l.endErr(context.Cause(l.ctx))
				return
			}
			size = l.contextSize(system, toolSpecs)
			if err != nil {
				rt.log.Warn("could not compact the session context before sending", "run", l.run.ID, "err", err)
				l.noAutoCompact = true
			} else if size >= window*CompactPercent/100 {
				// Still over after compacting: another try this run would
				// summarise the same turns again.
				l.noAutoCompact = true
			}
		}
		req := bedrock.Request{Models: l.modelRefs(), System: system, Messages: l.msgs, Tools: toolSpecs,
			MaxTokens: l.cfg.Agents.Defaults.MaxTokens, Thinking: thinking, CacheMessagesUpTo: len(l.msgs) - 1}
		resp, err := rt.stream(l.ctx, l.callInfo(PurposeRun), req, func(ev bedrock.Event) {
			switch ev := ev.(type) {
			case bedrock.TextDelta:
				text := ev.Text
				if stepText == 0 && step > 0 && l.hasText() {
					// Text after a tool step starts a new paragraph.
					text = "\n\n" + text
				}
				stepText += len(ev.Text)
				l.addText(text)
			case bedrock.Retry:
				rt.log.Warn("model call retried", "run", l.run.ID, "model", ev.Model, "attempt", ev.Attempt, "reason", ev.Reason)
			case bedrock.Fallback:
				rt.log.Warn("model fallback", "run", l.run.ID, "from", ev.From, "to", ev.To, "reason", ev.Reason)
				l.em.agent("lifecycle", map[string]any{"phase": "fallback", "from": ev.From, "to": ev.To, "reason": ev.Reason})
			}
		})
		if err != nil {
			var be *bedrock.Error
			if errors.As(err, &be) && be.Kind == bedrock.ContextOverflow && stepText == 0 {
				// One compaction and one retry per refusal, never a loop:
				// a second refusal in a row ends the run.
				if l.retried {
					l.end(StatusError, "the conversation is still too long for the model's context window after compacting it; "+
						"start a new session with /new, or send a shorter message", protocol.CodeInvalidRequest)
					return
				}
				l.retried = true
				rt.log.Info("the model refused the context as too long; compacting and retrying once", "run", l.run.ID, "estimate", size)
				if err := l.compactNow("overflow", max(size, window), true); err != nil {
					if l.ctx.Err() != nil {
						l.endErr(context.Cause(l.ctx))
						return
					}
					msg, code := compactFailure(err)
					l.end(StatusError, msg, code)
					return
				}
				continue
			}
			l.recordPartial()
			l.endErr(err)
			return
		}
		l.model = resp.Model
		l.stop = resp.StopReason
		u := session.Usage{InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens,
			CacheReadTokens: resp.Usage.CacheReadTokens, CacheWriteTokens: resp.Usage.CacheWriteTokens}
		l.addUsage(resp.Usage)
		l.retried = false
		l.msgs = append(l.msgs, bedrock.Message{Role: bedrock.RoleAssistant, Content: resp.Content})
		// The same count the session index keeps as ContextTokens.
		l.base, l.baseLen = u.Total(), len(l.msgs)
		if _, err := rt.opts.Sessions.Append(l.run.SessionKey, assistantMessage(resp, l.run.ID, u)); err != nil {
			l.end(StatusError, "could not record the answer: "+err.Error(), protocol.CodeUnavailable)
			return
		}
		l.textMu.Lock()
		l.recorded = l.text.Len()
		l.textMu.Unlock()
		l.flush()
		l.em.agent("usage", map[string]any{"inputTokens": u.InputTokens, "outputTokens": u.OutputTokens,
			"cacheReadTokens": u.CacheReadTokens, "cacheWriteTokens": u.CacheWriteTokens})
		uses := resp.ToolUses()
		if len(uses) == 0 {
			l.end(StatusOK, "completed", "")
			return
		}
		results := l.runTools(uses)
		// What is sent may be trimmed; what is recorded is whole.
		l.msgs = append(l.msgs, trimToolResults([]bedrock.Message{{Role: bedrock.RoleUser, Content: slices.Clone(results)}}, window)...)
		if err := l.recordToolResults(uses, results); err != nil {
			l.end(StatusError, "could not record tool results: "+err.Error(), protocol.CodeUnavailable)
			return
		}
		if l.ctx.Err() != nil {
			l.endErr(context.Cause(l.ctx))
			return
		}
	}
}

// runTools runs the step's tool calls in order, with tool events around each.
func (l *loop) runTools(uses []bedrock.Block) []bedrock.Block {
	var out []bedrock.Block
	for _, u := range uses {
		if l.ctx.Err() != nil {
			out = append(out, bedrock.Block{Type: bedrock.BlockToolResult, ToolUseID: u.ToolUseID, Result: interruptedResult, IsError: true})
			continue
		}
		var args any = json.RawMessage(u.Input)
		if !json.Valid(u.Input) {
			args = string(u.Input)
		}
		l.em.agent("tool", map[string]any{"phase": "start", "name": u.Name, "toolCallId": u.ToolUseID, "args": args})
		res := l.tools.Run(l.ctx, u.Name, u.Input)
		data := map[string]any{"phase": "result", "name": u.Name, "toolCallId": u.ToolUseID, "isError": res.IsError, "result": res.Text}
		if len(res.Details) > 0 {
			data["details"] = res.Details
		}
		l.em.agent("tool", data)
		out = append(out, bedrock.Block{Type: bedrock.BlockToolResult, ToolUseID: u.ToolUseID, Result: res.Text, IsError: res.IsError})
	}
	return out
}

func (l *loop) recordToolResults(uses, results []bedrock.Block) error {
	names := map[string]string{}
	for _, u := range uses {
		names[u.ToolUseID] = u.Name
	}
	m := session.Message{Role: "user", RunID: l.run.ID}
	for _, r := range results {
		m.Content = append(m.Content, session.Content{Type: "toolResult", ToolCallID: r.ToolUseID, Name: names[r.ToolUseID],
			Result: r.Result, IsError: r.IsError})
	}
	_, err := l.rt.opts.Sessions.Append(l.run.SessionKey, m)
	return err
}

// recordPartial saves text the model streamed before a failure or abort
// (the part no step has recorded yet), so what the person saw is in the
// history too.
func (l *loop) recordPartial() {
	l.textMu.Lock()
	tail := strings.TrimSpace(l.text.String()[l.recorded:])
	l.textMu.Unlock()
	if tail == "" {
		return
	}
	if _, err := l.rt.opts.Sessions.Append(l.run.SessionKey, session.Message{Role: "assistant", RunID: l.run.ID,
		Content: []session.Content{{Type: "text", Text: tail}}, StopReason: "interrupted"}); err != nil {
		l.rt.log.Error("recording partial answer", "run", l.run.ID, "err", err)
	}
}

func assistantMessage(resp *bedrock.Response, runID string, u session.Usage) session.Message {
	m := session.Message{Role: "assistant", RunID: runID, Model: resp.Model, StopReason: resp.StopReason, Usage: &u}
	for _, b := range resp.Content {
		switch b.Type {
		case bedrock.BlockText:
			if b.Text != "" {
				m.Content = append(m.Content, session.Content{Type: "text", Text: b.Text})
			}
		case bedrock.BlockToolUse:
			m.Content = append(m.Content, session.Content{Type: "toolCall", ID: b.ToolUseID, Name: b.Name, Arguments: b.Input})
		}
	}
	if len(m.Content) == 0 {
		m.Content = []session.Content{{Type: "text", Text: ""}}
	}
	return m
}

// endErr ends the run from an error: abort, timeout, shutdown or a model
// failure.
func (l *loop) endErr(err error) {
	cause := context.Cause(l.ctx)
	switch {
	case errors.Is(cause, errAborted):
		l.end(StatusAborted, "aborted", "")
	case errors.Is(cause, errTimeout):
		l.end(StatusTimeout, "the run timed out after "+durationText(l.rt.opts.Config().Agents.Defaults.TimeoutSeconds, l.run.params.Timeout)+
			" (agents.defaults.timeoutSeconds)", protocol.CodeAgentTimeout)
	case errors.Is(cause, errShutdown):
		l.end(StatusError, errShutdown.Error(), protocol.CodeUnavailable)
	default:
		msg := err.Error()
		var be *bedrock.Error
		if errors.As(err, &be) {
			// The person gets one sentence with the fix; the SDK's chain
			// behind it goes to the debug log.
			msg = be.Brief()
			l.rt.log.Debug("model call failed", "run", l.run.ID, "kind", string(be.Kind), "err", be.Message, "cause", be.Err)
		}
		l.end(StatusError, msg, protocol.CodeUnavailable)
	}
}

func durationText(cfgSeconds int, override time.Duration) string {
	if override > 0 {
		return override.String()
	}
	return (time.Duration(cfgSeconds) * time.Second).String()
}

// end emits the run's last events and records its terminal state.
func (l *loop) end(status, summary, code string) {
	l.agentCo.Close()
	l.chatCo.Close()
	l.textMu.Lock()
	full := l.text.String()
	l.textMu.Unlock()
	now := l.rt.opts.Clock.Now()
	res := Result{Status: status, Summary: summary, Text: full, StopReason: l.stop, Model: l.model,
		Usage: l.usage, Compactions: l.compactions, Aborted: status == StatusAborted,
		TokensBefore: l.lastCompaction.TokensBefore, TokensAfter: l.lastCompaction.TokensAfter}
	usage := map[string]any{"inputTokens": l.usage.InputTokens, "outputTokens": l.usage.OutputTokens,
		"cacheReadTokens": l.usage.CacheReadTokens, "cacheWriteTokens": l.usage.CacheWriteTokens}
	switch status {
	case StatusOK, StatusAborted:
		data := map[string]any{"phase": "end", "startedAt": l.started.UnixMilli(), "endedAt": now.UnixMilli()}
		if status == StatusAborted {
			data["aborted"] = true
		}
		if l.compactions > 0 {
			data["compactions"] = l.compactions
		}
		l.em.agent("lifecycle", data)
		state := "final"
		if status == StatusAborted {
			state = "aborted"
		}
		l.em.chat(state, map[string]any{"message": l.message(full), "usage": usage, "stopReason": l.stop})
	default:
		res.Error = summary
		res.ErrorCode = code
		data := map[string]any{"phase": "error", "startedAt": l.started.UnixMilli(), "endedAt": now.UnixMilli(), "error": summary}
		if l.compactions > 0 {
			data["compactions"] = l.compactions
		}
		l.em.agent("lifecycle", data)
		if !l.run.params.Compact {
			// A failed /compact left no question to pair an error with.
			l.recordError(summary)
		}
		l.em.chat("error", map[string]any{"errorMessage": summary, "message": l.message(full), "usage": usage})
	}
	l.rt.finish(l.run, res)
}

// recordError keeps why the run failed in the transcript, after the question
// and any partial answer, so a reload shows the failed turn with its error
// instead of a question nobody answered. The entry has no content: it is
// skipped when the history goes back to the model, which never said it.
func (l *loop) recordError(msg string) {
	if _, err := l.rt.opts.Sessions.Append(l.run.SessionKey, session.Message{Role: "assistant", RunID: l.run.ID,
		StopReason: StatusError, ErrorMessage: msg}); err != nil {
		l.rt.log.Error("recording the run's error", "run", l.run.ID, "err", err)
	}
}

// fail ends a run that could not start its loop.
func (r *Runtime) fail(run *Run, em *emitter, started time.Time, msg string) {
	now := r.opts.Clock.Now()
	em.agent("lifecycle", map[string]any{"phase": "error", "startedAt": started.UnixMilli(), "endedAt": now.UnixMilli(), "error": msg})
	em.chat("error", map[string]any{"errorMessage": msg})
	r.finish(run, Result{Status: StatusError, Summary: msg, Error: msg, ErrorCode: protocol.CodeUnavailable})
}

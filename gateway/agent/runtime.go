// Package agent runs the Koi's agent: one run per message, queued per
// session, each a loop of model calls (Bedrock) and tool calls until the model
// ends its turn. It persists every message to the session transcript as it
// goes and reports progress as protocol events through an Emit callback.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/session"
	"github.com/skykoi/skykoi/gateway/tools"
)

// Model is the part of the Bedrock provider a run uses.
type Model interface {
	Stream(ctx context.Context, req bedrock.Request, onEvent func(bedrock.Event)) (*bedrock.Response, error)
}

// Tools is the part of the tool set a run uses.
type Tools interface {
	Specs() []tools.Spec
	Run(ctx context.Context, name string, input json.RawMessage) tools.Result
}

// Defaults.
const (
	DefaultMaxSteps       = 48
	DefaultIdempotencyTTL = 5 * time.Minute
	// Coalescing intervals from the protocol: assistant agent events at most
	// every 50 ms, chat deltas at most every 150 ms.
	AgentDeltaInterval = 50 * time.Millisecond
	ChatDeltaInterval  = 150 * time.Millisecond
	// finishedRunTTL keeps finished runs for agent.wait after a reconnect;
	// maxFinishedRuns bounds the memory that takes.
	finishedRunTTL  = 30 * time.Minute
	maxFinishedRuns = 2000
	// historyLimit bounds how much transcript one run sends to the model.
	historyLimit = 1000
	// workspace prompt files and their caps: enough for real instructions,
	// bounded so a huge file cannot blow the context window.
	promptFileCap  = 24 << 10
	promptTotalCap = 96 << 10
	// Run admission. Every accepted run holds its message and a place in
	// memory until it ends, so without a cap a client that keeps sending
	// behind a long run grows the daemon without limit. A person typing
	// never comes near these; a script that does gets a retryable refusal.
	DefaultMaxQueuedPerSession = 32  // runs waiting behind a session's running run
	DefaultMaxRuns             = 256 // runs accepted and not yet ended, over all sessions
	// DefaultQueueRetryAfter is the retry hint of a refusal: runs take
	// seconds to minutes, so retrying sooner would only be refused again.
	DefaultQueueRetryAfter = 5 * time.Second
)

// PromptFiles are read from the workspace into the system prompt, in order.
var promptFiles = []string{"AGENTS.md", "SOUL.md", "USER.md", "TOOLS.md", "IDENTITY.md"}

// Options configure a Runtime.
type Options struct {
	Sessions *session.Store
	// ToolsFor returns the tools for a session's exec security override
	// ("" = the config's own level).
	ToolsFor func(execSecurity string) (Tools, error)
	Model    Model
	// Config returns the config in force (it changes on reload).
	Config func() configgen.Config
	// Emit sends an event to clients; toolEvents marks agent events of the
	// tool stream, which go only to clients with the tool-events cap.
	Emit func(event string, payload any, toolEvents bool)
	// Workspace returns the agent's directory in force (prompt files are
	// read from it); like Config, it changes on reload.
	Workspace func() string
	Clock     Clock
	Logger    *slog.Logger
	MaxSteps  int
	// IdempotencyTTL is how long a repeated idempotency key replays a run.
	IdempotencyTTL time.Duration
	// NewID makes run ids (UUIDs).
	NewID func() string
	// OnRunEnd, when set, is called once per run as it reaches its
	// terminal state (the gateway counts it as activity for the idle stop).
	OnRunEnd func()
	// MaxQueuedPerSession and MaxRuns bound admission (defaults
	// DefaultMaxQueuedPerSession, DefaultMaxRuns); past a bound Submit
	// returns a *QueueFullError that asks to retry after
	// DefaultQueueRetryAfter.
	MaxQueuedPerSession int
	MaxRuns             int
	// PromptSections, when set, returns text appended to the system prompt
	// after the workspace files (memory notes, the skills list; "" adds
	// nothing). It is called once per run, so it must be cheap.
	PromptSections func(workspace string) string
	// MemoryNote, when set, turns on the memory flush before resets (see
	// FlushMemory) and names the daily note it writes to
	// ("memory/YYYY-MM-DD.md").
	MemoryNote func() string
	// Meter, when set, is asked before and told after every model call
	// (spend caps, metrics); see Meter.
	Meter Meter
	// OnRunStatus, when set, is called once per run with its terminal
	// status (StatusOK, StatusError, StatusAborted, StatusTimeout).
	OnRunStatus func(status string)
}

// Runtime owns every run.
type Runtime struct {
	opts   Options
	log    *slog.Logger
	base   context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	queues   map[string]*sessionQueue // by session key
	runs     map[string]*Run          // by run id, live and recently finished
	finished []*Run                   // finish order, for pruning
	// unfinished counts runs accepted and not yet ended, for MaxRuns; it
	// moves with active (Add in Submit, Done in finish).
	unfinished int
	closing    bool
	active     sync.WaitGroup
}

type sessionQueue struct {
	pending []*Run
	running *Run
}

// ErrShuttingDown refuses new runs during a drain.
var ErrShuttingDown = errors.New("the gateway is shutting down; try again after it restarts")

// QueueFullError refuses a run past an admission bound. It is temporary:
// the same message is accepted once runs have ended.
type QueueFullError struct {
	Session    bool // the session's own queue is full, not the Koi's total
	Limit      int
	RetryAfter time.Duration
}

func (e *QueueFullError) Error() string {
	if e.Session {
		return fmt.Sprintf("this session already has %d messages waiting behind its current run; "+
			"wait for them to be answered (or stop them with chat.abort) and send again", e.Limit)
	}
	return fmt.Sprintf("the Koi already has %d runs in progress or waiting across its sessions; "+
		"wait for some to finish (or stop them with chat.abort) and send again", e.Limit)
}

// errAborted and errTimeout are run cancellation causes.
var (
	errAborted  = errors.New("aborted")
	errTimeout  = errors.New("run timed out")
	errShutdown = errors.New("the gateway shut down during the run")
)

// New builds a runtime; runs start with Submit.
func New(o Options) *Runtime {
	if o.Clock == nil {
		o.Clock = RealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxSteps <= 0 {
		o.MaxSteps = DefaultMaxSteps
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if o.Emit == nil {
		o.Emit = func(string, any, bool) {}
	}
	if o.MaxQueuedPerSession <= 0 {
		o.MaxQueuedPerSession = DefaultMaxQueuedPerSession
	}
	if o.MaxRuns <= 0 {
		o.MaxRuns = DefaultMaxRuns
	}
	base, cancel := context.WithCancelCause(context.Background())
	return &Runtime{opts: o, log: o.Logger, base: base, cancel: cancel,
		queues: map[string]*sessionQueue{}, runs: map[string]*Run{}}
}

// SubmitParams describe one incoming message.
type SubmitParams struct {
	SessionKey        string // normalized by the caller
	Message           string
	IdempotencyKey    string // becomes the run id when set
	Thinking          string
	Timeout           time.Duration // 0: agents.defaults.timeoutSeconds
	ExtraSystemPrompt string
	// Attachments are references (type "attachment") to files already saved
	// in the workspace inbox; they follow Message in the recorded turn.
	Attachments []session.Content
	// Compact asks for a compaction of the session's context instead of an
	// answer (/compact, sessions.compact); Message is not recorded.
	Compact bool
}

// Submit queues a run. When IdempotencyKey names a run accepted within the
// TTL, that run is returned with existing=true and nothing new starts; such
// a replay is answered even when the queues are full, since it adds nothing.
// Past an admission bound it returns a *QueueFullError.
func (r *Runtime) Submit(p SubmitParams) (run *Run, existing bool, err error) {
	now := r.opts.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now)
	if p.IdempotencyKey != "" {
		if prev, ok := r.runs[p.IdempotencyKey]; ok {
			if now.Sub(prev.accepted) < r.opts.IdempotencyTTL {
				return prev, true, nil
			}
			if !prev.isDone() {
				// A still-running run owns its id; a reuse cannot replace it.
				return prev, true, nil
			}
			delete(r.runs, p.IdempotencyKey)
		}
	}
	if r.closing {
		return nil, false, ErrShuttingDown
	}
	q := r.queues[p.SessionKey]
	if q != nil && q.running != nil && len(q.pending) >= r.opts.MaxQueuedPerSession {
		return nil, false, &QueueFullError{Session: true, Limit: r.opts.MaxQueuedPerSession, RetryAfter: DefaultQueueRetryAfter}
	}
	if r.unfinished >= r.opts.MaxRuns {
		return nil, false, &QueueFullError{Limit: r.opts.MaxRuns, RetryAfter: DefaultQueueRetryAfter}
	}
	id := p.IdempotencyKey
	if id == "" {
		id = r.opts.NewID()
	}
	run = &Run{
		ID: id, SessionKey: p.SessionKey, params: p,
		accepted: now, done: make(chan struct{}),
	}
	r.runs[id] = run
	if q == nil {
		q = &sessionQueue{}
		r.queues[p.SessionKey] = q
	}
	q.pending = append(q.pending, run)
	r.active.Add(1)
	r.unfinished++
	if q.running == nil {
		r.startNextLocked(p.SessionKey, q)
	}
	return run, false, nil
}

// startNextLocked starts the session's next queued run; r.mu is held.
func (r *Runtime) startNextLocked(key string, q *sessionQueue) {
	if len(q.pending) == 0 {
		q.running = nil
		delete(r.queues, key)
		return
	}
	run := q.pending[0]
	q.pending = q.pending[1:]
	q.running = run
	go func() {
		r.execute(run)
		r.mu.Lock()
		r.startNextLocked(key, q)
		r.mu.Unlock()
	}()
}

// Get returns a live or recently finished run.
func (r *Runtime) Get(id string) (*Run, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run, ok := r.runs[id]
	return run, ok
}

// Abort cancels the session's runs (only runID when given): the running one
// stops its model stream and tools; queued ones end without starting. It
// returns the ids it aborted.
func (r *Runtime) Abort(sessionKey, runID string) []string {
	r.mu.Lock()
	q := r.queues[sessionKey]
	var targets []*Run
	if q != nil {
		if q.running != nil && (runID == "" || q.running.ID == runID) {
			targets = append(targets, q.running)
		}
		var keep []*Run
		for _, p := range q.pending {
			if runID == "" || p.ID == runID {
				targets = append(targets, p)
			} else {
				keep = append(keep, p)
			}
		}
		q.pending = keep
	}
	r.mu.Unlock()
	ids := []string{}
	for _, t := range targets {
		if t.abort(errAborted) {
			ids = append(ids, t.ID)
		}
	}
	// Queued runs never started: give them their terminal state here.
	for _, t := range targets {
		if !t.hasStarted() {
			r.finish(t, Result{Status: StatusAborted, Aborted: true, Summary: "aborted before it started"})
		}
	}
	return ids
}

// Counts reports running and queued runs.
func (r *Runtime) Counts() (active, queued int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.queues {
		if q.running != nil {
			active++
		}
		queued += len(q.pending)
	}
	return active, queued
}

// Shutdown refuses new runs, waits for the running and queued ones until ctx
// ends, then aborts what is left and waits for those to record their end.
func (r *Runtime) Shutdown(ctx context.Context) {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.active.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	r.log.Warn("shutdown: aborting runs still in progress")
	r.mu.Lock()
	var keys []string
	for k := range r.queues {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	r.cancel(errShutdown)
	for _, k := range keys {
		r.mu.Lock()
		q := r.queues[k]
		var pending []*Run
		if q != nil {
			pending, q.pending = q.pending, nil
		}
		r.mu.Unlock()
		for _, p := range pending {
			p.abort(errShutdown)
			r.finish(p, Result{Status: StatusError, Summary: errShutdown.Error(), Error: errShutdown.Error()})
		}
	}
	<-done
}

// pruneLocked forgets finished runs past their TTL or over the cap.
func (r *Runtime) pruneLocked(now time.Time) {
	keep := r.finished[:0]
	for i, f := range r.finished {
		over := len(r.finished)-i > maxFinishedRuns
		if over || now.Sub(f.endedAt()) > finishedRunTTL {
			if r.runs[f.ID] == f {
				delete(r.runs, f.ID)
			}
			continue
		}
		keep = append(keep, f)
	}
	r.finished = keep
}

// finish records a run's terminal state exactly once.
func (r *Runtime) finish(run *Run, res Result) {
	if !run.setResult(res, r.opts.Clock.Now()) {
		return
	}
	r.mu.Lock()
	r.finished = append(r.finished, run)
	r.unfinished--
	r.mu.Unlock()
	if r.opts.OnRunEnd != nil {
		r.opts.OnRunEnd()
	}
	if r.opts.OnRunStatus != nil {
		r.opts.OnRunStatus(res.Status)
	}
	r.active.Done()
}

// systemPrompt assembles the workspace's prompt files and the caller's
// extra prompt. Files are read per run so edits take effect at once; they
// are small, so this costs microseconds.
func (r *Runtime) systemPrompt(extra string) []bedrock.SystemBlock {
	var b strings.Builder
	b.WriteString("You are the person's own AI agent (a Koi), running on their own machine. " +
		"You can run shell commands and read, write and edit files in your workspace with the tools you are given. " +
		"Be direct, and say plainly when something failed.\n")
	ws := r.opts.Workspace()
	fmt.Fprintf(&b, "Workspace: %s\n", ws)
	total := 0
	for _, name := range promptFiles {
		data, err := readCapped(filepath.Join(ws, name), promptFileCap)
		if err != nil || len(strings.TrimSpace(string(data))) == 0 {
			continue
		}
		if total+len(data) > promptTotalCap {
			r.log.Warn("system prompt cap reached; skipping workspace file", "file", name)
			continue
		}
		total += len(data)
		fmt.Fprintf(&b, "\n## %s\n%s\n", name, strings.TrimSpace(string(data)))
	}
	if r.opts.PromptSections != nil {
		b.WriteString(r.opts.PromptSections(ws))
	}
	blocks := []bedrock.SystemBlock{{Text: b.String(), Cache: true}}
	if strings.TrimSpace(extra) != "" {
		// After the cache point: it changes per request.
		blocks = append(blocks, bedrock.SystemBlock{Text: extra})
	}
	return blocks
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return append(data[:limit], "\n[… truncated]"...), nil
	}
	return data, nil
}

// Package tools implements the tools the gateway offers the model: exec, process,
// read, write, edit, memory_search, memory_get, web_fetch and web_search.
//
// A Set is built once from the config (New) and is safe for concurrent use by
// every run. Run never panics and never returns a Go error: whatever goes wrong
// becomes a Result with IsError set and a message the model can act on, because
// the model is the caller and it can only correct what it is told about.
//
// What the agent loop relies on:
//   - Result.Text goes to the model as the tool result, IsError as its status;
//     Details (JSON-encodable) are for "tool" stream events and logs, with
//     Details["error"] naming the kind of refusal (invalid_arguments,
//     not_allowed, exec_disabled, path_escape, …).
//   - Run's ctx is the run's: cancelling it kills a foreground exec's process
//     group and Run returns promptly. Background commands (exec with
//     background:true) outlive the run; only process kill, their timeout or
//     Close end them, so a config reload that builds a new Set should Close
//     the old one.
//   - A non-zero exit code is reported as IsError, with the output.
package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/tools/web"
)

// Defaults for the Options size limits.
const (
	DefaultMaxOutputChars = 200_000
	DefaultMaxReadBytes   = 10 << 20
	DefaultMaxWriteBytes  = 10 << 20
	// DefaultTimeoutSec is tools.exec.timeoutSec's documented default, used when
	// Options.Exec leaves it zero.
	DefaultTimeoutSec = 1800
)

// Exec security modes (tools.exec.security).
const (
	SecurityDeny      = "deny"
	SecurityAllowlist = "allowlist"
	SecurityFull      = "full"
)

// Options configure a Set. Zero values take the documented defaults.
type Options struct {
	// Workspace is the absolute directory relative paths resolve in and exec
	// runs in by default. It is created with mode 0700 when missing.
	Workspace string
	// Exec is tools.exec from the config: security, host, allowlist, timeoutSec.
	// An empty Security means "deny", the config's default.
	Exec configgen.Exec
	// Allow and Deny are tools.allow and tools.deny: deny wins; both empty
	// means every tool.
	Allow, Deny []string
	// MaxOutputChars caps the text one exec result or process read returns
	// (and the text read returns). Default 200,000.
	MaxOutputChars int
	// MaxReadBytes caps how much of a file read and edit load. Default 10 MiB.
	MaxReadBytes int64
	// MaxWriteBytes caps what write and edit may store. Default 10 MiB.
	MaxWriteBytes int64
	// ConfigPath and StateDir are the gateway's config file and state
	// directory (devices, sessions). The file tools refuse them whatever
	// tools.exec.security is; empty means none.
	ConfigPath, StateDir string
	// Env is added to the gateway's own environment, less its secrets
	// (configgen.SecretEnvNames), for exec ("K=V" entries).
	Env []string
	// RestrictToWorkspace confines the file tools to the workspace even with
	// security "full" (with "deny" and "allowlist" they always are; see
	// resolvePath). Fuzzing sets it so arbitrary input cannot touch the rest
	// of the machine.
	RestrictToWorkspace bool
	Logger              *slog.Logger
	// Now gives timestamps for reports; durations and timeouts use the
	// monotonic clock regardless.
	Now func() time.Time
	// Memory backs memory_search and memory_get; nil leaves them out.
	Memory Memory
	// Web configures web_fetch and web_search (web.FromConfig); nil leaves
	// them out.
	Web *web.Options

	// External supplies tools beyond the built-in ones (MCP servers, named
	// <server>__<tool>); tools.allow / tools.deny filter them like the rest.
	External External
}

// External is a source of tools other than the built-in ones. Specs may
// change from call to call (servers connect and go); Call gets only names
// the policy allows and must, like Run, report failure as a Result.
type External interface {
	Specs() []Spec
	Call(ctx context.Context, name string, input json.RawMessage) Result
}

// Spec describes one tool to the model.
type Spec struct {
	Name        string
	Description string
	// InputSchema is a JSON Schema object for the tool's arguments.
	InputSchema json.RawMessage
}

// Result is the outcome of one tool call.
type Result struct {
	// Text is what the model sees.
	Text string
	// IsError marks a failed call (bad arguments, refused, non-zero exit, …).
	IsError bool
	// Details are structured facts for tool events and logs (exitCode,
	// truncated, path, bytes, handle, …). Values are JSON-encodable.
	Details map[string]any
}

// Set is the configured tools. Build it with New and release it with Close.
type Set struct {
	ws        string // the workspace with symlinks resolved: every containment check uses it
	security  string
	allowlist []string
	timeout   time.Duration // the ceiling and default for exec
	enabled   map[string]bool
	env       []string
	maxOut    int
	maxRead   int64
	maxWrite  int64
	confined  bool           // absolute paths must be in the workspace too
	protect   protectedPaths // refused in every mode
	log       *slog.Logger
	now       func() time.Time
	memory    Memory
	web       webTools
	specs     []Spec
	external  External
	allow     []string // tools.allow and tools.deny, for external names
	deny      []string

	mu      sync.Mutex
	closed  bool
	closing chan struct{}      // closed by Close: running commands stop themselves
	live    map[*proc]struct{} // every process group that may still have members
	bg      map[string]*proc   // background handles
	bgOrder []string           // handles in start order, for list and eviction
	nextID  int
}

// New validates opts and builds the Set.
func New(opts Options) (*Set, error) {
	if opts.Workspace == "" || !filepath.IsAbs(opts.Workspace) {
		return nil, fmt.Errorf("tools: workspace must be an absolute path, got %q", opts.Workspace)
	}
	if err := os.MkdirAll(opts.Workspace, 0o700); err != nil {
		return nil, fmt.Errorf("tools: creating workspace: %w", err)
	}
	ws, err := filepath.EvalSymlinks(filepath.Clean(opts.Workspace))
	if err != nil {
		return nil, fmt.Errorf("tools: resolving workspace: %w", err)
	}
	if fi, err := os.Stat(ws); err != nil {
		return nil, fmt.Errorf("tools: workspace: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("tools: workspace %s is not a directory", ws)
	}

	s := &Set{
		ws:       ws,
		security: opts.Exec.Security,
		env:      slices.Clone(opts.Env),
		maxOut:   opts.MaxOutputChars,
		maxRead:  opts.MaxReadBytes,
		maxWrite: opts.MaxWriteBytes,
		log:      opts.Logger,
		now:      opts.Now,
		memory:   opts.Memory,
		external: opts.External,
		allow:    slices.Clone(opts.Allow),
		deny:     slices.Clone(opts.Deny),
		closing:  make(chan struct{}),
		live:     make(map[*proc]struct{}),
		bg:       make(map[string]*proc),
		enabled:  make(map[string]bool),
	}
	if s.security == "" {
		s.security = SecurityDeny
	}
	switch s.security {
	case SecurityDeny, SecurityAllowlist, SecurityFull:
	default:
		return nil, fmt.Errorf("tools: tools.exec.security must be one of deny, allowlist, full; got %q", s.security)
	}
	s.confined = opts.RestrictToWorkspace || s.security != SecurityFull
	if s.protect, err = newProtectedPaths(ws, opts.ConfigPath, opts.StateDir); err != nil {
		return nil, err
	}
	if h := opts.Exec.Host; h != "" && h != "gateway" {
		return nil, fmt.Errorf("tools: tools.exec.host %q is not supported; only \"gateway\" is", h)
	}
	for _, e := range opts.Exec.Allowlist {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if strings.Contains(e, "/") {
			if !filepath.IsAbs(e) {
				return nil, fmt.Errorf("tools: tools.exec.allowlist entry %q must be a program name or an absolute path", e)
			}
			e = filepath.Clean(e)
		}
		s.allowlist = append(s.allowlist, e)
	}
	sec := opts.Exec.TimeoutSec
	if sec <= 0 {
		sec = DefaultTimeoutSec
	}
	s.timeout = time.Duration(sec) * time.Second
	if s.maxOut <= 0 {
		s.maxOut = DefaultMaxOutputChars
	}
	if s.maxRead <= 0 {
		s.maxRead = DefaultMaxReadBytes
	}
	if s.maxWrite <= 0 {
		s.maxWrite = DefaultMaxWriteBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, kv := range s.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, fmt.Errorf("tools: env entry %q must look like NAME=value", kv)
		}
	}

	names := configgen.ToolNames()
	for _, list := range []struct {
		key   string
		names []string
	}{{"tools.allow", opts.Allow}, {"tools.deny", opts.Deny}} {
		for _, n := range list.names {
			if _, _, mcp := configgen.SplitMCPToolName(n); !slices.Contains(names, n) && !mcp {
				return nil, fmt.Errorf("tools: %s: unknown tool %q (known: %s, or <server>__<tool> / <server>__* of an MCP server)", list.key, n, strings.Join(names, ", "))
			}
		}
	}
	for _, n := range names {
		s.enabled[n] = (len(opts.Allow) == 0 || slices.Contains(opts.Allow, n)) && !slices.Contains(opts.Deny, n)
	}
	if s.security == SecurityAllowlist {
		for _, e := range s.allowlist {
			if slices.Contains(wrapperPrograms, filepath.Base(e)) {
				// Not an error: the person may mean it. But it makes the
				// allowlist meaningless, which deserves a line in the log.
				s.log.Warn("tools.exec.allowlist names a program that can run any other command; the allowlist no longer limits exec", "entry", e)
			}
		}
	}
	if s.web, err = newWebTools(opts.Web); err != nil {
		return nil, err
	}
	s.specs = s.buildSpecs()
	return s, nil
}

// wrapperPrograms run whatever command they are given, so allowlisting one
// allows everything.
var wrapperPrograms = []string{
	"bash", "sh", "dash", "zsh", "env", "xargs", "sudo", "doas", "su", "nohup", "timeout", "time", "nice",
	"ionice", "stdbuf", "taskset", "chrt", "setsid", "watch", "busybox", "find", "eval", "exec", "command",
	"builtin", "source", ".", "python", "python3", "perl", "ruby", "node",
}

// Specs returns the tools to offer the model, in configgen.ToolNames() order.
//
// With tools.exec.security "deny", exec and process are left out even when
// tools.allow names them: offering a tool that always refuses wastes a model
// turn and invites the model to keep retrying. Run still refuses them with a
// clear message if a model calls them anyway (for example from an old
// transcript).
//
// External tools (MCP) follow the built-in ones, those the policy allows.
func (s *Set) Specs() []Spec {
	out := make([]Spec, len(s.specs))
	for i, sp := range s.specs {
		out[i] = Spec{Name: sp.Name, Description: sp.Description, InputSchema: slices.Clone(sp.InputSchema)}
	}
	if s.external != nil {
		for _, sp := range s.external.Specs() {
			if s.externalAllowed(sp.Name) {
				out = append(out, sp)
			}
		}
	}
	return out
}

// externalAllowed applies tools.allow / tools.deny to an external tool's
// name: deny wins; an empty allow admits every tool; "<server>__*" stands
// for every tool of that server.
func (s *Set) externalAllowed(name string) bool {
	server, _, ok := configgen.SplitMCPToolName(name)
	if !ok {
		return false
	}
	match := func(list []string) bool {
		return slices.Contains(list, name) || slices.Contains(list, server+"__*")
	}
	return !match(s.deny) && (len(s.allow) == 0 || match(s.allow))
}

// Run executes one tool call. input is the model's JSON arguments. ctx is the
// run's context: cancelling it (abort) kills a running foreground command's
// whole process group at once. Background commands do not belong to ctx;
// they live until they end, time out, are killed with process, or Close.
func (s *Set) Run(ctx context.Context, name string, input json.RawMessage) (res Result) {
	defer func() {
		// A bug in one tool must not take the gateway down with it; the
		// fuzz test makes sure this never fires in practice.
		if r := recover(); r != nil {
			s.log.Error("tool panicked", "tool", name, "panic", fmt.Sprint(r))
			res = failure("internal", "internal error in tool %q: %v", name, r)
		}
	}()
	if !slices.Contains(configgen.ToolNames(), name) {
		if _, _, mcp := configgen.SplitMCPToolName(name); mcp && s.external != nil {
			return s.runExternal(ctx, name, input)
		}
		return failure("unknown_tool", "unknown tool %q; the tools are: %s", name, strings.Join(s.offered(), ", "))
	}
	if !s.enabled[name] {
		return failure("not_allowed", "tool %q is not enabled on this Koi (tools.allow / tools.deny)", name)
	}
	if (name == "exec" || name == "process") && s.security == SecurityDeny {
		return failure("exec_disabled", "%s is disabled: tools.exec.security is \"deny\"", name)
	}
	if (name == "memory_search" || name == "memory_get") && s.memory == nil {
		return failure("memory_disabled", "%s is unavailable: this gateway has no memory index", name)
	}
	if s.isClosed() {
		return failure("closed", "tool %q is unavailable: the gateway is shutting down", name)
	}
	if ctx.Err() != nil {
		return failure("aborted", "tool %q was not run: the run was aborted", name)
	}
	switch name {
	case "exec":
		return s.execTool(ctx, input)
	case "process":
		return s.processTool(input)
	case "read":
		return s.readTool(input)
	case "write":
		return s.writeTool(input)
	case "edit":
		return s.editTool(input)
	case "memory_search":
		return s.memorySearchTool(ctx, input)
	case "memory_get":
		return s.memoryGetTool(input)
	case "web_fetch":
		return s.webFetchTool(ctx, input)
	case "web_search":
		return s.webSearchTool(ctx, input)
	}
	return failure("unknown_tool", "unknown tool %q", name)
}

func (s *Set) runExternal(ctx context.Context, name string, input json.RawMessage) Result {
	if !s.externalAllowed(name) {
		return failure("not_allowed", "tool %q is not enabled on this Koi (tools.allow / tools.deny)", name)
	}
	if s.isClosed() {
		return failure("closed", "tool %q is unavailable: the gateway is shutting down", name)
	}
	if ctx.Err() != nil {
		return failure("aborted", "tool %q was not run: the run was aborted", name)
	}
	return s.external.Call(ctx, name, input)
}

// Close kills every command still running (background ones and any process
// group a finished command left behind) and waits for them to exit. Later
// Run calls are refused. The gateway calls it on shutdown.
func (s *Set) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.web.close()
	procs := make([]*proc, 0, len(s.live))
	for p := range s.live {
		procs = append(procs, p)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() {
			p.stop(reasonShutdown)
			<-p.waitDone
		})
	}
	wg.Wait()
	return nil
}

func (s *Set) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Set) offered() []string {
	specs := s.Specs()
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Name
	}
	return names
}

// failure builds an error Result; kind goes into Details["error"] so the
// agent loop and tests can tell refusals apart without parsing text.
func failure(kind, format string, a ...any) Result {
	return Result{Text: fmt.Sprintf(format, a...), IsError: true, Details: map[string]any{"error": kind}}
}

// failErr turns an error into a Result, keeping an argument error's kind.
func failErr(kind string, err error) Result {
	var ae *argError
	if errors.As(err, &ae) {
		kind = "invalid_arguments"
	}
	return Result{Text: err.Error(), IsError: true, Details: map[string]any{"error": kind}}
}

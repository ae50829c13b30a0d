// Package mcp connects the gateway to the MCP tool servers of mcp.servers,
// through the official go-sdk, and offers their tools to the agent as
// <server>__<tool> alongside the built-in ones (gateway/tools takes a
// Manager as its External source, so one registry and one allow/deny policy
// cover both).
//
// Lifecycle: a Manager does nothing until Run. Run starts every enabled
// server at once, each in its own goroutine, and never blocks the caller's
// readiness: the gateway reports ready while servers are still starting,
// and a turn is offered the tools of the servers connected at that moment.
// A server whose connection ends (a crashed process, a dropped HTTP
// session, a failed initialize) is started again after a backoff that
// doubles from Options.MinBackoff up to Options.MaxBackoff and resets once
// a connection has lasted longer than MaxBackoff. Update applies a reload:
// removed or changed servers stop, new or changed ones start, untouched
// ones keep their connection.
//
// Every call has a deadline (mcp.servers.<name>.requestTimeoutMs); a call
// to a server that is not connected, that dies mid-call or that times out
// returns an error Result the model can read, never a Go error.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/tools"
	"github.com/skykoi/skykoi/internal/version"
)

// Defaults for Options.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
	// DefaultMaxResultChars caps the text one call returns to the model, as
	// the built-in tools' output is capped.
	DefaultMaxResultChars = tools.DefaultMaxOutputChars
	// maxToolName is Bedrock's limit on a tool name.
	maxToolName = 64
	// maxHeaderFile bounds a header value read from a file.
	maxHeaderFile = 64 << 10
	// stderrTail is how much of a stdio server's stderr is kept, for the
	// last error of a server that exits.
	stderrTail = 2 << 10
)

// Server states, as Status reports them.
const (
	StateStarting   = "starting"   // first connection attempt under way
	StateReady      = "ready"      // connected; its tools are offered
	StateRestarting = "restarting" // the connection ended; waiting out the backoff or reconnecting
	StateDisabled   = "disabled"   // enabled:false in the config
	StateStopped    = "stopped"    // the Manager is not running
)

// Options configure a Manager. Zero values take the defaults noted.
type Options struct {
	// Servers is mcp.servers.
	Servers map[string]configgen.MCPServer
	// Workspace is the default working directory of stdio servers
	// (read at each start, so a reload of the workspace takes effect).
	Workspace func() string
	// Getenv resolves header values from the environment (os.Getenv).
	Getenv func(string) string
	// Environ is the base environment of stdio servers (os.Environ); the
	// gateway's secrets (configgen.SecretEnvNames) are always removed.
	Environ func() []string
	// MinBackoff and MaxBackoff bound the restart delay (1 s, 1 min).
	MinBackoff, MaxBackoff time.Duration
	// MaxResultChars caps one call's text (DefaultMaxResultChars).
	MaxResultChars int
	// HTTPClient carries streamable HTTP sessions (a client of its own
	// with no overall timeout: the session's event stream is long-lived).
	HTTPClient *http.Client
	// OnChange is called, with no lock held, when a server's state or
	// tool list changed (the gateway broadcasts health).
	OnChange func()
	Logger   *slog.Logger
}

// Status is one server as health, status and doctor show it.
type Status struct {
	Name      string `json:"name"`
	Transport string `json:"transport"`
	State     string `json:"state"`
	Tools     int    `json:"tools"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"lastError,omitempty"`
	// Skipped counts tools whose names cannot be offered to the model
	// (characters or length Bedrock refuses).
	Skipped int `json:"skippedTools,omitempty"`
}

// Manager runs the configured MCP servers. It is safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	desired map[string]configgen.MCPServer
	servers map[string]*server // the running supervisors, by name
	runCtx  context.Context    // nil until Run
	wg      sync.WaitGroup     // supervisors, including ones being stopped
}

// New builds a Manager; nothing starts until Run.
func New(opts Options) *Manager {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Environ == nil {
		opts.Environ = os.Environ
	}
	if opts.Workspace == nil {
		opts.Workspace = func() string { return "" }
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.MaxResultChars <= 0 {
		opts.MaxResultChars = DefaultMaxResultChars
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts, log: opts.Logger, desired: maps.Clone(opts.Servers), servers: map[string]*server{}}
}

// Run starts every enabled server in the background and returns when ctx
// ends, after every server has stopped.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.runCtx = ctx
	m.applyLocked()
	m.mu.Unlock()
	m.changed()

	<-ctx.Done()
	m.mu.Lock()
	for _, sv := range m.servers {
		sv.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
	m.mu.Lock()
	m.servers = map[string]*server{}
	m.runCtx = nil
	m.mu.Unlock()
	m.changed()
	return nil
}

// Update applies a new mcp.servers: servers that are gone or whose entry
// changed stop, new and changed ones start; the rest are left alone.
func (m *Manager) Update(servers map[string]configgen.MCPServer) {
	m.mu.Lock()
	m.desired = maps.Clone(servers)
	if m.runCtx != nil {
		m.applyLocked()
	}
	m.mu.Unlock()
	m.changed()
}

// applyLocked makes m.servers match m.desired; m.mu is held.
func (m *Manager) applyLocked() {
	for name, sv := range m.servers {
		if cfg, ok := m.desired[name]; !ok || !reflect.DeepEqual(cfg, sv.cfg) || !cfg.Enabled {
			sv.cancel() // its supervisor exits on its own; wg tracks it
			delete(m.servers, name)
			m.log.Info("MCP server stopped", "server", name, "reason", "config changed")
		}
	}
	for name, cfg := range m.desired {
		if _, running := m.servers[name]; running || !cfg.Enabled {
			continue
		}
		sv := m.newServer(name, cfg)
		m.servers[name] = sv
		m.wg.Go(func() { sv.supervise() })
	}
}

func (m *Manager) changed() {
	if m.opts.OnChange != nil {
		m.opts.OnChange()
	}
}

// Status lists every configured server, sorted by name.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	names := slices.Sorted(maps.Keys(m.desired))
	out := make([]Status, 0, len(names))
	for _, name := range names {
		cfg := m.desired[name]
		st := Status{Name: name, Transport: transportOf(cfg), State: StateStopped}
		if !cfg.Enabled {
			st.State = StateDisabled
		} else if sv := m.servers[name]; sv != nil {
			st = sv.status()
		}
		out = append(out, st)
	}
	m.mu.Unlock()
	return out
}

// Specs lists the tools of every connected server, by server name and then
// in the server's own order. Names are <server>__<tool>.
func (m *Manager) Specs() []tools.Spec {
	var out []tools.Spec
	for _, sv := range m.running() {
		sv.mu.Lock()
		if sv.session != nil {
			for _, t := range sv.tools {
				out = append(out, tools.Spec{Name: t.Name, Description: t.Description, InputSchema: slices.Clone(t.InputSchema)})
			}
		}
		sv.mu.Unlock()
	}
	return out
}

func (m *Manager) running() []*server {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*server, 0, len(m.servers))
	for _, name := range slices.Sorted(maps.Keys(m.servers)) {
		out = append(out, m.servers[name])
	}
	return out
}

// Call runs the tool <server>__<tool> with the model's JSON arguments.
func (m *Manager) Call(ctx context.Context, name string, input json.RawMessage) tools.Result {
	srvName, _, ok := configgen.SplitMCPToolName(name)
	if !ok {
		return failure("unknown_tool", "unknown tool %q", name)
	}
	m.mu.Lock()
	cfg, configured := m.desired[srvName]
	sv := m.servers[srvName]
	m.mu.Unlock()
	switch {
	case !configured:
		return failure("unknown_tool", "unknown tool %q: there is no MCP server %q on this Koi", name, srvName)
	case !cfg.Enabled:
		return failure("mcp_unavailable", "tool %q is unavailable: MCP server %q is disabled (mcp.servers.%s.enabled)", name, srvName, srvName)
	case sv == nil:
		return failure("mcp_unavailable", "tool %q is unavailable: MCP server %q is not running", name, srvName)
	}
	return sv.call(ctx, name, input)
}

func transportOf(cfg configgen.MCPServer) string {
	if cfg.IsStdio() {
		return "stdio"
	}
	return "streamable-http"
}

// server is one configured server and its supervisor's view of it.
type server struct {
	m      *Manager
	name   string
	cfg    configgen.MCPServer
	ctx    context.Context
	cancel context.CancelFunc

	probe bool // Probe: connect, list the tools and stop

	mu       sync.Mutex
	state    string
	session  *sdk.ClientSession
	tools    []exposed          // what the model is offered
	byName   map[string]exposed // exposed name → tool
	skipped  int
	restarts int
	lastErr  string
}

// exposed is one MCP tool as the model sees it.
type exposed struct {
	Name, Description string
	InputSchema       json.RawMessage
	remote            string // the tool's name on the server
}

func (m *Manager) newServer(name string, cfg configgen.MCPServer) *server {
	ctx, cancel := context.WithCancel(m.runCtx)
	return &server{m: m, name: name, cfg: cfg, ctx: ctx, cancel: cancel, state: StateStarting}
}

func (sv *server) status() Status {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	n := 0
	if sv.session != nil {
		n = len(sv.tools)
	}
	return Status{Name: sv.name, Transport: transportOf(sv.cfg), State: sv.state, Tools: n,
		Restarts: sv.restarts, LastError: sv.lastErr, Skipped: sv.skipped}
}

func (sv *server) log() *slog.Logger { return sv.m.log.With("server", sv.name) }

// supervise connects, serves until the connection ends, and reconnects
// with backoff until the server is stopped.
func (sv *server) supervise() {
	backoff := sv.m.opts.MinBackoff
	for {
		began := time.Now()
		err := sv.connectAndWait()
		if sv.ctx.Err() != nil {
			return
		}
		if time.Since(began) > sv.m.opts.MaxBackoff {
			backoff = sv.m.opts.MinBackoff // it ran well for a while: this is a fresh failure
		}
		sv.mu.Lock()
		sv.state = StateRestarting
		sv.lastErr = err.Error()
		sv.restarts++
		n := sv.restarts
		sv.mu.Unlock()
		sv.log().Warn("MCP server is down; restarting", "err", err, "restarts", n, "backoff", backoff.String())
		sv.m.changed()
		t := time.NewTimer(backoff)
		select {
		case <-sv.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, sv.m.opts.MaxBackoff)
	}
}

// connectAndWait runs one connection: start (or dial), initialize, list the
// tools, then wait until the connection ends. The error says why it ended.
func (sv *server) connectAndWait() error {
	transport, cleanup, stderr, err := sv.transport()
	if err != nil {
		return err
	}
	defer cleanup()
	client := sdk.NewClient(&sdk.Implementation{Name: "skykoi", Version: version.Get().Version}, &sdk.ClientOptions{
		ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) {
			// Not on the SDK's goroutine: listing needs a round trip
			// that the handler's own connection would have to serve.
			go sv.refreshTools()
		},
		KeepAlive: keepAlive(sv.cfg),
		Logger:    slog.New(slog.DiscardHandler),
	})
	cctx, cancel := context.WithTimeout(sv.ctx, time.Duration(sv.cfg.ConnectionTimeoutMs)*time.Millisecond)
	defer cancel()
	// Connect may not honour ctx while a stdio child ignores its
	// stdin; closing the transport's process on stop unblocks it.
	stop := context.AfterFunc(sv.ctx, cleanup)
	defer stop()
	cs, err := client.Connect(cctx, transport, nil)
	if err != nil {
		return sv.explain("starting", err, cctx, stderr)
	}
	defer cs.Close()
	list, skipped, err := sv.listTools(cctx, cs)
	if err != nil {
		return sv.explain("listing its tools", err, cctx, stderr)
	}
	sv.mu.Lock()
	sv.session, sv.state, sv.lastErr = cs, StateReady, ""
	sv.setTools(list, skipped)
	sv.mu.Unlock()
	if sv.probe {
		return nil
	}
	sv.log().Info("MCP server ready", "tools", len(list), "skipped", skipped)
	sv.m.changed()

	done := make(chan error, 1)
	go func() { done <- cs.Wait() }()
	select {
	case err = <-done:
	case <-sv.ctx.Done():
		_ = cs.Close()
		err = <-done
	}
	sv.mu.Lock()
	sv.session = nil
	sv.mu.Unlock()
	if sv.ctx.Err() != nil {
		return sv.ctx.Err()
	}
	if last := stderr.last(); last != "" {
		return fmt.Errorf("the connection ended (%v); last stderr line: %s", orEOF(err), last)
	}
	return fmt.Errorf("the connection ended: %v", orEOF(err))
}

func keepAlive(cfg configgen.MCPServer) time.Duration {
	if cfg.IsStdio() {
		return 0 // a dead child closes its stdout, which ends the session at once
	}
	// A remote server that vanished is only noticed by talking to it.
	return 30 * time.Second
}

func orEOF(err error) error {
	if err == nil {
		return errors.New("the server closed it")
	}
	return err
}

// explain turns a failed start into an error a person can act on.
func (sv *server) explain(doing string, err error, ctx context.Context, stderr *tailBuffer) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && sv.ctx.Err() == nil {
		err = fmt.Errorf("no answer within %v (mcp.servers.%s.connectionTimeoutMs)", time.Duration(sv.cfg.ConnectionTimeoutMs)*time.Millisecond, sv.name)
	}
	if last := stderr.last(); last != "" {
		return fmt.Errorf("%s: %w; last stderr line: %s", doing, err, last)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// transport builds the stdio or HTTP transport for one connection, and a
// cleanup that releases what the connection left (a stdio server's whole
// process group).
func (sv *server) transport() (sdk.Transport, func(), *tailBuffer, error) {
	stderr := &tailBuffer{}
	if !sv.cfg.IsStdio() {
		hdr, err := resolveHeaders(sv.cfg.Headers, sv.m.opts.Getenv)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mcp.servers.%s.headers: %w", sv.name, err)
		}
		base := sv.m.opts.HTTPClient
		client := &http.Client{Transport: headerTransport{base: base.Transport, headers: hdr},
			CheckRedirect: base.CheckRedirect, Jar: base.Jar}
		return &sdk.StreamableClientTransport{Endpoint: sv.cfg.URL, HTTPClient: client, MaxRetries: 2}, func() {}, stderr, nil
	}
	dir := sv.cfg.Cwd
	if dir == "" {
		// The workspace, created as the file tools would create it: a
		// fresh Koi may start its servers before any tool has run.
		if dir = sv.m.opts.Workspace(); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, nil, nil, fmt.Errorf("creating the workspace %s for the server: %w", dir, err)
			}
		}
	}
	if dir != "" {
		d, err := configgen.ExpandHome(dir)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mcp.servers.%s.cwd: %w", sv.name, err)
		}
		dir = d
	}
	cmd := exec.Command(sv.cfg.Command, sv.cfg.Args...)
	cmd.Dir = dir
	cmd.Env = childEnv(sv.m.opts.Environ(), sv.cfg.Env)
	cmd.Stderr = stderr
	// Its own process group, so stopping it also stops what it started
	// (npx, uvx and shell wrappers run the real server as a child).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t := &groupTransport{inner: &sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, cmd: cmd}
	return t, t.kill, stderr, nil
}

// groupTransport starts a stdio server and remembers its process group,
// so kill can end the group from any goroutine, even one racing the start.
type groupTransport struct {
	inner *sdk.CommandTransport
	cmd   *exec.Cmd

	mu     sync.Mutex
	pid    int
	killed bool
}

func (t *groupTransport) Connect(ctx context.Context) (sdk.Connection, error) {
	conn, err := t.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.pid = t.cmd.Process.Pid
	killed := t.killed
	t.mu.Unlock()
	if killed {
		t.kill() // stopped while it was starting
	}
	return conn, nil
}

func (t *groupTransport) kill() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.killed = true
	if t.pid > 0 {
		_ = syscall.Kill(-t.pid, syscall.SIGKILL)
	}
}

// childEnv is the gateway's environment less its secrets, plus the
// server's own env.
func childEnv(environ []string, extra map[string]string) []string {
	out := tools.ChildEnv(environ)
	out = slices.DeleteFunc(out, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, overridden := extra[k]
		return overridden
	})
	secret := configgen.SecretEnvNames()
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if slices.Contains(secret, k) {
			continue // the validator refuses these; never pass one regardless
		}
		out = append(out, k+"="+extra[k])
	}
	return out
}

// resolveHeaders reads header values from the environment or files. Errors
// name the header and the source, never the value.
func resolveHeaders(refs map[string]configgen.HeaderRef, getenv func(string) string) (http.Header, error) {
	h := http.Header{}
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		ref := refs[name]
		var v string
		switch {
		case ref.Env != "":
			v = getenv(ref.Env)
			if v == "" {
				return nil, fmt.Errorf("%s: the environment variable %s is not set; set it in the gateway's environment", name, ref.Env)
			}
		case ref.File != "":
			p, err := configgen.ExpandHome(ref.File)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			b, err := readSmall(p)
			if err != nil {
				return nil, fmt.Errorf("%s: reading %s: %w", name, p, err)
			}
			v = strings.TrimRight(string(b), "\r\n")
			if v == "" {
				return nil, fmt.Errorf("%s: %s is empty", name, p)
			}
		default:
			return nil, fmt.Errorf("%s: needs env or file", name)
		}
		v = ref.Prefix + v
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("%s: the value contains a line break or NUL", name)
		}
		h.Set(name, v)
	}
	return h, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHeaderFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxHeaderFile {
		return nil, fmt.Errorf("larger than %d bytes", maxHeaderFile)
	}
	return b, nil
}

// headerTransport adds the configured headers to every request of the
// session, and nothing else.
type headerTransport struct {
	base    http.RoundTripper
	headers http.Header
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range t.headers {
		r.Header[k] = vs
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

var toolNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// listTools reads the server's tools (every page) and names them for the
// model, leaving out any whose name Bedrock would refuse.
func (sv *server) listTools(ctx context.Context, cs *sdk.ClientSession) ([]exposed, int, error) {
	var out []exposed
	skipped := 0
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, 0, err
		}
		name := sv.name + "__" + t.Name
		if !toolNameRe.MatchString(t.Name) || len(name) > maxToolName {
			skipped++
			sv.log().Warn("MCP tool left out: its name has characters other than letters, digits, _ and -, or is too long",
				"tool", t.Name, "max", maxToolName-len(sv.name)-2)
			continue
		}
		schema, err := inputSchema(t.InputSchema)
		if err != nil {
			skipped++
			sv.log().Warn("MCP tool left out: its input schema is not a JSON object", "tool", t.Name, "err", err)
			continue
		}
		desc := strings.TrimSpace(t.Description)
		if desc == "" {
			desc = fmt.Sprintf("Tool %q of the MCP server %q.", t.Name, sv.name)
		}
		out = append(out, exposed{Name: name, Description: desc, InputSchema: schema, remote: t.Name})
	}
	return out, skipped, nil
}

func inputSchema(s any) (json.RawMessage, error) {
	if s == nil {
		return json.RawMessage(`{"type":"object","properties":{}}`), nil
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if _, ok := m["type"]; !ok {
		m["type"] = "object"
		raw, _ = json.Marshal(m)
	}
	return raw, nil
}

// setTools installs a tool list; sv.mu is held.
func (sv *server) setTools(list []exposed, skipped int) {
	sv.tools, sv.skipped = list, skipped
	sv.byName = make(map[string]exposed, len(list))
	for _, t := range list {
		sv.byName[t.Name] = t
	}
}

// refreshTools re-reads the tool list after the server said it changed.
func (sv *server) refreshTools() {
	sv.mu.Lock()
	cs := sv.session
	sv.mu.Unlock()
	if cs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(sv.ctx, time.Duration(sv.cfg.RequestTimeoutMs)*time.Millisecond)
	defer cancel()
	list, skipped, err := sv.listTools(ctx, cs)
	if err != nil {
		sv.log().Warn("re-reading the MCP server's tools", "err", err)
		return
	}
	sv.mu.Lock()
	if sv.session == cs {
		sv.setTools(list, skipped)
	}
	sv.mu.Unlock()
	sv.m.changed()
}

func (sv *server) call(ctx context.Context, name string, input json.RawMessage) tools.Result {
	sv.mu.Lock()
	cs, state, lastErr := sv.session, sv.state, sv.lastErr
	t, known := sv.byName[name]
	sv.mu.Unlock()
	if cs == nil {
		why := "it is still starting"
		if state == StateRestarting {
			why = "it stopped and is being restarted"
			if lastErr != "" {
				why += " (" + lastErr + ")"
			}
		}
		return failure("mcp_unavailable", "tool %q is unavailable right now: MCP server %q is not connected, %s. Try again later or do without it.", name, sv.name, why)
	}
	if !known {
		return failure("unknown_tool", "MCP server %q has no tool %q", sv.name, strings.TrimPrefix(name, sv.name+"__"))
	}
	var args map[string]any
	if len(bytes.TrimSpace(input)) > 0 {
		if err := json.Unmarshal(input, &args); err != nil {
			return failure("invalid_arguments", "tool %q: the arguments must be a JSON object: %v", name, err)
		}
	}
	timeout := time.Duration(sv.cfg.RequestTimeoutMs) * time.Millisecond
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := cs.CallTool(cctx, &sdk.CallToolParams{Name: t.remote, Arguments: args})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return failure("aborted", "tool %q was cancelled: the run was aborted", name)
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return failure("timeout", "tool %q did not answer within %v (mcp.servers.%s.requestTimeoutMs); the call was cancelled", name, timeout, sv.name)
	case errors.Is(err, sdk.ErrConnectionClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || sv.ctx.Err() != nil:
		return failure("mcp_unavailable", "tool %q failed: MCP server %q stopped during the call and is being restarted; try again shortly", name, sv.name)
	default:
		return failure("mcp_error", "tool %q failed: %v", name, err)
	}
	text, truncated := resultText(res, sv.m.opts.MaxResultChars)
	out := tools.Result{Text: text, IsError: res.IsError, Details: map[string]any{"server": sv.name, "tool": t.remote}}
	if truncated {
		out.Details["truncated"] = true
	}
	if res.IsError {
		out.Details["error"] = "tool_error"
	}
	return out
}

// resultText renders a tool result's content for the model: text as it
// is, other kinds as a short note saying what was there.
func resultText(res *sdk.CallToolResult, limit int) (string, bool) {
	var parts []string
	for _, c := range res.Content {
		switch c := c.(type) {
		case *sdk.TextContent:
			parts = append(parts, c.Text)
		case *sdk.ImageContent:
			parts = append(parts, fmt.Sprintf("[image %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *sdk.AudioContent:
			parts = append(parts, fmt.Sprintf("[audio %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *sdk.ResourceLink:
			parts = append(parts, fmt.Sprintf("[resource %s: %s]", c.Name, c.URI))
		case *sdk.EmbeddedResource:
			if c.Resource != nil && c.Resource.Text != "" {
				parts = append(parts, c.Resource.Text)
			} else if c.Resource != nil {
				parts = append(parts, fmt.Sprintf("[resource %s, %d bytes]", c.Resource.URI, len(c.Resource.Blob)))
			}
		}
	}
	if len(parts) == 0 && res.StructuredContent != nil {
		if raw, err := json.Marshal(res.StructuredContent); err == nil {
			parts = append(parts, string(raw))
		}
	}
	text := strings.Join(parts, "\n")
	if r := []rune(text); len(r) > limit {
		return string(r[:limit]) + fmt.Sprintf("\n[output truncated at %d characters]", limit), true
	}
	return text, false
}

func failure(kind, format string, a ...any) tools.Result {
	return tools.Result{Text: fmt.Sprintf(format, a...), IsError: true, Details: map[string]any{"error": kind}}
}

// tailBuffer keeps the end of a stdio server's stderr.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > stderrTail {
		b.buf = slices.Clone(b.buf[len(b.buf)-stderrTail:])
	}
	return len(p), nil
}

// last is the last non-empty line, bounded.
func (b *tailBuffer) last() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(b.buf)), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if r := []rune(l); len(r) > 200 {
		l = string(r[:200]) + "…"
	}
	return l
}

// Probe starts (or dials) one server, initializes it, lists its tools and
// stops it: what skykoi doctor reports. opts.Servers is ignored. The
// returned Status has State ready and the tool count on success.
func Probe(ctx context.Context, name string, cfg configgen.MCPServer, opts Options) (Status, error) {
	opts.Servers = nil
	m := New(opts)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sv := &server{m: m, name: name, cfg: cfg, ctx: ctx, cancel: cancel, state: StateStarting, probe: true}
	err := sv.connectAndWait()
	st := sv.status()
	if err != nil {
		st.State, st.LastError = StateRestarting, err.Error()
		return st, err
	}
	st.Tools = len(sv.tools)
	return st, nil
}

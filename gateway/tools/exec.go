package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

const (
	// maxCommandBytes is Linux's limit on one argv string (MAX_ARG_STRLEN
	// less the NUL); a longer command would fail with a bare E2BIG.
	maxCommandBytes = 128<<10 - 1
	// termGrace is how long a process group gets between SIGTERM and
	// SIGKILL: enough to flush and remove temp files, short enough that an
	// abort feels immediate.
	termGrace = time.Second
	// outputGrace is how long to keep collecting output after the shell has
	// exited. Output normally ends with it; when a child it left running in
	// the background still holds the pipe, waiting longer would tie the
	// result to that child's lifetime.
	outputGrace = time.Second
	// maxBackgroundRunning bounds the background table so a looping model
	// cannot fill the machine with processes.
	maxBackgroundRunning = 32
	// maxBackgroundFinished is how many finished background commands stay
	// readable; older ones are forgotten first.
	maxBackgroundFinished = 32
	readChunk             = 64 << 10
)

// Why a command was stopped.
const (
	reasonTimeout  = "timeout"
	reasonAborted  = "aborted"
	reasonKilled   = "killed"
	reasonShutdown = "shutdown"
)

// proc is one running shell and its process group.
type proc struct {
	handle  string // "" for foreground commands
	command string
	pid     int // also the process group id: the shell leads its own group
	out     *capture
	started time.Time
	timeout time.Duration
	// waitDone closes when the shell has exited and been reaped.
	waitDone chan struct{}
	// outDone closes when every writer of the output pipe is gone.
	outDone   chan struct{}
	stopOnce  sync.Once
	drainOnce sync.Once

	mu       sync.Mutex
	exited   bool
	ended    time.Time
	exitCode int
	signal   string
	waitErr  error
	reason   string // set when we stopped it before it exited by itself
}

// start runs command with bash in its own process group and begins draining
// its output. s.mu is held by the caller, so Close cannot miss it.
func (s *Set) start(command, dir string, env []string, timeout time.Duration) (*proc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating output pipe: %w", err)
	}
	// "--" keeps a command that begins with "-" from being read as a bash
	// option.
	cmd := exec.Command("/bin/bash", "-c", "--", command)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = w // the same pipe for both keeps their interleaving
	cmd.Stderr = w
	// Its own process group, so a timeout or abort can kill everything the
	// command started (pipelines, "x &" children) with one signal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("starting /bin/bash: %w", err)
	}
	// Only the children hold the write end now, so EOF means they are gone.
	w.Close()
	p := &proc{
		command:  command,
		pid:      cmd.Process.Pid,
		out:      newCapture(s.maxOut),
		started:  s.now(),
		timeout:  timeout,
		waitDone: make(chan struct{}),
		outDone:  make(chan struct{}),
	}
	go func() {
		defer close(p.outDone)
		defer r.Close()
		buf := make([]byte, readChunk)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				p.out.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		p.finish(cmd.ProcessState, err, s.now())
		close(p.waitDone)
	}()
	s.live[p] = struct{}{}
	go func() {
		<-p.waitDone
		<-p.outDone
		s.mu.Lock()
		delete(s.live, p)
		s.mu.Unlock()
	}()
	return p, nil
}

func (p *proc) finish(ps *os.ProcessState, err error, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exited = true
	p.ended = now
	p.exitCode = -1
	if ps == nil {
		p.waitErr = err
		return
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		p.signal = ws.Signal().String()
		return
	}
	p.exitCode = ps.ExitCode()
}

// stop ends the process group: SIGTERM, then SIGKILL once the grace is up
// if anything in the group is still there. The first reason wins, and none
// is recorded when the shell had already exited by itself (a leftover child
// being cleaned up does not change how the command ended).
func (p *proc) stop(reason string) {
	p.mu.Lock()
	if !p.exited && p.reason == "" {
		p.reason = reason
	}
	p.mu.Unlock()
	p.stopOnce.Do(func() {
		pgid := p.pid
		if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
			return
		}
		deadline := time.NewTimer(termGrace)
		defer deadline.Stop()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			// Signal 0 probes the group. Members only exit; while any is
			// left the kernel keeps the id reserved, so this cannot reach a
			// stranger's group.
			if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
				return
			}
			select {
			case <-deadline.C:
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				return
			case <-tick.C:
			}
		}
	})
}

type procStatus struct {
	exited   bool
	exitCode int
	signal   string
	reason   string
	waitErr  error
	ended    time.Time
}

func (p *proc) status() procStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return procStatus{p.exited, p.exitCode, p.signal, p.reason, p.waitErr, p.ended}
}

// settled is status, but once the shell has exited it first lets the output
// pipe drain: the shell is reaped before the reader has taken the pipe's
// last bytes, so a poll or read right then would report "exited" with
// output missing (seen on a loaded machine). A leftover child that holds
// the pipe delays this by outputGrace, once.
func (p *proc) settled() procStatus {
	st := p.status()
	if st.exited {
		p.drainOnce.Do(func() {
			t := time.NewTimer(outputGrace)
			defer t.Stop()
			select {
			case <-p.outDone:
			case <-t.C:
			}
		})
	}
	return st
}

// describeEnd says how a finished command ended, in one bracketed line, e.g.
// "[exit code 0]" or "[exit code -1: timed out after 5s; …]".
func (st procStatus) describeEnd(timeout time.Duration) string {
	var why string
	switch st.reason {
	case reasonTimeout:
		why = fmt.Sprintf("timed out after %s; the command and its process group were killed", fmtDuration(timeout))
	case reasonAborted:
		why = "killed: aborted"
	case reasonKilled:
		why = "killed with the process tool"
	case reasonShutdown:
		why = "killed: the gateway is shutting down"
	default:
		switch {
		case st.signal != "":
			why = "killed by signal: " + st.signal
		case st.waitErr != nil:
			why = "waiting for the command failed: " + st.waitErr.Error()
		}
	}
	if why == "" {
		return fmt.Sprintf("[exit code %d]", st.exitCode)
	}
	return fmt.Sprintf("[exit code %d: %s]", st.exitCode, why)
}

func fmtDuration(d time.Duration) string {
	if d >= time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

var execFields = []string{"command", "workdir", "env", "timeoutSec", "background"}

func (s *Set) execTool(ctx context.Context, input json.RawMessage) Result {
	a, err := parseArgs("exec", input, execFields...)
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	command, _ := a.str("command", true)
	workdir, hasDir := a.str("workdir", false)
	envIn := a.strMap("env")
	maxSec := int64(s.timeout / time.Second)
	timeoutSec := a.integer("timeoutSec", 1, maxSec, maxSec)
	background := a.boolean("background")
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	switch {
	case strings.TrimSpace(command) == "":
		return failure("invalid_arguments", "invalid arguments for exec: field \"command\" is empty")
	case len(command) > maxCommandBytes:
		return failure("invalid_arguments", "invalid arguments for exec: command is %d bytes; the limit is %d (write a script file and run that)", len(command), maxCommandBytes)
	case strings.ContainsRune(command, 0):
		return failure("invalid_arguments", "invalid arguments for exec: command contains a NUL byte")
	}
	// The workdir follows the file tools' path rules: with "allowlist" it is
	// in the workspace, and it is never the gateway's state directory.
	dir := s.ws
	if hasDir {
		d, err := s.resolvePath("exec workdir", workdir, s.ws)
		if err != nil {
			return failure(pathErrKind(err), "exec: %v", err)
		}
		fi, err := os.Stat(d)
		if err != nil {
			return failure("not_found", "exec: workdir %s: %v", d, errors.Unwrap(err))
		}
		if !fi.IsDir() {
			return failure("invalid_arguments", "exec: workdir %s is not a directory", d)
		}
		dir = d
	}
	if s.security == SecurityAllowlist {
		if len(envIn) > 0 {
			return failure("refused", "exec refused: the env field is not allowed with tools.exec.security \"allowlist\" (PATH, BASH_ENV or LD_PRELOAD would get around the allowlist)")
		}
		// A redirection is a file write (or read) bash does for the command,
		// so its target meets the file tools' rule; relative targets are
		// relative to where the command runs. Between this check and bash
		// opening the file a concurrent process could swap a directory for a
		// symlink; with "allowlist" only an allowlisted program could be that
		// process, and one that can make symlinks is already beyond what the
		// allowlist can hold (see docs/config.md).
		target := func(op, path string) error {
			_, err := s.resolvePath("redirection "+op, path, dir)
			return err
		}
		if err := checkAllowlist(command, s.allowlist, target); err != nil {
			return failure("refused", "exec refused: %v", err)
		}
	}
	keys := make([]string, 0, len(envIn))
	for k := range envIn {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	env := append(childEnv(os.Environ()), s.env...)
	for _, k := range keys {
		v := envIn[k]
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return failure("invalid_arguments", "invalid arguments for exec: env %q: names must be non-empty without '=' and neither may contain NUL", clip(k, 40))
		}
		env = append(env, k+"="+v)
	}
	timeout := time.Duration(timeoutSec) * time.Second
	if background {
		return s.startBackground(command, dir, env, timeout)
	}
	return s.runForeground(ctx, command, dir, env, timeout)
}

// childEnv is environ without the gateway's secrets (configgen's
// SecretEnvNames): every shell the tools start, foreground or background,
// gets its environment from here. A value the model sets with the env field
// is added afterwards; it is the model's own, not the gateway's.
func childEnv(environ []string) []string { return ChildEnv(environ) }

// ChildEnv is environ without the gateway's secrets: the one filter for
// every process the gateway starts on the model's behalf (exec, and the
// stdio MCP servers of gateway/mcp).
func ChildEnv(environ []string) []string {
	secret := configgen.SecretEnvNames()
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(secret, k) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (s *Set) runForeground(ctx context.Context, command, dir string, env []string, timeout time.Duration) Result {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return failure("closed", "exec is unavailable: the gateway is shutting down")
	}
	p, err := s.start(command, dir, env, timeout)
	s.mu.Unlock()
	if err != nil {
		return failure("start_failed", "exec: %v", err)
	}
	s.log.Debug("exec started", "pid", p.pid, "workdir", dir)
	begin := time.Now()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.waitDone:
	case <-timer.C:
		p.stop(reasonTimeout)
	case <-ctx.Done():
		p.stop(reasonAborted)
	case <-s.closing:
		p.stop(reasonShutdown)
	}
	<-p.waitDone
	outputOpen := false
	grace := time.NewTimer(outputGrace)
	defer grace.Stop()
	select {
	case <-p.outDone:
	case <-grace.C:
		outputOpen = true
	}
	st := p.status()
	text, truncated, chars := p.out.snapshot()
	elapsed := time.Since(begin)
	s.log.Debug("exec finished", "pid", p.pid, "exitCode", st.exitCode, "reason", st.reason, "durationMs", elapsed.Milliseconds())

	var b strings.Builder
	if text == "" {
		b.WriteString("(no output)\n")
	} else {
		b.WriteString(text)
		if !strings.HasSuffix(text, "\n") {
			b.WriteByte('\n')
		}
	}
	if outputOpen {
		b.WriteString("[later output not shown: something the command started in the background still has it open; use background:true for long-running commands]\n")
	}
	b.WriteString(st.describeEnd(timeout))
	details := map[string]any{
		"exitCode":    st.exitCode,
		"truncated":   truncated,
		"outputChars": chars,
		"durationMs":  elapsed.Milliseconds(),
		"workdir":     dir,
		"pid":         p.pid,
	}
	if st.signal != "" {
		details["signal"] = st.signal
	}
	switch st.reason {
	case reasonTimeout:
		details["timedOut"] = true
	case reasonAborted:
		details["aborted"] = true
	case "":
	default:
		details["killed"] = st.reason
	}
	return Result{Text: b.String(), IsError: st.exitCode != 0 || st.reason != "", Details: details}
}

func (s *Set) startBackground(command, dir string, env []string, timeout time.Duration) Result {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return failure("closed", "exec is unavailable: the gateway is shutting down")
	}
	running := 0
	for _, p := range s.bg {
		if !p.status().exited {
			running++
		}
	}
	if running >= maxBackgroundRunning {
		s.mu.Unlock()
		return failure("too_many", "exec: %d background commands are already running, the most allowed; kill one with the process tool (action \"kill\") first", running)
	}
	p, err := s.start(command, dir, env, timeout)
	if err != nil {
		s.mu.Unlock()
		return failure("start_failed", "exec: %v", err)
	}
	s.nextID++
	p.handle = fmt.Sprintf("bg%d", s.nextID)
	s.bg[p.handle] = p
	s.bgOrder = append(s.bgOrder, p.handle)
	s.pruneFinishedLocked()
	s.mu.Unlock()
	s.log.Debug("exec started in background", "handle", p.handle, "pid", p.pid, "workdir", dir)

	go func() {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-p.waitDone:
		case <-timer.C:
			s.log.Info("background command timed out; killing its process group", "handle", p.handle, "pid", p.pid)
			p.stop(reasonTimeout)
		case <-s.closing:
			p.stop(reasonShutdown)
		}
	}()
	return Result{
		Text: fmt.Sprintf("Started in the background as handle %s (pid %d, workdir %s). It is killed if still running after %s. "+
			"Use the process tool with {\"action\":\"poll\",\"handle\":%q} for its status, \"read\" for its output, \"kill\" to stop it.",
			p.handle, p.pid, dir, fmtDuration(timeout), p.handle),
		Details: map[string]any{"handle": p.handle, "pid": p.pid, "workdir": dir, "background": true},
	}
}

// pruneFinishedLocked forgets the oldest finished background commands beyond
// maxBackgroundFinished. s.mu is held.
func (s *Set) pruneFinishedLocked() {
	finished := 0
	for _, h := range s.bgOrder {
		if s.bg[h].status().exited {
			finished++
		}
	}
	if finished <= maxBackgroundFinished {
		return
	}
	keep := s.bgOrder[:0]
	for _, h := range s.bgOrder {
		if finished > maxBackgroundFinished && s.bg[h].status().exited {
			delete(s.bg, h)
			finished--
			continue
		}
		keep = append(keep, h)
	}
	s.bgOrder = keep
}

var processFields = []string{"action", "handle", "offset"}

func (s *Set) processTool(input json.RawMessage) Result {
	a, err := parseArgs("process", input, processFields...)
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	action, _ := a.str("action", true)
	handle, hasHandle := a.str("handle", false)
	offset := a.integer("offset", 0, math.MaxInt64, 0)
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	switch action {
	case "list":
		return s.listBackground()
	case "poll", "read", "kill":
	default:
		return failure("invalid_arguments", "invalid arguments for process: field \"action\": expected one of poll, read, kill, list; got %q", clip(action, 40))
	}
	if !hasHandle || handle == "" {
		return failure("invalid_arguments", "invalid arguments for process: action %q needs the field \"handle\" (from exec with background:true)", action)
	}
	s.mu.Lock()
	p := s.bg[handle]
	s.mu.Unlock()
	if p == nil {
		return failure("unknown_handle", "process: unknown handle %q; {\"action\":\"list\"} shows the background commands", clip(handle, 40))
	}
	switch action {
	case "poll":
		return s.pollResult(p)
	case "read":
		return s.readBackground(p, offset)
	default:
		return s.killBackground(p)
	}
}

func (s *Set) pollResult(p *proc) Result {
	st := p.settled()
	details := map[string]any{"handle": p.handle, "pid": p.pid, "outputBytes": p.out.size()}
	var text string
	if st.exited {
		details["status"] = "exited"
		details["exitCode"] = st.exitCode
		if st.reason != "" {
			details["killed"] = st.reason
		}
		text = fmt.Sprintf("%s: exited after %s %s; %d bytes of output.", p.handle, fmtDuration(st.ended.Sub(p.started)), st.describeEnd(p.timeout), p.out.size())
	} else {
		details["status"] = "running"
		text = fmt.Sprintf("%s: running (pid %d, for %s); %d bytes of output so far.", p.handle, p.pid, fmtDuration(s.now().Sub(p.started)), p.out.size())
	}
	return Result{Text: text, Details: details}
}

func (s *Set) readBackground(p *proc, offset int64) Result {
	st := p.settled()
	running := !st.exited
	data, start, next := p.out.readFrom(offset, s.maxOut)
	total := p.out.size()
	skipped := max(start-offset, 0)
	var b strings.Builder
	if skipped > 0 {
		fmt.Fprintf(&b, "[… %d bytes no longer kept (only the start and the latest output are) …]\n", skipped)
	}
	if data == "" {
		b.WriteString("(no new output)\n")
	} else {
		b.WriteString(data)
		if !strings.HasSuffix(data, "\n") {
			b.WriteByte('\n')
		}
	}
	state := "still running"
	if !running {
		state = "exited: " + strings.Trim(st.describeEnd(p.timeout), "[]")
	}
	fmt.Fprintf(&b, "[output bytes %d to %d of %d; %s", start, next, total, state)
	if next < total || running {
		fmt.Fprintf(&b, "; continue with offset=%d", next)
	}
	b.WriteString("]")
	return Result{Text: b.String(), Details: map[string]any{
		"handle": p.handle, "offset": offset, "nextOffset": next, "outputBytes": total,
		"skipped": skipped, "running": running,
	}}
}

func (s *Set) killBackground(p *proc) Result {
	if st := p.status(); st.exited {
		extra := ""
		select {
		case <-p.outDone:
		default:
			// The shell is gone but something it started still holds the
			// output open; asking to kill the command means that too.
			p.stop(reasonKilled)
			extra = " Processes it left running were killed."
		}
		return Result{
			Text:    fmt.Sprintf("%s had already exited %s.%s", p.handle, st.describeEnd(p.timeout), extra),
			Details: map[string]any{"handle": p.handle, "status": "exited", "exitCode": st.exitCode},
		}
	}
	s.log.Info("killing background command", "handle", p.handle, "pid", p.pid)
	p.stop(reasonKilled)
	// SIGKILL has been sent by now; waiting is bounded only so a process
	// stuck in uninterruptible I/O cannot hang the run.
	wait := time.NewTimer(5 * time.Second)
	defer wait.Stop()
	select {
	case <-p.waitDone:
	case <-wait.C:
		return Result{Text: fmt.Sprintf("%s: sent SIGKILL to its process group but it has not exited yet; poll it again.", p.handle),
			Details: map[string]any{"handle": p.handle, "status": "running"}}
	}
	st := p.status()
	return Result{
		Text:    fmt.Sprintf("%s killed (process group %d) %s.", p.handle, p.pid, st.describeEnd(p.timeout)),
		Details: map[string]any{"handle": p.handle, "status": "exited", "exitCode": st.exitCode},
	}
}

func (s *Set) listBackground() Result {
	s.mu.Lock()
	procs := make([]*proc, 0, len(s.bgOrder))
	for _, h := range s.bgOrder {
		procs = append(procs, s.bg[h])
	}
	s.mu.Unlock()
	if len(procs) == 0 {
		return Result{Text: "No background commands.", Details: map[string]any{"handles": []any{}}}
	}
	var b strings.Builder
	handles := make([]any, 0, len(procs))
	for _, p := range procs {
		st := p.status()
		state := "running"
		if st.exited {
			state = "exited " + st.describeEnd(p.timeout)
		}
		cmd := strings.Join(strings.Fields(p.command), " ")
		fmt.Fprintf(&b, "%s\tpid %d\t%s\t%s\n", p.handle, p.pid, state, clip(cmd, 80))
		h := map[string]any{"handle": p.handle, "pid": p.pid, "running": !st.exited}
		if st.exited {
			h["exitCode"] = st.exitCode
		}
		handles = append(handles, h)
	}
	return Result{Text: strings.TrimSuffix(b.String(), "\n"), Details: map[string]any{"handles": handles}}
}

package tools

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestExec(t *testing.T) {
	s := newSet(t, func(o *Options) { o.Env = []string{"KOI_FROM_OPTIONS=opt"} })
	os.Mkdir(filepath.Join(s.ws, "sub"), 0o755)
	tests := []struct {
		name     string
		args     map[string]any
		want     string // the whole text
		isError  bool
		exitCode int
	}{
		{name: "echo", args: map[string]any{"command": "echo hello"}, want: "hello\n[exit code 0]"},
		{name: "stderr is combined", args: map[string]any{"command": "echo out; echo err >&2"}, want: "out\nerr\n[exit code 0]"},
		{name: "no output", args: map[string]any{"command": "true"}, want: "(no output)\n[exit code 0]"},
		{name: "exit code", args: map[string]any{"command": "echo failing; exit 3"}, want: "failing\n[exit code 3]", isError: true, exitCode: 3},
		{name: "runs in the workspace", args: map[string]any{"command": "pwd"}, want: s.ws + "\n[exit code 0]"},
		{name: "workdir", args: map[string]any{"command": "pwd", "workdir": "sub"}, want: filepath.Join(s.ws, "sub") + "\n[exit code 0]"},
		{name: "env", args: map[string]any{"command": `echo "$A-$KOI_FROM_OPTIONS"`, "env": map[string]string{"A": "x y"}}, want: "x y-opt\n[exit code 0]"},
		{name: "leading dash is not an option", args: map[string]any{"command": "-x"}, isError: true, exitCode: 127},
		{name: "stdin is empty", args: map[string]any{"command": "cat; echo done"}, want: "done\n[exit code 0]"},
		{name: "killed by signal", args: map[string]any{"command": "kill -USR1 $$"}, want: "(no output)\n[exit code -1: killed by signal: user defined signal 1]", isError: true, exitCode: -1},
		{name: "missing workdir", args: map[string]any{"command": "pwd", "workdir": "nope"}, isError: true, exitCode: -999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, s, "exec", tt.args)
			if r.IsError != tt.isError {
				t.Fatalf("IsError = %v, text %q", r.IsError, r.Text)
			}
			if tt.want != "" && r.Text != tt.want {
				t.Errorf("text = %q, want %q", r.Text, tt.want)
			}
			if tt.exitCode != -999 && r.Details["exitCode"] != tt.exitCode {
				t.Errorf("exitCode = %v, want %d (text %q)", r.Details["exitCode"], tt.exitCode, r.Text)
			}
		})
	}
}

func TestExecAllowlist(t *testing.T) {
	s := newSet(t, func(o *Options) {
		o.Exec.Security = SecurityAllowlist
		o.Exec.Allowlist = []string{"echo", "ls", "/bin/cat", "touch"}
	})
	sentinel := filepath.Join(s.ws, "x")
	tests := []struct {
		command string
		env     map[string]string
		refused string // "" = allowed
	}{
		{command: "echo hi"},
		{command: "ls -la && echo done"},
		{command: "echo a | /bin/cat"},
		{command: "echo a 2>&1 >/dev/null; echo b"},
		{command: `"echo" 'quoted' \ls`},
		{command: "ls\necho two"},
		{command: "ls; rm -rf x", refused: `command "rm" is not in tools.exec.allowlist`},
		{command: "$(rm x)", refused: "command substitution $(…)"},
		{command: "echo $(rm x)", refused: "command substitution $(…)"},
		{command: "echo `rm x`", refused: "backticks"},
		{command: "`rm x`", refused: "backticks"},
		{command: "echo '$(rm x)'", refused: "command substitution"},
		{command: "cat <(rm x)", refused: "process substitution"},
		{command: "ls || rm x", refused: `"rm" is not in`},
		{command: "ls | rm x", refused: `"rm" is not in`},
		{command: "ls & rm x", refused: `"rm" is not in`},
		{command: "ls\nrm x", refused: `"rm" is not in`},
		{command: "ls |& rm x", refused: `"rm" is not in`},
		{command: "(rm x)", refused: "subshells"},
		{command: "{ rm x; }", refused: "not a plain program name"},
		{command: "PATH=/tmp ls", refused: "variable assignment"},
		{command: "$CMD x", refused: "not a plain program name"},
		{command: `"$CMD" x`, refused: "not a plain program name"},
		{command: `$'\x72\x6d' x`, refused: "not a plain program name"},
		{command: "r? x", refused: "not a plain program name"},
		{command: "./rm x", refused: `"./rm" is not in`},
		{command: "/usr/bin/rm x", refused: `"/usr/bin/rm" is not in`},
		{command: "cat x", refused: `"cat" is not in`},
		{command: "> x", refused: "redirection without a command"},
		{command: ">x rm x", refused: `"rm" is not in`},
		{command: "ls # ; rm x", refused: `"rm" is not in`},
		{command: "echo 'unterminated", refused: "unterminated"},
		{command: "ls", env: map[string]string{"BASH_ENV": "/tmp/evil"}, refused: "env field is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			if err := os.WriteFile(sentinel, []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := map[string]any{"command": tt.command}
			if tt.env != nil {
				args["env"] = tt.env
			}
			r := run(t, s, "exec", args)
			if tt.refused == "" {
				mustOK(t, r)
			} else {
				mustFail(t, r, "exec refused", tt.refused)
				if _, ok := r.Details["pid"]; ok {
					t.Error("a refused command was started")
				}
			}
			if b, err := os.ReadFile(sentinel); err != nil || string(b) != "keep" {
				t.Errorf("the sentinel file was harmed: %q %v", b, err)
			}
		})
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	s := newSet(t, nil)
	// The grandchild would outlive a kill of the shell alone.
	r := run(t, s, "exec", map[string]any{"command": "sleep 1000 & echo $!; sleep 1000", "timeoutSec": 1})
	mustFail(t, r, "timed out after 1s", "process group were killed")
	if r.Details["timedOut"] != true {
		t.Errorf("details = %v", r.Details)
	}
	first, _, _ := strings.Cut(r.Text, "\n")
	grandchild, err := strconv.Atoi(first)
	if err != nil {
		t.Fatalf("no grandchild pid in %q", r.Text)
	}
	waitFor(t, "the background grandchild to be killed", func() bool { return procGone(grandchild) })
	waitFor(t, "the shell to be gone", func() bool { return procGone(r.Details["pid"].(int)) })
}

func TestExecTrappedTermGetsKilled(t *testing.T) {
	s := newSet(t, nil)
	// Ignoring SIGTERM only buys the grace period.
	r := run(t, s, "exec", map[string]any{"command": "trap '' TERM; echo $$; while :; do sleep 0.1; done", "timeoutSec": 1})
	mustFail(t, r, "timed out after 1s")
	pid, err := strconv.Atoi(strings.SplitN(r.Text, "\n", 2)[0])
	if err != nil {
		t.Fatalf("no pid in %q", r.Text)
	}
	waitFor(t, "the shell to be killed", func() bool { return procGone(pid) })
}

func TestExecAbortKillsPromptly(t *testing.T) {
	s := newSet(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		done <- s.Run(ctx, "exec", json.RawMessage(`{"command":"sleep 1000 & echo $! > started; wait"}`))
	}()
	started := filepath.Join(s.ws, "started")
	var pid int
	waitFor(t, "the command to start", func() bool {
		b, err := os.ReadFile(started)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	cancel()
	select {
	case r := <-done:
		mustFail(t, r, "killed: aborted")
		if r.Details["aborted"] != true {
			t.Errorf("details = %v", r.Details)
		}
	case <-time.After(safety(t)):
		t.Fatal("Run did not return after its context was cancelled")
	}
	waitFor(t, "the grandchild to be killed", func() bool { return procGone(pid) })
}

func TestExecHugeOutputBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 1 GB through a pipe")
	}
	s := newSet(t, nil)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	r := run(t, s, "exec", map[string]any{"command": "yes | head -c 1000000000"})
	close(stop)
	wg.Wait()

	mustOK(t, r)
	if n := len([]rune(r.Text)); n > DefaultMaxOutputChars+200 {
		t.Errorf("result is %d characters", n)
	}
	if !strings.Contains(r.Text, "[… 999800000 characters omitted …]") || !strings.HasSuffix(r.Text, "y\n[exit code 0]") || !strings.HasPrefix(r.Text, "y\ny\n") {
		t.Errorf("unexpected text around the cut: %q … %q", r.Text[:20], r.Text[len(r.Text)-200:])
	}
	if r.Details["truncated"] != true || r.Details["outputChars"] != int64(1_000_000_000) {
		t.Errorf("details = %v", r.Details)
	}
	if grew := int64(peak.Load()) - int64(base.HeapInuse); grew > 100<<20 {
		t.Errorf("heap in use grew by %d MB while reading 1 GB of output", grew>>20)
	}
}

func TestBackgroundProcess(t *testing.T) {
	s := newSet(t, nil)
	r := mustOK(t, run(t, s, "exec", map[string]any{"command": "echo begin; sleep 1000 & echo $! > child; wait", "background": true}))
	handle, _ := r.Details["handle"].(string)
	if handle != "bg1" || !strings.Contains(r.Text, `"handle":"bg1"`) {
		t.Fatalf("exec background = %q %v", r.Text, r.Details)
	}
	p := mustOK(t, run(t, s, "process", map[string]any{"action": "poll", "handle": handle}))
	if p.Details["status"] != "running" {
		t.Errorf("poll = %q", p.Text)
	}
	var out Result
	waitFor(t, "output", func() bool {
		out = mustOK(t, run(t, s, "process", map[string]any{"action": "read", "handle": handle}))
		return strings.HasPrefix(out.Text, "begin\n")
	})
	if out.Details["nextOffset"] != int64(6) || !strings.Contains(out.Text, "still running; continue with offset=6") {
		t.Errorf("read = %q %v", out.Text, out.Details)
	}
	again := mustOK(t, run(t, s, "process", map[string]any{"action": "read", "handle": handle, "offset": 6}))
	if !strings.HasPrefix(again.Text, "(no new output)") {
		t.Errorf("read from 6 = %q", again.Text)
	}
	l := mustOK(t, run(t, s, "process", map[string]any{"action": "list"}))
	if !strings.Contains(l.Text, "bg1\tpid") || !strings.Contains(l.Text, "running") {
		t.Errorf("list = %q", l.Text)
	}
	var child int
	waitFor(t, "the child pid", func() bool {
		b, _ := os.ReadFile(filepath.Join(s.ws, "child"))
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return child > 0
	})
	k := mustOK(t, run(t, s, "process", map[string]any{"action": "kill", "handle": handle}))
	if k.Details["status"] != "exited" || !strings.Contains(k.Text, "killed with the process tool") {
		t.Errorf("kill = %q %v", k.Text, k.Details)
	}
	waitFor(t, "the child to be killed with the group", func() bool { return procGone(child) })
	p = mustOK(t, run(t, s, "process", map[string]any{"action": "poll", "handle": handle}))
	if p.Details["status"] != "exited" {
		t.Errorf("poll after kill = %q", p.Text)
	}
	k = mustOK(t, run(t, s, "process", map[string]any{"action": "kill", "handle": handle}))
	if !strings.Contains(k.Text, "had already exited") {
		t.Errorf("second kill = %q", k.Text)
	}

	// A background command that ends by itself.
	r = mustOK(t, run(t, s, "exec", map[string]any{"command": "printf 'done\\n'; exit 4", "background": true}))
	h2 := r.Details["handle"].(string)
	waitFor(t, "bg2 to exit", func() bool {
		return run(t, s, "process", map[string]any{"action": "poll", "handle": h2}).Details["status"] == "exited"
	})
	p = run(t, s, "process", map[string]any{"action": "poll", "handle": h2})
	if p.Details["exitCode"] != 4 || !strings.Contains(p.Text, "[exit code 4]") {
		t.Errorf("poll bg2 = %q %v", p.Text, p.Details)
	}
	out = run(t, s, "process", map[string]any{"action": "read", "handle": h2})
	if !strings.HasPrefix(out.Text, "done\n[output bytes 0 to 5 of 5; exited: exit code 4]") {
		t.Errorf("read bg2 = %q", out.Text)
	}
}

func TestBackgroundTimeoutAndClose(t *testing.T) {
	s := newSet(t, nil)
	r := mustOK(t, run(t, s, "exec", map[string]any{"command": "sleep 1000", "background": true, "timeoutSec": 1}))
	h := r.Details["handle"].(string)
	waitFor(t, "the background timeout", func() bool {
		return run(t, s, "process", map[string]any{"action": "poll", "handle": h}).Details["status"] == "exited"
	})
	p := run(t, s, "process", map[string]any{"action": "poll", "handle": h})
	if !strings.Contains(p.Text, "timed out after 1s") {
		t.Errorf("poll = %q", p.Text)
	}

	var pids []int
	for range 3 {
		r := mustOK(t, run(t, s, "exec", map[string]any{"command": "sleep 1000", "background": true}))
		pids = append(pids, r.Details["pid"].(int))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !procGone(pid) {
			t.Errorf("pid %d survived Close", pid)
		}
	}
	mustFail(t, run(t, s, "exec", map[string]any{"command": "true"}), "shutting down")
}

func TestBackgroundTableIsBounded(t *testing.T) {
	s := newSet(t, nil)
	for i := range maxBackgroundRunning {
		r := run(t, s, "exec", map[string]any{"command": "sleep 1000", "background": true})
		if r.IsError {
			t.Fatalf("start %d: %s", i, r.Text)
		}
	}
	mustFail(t, run(t, s, "exec", map[string]any{"command": "sleep 1000", "background": true}), "already running")
	// Finished ones make room; old finished ones are forgotten.
	for i := 1; i <= maxBackgroundRunning; i++ {
		mustOK(t, run(t, s, "process", map[string]any{"action": "kill", "handle": "bg" + strconv.Itoa(i)}))
	}
	for range maxBackgroundFinished + 5 {
		mustOK(t, run(t, s, "exec", map[string]any{"command": "true", "background": true}))
	}
	waitFor(t, "every background command to finish", func() bool {
		l := run(t, s, "process", map[string]any{"action": "list"})
		return !strings.Contains(l.Text, "running")
	})
	// Pruning happens when a command starts.
	mustOK(t, run(t, s, "exec", map[string]any{"command": "true", "background": true}))
	s.mu.Lock()
	n := len(s.bg)
	s.mu.Unlock()
	if n > maxBackgroundFinished+1 {
		t.Errorf("%d handles kept, want at most %d finished (+1 just started)", n, maxBackgroundFinished)
	}
	mustFail(t, run(t, s, "process", map[string]any{"action": "poll", "handle": "bg1"}), "unknown handle")
}

func TestExecForegroundLeftoverChildIsReported(t *testing.T) {
	s := newSet(t, nil)
	r := mustOK(t, run(t, s, "exec", map[string]any{"command": "sleep 1000 & echo $!"}))
	if !strings.Contains(r.Text, "later output not shown") {
		t.Errorf("text = %q", r.Text)
	}
	pid, err := strconv.Atoi(strings.SplitN(r.Text, "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if procGone(pid) {
		t.Fatal("a child the command left running was killed on a normal exit")
	}
	s.Close()
	waitFor(t, "Close to kill the leftover child", func() bool { return procGone(pid) })
}

func TestBackgroundKillReachesLeftoverChildren(t *testing.T) {
	s := newSet(t, nil)
	r := mustOK(t, run(t, s, "exec", map[string]any{"command": "sleep 1000 & echo $! > child", "background": true}))
	h := r.Details["handle"].(string)
	waitFor(t, "the shell to exit", func() bool {
		return run(t, s, "process", map[string]any{"action": "poll", "handle": h}).Details["status"] == "exited"
	})
	b, err := os.ReadFile(filepath.Join(s.ws, "child"))
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	k := mustOK(t, run(t, s, "process", map[string]any{"action": "kill", "handle": h}))
	if !strings.Contains(k.Text, "left running were killed") {
		t.Errorf("kill = %q", k.Text)
	}
	waitFor(t, "the leftover child to be killed", func() bool { return procGone(child) })
}

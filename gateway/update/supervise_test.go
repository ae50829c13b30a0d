package update_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/skykoi/skykoi/internal/testwait"
)

// The test binary doubles as the gateway: with envServe set it serves
// /readyz on envPort, answering its version, until SIGTERM.
const (
	envServe  = "SKYKOI_UPDATE_TEST_SERVE"
	envPort   = "SKYKOI_UPDATE_TEST_PORT"
	envHelper = "SKYKOI_UPDATE_TEST_HELPER"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(envServe); v != "" {
		serveHelper(v)
		return
	}
	os.Exit(m.Run())
}

func serveHelper(version string) {
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv(envPort))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, version)
		}))
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	os.Exit(0)
}

// gatewayScript is a "binary" that runs the helper as the given version.
func gatewayScript(version string) []byte {
	return []byte("#!/bin/sh\n" + envServe + "=" + version + " exec \"$" + envHelper + "\" -test.run='^$'\n")
}

var (
	binA     = gatewayScript("vA")
	binB     = gatewayScript("vB")
	binCrash = []byte("#!/bin/sh\necho 'broken build' >&2\nexit 1\n")
	binHang  = []byte("#!/bin/sh\nexec sleep 600\n")
)

// procService runs the unit's binary as a real child process the way the
// gateway unit does: a restart stops the running one and starts whatever
// file is at the path now; a child that exits non-zero is started again
// (Restart=on-failure), up to a start limit after which the unit is failed.
type procService struct {
	bin string
	env []string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	gen      int
	restarts int
	failed   bool
	starts   int
}

func newProcService(t *testing.T, bin string, port int) *procService {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &procService{bin: bin, env: append(os.Environ(), envHelper+"="+exe, fmt.Sprintf("%s=%d", envPort, port))}
	t.Cleanup(p.stop)
	return p
}

func (p *procService) startLocked() {
	p.gen++
	p.starts++
	gen := p.gen
	cmd := exec.Command(p.bin)
	cmd.Env = p.env
	if err := cmd.Start(); err != nil {
		p.cmd = nil
		p.failed = true
		return
	}
	p.cmd = cmd
	exited := make(chan struct{})
	p.exited = exited
	go func() {
		err := cmd.Wait()
		close(exited)
		p.mu.Lock()
		defer p.mu.Unlock()
		if gen != p.gen {
			return // stopped on purpose
		}
		p.cmd = nil
		if err == nil {
			return
		}
		if p.restarts >= 5 {
			p.failed = true
			return
		}
		p.restarts++
		p.startLocked()
	}()
}

func (p *procService) stopLocked() {
	p.gen++
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done, cmd := p.exited, p.cmd
		p.mu.Unlock()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		p.mu.Lock()
		p.cmd = nil
	}
}

func (p *procService) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

func (p *procService) Restart(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
	p.failed = false
	p.startLocked()
	return nil
}

func (p *procService) ResetFailed(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = false
	return nil
}

func (p *procService) Show(context.Context) (update.Unit, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := update.Unit{ActiveState: "inactive", SubState: "dead", NRestarts: p.restarts}
	switch {
	case p.failed:
		u.ActiveState, u.SubState = "failed", "failed"
	case p.cmd != nil:
		u.ActiveState, u.SubState, u.MainPID = "active", "running", p.cmd.Process.Pid
	}
	return u, nil
}

func (p *procService) startCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// served asks the running "gateway" its version, waiting for one to answer.
func served(ctx context.Context, t *testing.T, url string) string {
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nothing answers %s: %v", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestSupervise(t *testing.T) {
	cases := []struct {
		name      string
		installed []byte // the binary at the path before the update
		prev      []byte // an existing .prev
		next      []byte // what update.run stages
		timeoutMs int64
		// tamper replaces the staged file after update.run checked it.
		tamper []byte
		state  string
		// binary is what the path holds afterwards and serving what answers.
		binary  []byte
		serving string
		msg     string
	}{
		{name: "A to B", installed: binA, next: binB, state: update.StateDone, binary: binB, serving: "vB", msg: "running and ready"},
		{name: "crashing binary rolls back", installed: binA, next: binCrash, state: update.StateRolledBack, binary: binA, serving: "vA", msg: "crashed"},
		{name: "never ready rolls back", installed: binA, next: binHang, timeoutMs: 10000, state: update.StateRolledBack, binary: binA, serving: "vA", msg: "was not ready within 10s"},
		{name: "supervisor cut short after the swap", installed: binB, prev: binA, next: binB, state: update.StateDone, binary: binB, serving: "vB"},
		{name: "staged binary changed after the check", installed: binA, next: binB, tamper: binCrash, state: update.StateFailed, binary: binA, serving: "vA", msg: "not the requested"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testwait.Patience(t))
			defer cancel()
			binDir, state := t.TempDir(), t.TempDir()
			bin := filepath.Join(binDir, "skykoi")
			if err := os.WriteFile(bin, tc.installed, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.prev != nil {
				if err := os.WriteFile(bin+".prev", tc.prev, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			port := freePort(t)
			readyURL := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
			svc := newProcService(t, bin, port)
			if err := svc.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			before := served(ctx, t, readyURL)

			s3, creds := s3Fake(t)
			s3.Put(bucket, update.Key(shaOf(tc.next)), tc.next)
			u := update.New(update.Options{StateDir: state, Bucket: bucket, Region: region, Endpoint: s3.URL(),
				Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)})
			if _, err := u.Run(ctx, update.Request{SHA256: shaOf(tc.next), TimeoutMs: tc.timeoutMs}, before); err != nil {
				t.Fatal(err)
			}
			if tc.tamper != nil {
				if err := os.WriteFile(filepath.Join(u.Dir(), update.StagedFile), tc.tamper, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			startsBefore := svc.startCount()

			st, err := update.Supervise(ctx, update.SuperviseOptions{
				Dir: u.Dir(), BinaryPath: bin, Service: svc, ReadyURL: readyURL,
				Poll: 50 * time.Millisecond, Settle: 300 * time.Millisecond,
			})
			if tc.state == update.StateFailed {
				if err == nil {
					t.Error("Supervise reported no error for a failed update")
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if st.State != tc.state || !strings.Contains(st.Message, tc.msg) {
				t.Errorf("status %q %q, want %q mentioning %q", st.State, st.Message, tc.state, tc.msg)
			}
			if got, _ := os.ReadFile(bin); !bytes.Equal(got, tc.binary) {
				t.Errorf("the installed binary is %q, want %q", got, tc.binary)
			}
			if got := served(ctx, t, readyURL); got != tc.serving {
				t.Errorf("the running gateway is %q, want %q", got, tc.serving)
			}
			if tc.state == update.StateFailed && svc.startCount() != startsBefore {
				t.Error("a binary that failed its check was restarted into")
			}
			if tc.state != update.StateFailed {
				prev, _ := os.ReadFile(bin + ".prev")
				if want := binA; !bytes.Equal(prev, want) {
					t.Errorf(".prev is %q, want the binary that ran before", prev)
				}
				if st.PreviousSHA256 != shaOf(binA) {
					t.Errorf("previousSha256 %s, want A's", st.PreviousSHA256)
				}
			}
			// The request is gone (the path unit must not fire again), and
			// the status the gateway serves is the supervisor's.
			if _, err := os.Stat(filepath.Join(u.Dir(), update.RequestFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the request is still there (%v)", err)
			}
			read, err := u.ReadStatus()
			if err != nil || read.State != tc.state || read.SHA256 != shaOf(tc.next) {
				t.Errorf("update.status reads %+v (%v)", read, err)
			}
			// A new update can be asked for afterwards.
			if _, err := u.Run(ctx, update.Request{SHA256: shaOf(tc.next)}, ""); err != nil {
				t.Errorf("update.run after the end: %v", err)
			}
		})
	}
}

func TestSuperviseRefusesOddRequests(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		msg   string
	}{
		{"symlinked request", func(t *testing.T, dir string) {
			target := filepath.Join(t.TempDir(), "elsewhere.json")
			writeJSONFile(t, target, map[string]any{"sha256": shaOf(binB), "timeoutSec": 30})
			if err := os.Symlink(target, filepath.Join(dir, update.RequestFile)); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"not JSON", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, update.RequestFile), []byte("sha256=x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not valid JSON"},
		{"bad digest", func(t *testing.T, dir string) {
			writeJSONFile(t, filepath.Join(dir, update.RequestFile), map[string]any{"sha256": "../../etc/passwd", "timeoutSec": 30})
		}, "64 lowercase hex"},
		{"timeout out of range", func(t *testing.T, dir string) {
			writeJSONFile(t, filepath.Join(dir, update.RequestFile), map[string]any{"sha256": shaOf(binB), "timeoutSec": 86400})
		}, "timeoutSec"},
		{"symlinked staged binary", func(t *testing.T, dir string) {
			writeJSONFile(t, filepath.Join(dir, update.RequestFile), map[string]any{"sha256": shaOf(binB), "timeoutSec": 30})
			target := filepath.Join(t.TempDir(), "b")
			if err := os.WriteFile(target, binB, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, update.StagedFile)); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(t.TempDir(), "skykoi")
			if err := os.WriteFile(bin, binA, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			svc := newProcService(t, bin, freePort(t))
			st, err := update.Supervise(context.Background(), update.SuperviseOptions{Dir: dir, BinaryPath: bin, Service: svc, ReadyURL: "http://127.0.0.1:1/readyz"})
			if err == nil || st.State != update.StateFailed || !strings.Contains(st.Message, tc.msg) {
				t.Errorf("Supervise = %+v, %v; want failed mentioning %q", st, err, tc.msg)
			}
			if got, _ := os.ReadFile(bin); !bytes.Equal(got, binA) {
				t.Error("the installed binary changed")
			}
			if svc.startCount() != 0 {
				t.Error("the gateway was restarted for a refused request")
			}
			if _, err := os.Lstat(filepath.Join(dir, update.RequestFile)); !errors.Is(err, os.ErrNotExist) {
				t.Error("the refused request is still there: the path unit would fire again")
			}
		})
	}
	t.Run("no request", func(t *testing.T) {
		_, err := update.Supervise(context.Background(), update.SuperviseOptions{Dir: t.TempDir(), BinaryPath: "/nonexistent"})
		if !errors.Is(err, update.ErrNoRequest) {
			t.Errorf("err = %v, want ErrNoRequest", err)
		}
	})
}

func writeJSONFile(t *testing.T, path string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseShow(t *testing.T) {
	cases := []struct {
		in   string
		want update.Unit
	}{
		{"ActiveState=active\nSubState=running\nMainPID=4242\nNRestarts=0\n", update.Unit{ActiveState: "active", SubState: "running", MainPID: 4242}},
		{"ActiveState=activating\nSubState=auto-restart\nMainPID=0\nNRestarts=3\n", update.Unit{ActiveState: "activating", SubState: "auto-restart", NRestarts: 3}},
		{"ActiveState=failed\r\nSubState=failed\r\n", update.Unit{ActiveState: "failed", SubState: "failed"}},
		{"garbage\nMainPID=x\n", update.Unit{}},
	}
	for _, tc := range cases {
		if got := update.ParseShow(tc.in); got != tc.want {
			t.Errorf("ParseShow(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseShow(f *testing.F) {
	f.Add("ActiveState=active\nSubState=running\nMainPID=4242\nNRestarts=0\n")
	f.Add("MainPID=-1\nNRestarts=99999999999999999999\n")
	f.Add("=\n==\nActiveState")
	f.Fuzz(func(t *testing.T, s string) {
		u := update.ParseShow(s)
		// Whatever the input, a state holds no line break: it came from one line.
		if strings.ContainsAny(u.ActiveState+u.SubState, "\n") {
			t.Errorf("ParseShow(%q) = %+v", s, u)
		}
	})
}

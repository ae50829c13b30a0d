//go:build linux

package session

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestReadOnlyFilesystem puts the state directory on a really read-only
// mount, so the kernel itself answers EROFS. Tests run as root here, where
// chmod 0500 would not stop a single write, so the test makes a private mount
// namespace on one locked OS thread, bind-mounts the directory read-only
// there, and runs the store's operations on that thread. The namespace (and
// the mount) dies with the thread: nothing outside the test ever sees it.
// Without the privilege for that it falls back to chmod (non-root), or skips.
func TestReadOnlyFilesystem(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	mustAppend(t, s, "", withUsage(textMsg("user", "written before"), "m", 1, 1, 0, 0))
	mustResolve(t, s, "other")
	if _, err := s.Patch("", Patch{Label: SetTo("before")}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, env.dir)
	list := s.List(ListOptions{})

	type outcome struct {
		name string
		err  error
	}
	ops := func() []outcome {
		_, errAppend := s.Append("", textMsg("user", "lost"))
		_, errPatch := s.Patch("", Patch{Label: SetTo("after")})
		_, errReset := s.Reset("")
		_, errDelete := s.Delete("other")
		_, _, errCreate := s.Resolve("new")
		return []outcome{{"appending to session", errAppend}, {"patching session", errPatch},
			{"resetting session", errReset}, {"deleting session", errDelete}, {"creating session", errCreate}}
	}

	var results []outcome
	var reopenErr error
	how := ""
	done := make(chan string)
	go func() {
		// Never unlocked: when this goroutine ends its thread exits, taking
		// the private mount namespace with it.
		runtime.LockOSThread()
		if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
			done <- "unshare: " + err.Error()
			return
		}
		// Keep the namespace's mounts from propagating back to the host.
		if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			done <- "make-private: " + err.Error()
			return
		}
		if err := syscall.Mount(env.dir, env.dir, "", syscall.MS_BIND, ""); err != nil {
			done <- "bind: " + err.Error()
			return
		}
		if err := syscall.Mount("", env.dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			done <- "remount ro: " + err.Error()
			return
		}
		if err := os.WriteFile(filepath.Join(env.dir, "probe"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
			done <- "mount is not read-only"
			return
		}
		results = ops()
		// An intact store still opens read-only (history stays readable).
		_, reopenErr = Open(env.opts)
		done <- ""
	}()
	if msg := <-done; msg != "" {
		if os.Geteuid() == 0 {
			t.Skipf("cannot make a read-only mount here (%s)", msg)
		}
		// Not root: plain permissions do stop writes.
		if err := os.Chmod(env.dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(env.dir, 0o700) })
		results = ops()
		_, reopenErr = Open(env.opts)
		how = " (chmod 0500)"
	}

	for _, r := range results {
		if !errors.Is(r.err, ErrReadOnly) || !strings.HasPrefix(r.err.Error(), r.name) || !strings.Contains(r.err.Error(), "read-only") {
			t.Errorf("%s on a read-only disk%s: %v", r.name, how, r.err)
		}
	}
	if reopenErr != nil {
		t.Errorf("Open of an intact store on a read-only disk: %v", reopenErr)
	}
	if d := diffSnapshots(before, snapshot(t, env.dir)); len(d) > 0 {
		t.Fatalf("read-only disk: files changed: %v", d)
	}
	if got := s.List(ListOptions{}); !reflect.DeepEqual(got, list) {
		t.Fatalf("memory changed:\n%+v\n%+v", got, list)
	}
	// Writable again: everything works and nothing was lost.
	mustAppend(t, s, "", textMsg("assistant", "after"))
	if h := historyTexts(t, s, ""); !reflect.DeepEqual(h, []string{"written before", "after"}) {
		t.Fatalf("history = %q", h)
	}
	if n := checkJSONL(t, filepath.Join(env.dir, e.SessionID+".jsonl")); n != 3 {
		t.Fatalf("%d lines", n)
	}
}

// TestCorruptIndexOnReadOnlyFilesystem: an unreadable index that cannot be
// set aside is never overwritten; Open refuses and says why.
func TestCorruptIndexOnReadOnlyFilesystem(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "")
	_ = s.Close()
	writeFile(t, filepath.Join(env.dir, indexName), "{garbage")
	var openErr error
	done := make(chan string)
	go func() {
		runtime.LockOSThread()
		for _, step := range []func() error{
			func() error { return syscall.Unshare(syscall.CLONE_NEWNS) },
			func() error { return syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "") },
			func() error { return syscall.Mount(env.dir, env.dir, "", syscall.MS_BIND, "") },
			func() error {
				return syscall.Mount("", env.dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, "")
			},
		} {
			if err := step(); err != nil {
				done <- err.Error()
				return
			}
		}
		_, openErr = Open(env.opts)
		done <- ""
	}()
	if msg := <-done; msg != "" {
		t.Skipf("cannot make a read-only mount here (%s)", msg)
	}
	if !errors.Is(openErr, ErrReadOnly) || !strings.Contains(openErr.Error(), "unreadable") {
		t.Fatalf("Open = %v", openErr)
	}
	if string(readFile(t, filepath.Join(env.dir, indexName))) != "{garbage" {
		t.Fatal("corrupt index changed")
	}
}

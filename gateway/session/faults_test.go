package session

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/skykoi/skykoi/internal/atomicfile"
)

// Disk faults are injected through Options.hooks rather than by making the
// directory unwritable: tests run as root here, where chmod does not stop
// writes, and "disk full" cannot be produced on demand at all. The hooks
// return the same *PathError values the OS would, so the classification and
// recovery code under test is the real one. readonly_linux_test.go adds a
// real read-only filesystem where the kernel allows it.

// faultyFile writes part of what it is given, then fails, like a write that
// runs out of space halfway.
type faultyFile struct {
	*os.File
	err          error
	partial      bool  // write half the bytes before failing
	syncErr      error // fail Sync instead of Write
	truncateFail bool
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.syncErr != nil {
		return f.File.Write(p)
	}
	n := 0
	if f.partial {
		n, _ = f.File.Write(p[:len(p)/2])
	}
	return n, &fs.PathError{Op: "write", Path: f.Name(), Err: f.err}
}

func (f *faultyFile) Sync() error {
	if f.syncErr != nil {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: f.syncErr}
	}
	return f.File.Sync()
}

func (f *faultyFile) Truncate(n int64) error {
	if f.truncateFail {
		return &fs.PathError{Op: "truncate", Path: f.Name(), Err: f.err}
	}
	return f.File.Truncate(n)
}

type fault struct {
	openErr      error // fail opening (EROFS, EACCES, ENOSPC on create)
	writeErr     error
	partial      bool
	syncErr      error
	truncateFail bool
	atomicErr    error // fail index / usage writes
}

// install makes every later disk operation of s fail as f says; the zero
// fault restores normal behaviour.
func (f fault) install(s *Store) {
	s.hooks.openFile = func(name string, flag int, perm os.FileMode) (file, error) {
		if f.openErr != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: f.openErr}
		}
		real, err := os.OpenFile(name, flag, perm)
		if err != nil || (f.writeErr == nil && f.syncErr == nil) {
			if err != nil {
				return nil, err
			}
			return real, nil
		}
		return &faultyFile{File: real, err: f.writeErr, partial: f.partial, syncErr: f.syncErr, truncateFail: f.truncateFail}, nil
	}
	s.hooks.writeAtomic = func(path string, data []byte, perm os.FileMode) error {
		if f.atomicErr != nil {
			return &fs.PathError{Op: "open", Path: path + ".tmp", Err: f.atomicErr}
		}
		return osWriteAtomic(path, data, perm)
	}
}

var osWriteAtomic = atomicfile.Write

func TestDiskFaults(t *testing.T) {
	type check struct {
		name  string
		fault fault
		kind  error  // ErrDiskFull / ErrReadOnly / nil for other I/O errors
		words string // the error must say this
	}
	appendFaults := []check{
		{"ENOSPC on write", fault{writeErr: syscall.ENOSPC}, ErrDiskFull, "is full"},
		{"ENOSPC after half a line", fault{writeErr: syscall.ENOSPC, partial: true}, ErrDiskFull, "is full"},
		{"half a line, truncate fails too", fault{writeErr: syscall.ENOSPC, partial: true, truncateFail: true}, ErrDiskFull, "is full"},
		{"EDQUOT", fault{writeErr: syscall.EDQUOT, partial: true}, ErrDiskFull, "is full"},
		{"EROFS on open", fault{openErr: syscall.EROFS}, ErrReadOnly, "read-only filesystem"},
		{"EACCES on open", fault{openErr: syscall.EACCES}, ErrReadOnly, "read-only (permission denied)"},
		{"EIO on fsync", fault{syncErr: syscall.EIO}, nil, "input/output error"},
	}
	for _, tt := range appendFaults {
		t.Run("append/"+tt.name, func(t *testing.T) {
			env := newEnv(t)
			s := env.open(t)
			e := mustResolve(t, s, "")
			mustAppend(t, s, "", withUsage(textMsg("user", "kept"), "m", 1, 1, 0, 0))
			before := snapshot(t, env.dir)
			entry, _ := s.Get("")
			usage := s.Usage(1)

			tt.fault.install(s)
			_, err := s.Append("", withUsage(textMsg("assistant", "lost"), "m", 5, 5, 0, 0))
			if err == nil {
				t.Fatal("Append succeeded on a failing disk")
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("error %v is not %v", err, tt.kind)
			}
			if !strings.HasPrefix(err.Error(), "appending to session agent:main:main: ") || !strings.Contains(err.Error(), tt.words) {
				t.Errorf("error %q does not name the operation and say %q", err, tt.words)
			}
			if g, _ := s.Get(""); g != entry {
				t.Errorf("entry changed by a failed append: %+v", g)
			}
			if !reflect.DeepEqual(s.Usage(1), usage) {
				t.Error("usage changed by a failed append")
			}
			if h := historyTexts(t, s, ""); !reflect.DeepEqual(h, []string{"kept"}) {
				t.Errorf("history = %q", h)
			}
			after := snapshot(t, env.dir)
			tpath := e.SessionID + ".jsonl"
			if tt.fault.truncateFail {
				// The half line could not be cut off: it must be an
				// unterminated tail after the intact lines, nothing else.
				if !strings.HasPrefix(after[tpath], before[tpath]) || strings.HasSuffix(after[tpath], "\n") {
					t.Fatalf("transcript damaged: %q", after[tpath])
				}
				after[tpath] = before[tpath]
			}
			if d := diffSnapshots(before, after); len(d) > 0 {
				t.Fatalf("failed append changed files: %v", d)
			}

			// The disk recovers: the next append works and the file is valid JSONL.
			fault{}.install(s)
			mustAppend(t, s, "", textMsg("assistant", "after"))
			if n := checkJSONL(t, filepath.Join(env.dir, tpath)); n != 3 {
				t.Fatalf("%d lines after recovery, want 3", n)
			}
			_ = s.Close()
			s = env.open(t)
			if h := historyTexts(t, s, ""); !reflect.DeepEqual(h, []string{"kept", "after"}) {
				t.Errorf("history after reopen = %q", h)
			}
		})
	}

	indexFaults := []struct {
		name string
		op   func(s *Store) error
		verb string
	}{
		{"patch", func(s *Store) error { _, err := s.Patch("", Patch{Label: SetTo("new")}); return err }, "patching session agent:main:main"},
		{"reset", func(s *Store) error { _, err := s.Reset(""); return err }, "resetting session agent:main:main"},
		{"delete", func(s *Store) error { _, err := s.Delete("other"); return err }, "deleting session agent:main:other"},
		{"create", func(s *Store) error { _, _, err := s.Resolve("fresh"); return err }, "creating session agent:main:fresh"},
	}
	for _, op := range indexFaults {
		for _, f := range []check{
			{"index ENOSPC", fault{atomicErr: syscall.ENOSPC}, ErrDiskFull, "is full"},
			{"index EROFS", fault{atomicErr: syscall.EROFS}, ErrReadOnly, "read-only"},
			{"transcript ENOSPC", fault{openErr: syscall.ENOSPC, atomicErr: syscall.ENOSPC}, ErrDiskFull, "is full"},
		} {
			t.Run(op.name+"/"+f.name, func(t *testing.T) {
				env := newEnv(t)
				s := env.open(t)
				mustResolve(t, s, "")
				mustAppend(t, s, "", textMsg("user", "kept"))
				mustResolve(t, s, "other")
				if _, err := s.Patch("", Patch{Label: SetTo("old")}); err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, env.dir)
				list := s.List(ListOptions{})

				f.fault.install(s)
				err := op.op(s)
				if !errors.Is(err, f.kind) || !strings.HasPrefix(err.Error(), op.verb+": ") || !strings.Contains(err.Error(), f.words) {
					t.Fatalf("error = %v; want %v from %q saying %q", err, f.kind, op.verb, f.words)
				}
				if got := s.List(ListOptions{}); !reflect.DeepEqual(got, list) {
					t.Errorf("memory changed by a failed %s:\n%+v\n%+v", op.name, got, list)
				}
				if d := diffSnapshots(before, snapshot(t, env.dir)); len(d) > 0 {
					t.Fatalf("failed %s changed files: %v", op.name, d)
				}
				fault{}.install(s)
				if err := op.op(s); err != nil {
					t.Fatalf("%s after recovery: %v", op.name, err)
				}
			})
		}
	}
}

// TestIndexWriteFailsAfterAppend: the transcript write works, the index write
// does not. The message counts (it is on disk), and the index catches up.
func TestIndexWriteFailsAfterAppend(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "")
	fault{atomicErr: syscall.ENOSPC}.install(s)
	e, err := s.Append("", withUsage(textMsg("user", "saved"), "m", 2, 2, 0, 0))
	if err != nil || e.MessageCount != 1 {
		t.Fatalf("Append = %+v, %v", e, err)
	}
	s.flushCaches("test") // what the deferred flush after an append does
	if !contains(env.logs.String(), "index could not be written") {
		t.Errorf("index failure not logged:\n%s", env.logs.String())
	}
	fault{}.install(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = env.open(t)
	if g, _ := s.Get(""); g != e {
		t.Fatalf("after reopen %+v, want %+v", g, e)
	}
	if u := s.Usage(1); u.Totals.Requests != 1 {
		t.Fatalf("usage = %+v", u.Totals)
	}
}

func TestUnwritableDirAtOpen(t *testing.T) {
	env := newEnv(t)
	// A file where the directory should be: MkdirAll fails for any user.
	if err := os.MkdirAll(filepath.Dir(env.dir), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, env.dir, "x")
	if _, err := Open(env.opts); err == nil || !strings.Contains(err.Error(), "opening session store") {
		t.Fatalf("Open = %v", err)
	}
}

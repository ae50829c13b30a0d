package tools

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReadRoundTrip(t *testing.T) {
	s := newSet(t, nil)
	tests := []struct {
		name, path, content string
	}{
		{"simple", "a.txt", "hello\nworld\n"},
		{"nested dirs created", "deep/er/file.go", "package x\n"},
		{"no trailing newline", "b.txt", "one\ntwo"},
		{"unicode", "u.txt", "héllo wörld ✓ 😀\n"},
		{"absolute inside", "", "abs\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = filepath.Join(s.ws, "abs.txt")
			}
			w := mustOK(t, run(t, s, "write", map[string]any{"path": path, "content": tt.content}))
			if w.Details["bytes"] != len(tt.content) || w.Details["created"] != true {
				t.Errorf("write details = %v", w.Details)
			}
			r := mustOK(t, run(t, s, "read", map[string]any{"path": path}))
			if r.Text != tt.content {
				t.Errorf("read back %q, want %q", r.Text, tt.content)
			}
			fi, err := os.Stat(w.Details["path"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("new file mode = %v, want 0644", fi.Mode().Perm())
			}
		})
	}
}

func TestWriteKeepsModeAndLeavesNoTemp(t *testing.T) {
	s := newSet(t, nil)
	p := filepath.Join(s.ws, "script.sh")
	if err := os.WriteFile(p, []byte("old"), 0o750); err != nil {
		t.Fatal(err)
	}
	w := mustOK(t, run(t, s, "write", map[string]any{"path": "script.sh", "content": "#!/bin/sh\necho new\n"}))
	if w.Details["created"] != false || !strings.HasPrefix(w.Text, "Overwrote") {
		t.Errorf("write result = %q %v", w.Text, w.Details)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("mode = %v, want 0750 kept", fi.Mode().Perm())
	}
	mustOK(t, run(t, s, "edit", map[string]any{"path": "script.sh", "oldText": "new", "newText": "edited"}))
	fi, _ = os.Stat(p)
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("mode after edit = %v, want 0750 kept", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(s.ws)
	if len(entries) != 1 {
		t.Errorf("workspace has %v, want only script.sh (no temp files)", entries)
	}
}

func TestWriteLimitsAndTargets(t *testing.T) {
	s := newSet(t, func(o *Options) { o.MaxWriteBytes = 10 })
	os.Mkdir(filepath.Join(s.ws, "dir"), 0o755)
	os.WriteFile(filepath.Join(s.ws, "file"), []byte("x"), 0o644)
	fifo := filepath.Join(s.ws, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args map[string]any
		want string
	}{
		{"too large", map[string]any{"path": "big", "content": strings.Repeat("x", 11)}, "content is 11 bytes; the limit is 10"},
		{"directory", map[string]any{"path": "dir", "content": "x"}, "is a directory"},
		{"fifo", map[string]any{"path": "fifo", "content": "x"}, "not a regular file"},
		{"parent is a file", map[string]any{"path": "file/x", "content": "x"}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustFail(t, run(t, s, "write", tt.args), tt.want) })
	}
	if _, err := os.Stat(filepath.Join(s.ws, "big")); !os.IsNotExist(err) {
		t.Error("an oversized write created the file")
	}
}

func TestRead(t *testing.T) {
	s := newSet(t, func(o *Options) { o.MaxOutputChars = 40 })
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(s.ws, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var lines strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&lines, "line %02d\n", i) // 8 bytes each
	}
	write("lines.txt", lines.String())
	write("empty.txt", "")
	write("bin.dat", "PNG\x00\x01\x02 data")
	write("late-nul.txt", strings.Repeat("text\n", 2000)+"a\x00b\n")
	write("long.txt", strings.Repeat("é", 100)+"\nshort\n")
	os.Mkdir(filepath.Join(s.ws, "dir"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(s.ws, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    map[string]any
		want    string // exact text when ok
		wantErr string
		details map[string]any
	}{
		{name: "offset and limit", args: map[string]any{"path": "lines.txt", "offset": 3, "limit": 2},
			want: "line 03\nline 04\n[showing lines 3-4; more lines follow: continue with offset=5]", details: map[string]any{"nextOffset": int64(5), "truncated": true}},
		{name: "limit to the end", args: map[string]any{"path": "lines.txt", "offset": 19, "limit": 5},
			want: "line 19\nline 20\n", details: map[string]any{"truncated": false}},
		{name: "output cap keeps whole lines", args: map[string]any{"path": "lines.txt"},
			want: "line 01\nline 02\nline 03\nline 04\nline 05\n[truncated at the 40-character output limit: showing lines 1-5; continue with offset=6]"},
		{name: "continue after cap", args: map[string]any{"path": "lines.txt", "offset": 6, "limit": 1},
			want: "line 06\n[showing lines 6-6; more lines follow: continue with offset=7]"},
		{name: "one long line is cut on a character boundary", args: map[string]any{"path": "long.txt"},
			want: strings.Repeat("é", 20) + "\n[line 1 is longer than the 40-character output limit and was cut; the next line is offset=2]"},
		{name: "empty file", args: map[string]any{"path": "empty.txt"}, want: "(empty file)"},
		{name: "offset past the end", args: map[string]any{"path": "lines.txt", "offset": 50}, wantErr: "offset 50 is past the end", details: nil},
		{name: "binary", args: map[string]any{"path": "bin.dat"}, wantErr: "binary file"},
		{name: "NUL after the sniffed start", args: map[string]any{"path": "late-nul.txt", "offset": 2001}, wantErr: "contains NUL bytes at line 2001"},
		{name: "directory", args: map[string]any{"path": "dir"}, wantErr: "is a directory"},
		{name: "fifo does not block", args: map[string]any{"path": "fifo"}, wantErr: "not a regular file"},
		{name: "missing", args: map[string]any{"path": "nope.txt"}, wantErr: "file not found"},
		{name: "device", args: map[string]any{"path": "/dev/zero"}, wantErr: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, s, "read", tt.args)
			if tt.wantErr != "" {
				mustFail(t, r, tt.wantErr)
				return
			}
			mustOK(t, r)
			if r.Text != tt.want {
				t.Errorf("text = %q\nwant   %q", r.Text, tt.want)
			}
			for k, v := range tt.details {
				if r.Details[k] != v {
					t.Errorf("details[%s] = %#v, want %#v", k, r.Details[k], v)
				}
			}
		})
	}
}

func TestReadStopsAtMaxReadBytes(t *testing.T) {
	s := newSet(t, func(o *Options) { o.MaxReadBytes = 100 })
	os.WriteFile(filepath.Join(s.ws, "big.txt"), []byte(strings.Repeat("abcdefghi\n", 50)), 0o644)
	r := mustOK(t, run(t, s, "read", map[string]any{"path": "big.txt"}))
	if !strings.Contains(r.Text, "stopped after the first 100 bytes of this 500-byte file") || strings.Count(r.Text, "abcdefghi") != 10 {
		t.Errorf("text = %q", r.Text)
	}
}

func TestEdit(t *testing.T) {
	const original = "alpha\nbeta\nalpha\ngamma\nalpha\n"
	tests := []struct {
		name    string
		file    string
		args    map[string]any
		want    string // file content afterwards
		wantErr string
	}{
		{name: "single replace", args: map[string]any{"oldText": "beta", "newText": "BETA"},
			want: "alpha\nBETA\nalpha\ngamma\nalpha\n"},
		{name: "delete", args: map[string]any{"oldText": "gamma\n", "newText": ""},
			want: "alpha\nbeta\nalpha\nalpha\n"},
		{name: "context makes it unique", args: map[string]any{"oldText": "gamma\nalpha", "newText": "gamma\nomega"},
			want: "alpha\nbeta\nalpha\ngamma\nomega\n"},
		{name: "multiple matches", args: map[string]any{"oldText": "alpha", "newText": "x"},
			wantErr: "oldText occurs 3 times"},
		{name: "replaceAll", args: map[string]any{"oldText": "alpha", "newText": "x", "replaceAll": true},
			want: "x\nbeta\nx\ngamma\nx\n"},
		{name: "not found", args: map[string]any{"oldText": "delta", "newText": "x"},
			wantErr: "oldText was not found"},
		{name: "whitespace matters", args: map[string]any{"oldText": "beta \n", "newText": "x"},
			wantErr: "oldText was not found"},
		{name: "CRLF hint", file: "one\r\ntwo\r\n", args: map[string]any{"oldText": "one\ntwo", "newText": "x"},
			wantErr: "CRLF"},
		{name: "same text", args: map[string]any{"oldText": "beta", "newText": "beta"},
			wantErr: "the same"},
		{name: "binary", file: "a\x00beta", args: map[string]any{"oldText": "beta", "newText": "x"},
			wantErr: "NUL bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSet(t, nil)
			content := original
			if tt.file != "" {
				content = tt.file
			}
			p := filepath.Join(s.ws, "f.txt")
			os.WriteFile(p, []byte(content), 0o644)
			args := map[string]any{"path": "f.txt"}
			for k, v := range tt.args {
				args[k] = v
			}
			r := run(t, s, "edit", args)
			got, _ := os.ReadFile(p)
			if tt.wantErr != "" {
				mustFail(t, r, tt.wantErr)
				if string(got) != content {
					t.Errorf("a failed edit changed the file to %q", got)
				}
				return
			}
			mustOK(t, r)
			if string(got) != tt.want {
				t.Errorf("file = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEditMissingAndTooLarge(t *testing.T) {
	s := newSet(t, func(o *Options) { o.MaxWriteBytes = 20; o.MaxReadBytes = 30 })
	mustFail(t, run(t, s, "edit", map[string]any{"path": "none.txt", "oldText": "a", "newText": "b"}), "file not found")
	os.WriteFile(filepath.Join(s.ws, "f.txt"), []byte("aaaaaaaaaa"), 0o644)
	mustFail(t, run(t, s, "edit", map[string]any{"path": "f.txt", "oldText": "a", "newText": "bbb", "replaceAll": true}), "would be 30 bytes; the limit is 20")
	os.WriteFile(filepath.Join(s.ws, "big.txt"), []byte(strings.Repeat("a", 31)), 0o644)
	mustFail(t, run(t, s, "edit", map[string]any{"path": "big.txt", "oldText": "a", "newText": "b"}), "larger than the 30-byte limit")
}

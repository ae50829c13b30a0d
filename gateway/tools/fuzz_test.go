package tools

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// FuzzToolArgs feeds arbitrary bytes as the arguments of every tool. Exec can
// never run anything: one Set has security "deny", the other "allowlist" with
// an empty list, so the argument parser and the allowlist tokenizer see the
// input but every command is refused. File tools are restricted to a
// temporary workspace, so whatever path the fuzzer invents stays there.
func FuzzToolArgs(f *testing.F) {
	seeds := []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"path":`, `{"path":"a.txt"}`, `{"path":"../x"}`,
		`{"path":"a.txt","content":"hello"}`, `{"path":"a.txt","offset":2,"limit":1}`,
		`{"path":"a.txt","oldText":"hello","newText":"bye","replaceAll":true}`,
		`{"command":"ls; rm -rf x"}`, `{"command":"echo $(id)","timeoutSec":1}`,
		`{"command":"a 2>&1 | b && c || d & e\nf","env":{"A":"1"}}`, `{"command":"'a\"b\\c","workdir":"sub"}`,
		`{"action":"list"}`, `{"action":"read","handle":"bg1","offset":-1}`, `{"timeoutSec":1e400}`,
		`{"command":"echo x > ~/.bashrc"}`, `{"command":"echo x 2>&1 >& out <<< s <<EOF >|a &>>b <>c 3>&-"}`,
		`{"command":"> /etc/passwd echo"}`, `{"path":"/etc/passwd"}`, `{"path":"~/.skykoi/skykoi.json","content":"{}"}`,
		`{"path":"\u0000"}`, `{"path":"a","path":"b"}`, `{"offset":1.0000000000000002}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	dir := f.TempDir()
	mk := func(name, security string) *Set {
		s, err := New(Options{
			Workspace:           filepath.Join(dir, name),
			Exec:                configgen.Exec{Security: security, TimeoutSec: 5},
			RestrictToWorkspace: true,
			ConfigPath:          filepath.Join(dir, "state", "skykoi.json"),
			StateDir:            filepath.Join(dir, "state"),
			MaxOutputChars:      1000,
			MaxReadBytes:        1 << 16,
			MaxWriteBytes:       1 << 16,
		})
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	sets := []*Set{mk("deny", SecurityDeny), mk("allowlist", SecurityAllowlist)}
	f.Cleanup(func() {
		for _, s := range sets {
			s.Close()
		}
	})
	names := configgen.ToolNames()
	f.Fuzz(func(t *testing.T, pick uint8, data []byte) {
		s := sets[int(pick)%len(sets)]
		name := names[int(pick/2)%len(names)]
		r := s.Run(context.Background(), name, json.RawMessage(data))
		if r.IsError && strings.TrimSpace(r.Text) == "" {
			t.Fatalf("%s(%q): error result with empty text", name, data)
		}
		if strings.HasPrefix(r.Text, "internal error") {
			t.Fatalf("%s(%q): %s", name, data, r.Text)
		}
		if name == "exec" && !r.IsError {
			t.Fatalf("exec(%q) ran: %s", data, r.Text)
		}
		if _, ok := r.Details["pid"]; ok {
			t.Fatalf("%s(%q) started a process", name, data)
		}
	})
}

// FuzzAllowlistRedirects feeds command lines to the allowlist check with a
// target check that records what it is asked. Whatever the line, the check
// must not panic, must decide the same way twice, and must never ask about a
// word it should have settled itself (a stream file, or a descriptor after
// >& or <&).
func FuzzAllowlistRedirects(f *testing.F) {
	for _, s := range []string{
		"echo x > out", "echo x >> 'a b' 2>&1", "echo x &> f &>> g", "echo x >| f <> g < h",
		"cat <<< s", "cat <<EOF\nx\nEOF", "cat <<-E > f", "echo 2>&- 1>&2 >&3-", "echo >& file",
		"> f echo", "echo > ~/x", "echo > $HOME/x", `echo > "$X"`, "echo > /dev/null", "echo >", "echo > > f",
		"echo x 3>f | echo y > g; echo z 2>h && echo w >i", "echo {fd}>f", "echo x >'' ", `echo x > \~/f`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var asked []string
		target := func(op, path string) error {
			asked = append(asked, op+" "+path)
			if slices.Contains(streamFiles, path) {
				t.Fatalf("%q: asked about the stream file %s", line, path)
			}
			if (op == ">&" || op == "<&") && strings.Trim(strings.TrimSuffix(path, "-"), "0123456789") == "" {
				t.Fatalf("%q: asked about the descriptor %s%s", line, op, path)
			}
			return nil
		}
		err1 := checkAllowlist(line, []string{"echo", "cat"}, target)
		first := slices.Clone(asked)
		asked = nil
		err2 := checkAllowlist(line, []string{"echo", "cat"}, target)
		if (err1 == nil) != (err2 == nil) || !slices.Equal(first, asked) {
			t.Fatalf("%q: decided %v then %v", line, err1, err2)
		}
	})
}

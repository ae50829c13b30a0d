package tools

import (
	"context"
	"encoding/json"
	"path/filepath"
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

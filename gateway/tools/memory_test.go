package tools

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/memory"
)

// memorySet is a Set with memory on; security "deny" or "full" decides
// how far the file tools may reach, which memory_get must not inherit.
func memorySet(t *testing.T, security string) (*Set, string, string) {
	t.Helper()
	root := t.TempDir()
	ws, state := filepath.Join(root, "ws"), filepath.Join(root, "state")
	mem := memory.New(memory.Options{Workspace: func() string { return ws }, StateDir: state})
	t.Cleanup(func() { mem.Close() })
	s := newSet(t, func(o *Options) {
		o.Workspace, o.StateDir, o.Memory = ws, state, mem
		o.Exec.Security = security
	})
	return s, ws, state
}

func put(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryGetConfined(t *testing.T) {
	for _, security := range []string{SecurityDeny, SecurityFull} {
		t.Run(security, func(t *testing.T) {
			s, ws, state := memorySet(t, security)
			outside := filepath.Join(t.TempDir(), "secret.md")
			put(t, outside, "the secret")
			put(t, filepath.Join(ws, "MEMORY.md"), "line one\nline two\nline three\n")
			put(t, filepath.Join(ws, "memory", "2026-03-03.md"), "daily fact\n")
			put(t, filepath.Join(ws, "notes.md"), "not memory\n")
			put(t, filepath.Join(ws, "memory", "x.txt"), "not markdown\n")
			put(t, filepath.Join(state, "sessions", "s.jsonl"), "{}\n")
			must := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.Symlink(outside, filepath.Join(ws, "memory", "link.md")))
			must(os.Symlink(filepath.Join(ws, "notes.md"), filepath.Join(ws, "memory", "inside-link.md")))
			must(os.Symlink(filepath.Dir(outside), filepath.Join(ws, "memory", "dirlink")))

			ok := []struct {
				args map[string]any
				want string
			}{
				{map[string]any{"path": "MEMORY.md"}, "line one\nline two\nline three\n"},
				{map[string]any{"path": "MEMORY.md", "from": 2, "lines": 1}, "line two\n"},
				{map[string]any{"path": "memory/2026-03-03.md"}, "daily fact"},
				{map[string]any{"path": filepath.Join(ws, "MEMORY.md")}, "line one"},
				{map[string]any{"path": "./memory/../MEMORY.md"}, "line one"},
			}
			for _, tt := range ok {
				r := mustOK(t, run(t, s, "memory_get", tt.args))
				var ex memory.Excerpt
				if err := json.Unmarshal([]byte(r.Text), &ex); err != nil || !strings.Contains(ex.Text, tt.want) {
					t.Errorf("memory_get %v = %s; want text with %q", tt.args, r.Text, tt.want)
				}
			}
			refused := []string{"notes.md", "memory/x.txt", "memory/link.md", "memory/inside-link.md", "memory/dirlink/secret.md",
				"../state/sessions/s.jsonl", filepath.Join(state, "sessions", "s.jsonl"), outside, "/etc/passwd", "memory", "", "MEMORY.md\x00"}
			for _, p := range refused {
				r := run(t, s, "memory_get", map[string]any{"path": p})
				if !r.IsError {
					t.Errorf("memory_get %q was allowed: %s", p, r.Text)
				}
				if strings.Contains(r.Text, "the secret") || strings.Contains(r.Text, "not memory") {
					t.Errorf("memory_get %q leaked content: %s", p, r.Text)
				}
			}
		})
	}
}

func TestMemoryToolsOffered(t *testing.T) {
	names := func(s *Set) (out []string) {
		for _, sp := range s.Specs() {
			out = append(out, sp.Name)
		}
		return out
	}
	s, _, _ := memorySet(t, SecurityDeny)
	if got := strings.Join(names(s), ","); got != "read,write,edit,memory_search,memory_get" {
		t.Errorf("with memory: %s", got)
	}
	plain := newSet(t, nil)
	if got := strings.Join(names(plain), ","); strings.Contains(got, "memory") {
		t.Errorf("without memory the tools are offered: %s", got)
	}
	mustFail(t, run(t, plain, "memory_search", map[string]any{"query": "x"}), "no memory index")
}

func TestMemorySearchTool(t *testing.T) {
	s, ws, _ := memorySet(t, SecurityDeny)
	put(t, filepath.Join(ws, "MEMORY.md"), "The boat is called Kestrel.\n")
	r := mustOK(t, run(t, s, "memory_search", map[string]any{"query": "boat name? (kestrel) AND \"", "maxResults": 3}))
	var got struct {
		Results []memory.Result `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.Text), &got); err != nil || len(got.Results) != 1 || got.Results[0].Path != "MEMORY.md" || got.Results[0].Source != "memory" {
		t.Fatalf("memory_search = %s", r.Text)
	}
	if r := mustOK(t, run(t, s, "memory_search", map[string]any{"query": "zeppelin"})); r.Text != `{"results":[]}` {
		t.Errorf("a search without hits = %s, want an empty list", r.Text)
	}
	for _, bad := range []map[string]any{{}, {"query": 5}, {"query": "x", "maxResults": 0}, {"query": "x", "minScore": 2}, {"query": "x", "other": 1}} {
		mustFail(t, run(t, s, "memory_search", bad))
	}
}

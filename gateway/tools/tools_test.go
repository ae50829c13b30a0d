package tools

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

func TestSpecsFiltering(t *testing.T) {
	tests := []struct {
		name     string
		security string
		allow    []string
		deny     []string
		want     []string
	}{
		{"everything by default", SecurityFull, nil, nil, []string{"exec", "process", "read", "write", "edit"}},
		{"allow picks", SecurityFull, []string{"edit", "read"}, nil, []string{"read", "edit"}},
		{"deny removes", SecurityFull, nil, []string{"exec", "write"}, []string{"process", "read", "edit"}},
		{"deny wins over allow", SecurityFull, []string{"read", "exec"}, []string{"exec"}, []string{"read"}},
		{"security deny hides exec and process", SecurityDeny, nil, nil, []string{"read", "write", "edit"}},
		{"empty security is deny", "", []string{"exec", "read"}, nil, []string{"read"}},
		{"allowlist offers exec", SecurityAllowlist, nil, []string{"process"}, []string{"exec", "read", "write", "edit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSet(t, func(o *Options) {
				o.Exec.Security = tt.security
				o.Allow, o.Deny = tt.allow, tt.deny
			})
			var got []string
			for _, sp := range s.Specs() {
				got = append(got, sp.Name)
				if sp.Description == "" {
					t.Errorf("%s: empty description", sp.Name)
				}
				var schema struct {
					Type       string                     `json:"type"`
					Properties map[string]json.RawMessage `json:"properties"`
					Required   []string                   `json:"required"`
				}
				if err := json.Unmarshal(sp.InputSchema, &schema); err != nil {
					t.Fatalf("%s: schema is not JSON: %v", sp.Name, err)
				}
				if schema.Type != "object" || len(schema.Properties) == 0 {
					t.Errorf("%s: schema %s is not an object schema", sp.Name, sp.InputSchema)
				}
				for _, r := range schema.Required {
					if _, ok := schema.Properties[r]; !ok {
						t.Errorf("%s: required %q is not a property", sp.Name, r)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Specs() = %v, want %v", got, tt.want)
			}
			// Specs returns copies: changing one must not change the Set.
			if sp := s.Specs(); len(sp) > 0 {
				sp[0].InputSchema[0] = 'X'
				if s.Specs()[0].InputSchema[0] == 'X' {
					t.Error("Specs shares its schema bytes with the Set")
				}
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"relative workspace", Options{Workspace: "koi"}, "absolute"},
		{"unknown allow", Options{Workspace: dir, Allow: []string{"bash"}}, `tools.allow: unknown tool "bash"`},
		{"unknown deny", Options{Workspace: dir, Deny: []string{"Read"}}, `tools.deny: unknown tool "Read"`},
		{"bad security", Options{Workspace: dir, Exec: configgen.Exec{Security: "all"}}, "must be one of deny, allowlist, full"},
		{"bad host", Options{Workspace: dir, Exec: configgen.Exec{Host: "sandbox"}}, `"sandbox" is not supported`},
		{"relative allowlist path", Options{Workspace: dir, Exec: configgen.Exec{Allowlist: []string{"bin/ls"}}}, "absolute path"},
		{"bad env", Options{Workspace: dir, Env: []string{"NOEQUALS"}}, "NAME=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestNewCreatesWorkspace0700(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "a", "koi")
	s, err := New(Options{Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(ws)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("workspace mode = %v, want 0700", fi.Mode().Perm())
	}
}

func TestRunRefusals(t *testing.T) {
	deny := newSet(t, func(o *Options) { o.Exec.Security = SecurityDeny; o.Deny = []string{"write"} })
	tests := []struct {
		name, tool, args string
		wants            []string
	}{
		{"unknown tool", "bash", `{}`, []string{`unknown tool "bash"`, "read, edit"}},
		{"denied tool", "write", `{"path":"a","content":"x"}`, []string{`"write" is not enabled`}},
		{"exec under deny", "exec", `{"command":"touch pwned"}`, []string{`exec is disabled: tools.exec.security is "deny"`}},
		{"exec under deny with bad args", "exec", `{not json`, []string{`exec is disabled`}},
		{"process under deny", "process", `{"action":"list"}`, []string{`process is disabled: tools.exec.security is "deny"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, run(t, deny, tt.tool, tt.args), tt.wants...)
		})
	}
	if _, err := os.Stat(filepath.Join(deny.ws, "pwned")); !os.IsNotExist(err) {
		t.Fatalf("exec under deny ran the command (pwned exists: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(deny.ws, "a")); !os.IsNotExist(err) {
		t.Fatal("a denied write wrote")
	}
}

func TestRunAfterCloseAndCancelled(t *testing.T) {
	s := newSet(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mustFail(t, s.Run(ctx, "exec", json.RawMessage(`{"command":"touch ran"}`)), "aborted")
	s.Close()
	mustFail(t, run(t, s, "read", `{"path":"x"}`), "shutting down")
	if _, err := os.Stat(filepath.Join(s.ws, "ran")); !os.IsNotExist(err) {
		t.Fatal("a cancelled run started its command")
	}
}

func TestInvalidArguments(t *testing.T) {
	s := newSet(t, nil)
	tests := []struct {
		name, tool, args string
		wants            []string
	}{
		{"truncated JSON", "read", `{"path":`, []string{"invalid arguments for read", "not valid JSON", "at byte"}},
		{"garbage", "exec", `ls -la`, []string{"invalid arguments for exec", "not valid JSON"}},
		{"trailing garbage", "write", `{"path":"a","content":"b"} x`, []string{"not valid JSON"}},
		{"array", "edit", `["a.txt"]`, []string{"must be a JSON object, got an array"}},
		{"string", "read", `"a.txt"`, []string{`must be a JSON object, got string "a.txt"`}},
		{"empty is missing fields", "read", ``, []string{`missing required field "path" (a string)`}},
		{"null is missing fields", "exec", `null`, []string{"must be a JSON object, got null"}},
		{"missing command", "exec", `{}`, []string{`missing required field "command"`}},
		{"missing several", "edit", `{"path":"a"}`, []string{`"oldText"`, `"newText"`}},
		{"unknown field", "exec", `{"command":"ls","timeout":5}`, []string{`unknown field "timeout"`, "exec takes: command, workdir, env, timeoutSec, background"}},
		{"path number", "read", `{"path":5}`, []string{`field "path": expected a string, got number 5`}},
		{"content object", "write", `{"path":"a","content":{"x":1}}`, []string{`field "content": expected a string, got an object`}},
		{"timeout string", "exec", `{"command":"ls","timeoutSec":"5"}`, []string{`field "timeoutSec": expected an integer, got string "5"`}},
		{"timeout fraction", "exec", `{"command":"ls","timeoutSec":1.5}`, []string{`field "timeoutSec": expected an integer, got number 1.5`}},
		{"timeout over ceiling", "exec", `{"command":"ls","timeoutSec":601}`, []string{`field "timeoutSec": must be from 1 to 600, got 601`}},
		{"timeout zero", "exec", `{"command":"ls","timeoutSec":0}`, []string{`must be from 1 to 600, got 0`}},
		{"background string", "exec", `{"command":"ls","background":"yes"}`, []string{`field "background": expected true or false, got string "yes"`}},
		{"env array", "exec", `{"command":"ls","env":["A=1"]}`, []string{`field "env": expected an object of string values, got an array`}},
		{"env number value", "exec", `{"command":"ls","env":{"A":1}}`, []string{`value of "A": expected a string, got number 1`}},
		{"env bad name", "exec", `{"command":"ls","env":{"A=B":"1"}}`, []string{`env "A=B"`}},
		{"empty command", "exec", `{"command":"   "}`, []string{`"command" is empty`}},
		{"NUL command", "exec", `{"command":"ls\u0000"}`, []string{"NUL"}},
		{"huge command", "exec", `{"command":"` + strings.Repeat("x", maxCommandBytes+1) + `"}`, []string{"the limit is 131071"}},
		{"offset zero", "read", `{"path":"a","offset":0}`, []string{`field "offset": must be from 1 to`}},
		{"limit negative", "read", `{"path":"a","limit":-3}`, []string{`field "limit": must be from 1 to`}},
		{"replaceAll string", "edit", `{"path":"a","oldText":"x","newText":"y","replaceAll":"true"}`, []string{`field "replaceAll": expected true or false`}},
		{"empty oldText", "edit", `{"path":"a","oldText":"","newText":"y"}`, []string{`"oldText" is empty`}},
		{"bad action", "process", `{"action":"stop","handle":"bg1"}`, []string{`expected one of poll, read, kill, list; got "stop"`}},
		{"missing handle", "process", `{"action":"poll"}`, []string{`needs the field "handle"`}},
		{"unknown handle", "process", `{"action":"read","handle":"bg99"}`, []string{`unknown handle "bg99"`}},
		{"offset string", "process", `{"action":"read","handle":"bg1","offset":"0"}`, []string{`field "offset": expected an integer`}},
		{"empty path", "write", `{"path":"","content":""}`, []string{"path is empty"}},
		{"NUL path", "read", `{"path":"a\u0000b"}`, []string{"NUL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, s, tt.tool, tt.args)
			mustFail(t, r, tt.wants...)
		})
	}
	// None of it may have touched the workspace.
	entries, err := os.ReadDir(s.ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("bad input left files in the workspace: %v", entries)
	}
}

func TestPathEscapes(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSet(t, nil)
	if err := os.Symlink(outside, filepath.Join(s.ws, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(s.ws, "secret-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "nothing-yet"), filepath.Join(s.ws, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tool string
		args       any
		want       string
	}{
		{"read ../", "read", map[string]any{"path": "../" + filepath.Base(outside) + "/secret.txt"}, "outside the workspace"},
		{"read deep ../", "read", map[string]any{"path": "sub/../../x"}, "outside the workspace"},
		{"write ../", "write", map[string]any{"path": "../evil.txt", "content": "x"}, "outside the workspace"},
		{"edit ../", "edit", map[string]any{"path": "../../etc/hostname", "oldText": "a", "newText": "b"}, "outside the workspace"},
		{"read through dir symlink", "read", map[string]any{"path": "out/secret.txt"}, "through a symlink"},
		{"write through dir symlink", "write", map[string]any{"path": "out/new.txt", "content": "x"}, "through a symlink"},
		{"write new dir through symlink", "write", map[string]any{"path": "out/d/e/new.txt", "content": "x"}, "through a symlink"},
		{"edit file symlink", "edit", map[string]any{"path": "secret-link", "oldText": "secret", "newText": "public"}, "through a symlink"},
		{"write file symlink", "write", map[string]any{"path": "secret-link", "content": "x"}, "through a symlink"},
		{"write dangling symlink", "write", map[string]any{"path": "dangling", "content": "x"}, "does not exist"},
		{"write under dangling symlink", "write", map[string]any{"path": "dangling/x.txt", "content": "x"}, "does not exist"},
		{"exec workdir ../", "exec", map[string]any{"command": "touch escaped", "workdir": ".."}, "outside the workspace"},
		{"exec workdir symlink", "exec", map[string]any{"command": "touch escaped", "workdir": "out"}, "through a symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, run(t, s, tt.tool, tt.args), tt.want)
		})
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret\n" {
		t.Errorf("the file outside changed: %q", b)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("files appeared outside the workspace: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.ws), "evil.txt")); !os.IsNotExist(err) {
		t.Error("write ../ created a file")
	}

	// Relative paths that only pass through .. inside the workspace are fine.
	mustOK(t, run(t, s, "write", map[string]any{"path": "sub/../inside.txt", "content": "ok"}))
	if b, _ := os.ReadFile(filepath.Join(s.ws, "inside.txt")); string(b) != "ok" {
		t.Errorf("inside.txt = %q", b)
	}
	// Absolute paths are the person's own machine: taken as given...
	r := mustOK(t, run(t, s, "read", map[string]any{"path": secret}))
	if !strings.Contains(r.Text, "secret") {
		t.Errorf("absolute read = %q", r.Text)
	}
	// ...unless RestrictToWorkspace says otherwise.
	restricted := newSet(t, func(o *Options) { o.RestrictToWorkspace = true })
	mustFail(t, run(t, restricted, "read", map[string]any{"path": secret}), "outside the workspace")
	mustFail(t, run(t, restricted, "read", map[string]any{"path": "~/x"}), "outside the workspace")
	mustOK(t, run(t, restricted, "write", map[string]any{"path": filepath.Join(restricted.ws, "abs.txt"), "content": "in"}))
}

package tools

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// koiLayout is a Koi's home in miniature: the workspace ~/koi beside the
// state directory ~/.skykoi that holds the config file and the device store.
type koiLayout struct {
	home, ws, state, config, devices, bashrc, outside string
}

const (
	bashrcText  = "# the person's shell\n"
	configText  = `{"tools":{"exec":{"security":"deny"}}}` + "\n"
	devicesText = `{"devices":[]}` + "\n"
)

func newKoiLayout(t *testing.T) koiLayout {
	t.Helper()
	home := t.TempDir()
	l := koiLayout{
		home:    home,
		ws:      filepath.Join(home, "koi"),
		state:   filepath.Join(home, ".skykoi"),
		bashrc:  filepath.Join(home, ".bashrc"),
		outside: filepath.Join(home, "elsewhere"),
	}
	l.config = filepath.Join(l.state, "skykoi.json")
	l.devices = filepath.Join(l.state, "paired.json")
	for _, d := range []string{l.ws, l.state, l.outside} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for p, text := range map[string]string{l.bashrc: bashrcText, l.config: configText, l.devices: devicesText,
		filepath.Join(l.ws, "notes.txt"): "notes\n"} {
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"bashrc-link": l.bashrc, "state-link": l.state, "config-link": l.config, "home-link": home} {
		if err := os.Symlink(target, filepath.Join(l.ws, link)); err != nil {
			t.Fatal(err)
		}
	}
	// ~ in a path is the person's home.
	t.Setenv("HOME", home)
	return l
}

func (l koiLayout) set(t *testing.T, security string, mod func(*Options)) *Set {
	t.Helper()
	return newSet(t, func(o *Options) {
		o.Workspace = l.ws
		o.ConfigPath = l.config
		o.StateDir = l.state
		o.Exec.Security = security
		o.Exec.Allowlist = []string{"echo", "cat"}
		if mod != nil {
			mod(o)
		}
	})
}

// checkUntouched fails the test if the files the gateway and the person own
// changed.
func (l koiLayout) checkUntouched(t *testing.T) {
	t.Helper()
	for p, want := range map[string]string{l.bashrc: bashrcText, l.config: configText, l.devices: devicesText} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s changed: %q, %v", p, b, err)
		}
	}
	entries, _ := os.ReadDir(l.state)
	if len(entries) != 2 {
		t.Errorf("files appeared in the state directory: %v", entries)
	}
}

// TestFileToolConfinement runs read, write and edit over every mode and the
// paths that matter on a Koi: outside the workspace is refused unless
// security is "full", and the config file and state directory always are,
// however the path gets there.
func TestFileToolConfinement(t *testing.T) {
	const (
		ok       = ""
		outsideW = "outside the workspace"
		protCfg  = "the gateway's config file"
		protSt   = "the gateway's state directory"
	)
	l := newKoiLayout(t)
	type want struct{ deny, allowlist, full string }
	confined := want{outsideW, outsideW, ok}
	tests := []struct {
		name string
		path string // "@" is replaced by the layout's home
		want want
	}{
		{"inside relative", "notes.txt", want{ok, ok, ok}},
		{"inside absolute", "@/koi/notes.txt", want{ok, ok, ok}},
		{"inside via .. that stays", "sub/../notes.txt", want{ok, ok, ok}},
		{"outside absolute", "@/.bashrc", confined},
		{"outside with ~", "~/.bashrc", confined},
		{"outside via absolute ..", "@/koi/../.bashrc", confined},
		{"outside relative ..", "../.bashrc", want{outsideW, outsideW, outsideW}},
		{"symlink escape relative", "bashrc-link", want{outsideW, outsideW, outsideW}},
		{"symlink escape absolute", "@/koi/bashrc-link", confined},
		{"dir symlink escape", "home-link/.bashrc", want{outsideW, outsideW, outsideW}},
		{"nonexistent in outside dir", "@/elsewhere/new/deep.txt", confined},
		{"config file", "@/.skykoi/skykoi.json", want{protCfg, protCfg, protCfg}},
		{"config file via ~", "~/.skykoi/skykoi.json", want{protCfg, protCfg, protCfg}},
		{"config via symlink", "@/koi/config-link", want{protCfg, protCfg, protCfg}},
		{"config via relative symlink", "config-link", want{protCfg, protCfg, protCfg}},
		{"device store", "@/.skykoi/paired.json", want{protSt, protSt, protSt}},
		{"new file in state dir", "@/.skykoi/new.json", want{protSt, protSt, protSt}},
		{"state dir via symlink", "@/koi/state-link/paired.json", want{protSt, protSt, protSt}},
		{"state dir itself", "@/.skykoi", want{protSt, protSt, protSt}},
	}
	modes := []struct {
		security string
		pick     func(want) string
	}{
		{SecurityDeny, func(w want) string { return w.deny }},
		{SecurityAllowlist, func(w want) string { return w.allowlist }},
		{SecurityFull, func(w want) string { return w.full }},
	}
	for _, m := range modes {
		s := l.set(t, m.security, nil)
		for _, tt := range tests {
			path := strings.ReplaceAll(tt.path, "@", l.home)
			expect := m.pick(tt.want)
			t.Run(m.security+"/"+tt.name, func(t *testing.T) {
				calls := []struct {
					tool string
					args map[string]any
				}{
					{"read", map[string]any{"path": path}},
					{"write", map[string]any{"path": path, "content": "pwned\n"}},
					{"edit", map[string]any{"path": path, "oldText": "#", "newText": "pwned"}},
				}
				for _, c := range calls {
					r := run(t, s, c.tool, c.args)
					if expect == ok {
						// Allowed by the path rule; the call may still fail
						// for another reason (edit's text not found).
						for _, refusal := range []string{outsideW, protCfg, protSt} {
							if strings.Contains(r.Text, refusal) {
								t.Errorf("%s %s was refused: %s", c.tool, path, r.Text)
							}
						}
						continue
					}
					mustFail(t, r, expect, c.tool+" "+path+":")
					if kind := r.Details["error"]; kind != "path_escape" && kind != "protected_path" {
						t.Errorf("%s %s: error kind %v", c.tool, path, kind)
					}
					if expect == outsideW && !strings.Contains(r.Text, `tools.exec.security is "full"`) &&
						!strings.Contains(r.Text, "relative paths") {
						t.Errorf("%s %s: the refusal does not say the rule: %s", c.tool, path, r.Text)
					}
				}
			})
		}
		// Restore what the full-mode writes were allowed to change, so the
		// next mode starts from the same files.
		for p, text := range map[string]string{l.bashrc: bashrcText, filepath.Join(l.ws, "notes.txt"): "notes\n"} {
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		os.RemoveAll(filepath.Join(l.outside, "new"))
		l.checkUntouched(t)
	}
	if _, err := os.Stat(filepath.Join(l.outside, "new")); !os.IsNotExist(err) {
		t.Error("a refused write created directories outside the workspace")
	}
}

// TestProtectedPathsWhateverTheWorkspace covers workspaces placed around the
// state directory: containing it (a workspace of ~), inside it (the test
// harness's layout) and equal to it.
func TestProtectedPathsWhateverTheWorkspace(t *testing.T) {
	l := newKoiLayout(t)
	for _, security := range []string{SecurityDeny, SecurityFull} {
		t.Run("workspace contains the state dir/"+security, func(t *testing.T) {
			s := l.set(t, security, func(o *Options) { o.Workspace = l.home })
			mustFail(t, run(t, s, "write", map[string]any{"path": ".skykoi/paired.json", "content": "x"}), "the gateway's state directory")
			mustFail(t, run(t, s, "read", map[string]any{"path": ".skykoi/skykoi.json"}), "the gateway's config file")
			mustFail(t, run(t, s, "write", map[string]any{"path": "koi/state-link/new", "content": "x"}), "the gateway's state directory")
			mustOK(t, run(t, s, "write", map[string]any{"path": "fine.txt", "content": "x"}))
			l.checkUntouched(t)
		})
		t.Run("workspace inside the state dir/"+security, func(t *testing.T) {
			inner := filepath.Join(l.state, "work")
			s := l.set(t, security, func(o *Options) { o.Workspace = inner })
			defer os.RemoveAll(inner)
			mustOK(t, run(t, s, "write", map[string]any{"path": "fine.txt", "content": "x"}))
			mustFail(t, run(t, s, "write", map[string]any{"path": l.devices, "content": "x"}), "the gateway's state directory")
			mustFail(t, run(t, s, "write", map[string]any{"path": "../paired.json", "content": "x"}))
			mustFail(t, run(t, s, "read", map[string]any{"path": l.config}), "the gateway's config file")
			if b, _ := os.ReadFile(l.devices); string(b) != devicesText {
				t.Errorf("device store changed: %q", b)
			}
		})
	}
	_, err := New(Options{Workspace: l.state, ConfigPath: l.config, StateDir: l.state, Exec: configgen.Exec{Security: SecurityFull}})
	if err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Errorf("New with the state dir as workspace: %v", err)
	}
}

// TestAllowlistRedirections checks that an allowlisted command's
// redirections follow the file tools' rule.
func TestAllowlistRedirections(t *testing.T) {
	l := newKoiLayout(t)
	s := l.set(t, SecurityAllowlist, nil)
	h := l.home
	tests := []struct {
		command string
		refused string // "" = allowed
	}{
		{command: "echo x > out.txt"},
		{command: "echo x >> out.txt 2>&1"},
		{command: "echo x > " + h + "/koi/out.txt"},
		{command: "echo x >/dev/null 2>/dev/null"},
		{command: "echo x >&2"},
		{command: "echo x 1>&2 2>&-"},
		{command: "cat < notes.txt"},
		{command: "cat <<< hello"},
		{command: "echo x > ~/.bashrc", refused: "not a plain path"},
		{command: "echo x > $HOME/.bashrc", refused: "not a plain path"},
		{command: "echo x > " + h + "/.bashrc", refused: "outside the workspace"},
		{command: "echo x >> '" + h + "/.bashrc'", refused: "outside the workspace"},
		{command: "echo x 2> " + h + "/.bashrc", refused: "outside the workspace"},
		{command: "echo x &> " + h + "/.bashrc", refused: "outside the workspace"},
		{command: "echo x &>> " + h + "/.bashrc", refused: "outside the workspace"},
		{command: "echo x >| " + h + "/.bashrc", refused: "outside the workspace"},
		{command: "echo x >& " + h + "/.bashrc", refused: "outside the workspace"},
		{command: "echo x <> " + h + "/.bashrc", refused: "outside the workspace"},
		{command: "cat < " + h + "/.bashrc", refused: "outside the workspace"},
		{command: ">" + h + "/.bashrc echo x", refused: "outside the workspace"},
		{command: "echo x > ../.bashrc", refused: "outside the workspace"},
		{command: "echo x > bashrc-link", refused: "outside the workspace"},
		{command: "echo x > state-link/paired.json", refused: "the gateway's state directory"},
		{command: "echo ok; echo x > " + l.config, refused: "the gateway's config file"},
		{command: "echo x | cat > " + l.devices, refused: "the gateway's state directory"},
		{command: "echo x > " + h + "/elsewhere/new.txt", refused: "outside the workspace"},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			r := run(t, s, "exec", map[string]any{"command": tt.command})
			if tt.refused == "" {
				mustOK(t, r)
			} else {
				mustFail(t, r, "exec refused", tt.refused)
				if _, ok := r.Details["pid"]; ok {
					t.Error("a refused command was started")
				}
			}
			l.checkUntouched(t)
		})
	}
	if _, err := os.Stat(filepath.Join(l.outside, "new.txt")); !os.IsNotExist(err) {
		t.Error("a refused redirection created a file")
	}
	// The workdir is held to the same rule, in allowlist mode.
	mustFail(t, run(t, s, "exec", map[string]any{"command": "echo x > .bashrc", "workdir": h}), "outside the workspace")
	// In deny mode there is no shell at all.
	deny := l.set(t, SecurityDeny, nil)
	mustFail(t, run(t, deny, "exec", map[string]any{"command": "echo x > out.txt"}), "exec is disabled")
	l.checkUntouched(t)
}

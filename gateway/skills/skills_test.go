package skills

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func skillMD(name, desc string) string {
	return fmt.Sprintf("---\nname: %s\ndescription: %s\n---\n# %s\nDo the thing.\n", name, desc, name)
}

// TestDiscover: a workspace with one valid skill of each shape and one of
// each malformed kind; the valid ones are offered, each malformed one is
// reported with its own problem and kept out of the prompt.
func TestDiscover(t *testing.T) {
	root := t.TempDir()
	ws := filepath.Join(root, "ws")
	outside := filepath.Join(root, "outside")
	sk := func(dir string) string { return filepath.Join(ws, "skills", dir, "SKILL.md") }
	writeFile(t, sk("release-notes"), skillMD("release-notes", "Write release notes from git log."))
	writeFile(t, sk("weather"), "---\ndescription: Look up the weather with curl wttr.in.\n---\n")
	writeFile(t, sk("hidden-skill"), "---\nname: hidden-skill\ndescription: Only on request.\ndisable-model-invocation: true\n---\n")
	writeFile(t, sk("no-frontmatter"), "# Notes\nJust text.\n")
	writeFile(t, sk("bad-yaml"), "---\nname: bad-yaml\nmetadata:\n  - x\n y: [\n---\n")
	writeFile(t, sk("no-description"), "---\nname: no-description\n---\n")
	writeFile(t, sk("bad-name"), skillMD("Bad_Name", "d"))
	writeFile(t, sk("copy-of-notes"), skillMD("release-notes", "Another release notes skill."))
	writeFile(t, sk("huge"), skillMD("huge", "d")+strings.Repeat("x", MaxFileBytes))
	writeFile(t, filepath.Join(ws, "skills", "README.md"), "not a skill\n")
	writeFile(t, filepath.Join(ws, "skills", ".git", "SKILL.md"), "ignored")
	if err := os.MkdirAll(filepath.Join(ws, "skills", "empty-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Symlinks: one leading out of the workspace (refused), one to a
	// directory inside it (fine).
	writeFile(t, filepath.Join(outside, "evil", "SKILL.md"), skillMD("evil", "Escapes."))
	if err := os.Symlink(filepath.Join(outside, "evil"), filepath.Join(ws, "skills", "evil")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ws, "shared", "linked", "SKILL.md"), skillMD("linked", "Linked from inside."))
	if err := os.Symlink(filepath.Join(ws, "shared", "linked"), filepath.Join(ws, "skills", "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ws, "skills", "fifo"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(sk("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}

	c := New(quiet)
	r := c.Status(ws)
	if len(r.Problems) != 0 {
		t.Errorf("directory problems %q", r.Problems)
	}
	byDir := map[string]Skill{}
	for _, s := range r.Skills {
		byDir[filepath.Base(s.BaseDir)] = s
	}
	tests := []struct {
		dir, name string
		visible   bool
		problem   string // "" = eligible
	}{
		{dir: "release-notes", name: "release-notes", visible: true},
		{dir: "weather", name: "weather", visible: true},
		{dir: "linked", name: "linked", visible: true},
		{dir: "hidden-skill", name: "hidden-skill"},
		{dir: "no-frontmatter", name: "no-frontmatter", problem: "does not start with YAML frontmatter"},
		{dir: "bad-yaml", name: "bad-yaml", problem: "not valid YAML"},
		{dir: "no-description", name: "no-description", problem: "the description is missing"},
		{dir: "bad-name", name: "Bad_Name", problem: "not a valid skill name"},
		{dir: "copy-of-notes", name: "release-notes", problem: `"release-notes" is already used by skills/release-notes/SKILL.md`},
		{dir: "huge", name: "huge", problem: "the limit is 256000"},
		{dir: "evil", name: "evil", problem: "leads outside the workspace"},
		{dir: "empty-dir", name: "empty-dir", problem: "has no SKILL.md"},
		{dir: "fifo", name: "fifo", problem: "not a regular file"},
	}
	if len(r.Skills) != len(tests) {
		t.Errorf("got %d skills, want %d: %+v", len(r.Skills), len(tests), r.Skills)
	}
	for _, tt := range tests {
		s, ok := byDir[tt.dir]
		if !ok {
			t.Errorf("%s: not reported", tt.dir)
			continue
		}
		if s.Name != tt.name || s.ModelVisible != tt.visible || s.Eligible != (tt.problem == "") || s.Source != SourceWorkspace ||
			s.FilePath != filepath.Join(ws, "skills", tt.dir, "SKILL.md") {
			t.Errorf("%s: %+v", tt.dir, s)
		}
		switch {
		case tt.problem == "" && len(s.Problems) != 0:
			t.Errorf("%s: unexpected problems %q", tt.dir, s.Problems)
		case tt.problem != "" && (len(s.Problems) != 1 || !strings.Contains(s.Problems[0], tt.problem)):
			t.Errorf("%s: problems %q, want one containing %q", tt.dir, s.Problems, tt.problem)
		}
	}
	p := c.Prompt(ws)
	for _, want := range []string{"<name>release-notes</name>", "<description>Write release notes from git log.</description>",
		"<location>skills/release-notes/SKILL.md</location>", "<name>weather</name>", "<name>linked</name>", "read tool"} {
		if !strings.Contains(p, want) {
			t.Errorf("prompt lacks %q:\n%s", want, p)
		}
	}
	for _, not := range []string{"hidden-skill", "Another release notes", "evil", "Bad_Name", "huge", "no-description"} {
		if strings.Contains(p, not) {
			t.Errorf("prompt offers %q:\n%s", not, p)
		}
	}
}

func TestDiscoverDirectoryProblems(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name    string
		setup   func(ws string)
		problem string // "" = none
	}{
		{name: "no workspace", setup: func(string) {}},
		{name: "no skills directory", setup: func(ws string) { writeFile(t, filepath.Join(ws, "AGENTS.md"), "x") }},
		{name: "skills directory escapes", setup: func(ws string) {
			other := filepath.Join(ws+"-elsewhere", "s")
			writeFile(t, filepath.Join(other, "x", "SKILL.md"), skillMD("x", "d"))
			if err := os.Symlink(other, filepath.Join(ws, "skills")); err != nil {
				t.Fatal(err)
			}
		}, problem: "outside the workspace"},
		{name: "dangling skills link", setup: func(ws string) {
			if err := os.Symlink(filepath.Join(ws, "gone"), filepath.Join(ws, "skills")); err != nil {
				t.Fatal(err)
			}
		}, problem: "does not exist"},
		{name: "too many entries", setup: func(ws string) {
			for i := range MaxEntries + 1 {
				writeFile(t, filepath.Join(ws, "skills", fmt.Sprintf("s%03d", i), "SKILL.md"), skillMD(fmt.Sprintf("s%03d", i), "d"))
			}
		}, problem: fmt.Sprintf("has %d entries; only the first %d", MaxEntries+1, MaxEntries)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := filepath.Join(root, fmt.Sprint(i), "ws")
			if tt.name != "no workspace" {
				if err := os.MkdirAll(ws, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			tt.setup(ws)
			r := New(quiet).Status(ws)
			switch {
			case tt.problem == "" && (len(r.Problems) != 0 || len(r.Skills) != 0):
				t.Errorf("got %+v, want nothing", r)
			case tt.problem != "" && (len(r.Problems) != 1 || !strings.Contains(r.Problems[0], tt.problem)):
				t.Errorf("problems %q, want one containing %q", r.Problems, tt.problem)
			}
			if tt.name == "too many entries" {
				valid := 0
				for _, s := range r.Skills {
					if s.Eligible {
						valid++
					}
				}
				if len(r.Skills) != MaxEntries || valid != MaxSkills {
					t.Errorf("%d skills reported, %d offered; want %d and %d", len(r.Skills), valid, MaxEntries, MaxSkills)
				}
			}
		})
	}
}

// age sets every file and directory below dir to an hour ago, as if the
// skills were written long before the turn (the cache does not trust
// stamps from the last racyWindow).
func age(t testing.TB, dir string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCache: an unchanged tree is answered without a scan; an edit to a
// SKILL.md, a new skill or a removed one is seen on the next call, even
// when made within the file system's timestamp granularity.
func TestCache(t *testing.T) {
	ws := t.TempDir()
	file := filepath.Join(ws, "skills", "a", "SKILL.md")
	writeFile(t, file, skillMD("a", "first"))
	age(t, filepath.Join(ws, "skills"))
	c := New(quiet)
	desc := func() string {
		r := c.Status(ws)
		var out []string
		for _, s := range r.Skills {
			out = append(out, s.Name+"="+s.Description)
		}
		return strings.Join(out, ",")
	}
	if got := desc(); got != "a=first" {
		t.Fatalf("got %q", got)
	}
	for range 3 {
		desc()
		c.Prompt(ws)
	}
	if c.scans != 1 {
		t.Errorf("%d scans of an unchanged tree, want 1", c.scans)
	}
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"edit in place, same size", func() { writeFile(t, file, skillMD("a", "secnd")) }, "a=secnd"},
		{"edit again at once", func() { writeFile(t, file, skillMD("a", "third")) }, "a=third"},
		{"new skill", func() { writeFile(t, filepath.Join(ws, "skills", "b", "SKILL.md"), skillMD("b", "bee")) }, "a=third,b=bee"},
		// Written and aged before the next turn: only the stamps, not the
		// racy window, can tell the cache that something changed.
		{"new skill, old stamps", func() {
			writeFile(t, filepath.Join(ws, "skills", "c", "SKILL.md"), skillMD("c", "sea"))
			age(t, ws)
		}, "a=third,b=bee,c=sea"},
		{"removed skill", func() { _ = os.RemoveAll(filepath.Join(ws, "skills", "a")) }, "b=bee,c=sea"},
		{"skills directory removed", func() { _ = os.RemoveAll(filepath.Join(ws, "skills")) }, ""},
	}
	for _, st := range steps {
		st.change()
		if got := desc(); got != st.want {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
		// With every stamp out of the racy window the cache must hold:
		// one more scan at most (the aging itself changed the stamps),
		// then none, and the same answer.
		age(t, ws)
		desc()
		n := c.scans
		if got := desc(); got != st.want || c.scans != n {
			t.Errorf("%s, settled: got %q after %d more scans, want %q from the cache", st.name, got, c.scans-n, st.want)
		}
	}
}

// BenchmarkPrompt is the cost discovery adds to a turn with 100 skills:
// "cached" is every turn but the first after a change, "scan" what a turn
// would cost without the cache.
func BenchmarkPrompt(b *testing.B) {
	ws := b.TempDir()
	for i := range 100 {
		name := fmt.Sprintf("skill-%03d", i)
		writeFile(b, filepath.Join(ws, "skills", name, "SKILL.md"),
			skillMD(name, "Use this skill when the task is about topic number "+fmt.Sprint(i)+".")+strings.Repeat("Step.\n", 200))
	}
	age(b, filepath.Join(ws, "skills"))
	b.Run("cached", func(b *testing.B) {
		c := New(quiet)
		if !strings.Contains(c.Prompt(ws), "skill-099") {
			b.Fatalf("the prompt lacks the skills: %+v\n%s", c.Status(ws).Skills[99], c.Prompt(ws))
		}
		b.ResetTimer()
		for b.Loop() {
			c.Prompt(ws)
		}
		b.StopTimer()
		if c.scans != 1 {
			b.Fatalf("%d scans", c.scans)
		}
	})
	b.Run("scan", func(b *testing.B) {
		c := New(quiet)
		for b.Loop() {
			c.snap = nil
			c.Prompt(ws)
		}
	})
}

// TestStatusListsAreNeverNull: a workspace without skills, and a skill
// without problems, give empty lists on the wire, which clients iterate
// (OpenClaw's CLI printed "skills": null before).
func TestStatusListsAreNeverNull(t *testing.T) {
	ws := t.TempDir()
	b, err := json.Marshal(New(quiet).Status(ws))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"skills":[]`) || !strings.Contains(string(b), `"problems":[]`) {
		t.Errorf("empty workspace: %s", b)
	}
	dir := filepath.Join(ws, "skills", "greet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "SKILL.md"), []byte("---\nname: greet\ndescription: Say hello.\n---\nBody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(New(quiet).Status(ws))
	if strings.Contains(string(b), "null") {
		t.Errorf("a valid skill: %s", b)
	}
}

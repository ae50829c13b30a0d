package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/skills"
)

// writeSkills puts a valid skill, a malformed one and one leading out of the
// workspace into ws/skills.
func writeSkills(t *testing.T, ws string) {
	t.Helper()
	files := map[string]string{
		"skills/release-notes/SKILL.md": "---\nname: release-notes\ndescription: Write release notes from the git log.\n---\n" +
			"# Release notes\nRun git log --oneline and group the commits. marker-from-skill-body\n",
		"skills/broken/SKILL.md":   "# no frontmatter here\ndescription: marker-from-broken-skill\n",
		"../outside/evil/SKILL.md": "---\nname: evil\ndescription: marker-from-outside\n---\n",
	}
	for rel, content := range files {
		p := filepath.Join(ws, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(ws, "..", "outside", "evil"), filepath.Join(ws, "skills", "evil")); err != nil {
		t.Fatal(err)
	}
}

// TestSkillsStatus: a client with only operator.read calls skills.status
// over a real WebSocket and gets the valid skill and the malformed ones with
// their problems.
func TestSkillsStatus(t *testing.T) {
	ts := startServer(t)
	ws := filepath.Join(ts.dir, "koi")
	writeSkills(t, ws)
	c, _ := dialConnected(t, ts, func(p map[string]any) { p["scopes"] = []string{protocol.ScopeRead} })
	res := c.call("skills.status", map[string]any{})
	if !res.OK {
		t.Fatalf("skills.status: %+v", res.Error)
	}
	r := unmarshal[skills.Report](t, res.Payload)
	if r.WorkspaceDir != ws || len(r.Problems) != 0 {
		t.Errorf("workspaceDir %q, problems %q", r.WorkspaceDir, r.Problems)
	}
	got := map[string]skills.Skill{}
	for _, s := range r.Skills {
		got[filepath.Base(s.BaseDir)] = s
	}
	tests := []struct {
		dir, name, desc string
		eligible        bool
		problem         string
	}{
		{dir: "release-notes", name: "release-notes", desc: "Write release notes from the git log.", eligible: true},
		{dir: "broken", name: "broken", problem: "does not start with YAML frontmatter"},
		{dir: "evil", name: "evil", problem: "leads outside the workspace"},
	}
	if len(r.Skills) != len(tests) {
		t.Errorf("skills %+v", r.Skills)
	}
	for _, tt := range tests {
		s := got[tt.dir]
		if s.Name != tt.name || s.Description != tt.desc || s.Eligible != tt.eligible || s.ModelVisible != tt.eligible ||
			s.FilePath != filepath.Join(ws, "skills", tt.dir, "SKILL.md") || s.Source != "openclaw-workspace" {
			t.Errorf("%s: %+v", tt.dir, s)
		}
		if (tt.problem == "") != (len(s.Problems) == 0) || (tt.problem != "" && !strings.Contains(s.Problems[0], tt.problem)) {
			t.Errorf("%s: problems %q, want %q", tt.dir, s.Problems, tt.problem)
		}
	}
	// The raw payload carries problems as an array even when empty, so a
	// client can index it without a nil check.
	if !strings.Contains(string(res.Payload), `"problems":[]`) {
		t.Errorf("payload %s", res.Payload)
	}
	if bad := c.call("skills.status", map[string]any{"agentId": "other"}); bad.OK || bad.Error.Code != protocol.CodeInvalidRequest {
		t.Errorf("unknown agent: %+v", bad)
	}
}

// TestSkillsInSystemPrompt: the system prompt Bedrock receives lists the
// valid skill with its description and path, never the malformed ones, and
// the path it gives is one the read tool opens.
func TestSkillsInSystemPrompt(t *testing.T) {
	ts, fake := agentServer(t)
	writeSkills(t, filepath.Join(ts.dir, "koi"))
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("t1", "read", `{"path":"skills/release-notes/SKILL.md"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Notes written.")})
	c, _ := dialConnected(t, ts)
	c.agentTurn("write the release notes", "skill-run")
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d model requests", len(reqs))
	}
	var system strings.Builder
	for _, b := range reqs[0].System {
		if b.Text != nil {
			system.WriteString(*b.Text)
		}
	}
	sys := system.String()
	for _, want := range []string{"<name>release-notes</name>", "<description>Write release notes from the git log.</description>",
		"<location>skills/release-notes/SKILL.md</location>", "read tool"} {
		if !strings.Contains(sys, want) {
			t.Errorf("system prompt lacks %q:\n%s", want, sys)
		}
	}
	for _, not := range []string{"marker-from-broken-skill", "marker-from-outside", "<name>evil</name>", "<name>broken</name>", "marker-from-skill-body"} {
		if strings.Contains(sys, not) {
			t.Errorf("system prompt has %q:\n%s", not, sys)
		}
	}
	// The model read the skill through the listed path: its body went back.
	if body := string(reqs[1].Body); !strings.Contains(body, "marker-from-skill-body") {
		t.Errorf("the read tool did not return the skill: %s", body)
	}
}

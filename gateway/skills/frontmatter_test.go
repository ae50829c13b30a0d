package skills

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParseFrontmatter(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Frontmatter
		wantErr string // substring of the error; "" = no error
	}{
		{name: "valid", in: "---\nname: release-notes\ndescription: Write release notes from git log.\n---\n# Body\n",
			want: Frontmatter{Name: "release-notes", Description: "Write release notes from git log."}},
		{name: "CRLF and BOM", in: "\uFEFF---\r\nname: a\r\ndescription: b\r\n---\r\nbody",
			want: Frontmatter{Name: "a", Description: "b"}},
		{name: "unknown keys tolerated", in: "---\nname: a\ndescription: b\nhomepage: https://x\nmetadata:\n  openclaw:\n    requires: {bins: [uv]}\n---\n",
			want: Frontmatter{Name: "a", Description: "b"}},
		{name: "disable-model-invocation", in: "---\nname: a\ndescription: b\ndisable-model-invocation: true\n---\n",
			want: Frontmatter{Name: "a", Description: "b", DisableModelInvocation: true}},
		{name: "folded description", in: "---\nname: a\ndescription: >\n  two\n  lines\n---\n",
			want: Frontmatter{Name: "a", Description: "two lines\n"}},
		{name: "number as name", in: "---\nname: 2048\ndescription: b\n---\n",
			want: Frontmatter{Name: "2048", Description: "b"}},
		{name: "single-line fallback", in: "---\nname: a\ndescription: Use it: for x\n---\n",
			want: Frontmatter{Name: "a", Description: "Use it: for x"}},
		{name: "empty frontmatter", in: "---\n---\nbody", want: Frontmatter{}},
		{name: "no frontmatter", in: "# Just markdown\nname: a\n", wantErr: "does not start with YAML frontmatter"},
		{name: "empty file", in: "", wantErr: "does not start with YAML frontmatter"},
		{name: "unclosed", in: "---\nname: a\ndescription: b\n", wantErr: "no closing --- line"},
		{name: "fence only", in: "---", wantErr: "no closing --- line"},
		{name: "bad YAML", in: "---\nname: a\nmetadata:\n  - x\n y: [\n---\n", wantErr: "not valid YAML"},
		{name: "not a mapping", in: "---\n- name\n- description\n---\n", wantErr: "must be YAML keys"},
		{name: "name is a list", in: "---\nname: [a, b]\ndescription: b\n---\n", wantErr: "name (line 2) must be text, not a list"},
		{name: "description is a map", in: "---\nname: a\ndescription:\n  x: y\n---\n", wantErr: "description (line 3) must be text, not a mapping"},
		{name: "duplicate key", in: "---\nname: a\nname: b\ndescription: c\n---\n", wantErr: "key name twice"},
		{name: "bad bool", in: "---\nname: a\ndescription: b\ndisable-model-invocation: [x]\n---\n", wantErr: "must be true or false"},
		{name: "not UTF-8", in: "---\nname: a\xff\ndescription: b\n---\n", wantErr: "not valid UTF-8"},
		{name: "frontmatter too long", in: "---\n" + strings.Repeat("# filler line\n", maxFrontmatterBytes/14+1) + "name: a\n---\n", wantErr: "no closing --- line within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFrontmatter([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		fm       Frontmatter
		dir      string
		wantName string
		wantDesc string
		problem  string // substring of the one problem; "" = none
	}{
		{name: "valid", fm: Frontmatter{Name: "gh-pr", Description: "Open pull requests."}, dir: "gh-pr", wantName: "gh-pr", wantDesc: "Open pull requests."},
		{name: "missing name takes the directory", fm: Frontmatter{Description: "d"}, dir: "weather", wantName: "weather", wantDesc: "d"},
		{name: "description made one line", fm: Frontmatter{Name: "a", Description: "  two\n\tlines\x00 here "}, dir: "a", wantName: "a", wantDesc: "two lines here"},
		{name: "name may differ from its directory", fm: Frontmatter{Name: "b", Description: "d"}, dir: "a", wantName: "b", wantDesc: "d"},
		{name: "missing description", fm: Frontmatter{Name: "a"}, dir: "a", wantName: "a", problem: "the description is missing"},
		{name: "blank description", fm: Frontmatter{Name: "a", Description: " \n "}, dir: "a", wantName: "a", problem: "the description is missing"},
		{name: "uppercase name", fm: Frontmatter{Name: "Release", Description: "d"}, dir: "a", wantName: "Release", wantDesc: "d", problem: "not a valid skill name"},
		{name: "directory name as bad name", fm: Frontmatter{Description: "d"}, dir: "My Skill", wantName: "My Skill", wantDesc: "d", problem: "not a valid skill name"},
		{name: "double hyphen", fm: Frontmatter{Name: "a--b", Description: "d"}, dir: "a", wantName: "a--b", wantDesc: "d", problem: "not a valid skill name"},
		{name: "name too long", fm: Frontmatter{Name: strings.Repeat("a", maxNameLen+1), Description: "d"}, dir: "a", wantName: strings.Repeat("a", maxNameLen+1), wantDesc: "d", problem: "the limit is 64"},
		{name: "description too long", fm: Frontmatter{Name: "a", Description: strings.Repeat("é", maxDescriptionLen+1)}, dir: "a", wantName: "a", wantDesc: strings.Repeat("é", maxDescriptionLen+1), problem: "the limit is 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, desc, problems := Validate(tt.fm, tt.dir)
			if name != tt.wantName || desc != tt.wantDesc {
				t.Errorf("got %q %q, want %q %q", name, desc, tt.wantName, tt.wantDesc)
			}
			switch {
			case tt.problem == "" && len(problems) > 0:
				t.Errorf("unexpected problems %q", problems)
			case tt.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.problem)):
				t.Errorf("problems %q, want one containing %q", problems, tt.problem)
			}
		})
	}
}

// FuzzParseFrontmatter: the parser never panics, and what it accepts reads
// back the same from a canonical rendering of it.
func FuzzParseFrontmatter(f *testing.F) {
	for _, s := range []string{
		"---\nname: a\ndescription: b\n---\nbody",
		"---\r\nname: a\r\ndescription: b\r\n---\r\n",
		"---\nname: a\ndescription: Use it: for x\n---\n",
		"---\nname: &x a\ndescription: *x\n---\n",
		"---\nmetadata: {\"openclaw\": {\"requires\": {\"bins\": [\"uv\"]}}}\nname: a\ndescription: >\n  folded\n---\n",
		"---\n- a\n---\n",
		"---\nname: [\n---\n",
		"---\n---\n",
		"---",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fm, err := ParseFrontmatter(data)
		if err != nil {
			return
		}
		out, merr := yaml.Marshal(map[string]any{keyName: fm.Name, keyDescription: fm.Description, keyDisableModel: fm.DisableModelInvocation})
		if merr != nil {
			t.Fatalf("rendering %+v: %v", fm, merr)
		}
		again, err := ParseFrontmatter([]byte("---\n" + string(out) + "---\n"))
		if err != nil {
			t.Fatalf("the rendering of %+v does not parse: %v\n%s", fm, err, out)
		}
		if again != fm {
			t.Fatalf("round trip: %+v became %+v", fm, again)
		}
		Validate(fm, "dir") // must not panic either
	})
}

// Package skills finds the workspace's skills (skills/<name>/SKILL.md with
// YAML frontmatter), offers the valid ones to the model as a list in the
// system prompt, and reports the problems of the others for skills.status.
//
// The model gets each skill's name, description and path only; it reads a
// skill's SKILL.md with the read tool when a task matches, so a workspace
// with many skills costs a line each per turn, not their whole text.
package skills

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/skykoi/skykoi/gateway/tools"
	"github.com/skykoi/skykoi/internal/regularfile"
)

// Bounds. A skill list is prompt text on every turn and discovery runs on
// the turn's path, so everything a workspace can make it read is capped.
// The numbers are OpenClaw's defaults where it has one.
const (
	// MaxFileBytes caps one SKILL.md (OpenClaw's maxSkillFileBytes).
	MaxFileBytes = 256_000
	// maxFrontmatterBytes caps the frontmatter inside it.
	maxFrontmatterBytes = 32 << 10
	// MaxEntries caps the entries of skills/ looked at (OpenClaw's
	// maxCandidatesPerRoot); MaxSkills caps the skills offered
	// (maxSkillsLoadedPerSource).
	MaxEntries = 300
	MaxSkills  = 200
	// maxNameLen and maxDescriptionLen are the AgentSkills limits OpenClaw
	// follows.
	maxNameLen        = 64
	maxDescriptionLen = 1024
	// maxPromptSkills and maxPromptChars bound the prompt's list
	// (OpenClaw's maxSkillsInPrompt and maxSkillsPromptChars).
	maxPromptSkills = 150
	maxPromptChars  = 18_000
	// racyWindow: a file changed this close to a scan may have changed
	// again within the file system's timestamp granularity, so its
	// unchanged stamp proves nothing and the next call scans again (git's
	// "racy" rule). Edits older than this are cached.
	racyWindow = 2 * time.Second
)

// SourceWorkspace is OpenClaw's source name for workspace skills.
const SourceWorkspace = "openclaw-workspace"

// Skill is one entry of skills.status, with OpenClaw's field names.
type Skill struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Source      string `json:"source"`
	// FilePath is the SKILL.md, BaseDir its directory (absolute).
	FilePath string `json:"filePath"`
	BaseDir  string `json:"baseDir"`
	// Eligible: no problems. ModelVisible: eligible and listed in the
	// system prompt (disable-model-invocation keeps a skill out).
	Eligible     bool `json:"eligible"`
	ModelVisible bool `json:"modelVisible"`
	// Problems say why a skill is not offered and what to do; empty for a
	// valid skill.
	Problems []string `json:"problems"`

	rel string // the SKILL.md relative to the workspace, for the prompt
}

// Report is the skills.status payload.
type Report struct {
	WorkspaceDir string  `json:"workspaceDir"`
	Skills       []Skill `json:"skills"`
	// Problems concern the skills directory as a whole.
	Problems []string `json:"problems"`
}

// Catalog discovers skills and caches the result until a stamp (mtime,
// size, identity) of the skills directory, a skill directory or a SKILL.md
// changes, so a turn costs a few stat calls rather than parsing every file.
// It is safe for concurrent use.
type Catalog struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	snap  *snapshot
	scans int // full scans done, for tests
}

type snapshot struct {
	ws        string
	stamps    []stamp // what the scan saw; all unchanged = still valid
	scannedAt time.Time
	report    Report
	prompt    string
}

// stamp is one file's identity as seen by a scan; fi is nil for a path that
// did not exist.
type stamp struct {
	path string
	fi   fs.FileInfo
}

// New makes a catalog; logger may be nil.
func New(logger *slog.Logger) *Catalog {
	if logger == nil {
		logger = slog.Default()
	}
	return &Catalog{log: logger, now: time.Now}
}

// Status reports every skill of the workspace, valid or not.
func (c *Catalog) Status(ws string) Report {
	s := c.current(ws)
	r := s.report
	// Empty lists, never null: clients iterate them (OpenClaw's CLI and
	// the page alike).
	r.Skills = make([]Skill, len(s.report.Skills))
	for i, sk := range s.report.Skills {
		if sk.Problems == nil {
			sk.Problems = []string{}
		}
		r.Skills[i] = sk
	}
	if r.Problems == nil {
		r.Problems = []string{}
	}
	return r
}

// Prompt is the system prompt's skills section for the workspace ("" when
// it offers none).
func (c *Catalog) Prompt(ws string) string { return c.current(ws).prompt }

func (c *Catalog) current(ws string) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.snap; s != nil && s.ws == ws && s.fresh(c.now()) {
		return s
	}
	s := c.scan(ws)
	c.snap = s
	c.scans++
	// One line per scan, however many skills are broken; skills.status
	// has the details.
	var bad []Skill
	for _, sk := range s.report.Skills {
		if len(sk.Problems) > 0 {
			bad = append(bad, sk)
		}
	}
	if len(bad) > 0 || len(s.report.Problems) > 0 {
		attrs := []any{"workspace", ws, "notOffered", len(bad)}
		if len(bad) > 0 {
			attrs = append(attrs, "first", bad[0].Problems[0])
		}
		if len(s.report.Problems) > 0 {
			attrs = append(attrs, "directory", strings.Join(s.report.Problems, "; "))
		}
		c.log.Warn("skills with problems are not offered to the model; skills.status lists them", attrs...)
	}
	return s
}

// fresh: nothing the scan saw has changed, and nothing it saw had changed
// within racyWindow of it.
func (s *snapshot) fresh(now time.Time) bool {
	for _, st := range s.stamps {
		fi, err := os.Stat(st.path)
		switch {
		case err != nil:
			if st.fi != nil {
				return false
			}
		case st.fi == nil, !os.SameFile(st.fi, fi), !fi.ModTime().Equal(st.fi.ModTime()),
			fi.Size() != st.fi.Size(), fi.Mode() != st.fi.Mode():
			return false
		case !st.fi.ModTime().Before(s.scannedAt.Add(-racyWindow)):
			return false
		}
	}
	return true
}

// scan reads the skills directory afresh.
func (c *Catalog) scan(ws string) *snapshot {
	s := &snapshot{ws: ws, scannedAt: c.now(),
		report: Report{WorkspaceDir: ws, Skills: []Skill{}, Problems: []string{}}}
	r := &s.report
	seen := func(p string) {
		fi, err := os.Stat(p)
		if err != nil {
			fi = nil
		}
		s.stamps = append(s.stamps, stamp{path: p, fi: fi})
	}
	wsAbs, err := filepath.Abs(ws)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("resolving the workspace %s: %v", ws, err))
		return s
	}
	dir := filepath.Join(wsAbs, "skills")
	seen(dir)
	wsReal, err := filepath.EvalSymlinks(wsAbs)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.Problems = append(r.Problems, fmt.Sprintf("resolving the workspace %s: %v", ws, err))
		}
		return s // no workspace yet, so no skills
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return s
	}
	dirReal, err := tools.RealPath(dir)
	switch {
	case err != nil:
		r.Problems = append(r.Problems, fmt.Sprintf("resolving %s: %v", dir, err))
		return s
	case !tools.Within(wsReal, dirReal):
		r.Problems = append(r.Problems, fmt.Sprintf("%s is a symlink to %s, outside the workspace %s; skills are read only from inside the workspace, so move them into it", dir, dirReal, wsReal))
		return s
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("listing %s: %v", dir, err))
		return s
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	if len(names) > MaxEntries {
		r.Problems = append(r.Problems, fmt.Sprintf("%s has %d entries; only the first %d (by name) are looked at, so remove skills you do not use", dir, len(names), MaxEntries))
		names = names[:MaxEntries]
	}
	hidden := map[int]bool{} // disable-model-invocation, by index in r.Skills
	for _, name := range names {
		base := filepath.Join(dir, name)
		if fi, err := os.Stat(base); err == nil && !fi.IsDir() {
			continue // a README or other file beside the skills
		}
		// The SKILL.md's own stamp is enough: its appearing, going,
		// changing or being replaced through a retargeted link all show
		// there, and entries coming and going show on skills/ itself.
		file := filepath.Join(base, "SKILL.md")
		seen(file)
		sk := Skill{Name: name, Source: SourceWorkspace, FilePath: file, BaseDir: base,
			rel: "skills/" + name + "/SKILL.md", Problems: []string{}}
		fm, err := readSkill(wsReal, base, file)
		if err != nil {
			sk.Problems = append(sk.Problems, err.Error())
		} else {
			var probs []string
			sk.Name, sk.Description, probs = Validate(fm, name)
			sk.Problems = append(sk.Problems, probs...)
			hidden[len(r.Skills)] = fm.DisableModelInvocation
		}
		r.Skills = append(r.Skills, sk)
	}
	// A name belongs to the skill in the directory of that name, else to
	// the first by directory; the others are refused, so which skill the
	// model reads never depends on chance.
	owner := map[string]int{}
	for i, sk := range r.Skills {
		if len(sk.Problems) > 0 {
			continue
		}
		if j, ok := owner[sk.Name]; !ok || (filepath.Base(sk.BaseDir) == sk.Name && filepath.Base(r.Skills[j].BaseDir) != sk.Name) {
			owner[sk.Name] = i
		}
	}
	valid := 0
	for i := range r.Skills {
		sk := &r.Skills[i]
		if len(sk.Problems) > 0 {
			continue
		}
		switch j := owner[sk.Name]; {
		case j != i:
			sk.Problems = append(sk.Problems, fmt.Sprintf("the name %q is already used by %s, which is offered; give each skill its own name", sk.Name, r.Skills[j].rel))
		case valid >= MaxSkills:
			sk.Problems = append(sk.Problems, fmt.Sprintf("the workspace already offers %d skills, the limit; remove skills you do not use", MaxSkills))
		default:
			valid++
			sk.Eligible = true
			sk.ModelVisible = !hidden[i]
		}
	}
	sort.SliceStable(r.Skills, func(i, j int) bool { return r.Skills[i].Name < r.Skills[j].Name })
	s.prompt = renderPrompt(r.Skills)
	return s
}

// readSkill reads and parses one SKILL.md, refusing one that leads out of
// the workspace through a symlink, as the file tools would.
func readSkill(wsReal, base, file string) (Frontmatter, error) {
	real, err := tools.RealPath(file)
	if err != nil {
		return Frontmatter{}, fmt.Errorf("resolving %s: %w", file, err)
	}
	if !tools.Within(wsReal, real) {
		return Frontmatter{}, fmt.Errorf("%s leads outside the workspace %s (through a symlink, to %s); skills are read only from inside the workspace, so copy the skill in instead of linking it", file, wsReal, real)
	}
	// A FIFO named SKILL.md must not hang the turn: OpenRegular refuses it.
	f, fi, err := regularfile.Open(real)
	if errors.Is(err, fs.ErrNotExist) {
		return Frontmatter{}, fmt.Errorf("%s has no SKILL.md; a skill is skills/<name>/SKILL.md (skills nested deeper are not looked for)", base)
	}
	if err != nil {
		return Frontmatter{}, fmt.Errorf("reading %s: %w", file, err)
	}
	defer f.Close()
	if fi.Size() > MaxFileBytes {
		return Frontmatter{}, tooLarge(file, fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return Frontmatter{}, fmt.Errorf("reading %s: %w", file, err)
	}
	if len(data) > MaxFileBytes { // it grew since the stat
		return Frontmatter{}, tooLarge(file, int64(len(data)))
	}
	fm, err := ParseFrontmatter(data)
	if err != nil {
		return Frontmatter{}, fmt.Errorf("%s: %w", file, err)
	}
	return fm, nil
}

func tooLarge(file string, n int64) error {
	return fmt.Errorf("%s is %d bytes or more; the limit is %d: move details into other files in the skill's directory and point to them from SKILL.md", file, n, MaxFileBytes)
}

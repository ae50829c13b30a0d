package tools

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Refusal kinds for paths, as Details["error"] names them.
var (
	// errEscape marks a path refused for leaving the workspace.
	errEscape = errors.New("outside the workspace")
	// errProtected marks the gateway's own config file and state directory.
	errProtected = errors.New("off limits")
)

// protectedPaths are the gateway's config file and state directory, each as
// given and with symlinks resolved (a Koi's ~/.skykoi is a link into the
// data volume): a path is compared with both, so neither spelling gets past.
type protectedPaths struct {
	config []string
	state  []string
	// wsInState: the workspace is below the state directory (the test
	// harness's layout). The workspace's own subtree is then the agent's;
	// the rest of the state directory stays protected.
	wsInState bool
}

func newProtectedPaths(ws, config, state string) (protectedPaths, error) {
	var pp protectedPaths
	both := func(p string) ([]string, error) {
		if p == "" {
			return nil, nil
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out := []string{abs}
		if real, err := evalExisting(abs); err == nil && real != abs {
			out = append(out, real)
		}
		return out, nil
	}
	var err error
	if pp.config, err = both(config); err != nil {
		return pp, fmt.Errorf("tools: config path: %w", err)
	}
	if pp.state, err = both(state); err != nil {
		return pp, fmt.Errorf("tools: state directory: %w", err)
	}
	for _, st := range pp.state {
		if ws == st {
			return pp, fmt.Errorf("tools: the workspace %s is the gateway's state directory, which the tools never touch; set agents.defaults.workspace to a directory of its own", ws)
		}
		if within(st, ws) {
			pp.wsInState = true
		}
	}
	return pp, nil
}

// check refuses real (absolute, symlinks resolved) when it is the config file
// or in the state directory.
func (pp protectedPaths) check(ws, real string) error {
	if slices.Contains(pp.config, real) {
		return fmt.Errorf("%w: it is the gateway's config file; the file tools never touch it, whatever tools.exec.security is (the person changes the config, e.g. with skykoi config or the control UI)", errProtected)
	}
	for _, st := range pp.state {
		if within(st, real) && !(pp.wsInState && within(ws, real)) {
			return fmt.Errorf("%w: it is in the gateway's state directory %s (paired devices, sessions); the file tools never touch it, whatever tools.exec.security is", errProtected, st)
		}
	}
	return nil
}

// resolvePath turns a path from the model into the real absolute path to act
// on, or refuses it. op ("write", "exec workdir", "redirection >", …) and p
// open the error, so the model sees which path broke which rule. Relative
// paths resolve in base: the workspace for the file tools, the command's
// workdir for a redirection.
//
// The rules, checked on the path with every symlink resolved (on the longest
// prefix that exists, so a file yet to be created is judged by its deepest
// existing parent):
//   - the gateway's config file and state directory are refused in every
//     mode: writing them would let the model raise its own
//     tools.exec.security or pair a device of its choosing;
//   - relative paths stay in the workspace: "../x" or a symlink out of it is
//     a mistake or a trick in some file the model read, never an intention;
//   - unless tools.exec.security is "full", absolute paths (and ~/…) must be
//     in the workspace too. With "full" the agent already has the person's
//     shell, so refusing /etc or ~/.bashrc to the file tools would protect
//     nothing.
//
// The returned path is the real file (writes replace the target, not the
// link). Between this check and the operation another process could swap a
// directory for a symlink; read and edit re-check the file they actually
// opened and write works through a handle on the checked directory (see
// openChecked and replaceFile), which leaves only the directories write
// creates itself.
func (s *Set) resolvePath(op, p, base string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%s: path is empty", op)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%s: path contains a NUL byte", op)
	}
	relative := isRelative(p)
	var abs string
	switch {
	case relative:
		abs = filepath.Join(base, p)
	case p == "~" || strings.HasPrefix(p, "~/"):
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%s %s: resolving ~: %w", op, p, err)
		}
		abs = filepath.Join(home, p[1:])
	default:
		abs = filepath.Clean(p)
	}
	real, err := evalExisting(abs)
	if err != nil {
		return "", fmt.Errorf("%s %s: resolving the path: %w", op, p, err)
	}
	for _, cand := range []string{abs, real} {
		if err := s.protect.check(s.ws, cand); err != nil {
			return "", fmt.Errorf("%s %s: %w", op, p, err)
		}
	}
	if err := s.confine(op, p, abs, real, relative); err != nil {
		return "", err
	}
	return real, nil
}

// confine applies the workspace rules of resolvePath to one path.
func (s *Set) confine(op, p, abs, real string, relative bool) error {
	via := ""
	if real != abs {
		via = " (through a symlink, to " + real + ")"
	}
	switch {
	case relative && !within(s.ws, abs):
		return fmt.Errorf("%s %s: %w %s: it resolves to %s; relative paths stay in the workspace (give an absolute path if you mean one)", op, p, errEscape, s.ws, abs)
	case relative && !within(s.ws, real):
		return fmt.Errorf("%s %s: %w %s%s; relative paths stay in the workspace", op, p, errEscape, s.ws, via)
	case s.confined && !within(s.ws, real):
		return fmt.Errorf("%s %s: %w %s%s; file tools are confined to the workspace unless tools.exec.security is \"full\"", op, p, errEscape, s.ws, via)
	}
	return nil
}

// recheck applies resolvePath's rules again to the real path of something
// already opened (see fdPath), closing the window between check and use.
func (s *Set) recheck(op, p, real string) error {
	if err := s.protect.check(s.ws, real); err != nil {
		return fmt.Errorf("%s %s: %w", op, p, err)
	}
	if (s.confined || isRelative(p)) && !within(s.ws, real) {
		return fmt.Errorf("%s %s: %w %s: it was replaced while being opened and now leads to %s", op, p, errEscape, s.ws, real)
	}
	return nil
}

// isRelative: p is resolved against a base directory (~ and ~/… are not;
// "~x" is, as bash's ~user is not supported).
func isRelative(p string) bool {
	return !filepath.IsAbs(p) && p != "~" && !strings.HasPrefix(p, "~/")
}

// fdPath is where an open file really is, from /proc/self/fd. ok is false
// where /proc is not mounted; the check before opening is all there is then.
func fdPath(f *os.File) (string, bool) {
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil || !filepath.IsAbs(p) {
		return "", false
	}
	return p, true
}

// evalExisting resolves symlinks in the longest existing prefix of the
// absolute, clean path p and appends the part that does not exist yet.
func evalExisting(p string) (string, error) {
	var missing []string
	cur := p
	for {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			slices.Reverse(missing)
			return filepath.Join(append([]string{r}, missing...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if fi, lerr := os.Lstat(cur); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			// A dangling link: where it would lead cannot be checked until
			// its target exists, so refuse rather than guess.
			target, _ := os.Readlink(cur)
			return "", fmt.Errorf("%s is a symlink to %q, which does not exist", cur, target)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		missing = append(missing, filepath.Base(cur))
		cur = parent
	}
}

// within reports whether p is root or below it; both are absolute and clean.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func pathErrKind(err error) string {
	switch {
	case errors.Is(err, errProtected):
		return "protected_path"
	case errors.Is(err, errEscape):
		return "path_escape"
	}
	return "invalid_path"
}

// ioErrKind is pathErrKind for errors from the file operation itself.
func ioErrKind(err error) string {
	if k := pathErrKind(err); k != "invalid_path" {
		return k
	}
	return "io_error"
}

// Within reports whether the absolute, clean path p is root or below it. It
// is exported so other packages that confine workspace files (skills
// discovery) apply the very rule the file tools do.
func Within(root, p string) bool { return within(root, p) }

// RealPath resolves the symlinks of the absolute, clean path p as the file
// tools do before judging it: a dangling link is an error, a missing tail is
// kept as given.
func RealPath(p string) (string, error) { return evalExisting(p) }

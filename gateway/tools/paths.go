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

// errEscape marks a path refused for leaving the workspace.
var errEscape = errors.New("path escapes the workspace")

// resolvePath turns a path from the model into the absolute path to act on.
//
// Relative paths resolve inside the workspace, and must stay there: "../x"
// and symlinks inside the workspace that lead out of it are refused. A model
// that writes a relative path means "in my project", so ending up elsewhere is
// a mistake or a trick in some file it read, never an intention.
//
// Absolute paths (and ~/…) are taken as given. A Koi is the person's own
// machine and the agent is expected to look at /etc, ~/.bashrc or logs when
// asked to, as the person could; with exec at security "full" it can anyway.
// (Options.RestrictToWorkspace refuses them, for tests and fuzzing.)
//
// Symlinks are resolved on the longest prefix that exists, so the returned
// path is the real file (writes replace the target, not the link). This
// guards against mistakes and path tricks in model output; it is not a
// sandbox against another local process swapping directories for symlinks
// between this check and the file operation.
func (s *Set) resolvePath(p string) (string, error) {
	if p == "" {
		return "", errors.New("path is empty")
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("path contains a NUL byte")
	}
	relative := false
	var abs string
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("resolving %q: %w", p, err)
		}
		abs = filepath.Join(home, p[1:])
	case filepath.IsAbs(p):
		abs = filepath.Clean(p)
	default:
		relative = true
		abs = filepath.Join(s.ws, p)
		if !within(s.ws, abs) {
			return "", fmt.Errorf("%w: %q resolves to %s, outside %s", errEscape, p, abs, s.ws)
		}
	}
	if s.restrict && !relative && !within(s.ws, abs) {
		return "", fmt.Errorf("%w: %q is outside %s and absolute paths are restricted to the workspace", errEscape, p, s.ws)
	}
	real, err := evalExisting(abs)
	if err != nil {
		return "", fmt.Errorf("resolving %q: %w", p, err)
	}
	if (relative || s.restrict) && !within(s.ws, real) {
		return "", fmt.Errorf("%w: %q leads through a symlink to %s, outside %s", errEscape, p, real, s.ws)
	}
	return real, nil
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

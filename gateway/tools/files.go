package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// sniffLen is how much of a file's start is checked for NUL bytes to call it
// binary (the same rule git and grep use).
const sniffLen = 8000

// openRegular opens p (from resolvePath; shown is the path as the model gave
// it) for reading and makes sure it is a regular file that still passes the
// path rules: the check runs again on the file actually opened, so swapping a
// directory for a symlink after resolvePath gains nothing.
// O_NONBLOCK keeps a FIFO from blocking the open until a writer appears;
// the type check then refuses it (and devices like /dev/zero, which would
// never end).
func (s *Set) openRegular(tool, shown, p string) (*os.File, fs.FileInfo, *Result) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		r := fileFailure(tool, p, err)
		return nil, nil, &r
	}
	if real, ok := fdPath(f); ok {
		if err := s.recheck(tool, shown, real); err != nil {
			f.Close()
			r := failure(pathErrKind(err), "%v", err)
			return nil, nil, &r
		}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		r := failure("io_error", "%s: %s: %v", tool, p, err)
		return nil, nil, &r
	}
	if fi.IsDir() {
		f.Close()
		r := failure("is_directory", "%s: %s is a directory, not a file (list a directory with exec, e.g. ls -la)", tool, p)
		return nil, nil, &r
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		r := failure("not_regular", "%s: %s is not a regular file (%s); only regular files can be used", tool, p, fi.Mode().Type())
		return nil, nil, &r
	}
	return f, fi, nil
}

// mkdirChecked creates dir (from resolvePath) and its missing parents through
// an os.Root on the deepest parent that exists, after checking where that
// parent really is: the new directories land where the check said they
// would.
func (s *Set) mkdirChecked(tool, shown, dir string) error {
	anc := dir
	for {
		if fi, err := os.Stat(anc); err == nil && fi.IsDir() {
			break
		}
		parent := filepath.Dir(anc)
		if parent == anc {
			return fmt.Errorf("%s: no existing parent directory for %s", tool, dir)
		}
		anc = parent
	}
	if anc == dir {
		return nil
	}
	root, err := os.OpenRoot(anc)
	if err != nil {
		return fmt.Errorf("%s: opening %s: %w", tool, anc, err)
	}
	defer root.Close()
	rel, err := filepath.Rel(anc, dir)
	if err != nil {
		return fmt.Errorf("%s: creating parent directories of %s: %w", tool, dir, err)
	}
	if d, err := root.Open("."); err == nil {
		real, ok := fdPath(d)
		d.Close()
		if ok {
			if err := s.recheck(tool, shown, filepath.Join(real, rel)); err != nil {
				return err
			}
		}
	}
	if err := root.MkdirAll(rel, 0o755); err != nil {
		return fmt.Errorf("%s: creating parent directories of %s: %w", tool, dir, err)
	}
	return nil
}

// replaceFile atomically replaces p (from resolvePath) with data, like
// atomicfile.Write, but through an os.Root on p's directory: the directory
// is checked again once opened, and the temp file and the rename happen
// inside that very directory even if its path is swapped for a symlink
// meanwhile. A symlink swapped in for p itself is replaced, not followed.
func (s *Set) replaceFile(tool, shown, p string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(p)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("%s: opening %s: %w", tool, dir, err)
	}
	defer root.Close()
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("%s: opening %s: %w", tool, dir, err)
	}
	defer d.Close()
	if real, ok := fdPath(d); ok {
		if err := s.recheck(tool, shown, filepath.Join(real, base)); err != nil {
			return err
		}
	}
	stem := base
	if len(stem) > 200 {
		// Keep ".<stem>.tmp-<n>" under NAME_MAX; a cut inside a UTF-8
		// sequence is harmless in a name nobody reads.
		stem = stem[:200]
	}
	var tmp string
	var f *os.File
	for range 100 {
		tmp = fmt.Sprintf(".%s.tmp-%016x", stem, rand.Uint64())
		f, err = root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%s: creating a temp file in %s: %w", tool, dir, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("%s: writing %s: %w", tool, p, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("%s: writing %s: %w", tool, p, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("%s: writing %s: %w", tool, p, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("%s: writing %s: %w", tool, p, err)
	}
	if err = root.Rename(tmp, base); err != nil {
		return fmt.Errorf("%s: writing %s: %w", tool, p, err)
	}
	// The rename itself survives a power cut only once the directory is
	// synced.
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: syncing %s: %w", tool, dir, err)
	}
	return nil
}

func fileFailure(tool, p string, err error) Result {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failure("not_found", "%s: file not found: %s", tool, p)
	case errors.Is(err, fs.ErrPermission):
		return failure("permission_denied", "%s: permission denied: %s", tool, p)
	}
	return failure("io_error", "%s: %v", tool, err)
}

var readFields = []string{"path", "offset", "limit"}

func (s *Set) readTool(input json.RawMessage) Result {
	a, err := parseArgs("read", input, readFields...)
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	path, _ := a.str("path", true)
	offset := a.integer("offset", 1, math.MaxInt64, 1)
	limit := a.integer("limit", 1, math.MaxInt64, 0)
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	p, err := s.resolvePath("read", path, s.ws)
	if err != nil {
		return failure(pathErrKind(err), "%v", err)
	}
	f, fi, fail := s.openRegular("read", path, p)
	if fail != nil {
		return *fail
	}
	defer f.Close()

	// Walk the file line by line in chunks, keeping only the requested lines
	// and at most maxOut bytes of them: a huge file costs reading time, not
	// memory.
	var (
		out          []byte
		lineStartOut int   // where the current line begins in out
		line         int64 = 1
		pos          int64 // bytes consumed
		first, last  int64 // line numbers shown
		lastByte     byte
		stop         string // why reading ended early: "limit", "cap", "readcap"
		cutLine      bool   // the only line shown was too long and was cut
	)
	r := io.LimitReader(f, s.maxRead)
	buf := make([]byte, readChunk)
scan:
	for {
		n, rerr := r.Read(buf)
		chunk := buf[:n]
		if pos < sniffLen && bytes.IndexByte(chunk[:min(int64(n), sniffLen-pos)], 0) >= 0 {
			return failure("binary", "read: %s looks like a binary file (it contains NUL bytes); read only shows text", p)
		}
		for len(chunk) > 0 {
			seg := chunk
			nl := bytes.IndexByte(chunk, '\n')
			if nl >= 0 {
				seg = chunk[:nl+1]
			}
			if limit > 0 && line >= offset+limit {
				stop = "limit"
				break scan
			}
			if line >= offset {
				if bytes.IndexByte(seg, 0) >= 0 {
					return failure("binary", "read: %s contains NUL bytes at line %d, so it is not a text file; read only shows text", p, line)
				}
				if len(out)+len(seg) > s.maxOut {
					stop = "cap"
					if lineStartOut > 0 {
						// Whole lines only: the reader continues from here.
						out = out[:lineStartOut]
						last = line - 1
					} else {
						room := s.maxOut - len(out)
						out = append(out, seg[:room]...)
						out = out[:len(out)-incompleteSuffix(out)]
						first, last, cutLine = line, line, true
					}
					break scan
				}
				out = append(out, seg...)
				if first == 0 {
					first = line
				}
				last = line
			}
			pos += int64(len(seg))
			lastByte = seg[len(seg)-1]
			chunk = chunk[len(seg):]
			if nl >= 0 {
				line++
				lineStartOut = len(out)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return failure("io_error", "read: %s: %v", p, rerr)
		}
	}
	if stop == "" && pos >= s.maxRead {
		var one [1]byte
		if n, _ := f.Read(one[:]); n > 0 {
			stop = "readcap"
		}
	}
	details := map[string]any{"path": p, "size": fi.Size(), "bytes": len(out), "truncated": stop != ""}
	if first == 0 && stop == "" {
		lines := line - 1
		if pos > 0 && lastByte != '\n' {
			lines++
		}
		if offset == 1 {
			details["lines"] = 0
			return Result{Text: "(empty file)", Details: details}
		}
		return failure("invalid_arguments", "read: offset %d is past the end of %s, which has %d lines", offset, p, lines)
	}
	details["firstLine"] = first
	details["lastLine"] = last

	var b strings.Builder
	b.WriteString(strings.ToValidUTF8(string(out), "\uFFFD"))
	note := func(format string, v ...any) {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, format, v...)
	}
	switch stop {
	case "limit":
		note("[showing lines %d-%d; more lines follow: continue with offset=%d]", first, last, last+1)
		details["nextOffset"] = last + 1
	case "cap":
		if cutLine {
			note("[line %d is longer than the %d-character output limit and was cut; the next line is offset=%d]", first, s.maxOut, first+1)
		} else {
			note("[truncated at the %d-character output limit: showing lines %d-%d; continue with offset=%d]", s.maxOut, first, last, last+1)
		}
		details["nextOffset"] = last + 1
	case "readcap":
		note("[stopped after the first %d bytes of this %d-byte file, the read limit; use exec (e.g. tail or sed -n) for the rest]", s.maxRead, fi.Size())
	}
	if b.Len() == 0 {
		// Only empty lines were asked for, which is still an answer.
		b.WriteString("(empty lines)")
	}
	return Result{Text: b.String(), Details: details}
}

var writeFields = []string{"path", "content"}

func (s *Set) writeTool(input json.RawMessage) Result {
	a, err := parseArgs("write", input, writeFields...)
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	path, _ := a.str("path", true)
	content, _ := a.str("content", true)
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	if int64(len(content)) > s.maxWrite {
		return failure("too_large", "write: content is %d bytes; the limit is %d", len(content), s.maxWrite)
	}
	p, err := s.resolvePath("write", path, s.ws)
	if err != nil {
		return failure(pathErrKind(err), "%v", err)
	}
	mode := fs.FileMode(0o644)
	created := true
	fi, err := os.Stat(p)
	switch {
	case err == nil && fi.IsDir():
		return failure("is_directory", "write: %s is a directory", p)
	case err == nil && !fi.Mode().IsRegular():
		return failure("not_regular", "write: %s is not a regular file (%s)", p, fi.Mode().Type())
	case err == nil:
		mode, created = fi.Mode().Perm(), false
	case !errors.Is(err, fs.ErrNotExist):
		return fileFailure("write", p, err)
	}
	if err := s.mkdirChecked("write", path, filepath.Dir(p)); err != nil {
		return failure(ioErrKind(err), "%v", err)
	}
	if err := s.replaceFile("write", path, p, []byte(content), mode); err != nil {
		return failure(ioErrKind(err), "%v", err)
	}
	verb := "Overwrote"
	if created {
		verb = "Created"
	}
	return Result{
		Text:    fmt.Sprintf("%s %s (%d bytes).", verb, p, len(content)),
		Details: map[string]any{"path": p, "bytes": len(content), "created": created},
	}
}

var editFields = []string{"path", "oldText", "newText", "replaceAll"}

func (s *Set) editTool(input json.RawMessage) Result {
	a, err := parseArgs("edit", input, editFields...)
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	path, _ := a.str("path", true)
	oldText, hasOld := a.str("oldText", true)
	newText, _ := a.str("newText", true)
	replaceAll := a.boolean("replaceAll")
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	if hasOld && oldText == "" {
		return failure("invalid_arguments", "invalid arguments for edit: field \"oldText\" is empty; give the exact text to replace (use write to create or replace a whole file)")
	}
	if oldText == newText {
		return failure("invalid_arguments", "invalid arguments for edit: oldText and newText are the same; nothing would change")
	}
	p, err := s.resolvePath("edit", path, s.ws)
	if err != nil {
		return failure(pathErrKind(err), "%v", err)
	}
	f, fi, fail := s.openRegular("edit", path, p)
	if fail != nil {
		return *fail
	}
	data, err := io.ReadAll(io.LimitReader(f, s.maxRead+1))
	f.Close()
	if err != nil {
		return failure("io_error", "edit: reading %s: %v", p, err)
	}
	if int64(len(data)) > s.maxRead {
		return failure("too_large", "edit: %s is larger than the %d-byte limit for editing", p, s.maxRead)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return failure("binary", "edit: %s contains NUL bytes, so it is not a text file; edit only changes text", p)
	}
	content := string(data)
	n := strings.Count(content, oldText)
	switch {
	case n == 0:
		hint := ""
		if strings.Contains(content, "\r\n") && strings.Contains(oldText, "\n") &&
			strings.Contains(content, strings.ReplaceAll(oldText, "\n", "\r\n")) {
			hint = " (the file uses CRLF line endings; include the \\r before each \\n)"
		}
		return failure("not_found", "edit: oldText was not found in %s%s; read the file and copy the text exactly, including whitespace", p, hint)
	case n > 1 && !replaceAll:
		return failure("ambiguous", "edit: oldText occurs %d times in %s; include more surrounding text so it matches exactly once, or set replaceAll to true", n, p)
	}
	count := 1
	if replaceAll {
		count = -1
	}
	updated := strings.Replace(content, oldText, newText, count)
	if int64(len(updated)) > s.maxWrite {
		return failure("too_large", "edit: the result would be %d bytes; the limit is %d", len(updated), s.maxWrite)
	}
	if err := s.replaceFile("edit", path, p, []byte(updated), fi.Mode().Perm()); err != nil {
		return failure(ioErrKind(err), "%v", err)
	}
	replaced := 1
	if replaceAll {
		replaced = n
	}
	word := "occurrences"
	if replaced == 1 {
		word = "occurrence"
	}
	return Result{
		Text:    fmt.Sprintf("Replaced %d %s in %s (now %d bytes).", replaced, word, p, len(updated)),
		Details: map[string]any{"path": p, "replacements": replaced, "bytes": len(updated)},
	}
}

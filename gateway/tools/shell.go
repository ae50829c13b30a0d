package tools

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// checkAllowlist decides whether bash may run line under security
// "allowlist": every simple command in it (pipelines and lists split on |, |&,
// &&, ||, ;, & and newlines) must start with a program on the list, named
// exactly as listed (a bare name, or an absolute path).
//
// It reads the command the way bash would only as far as needed to find the
// command words, and refuses whatever could run something it cannot see:
// command and process substitution, ( ) subshells, and command words built
// from quotes-with-expansions, variables, globs, braces or ~. Being stricter
// than bash costs a refused command the model can rephrase; being looser
// would run a program nobody allowed. Comments are not recognised, so text
// after # is checked as commands too (stricter, never looser).
//
// Every redirection that names a file (>, >>, >|, <, <>, &>, &>>, n>, >&file)
// is passed to target with its operator and the file as bash will open it;
// the target must be a plain word (no $, globs, braces or ~), since what it
// expands to is what bash opens. /dev/null and the standard streams are
// let through without asking. Here-documents (<<, <<-) and here-strings
// (<<<) name no file, and n>&m only duplicates a descriptor. Files a program
// opens because of its arguments (tee f, cp a b, sed -i) are beyond what
// this can see: that is the allowlisted program's own power.
func checkAllowlist(line string, allow []string, target func(op, path string) error) error {
	for _, bad := range []struct{ seq, what string }{
		{"$(", "command substitution $(…)"},
		{"`", "command substitution with backticks"},
		{"<(", "process substitution <(…)"},
		{">(", "process substitution >(…)"},
	} {
		// Anywhere, even inside single quotes or a here-document: telling
		// those apart reliably needs a full bash parser, and a false refusal
		// is cheap.
		if strings.Contains(line, bad.seq) {
			return fmt.Errorf("%s is not allowed with tools.exec.security \"allowlist\": it would run commands the allowlist cannot check", bad.what)
		}
	}
	toks, err := shellTokens(line)
	if err != nil {
		return err
	}
	commands := 0
	inSegment, haveCmd, wantTarget := false, false, false
	redirOp := ""
	endSegment := func() error {
		if wantTarget {
			return fmt.Errorf("a redirection has no target")
		}
		if inSegment && !haveCmd {
			return fmt.Errorf("a redirection without a command is not allowed with tools.exec.security \"allowlist\"")
		}
		inSegment, haveCmd = false, false
		return nil
	}
	for _, t := range toks {
		switch t.kind {
		case tokSeparator:
			if err := endSegment(); err != nil {
				return err
			}
		case tokRedirect:
			if wantTarget {
				return fmt.Errorf("a redirection has no target")
			}
			inSegment, wantTarget, redirOp = true, true, t.raw
		case tokWord:
			inSegment = true
			if wantTarget {
				wantTarget = false
				if err := checkRedirectTarget(redirOp, t, target); err != nil {
					return err
				}
				continue
			}
			if haveCmd {
				continue // an argument
			}
			haveCmd = true
			commands++
			if err := allowedProgram(t, allow); err != nil {
				return err
			}
		}
	}
	if err := endSegment(); err != nil {
		return err
	}
	if commands == 0 {
		return fmt.Errorf("no command found to check against tools.exec.allowlist")
	}
	return nil
}

// streamFiles are redirection targets that are no file of anyone's.
var streamFiles = []string{"/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"}

func checkRedirectTarget(op string, t shellToken, target func(op, path string) error) error {
	switch op {
	case "<<", "<<-", "<<<":
		return nil // a here-document's delimiter or a here-string's text
	case ">&", "<&":
		// n>&m, n>&- and n>&m- duplicate or close descriptors; any other
		// word after >& is a file, as with &>.
		if w := strings.TrimSuffix(t.word, "-"); !t.special && strings.Trim(w, "0123456789") == "" {
			return nil
		}
	}
	if t.special {
		return fmt.Errorf("redirection %s %q: the target is not a plain path (variables, globs, braces and ~ are not allowed in redirection targets with tools.exec.security \"allowlist\"; write the path out)", op, clip(t.raw, 60))
	}
	if slices.Contains(streamFiles, t.word) {
		return nil
	}
	if target == nil {
		return nil
	}
	return target(op, t.word)
}

func allowedProgram(t shellToken, allow []string) error {
	if t.special {
		if strings.Contains(t.raw, "=") && !strings.ContainsAny(t.raw, "$*?[{~") {
			return fmt.Errorf("variable assignment %q before a command is not allowed with tools.exec.security \"allowlist\"", clip(t.raw, 60))
		}
		return fmt.Errorf("command %q is not a plain program name (variables, globs, braces, ~ or $'…' are not allowed in the command position with tools.exec.security \"allowlist\")", clip(t.raw, 60))
	}
	name := t.word
	if strings.Contains(name, "=") {
		return fmt.Errorf("variable assignment %q before a command is not allowed with tools.exec.security \"allowlist\"", clip(t.raw, 60))
	}
	if strings.Contains(name, "/") {
		if filepath.IsAbs(name) && slices.Contains(allow, filepath.Clean(name)) {
			return nil
		}
	} else if slices.Contains(allow, name) {
		return nil
	}
	listed := "it is empty"
	if len(allow) > 0 {
		listed = "allowed: " + strings.Join(allow, ", ")
	}
	return fmt.Errorf("command %q is not in tools.exec.allowlist (%s)", clip(name, 60), listed)
}

type tokKind int

const (
	tokWord tokKind = iota
	tokSeparator
	tokRedirect
)

type shellToken struct {
	kind tokKind
	word string // the word with quotes and escapes removed
	raw  string // as written
	// special: the word may expand to something other than word (an
	// unquoted or double-quoted $, a glob, brace or tilde character, or an
	// '=' that makes it an assignment).
	special bool
}

// shellTokens splits line into words, separators and redirection operators.
func shellTokens(line string) ([]shellToken, error) {
	var toks []shellToken
	var word, raw strings.Builder
	inWord, special := false, false
	flush := func() {
		if inWord {
			toks = append(toks, shellToken{kind: tokWord, word: word.String(), raw: raw.String(), special: special})
		}
		word.Reset()
		raw.Reset()
		inWord, special = false, false
	}
	sep := func(op string) {
		flush()
		toks = append(toks, shellToken{kind: tokSeparator, raw: op})
	}
	redirect := func(op string) {
		// A word of digits right before the operator (2>) names a file
		// descriptor, not a command. ({fd}> is not recognised, so such a
		// word is checked as a command and refused.)
		if inWord && !special {
			w := word.String()
			if w != "" && strings.Trim(w, "0123456789") == "" && raw.String() == w {
				word.Reset()
				raw.Reset()
				inWord = false
			}
		}
		flush()
		toks = append(toks, shellToken{kind: tokRedirect, raw: op})
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		next := byte(0)
		if i+1 < len(line) {
			next = line[i+1]
		}
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\n':
			sep("\n")
		case c == '\\':
			if next == '\n' {
				i++ // line continuation: bash removes both
				continue
			}
			inWord = true
			raw.WriteByte(c)
			if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
				raw.WriteByte(line[i])
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			inWord = true
			word.WriteString(line[i+1 : i+1+end])
			raw.WriteString(line[i : i+2+end])
			i += 1 + end
		case c == '"':
			inWord = true
			raw.WriteByte(c)
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				switch line[j] {
				case '\\':
					if j+1 < len(line) && strings.IndexByte("$`\"\\\n", line[j+1]) >= 0 {
						raw.WriteByte('\\')
						j++
					}
				case '$':
					special = true
				}
				word.WriteByte(line[j])
				raw.WriteByte(line[j])
			}
			if j >= len(line) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			raw.WriteByte('"')
			i = j
		case c == '(' || c == ')':
			return nil, fmt.Errorf("( ) subshells and grouping are not allowed with tools.exec.security \"allowlist\"")
		case c == ';':
			sep(";")
		case c == '&':
			switch next {
			case '&':
				i++
				sep("&&")
			case '>':
				i++
				op := "&>"
				if i+1 < len(line) && line[i+1] == '>' {
					i++
					op = "&>>"
				}
				redirect(op)
			default:
				sep("&")
			}
		case c == '|':
			switch next {
			case '|', '&':
				i++
				sep("|" + string(next))
			default:
				sep("|")
			}
		case c == '<' || c == '>':
			op := string(c)
			for _, long := range []string{"<<<", "<<-", "<<", "<&", "<>", ">>", ">&", ">|"} {
				if strings.HasPrefix(line[i:], long) {
					op = long
					break
				}
			}
			i += len(op) - 1
			redirect(op)
		default:
			inWord = true
			if strings.IndexByte("$*?[]{}~=", c) >= 0 {
				special = true
			}
			word.WriteByte(c)
			raw.WriteByte(c)
		}
	}
	flush()
	return toks, nil
}

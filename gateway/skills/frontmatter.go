package skills

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Frontmatter is what a SKILL.md declares about itself between its --- lines.
// Keys other than the ones below (metadata, homepage, user-invocable, …) are
// tolerated and ignored, as OpenClaw does: they gate or present skills in
// ways this gateway does not offer, and refusing them would refuse skills
// written for OpenClaw.
type Frontmatter struct {
	Name        string
	Description string
	// DisableModelInvocation (disable-model-invocation: true) keeps the
	// skill out of the system prompt; skills.status still lists it.
	DisableModelInvocation bool
}

// Frontmatter keys with a meaning here.
const (
	keyName         = "name"
	keyDescription  = "description"
	keyDisableModel = "disable-model-invocation"
)

var (
	errNoFrontmatter = errors.New("SKILL.md does not start with YAML frontmatter: its first line must be --- " +
		"followed by name: <name> and description: <one line> and a closing --- line")
	errUnclosed = fmt.Errorf("the frontmatter has no closing --- line within its first %d bytes: "+
		"end it with a line that is just ---", maxFrontmatterBytes)
	errNotUTF8 = errors.New("the frontmatter is not valid UTF-8: save SKILL.md as UTF-8")
)

// ParseFrontmatter reads the frontmatter at the start of a SKILL.md. It
// checks the shape (a --- fenced YAML mapping, name and description as text);
// Validate checks the values against the naming rules.
//
// As OpenClaw does, frontmatter that is not valid YAML is read a second time
// as plain "key: value" lines, so a description like "Use it: for x" still
// works; frontmatter that is neither is refused with the YAML error.
func ParseFrontmatter(data []byte) (Frontmatter, error) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	first, body, hasBody := bytes.Cut(data, []byte("\n"))
	if !isFence(first) {
		return Frontmatter{}, errNoFrontmatter
	}
	var block []byte
	closed := false
	for off := 0; hasBody && off <= len(body) && off <= maxFrontmatterBytes; {
		line, _, more := bytes.Cut(body[off:], []byte("\n"))
		if isFence(line) {
			block, closed = body[:off], true
			break
		}
		if !more {
			break
		}
		off += len(line) + 1
	}
	if !closed {
		return Frontmatter{}, errUnclosed
	}
	if !utf8.Valid(block) {
		return Frontmatter{}, errNotUTF8
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(block, &doc); err != nil {
		// Only a syntax error falls back; YAML of the wrong shape stands.
		if fm, ok := parseLines(block); ok {
			return fm, nil
		}
		return Frontmatter{}, fmt.Errorf("the frontmatter is not valid YAML (%w); quote a value that contains \": \" or starts with a special character", err)
	}
	return fromYAML(&doc)
}

// isFence: the line is --- (trailing blanks and a CR tolerated).
func isFence(line []byte) bool {
	return string(bytes.TrimRight(line, " \t\r")) == "---"
}

// fromYAML reads the keys that matter from the parsed frontmatter. Line
// numbers in its errors count from the top of SKILL.md (the opening --- is
// line 1).
func fromYAML(doc *yaml.Node) (Frontmatter, error) {
	var fm Frontmatter
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return fm, nil // empty frontmatter: Validate says what is missing
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fm, fmt.Errorf("the frontmatter must be YAML keys (name: …, description: …), not a %s", kindName(m.Kind))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			continue // an exotic key is as unknown as any other
		}
		switch k.Value {
		case keyName, keyDescription, keyDisableModel:
		default:
			continue
		}
		if seen[k.Value] {
			return Frontmatter{}, fmt.Errorf("the frontmatter has the key %s twice (line %d and later): keep one", k.Value, k.Line+1)
		}
		seen[k.Value] = true
		switch k.Value {
		case keyName, keyDescription:
			s, err := scalarText(k, v)
			if err != nil {
				return Frontmatter{}, err
			}
			if k.Value == keyName {
				fm.Name = s
			} else {
				fm.Description = s
			}
		case keyDisableModel:
			var b bool
			if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
				return Frontmatter{}, fmt.Errorf("%s (line %d) must be true or false", keyDisableModel, k.Line+1)
			}
			fm.DisableModelInvocation = b
		}
	}
	return fm, nil
}

// scalarText is the text of a name or description value. A YAML number or
// boolean counts as its text (name: 2048 is a fine name); lists and maps do not.
func scalarText(k, v *yaml.Node) (string, error) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s (line %d) must be text, not a %s", k.Value, k.Line+1, kindName(v.Kind))
	}
	if v.Tag == "!!null" {
		return "", nil
	}
	return v.Value, nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return "single value"
	}
	return "YAML node"
}

// lineKey is a plain top-level key of the single-line fallback.
var lineKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// parseLines is the single-line fallback: every non-blank, non-comment line
// is "key: value" at the start of the line. Anything else (indentation, a
// line without a key) fails it, and the YAML error stands.
func parseLines(block []byte) (Frontmatter, bool) {
	var fm Frontmatter
	seen := map[string]bool{}
	for _, line := range strings.Split(string(block), "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !lineKey.MatchString(k) {
			return Frontmatter{}, false
		}
		if seen[k] {
			return Frontmatter{}, false
		}
		seen[k] = true
		v = unquote(strings.TrimSpace(v))
		switch k {
		case keyName:
			fm.Name = v
		case keyDescription:
			fm.Description = v
		case keyDisableModel:
			switch v {
			case "true":
				fm.DisableModelInvocation = true
			case "false", "":
			default:
				return Frontmatter{}, false
			}
		}
	}
	return fm, true
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// namePattern is OpenClaw's naming rule: lowercase letters, digits and
// single hyphens between them.
var namePattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Validate turns parsed frontmatter into the name and one-line description a
// skill is offered under, or the problems that keep it from being offered.
// dirName stands in for a missing name, as in OpenClaw.
func Validate(fm Frontmatter, dirName string) (name, description string, problems []string) {
	name = strings.TrimSpace(fm.Name)
	if name == "" {
		name = dirName
	}
	switch {
	case utf8.RuneCountInString(name) > maxNameLen:
		problems = append(problems, fmt.Sprintf("the name is %d characters long; the limit is %d", utf8.RuneCountInString(name), maxNameLen))
	case !namePattern.MatchString(name):
		problems = append(problems, fmt.Sprintf("the name %q is not a valid skill name: use lowercase letters, digits and single hyphens (like %q)", name, "release-notes"))
	}
	description = oneLine(fm.Description)
	switch n := utf8.RuneCountInString(description); {
	case n == 0:
		problems = append(problems, "the description is missing: add description: <one line saying when to use the skill> to the frontmatter")
	case n > maxDescriptionLen:
		problems = append(problems, fmt.Sprintf("the description is %d characters long; the limit is %d (keep it to one line saying when to use the skill)", n, maxDescriptionLen))
	}
	return name, description, problems
}

// oneLine collapses every run of blanks, line breaks and control characters
// to one space: a description is one line of the prompt's skill list.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

package configgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/skykoi/skykoi/internal/netbreadth"
	"github.com/titanous/json5"
)

// MaxFileSize bounds what Load reads: a config is a few KiB, and a runaway
// file must not make the daemon allocate without limit.
const MaxFileSize = 1 << 20

// Issue is one problem with a config. Path is the dotted key ("" for the whole
// document); Line and Column are set for syntax errors.
type Issue struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
}

func (i Issue) String() string {
	switch {
	case i.Line > 0:
		return fmt.Sprintf("line %d, column %d: %s", i.Line, i.Column, i.Message)
	case i.Path == "":
		return "(root): " + i.Message
	default:
		return i.Path + ": " + i.Message
	}
}

// Error is every problem found in a config, sorted by path.
type Error struct {
	Issues []Issue
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return "invalid config:\n  " + strings.Join(lines, "\n  ")
}

// Load reads and validates the config file at path. A read failure is returned
// as the OS error (wrapped); a bad file as *Error.
func Load(path string) (Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(data)
}

// ReadFile reads a config file no larger than MaxFileSize, without
// validating it.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("reading config %s: larger than the %d-byte limit", path, MaxFileSize)
	}
	return data, nil
}

// Parse validates a JSON5 document against every rule of the schema, using
// the process environment for the secrets that may come from it.
func Parse(data []byte) (Config, error) {
	return ParseEnv(data, os.Getenv)
}

// ParseEnv is Parse with the environment given explicitly.
func ParseEnv(data []byte, getenv func(string) string) (Config, error) {
	doc, iss := decode(data)
	if iss != nil {
		return Config{}, &Error{Issues: []Issue{*iss}}
	}
	v := &validator{getenv: getenv}
	tree := v.value(root, "", doc)
	if m, ok := tree.(map[string]any); ok {
		v.crossChecks(m)
	}
	if len(v.issues) > 0 {
		sort.SliceStable(v.issues, func(i, j int) bool { return v.issues[i].Path < v.issues[j].Path })
		return Config{}, &Error{Issues: capIssues(v.issues)}
	}
	return toConfig(tree)
}

// toConfig moves the validated, defaulted tree into the typed struct. Unknown
// fields are refused so a schema key without a struct field fails loudly.
func toConfig(tree any) (Config, error) {
	raw, err := json.Marshal(tree)
	if err != nil {
		return Config{}, fmt.Errorf("encoding validated config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decoding validated config: %w", err)
	}
	return c, nil
}

// decode reads one JSON5 value and nothing after it. Numbers stay as
// json5.Number so integers are checked exactly.
func decode(data []byte) (doc any, issue *Issue) {
	defer func() {
		// The JSON5 decoder is third-party; a panic on some input must become
		// a config error, never a crashed daemon.
		if r := recover(); r != nil {
			doc, issue = nil, &Issue{Message: fmt.Sprintf("could not parse the file: %v", r)}
		}
	}()
	if !utf8.Valid(data) {
		return nil, &Issue{Message: "the file is not valid UTF-8"}
	}
	// Editors on some systems start files with a byte-order mark.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if skipTrivia(data) == len(data) {
		return nil, &Issue{Message: `the file is empty; it needs at least {gateway: {mode: "local"}}`}
	}
	if iss := checkDepth(data); iss != nil {
		return nil, iss
	}
	r := bytes.NewReader(data)
	dec := json5.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, syntaxIssue(data, err)
	}
	rest, _ := io.ReadAll(io.MultiReader(dec.Buffered(), r))
	if i := skipTrivia(rest); i < len(rest) {
		line, col := lineCol(data[:len(data)-len(rest)+i+1])
		return nil, &Issue{Message: "unexpected content after the top-level object", Line: line, Column: col}
	}
	return doc, nil
}

// maxDepth bounds nesting. The real config is four levels deep; the JSON5
// decoder recurses per level, so a hostile file of a million brackets (from
// config.set, say) would otherwise cost hundreds of MB of stack.
const maxDepth = 64

// checkDepth scans for brackets outside strings and comments and reports the
// first one that nests deeper than maxDepth.
func checkDepth(data []byte) *Issue {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '"', '\'':
			for i++; i < len(data) && data[i] != c; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case '/':
			if i+1 < len(data) && data[i+1] == '/' {
				for i < len(data) && data[i] != '\n' {
					i++
				}
			} else if i+1 < len(data) && data[i+1] == '*' {
				end := bytes.Index(data[i+2:], []byte("*/"))
				if end < 0 {
					return nil // unterminated: the decoder reports it
				}
				i += 2 + end + 1
			}
		case '{', '[':
			if depth++; depth > maxDepth {
				line, col := lineCol(data[:i+1])
				return &Issue{Message: fmt.Sprintf("nesting deeper than %d levels", maxDepth), Line: line, Column: col}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// skipTrivia returns the index of the first byte of b that is neither white
// space nor a comment.
func skipTrivia(b []byte) int {
	i := 0
	for i < len(b) {
		switch {
		case b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r' || b[i] == '\f' || b[i] == '\v':
			i++
		case bytes.HasPrefix(b[i:], []byte("//")):
			nl := bytes.IndexByte(b[i:], '\n')
			if nl < 0 {
				return len(b)
			}
			i += nl + 1
		case bytes.HasPrefix(b[i:], []byte("/*")):
			end := bytes.Index(b[i+2:], []byte("*/"))
			if end < 0 {
				return i
			}
			i += 2 + end + 2
		default:
			r, size := utf8.DecodeRune(b[i:])
			if !unicode.IsSpace(r) && r != '\ufeff' {
				return i
			}
			i += size
		}
	}
	return i
}

func syntaxIssue(data []byte, err error) *Issue {
	var off int64 = int64(len(data))
	msg := err.Error()
	var se *json5.SyntaxError
	var te *json5.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "unexpected end of file (is a bracket, brace or quote left open?)"
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	line, col := lineCol(data[:off])
	return &Issue{Message: msg, Line: line, Column: col}
}

// lineCol gives the 1-based line and column (in characters) of the end of
// prefix, i.e. of the last byte read.
func lineCol(prefix []byte) (line, col int) {
	line = 1 + bytes.Count(prefix, []byte{'\n'})
	last := prefix[bytes.LastIndexByte(prefix, '\n')+1:]
	col = utf8.RuneCount(last)
	if col == 0 {
		col = 1
	}
	return line, col
}

type validator struct {
	getenv func(string) string
	issues []Issue
}

func (v *validator) add(path, format string, args ...any) {
	v.issues = append(v.issues, Issue{Path: shortPath(path), Message: fmt.Sprintf(format, args...)})
}

// Bounds on what a report can hold, so a hostile or runaway file (config.set
// takes text from clients) cannot produce megabytes of errors.
const (
	maxIssues  = 100
	maxPathLen = 200
)

func shortPath(p string) string {
	if len(p) <= maxPathLen {
		return p
	}
	cut := maxPathLen
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return p[:cut] + "…"
}

func capIssues(is []Issue) []Issue {
	if len(is) <= maxIssues {
		return is
	}
	out := append([]Issue(nil), is[:maxIssues-1]...)
	return append(out, Issue{Path: "", Message: fmt.Sprintf("… and %d more problems", len(is)-maxIssues+1)})
}

// value checks x against n and returns its normalized form (objects with
// defaults filled in, integers as int64). The result is only meaningful when
// no issue was added.
func (v *validator) value(n *node, path string, x any) any {
	if n.ignored {
		return nil
	}
	switch n.kind {
	case kindObject:
		return v.object(n, path, x)
	case kindString:
		s, ok := x.(string)
		if !ok {
			v.add(path, "must be a string, got %s", v.got(n, x))
			return nil
		}
		v.format(n, path, s)
		return s
	case kindEnum:
		s, ok := x.(string)
		if !ok || !contains(n.enum, s) {
			if ok && contains(n.unsupported, s) {
				v.add(path, "%q is not supported by SkyKoi: %s", s, n.unsupportedWhy)
				return nil
			}
			if len(n.enum) == 1 {
				v.add(path, "must be %q, got %s", n.enum[0], v.got(n, x))
			} else {
				v.add(path, "must be one of %s; got %s", strings.Join(n.enum, ", "), v.got(n, x))
			}
			return nil
		}
		return s
	case kindBool:
		b, ok := x.(bool)
		if !ok {
			v.add(path, "must be true or false, got %s", v.got(n, x))
		}
		return b
	case kindInt:
		i, ok := asInt(x)
		if !ok || n.min != nil && i < *n.min || n.max != nil && i > *n.max {
			want := intRange(n)
			if n.max == nil && aboveSafe(x) {
				// Otherwise "at least 0, got 9007199254740993" reads as a contradiction.
				want += fmt.Sprintf(" and at most %d", maxSafeInt)
			}
			v.add(path, "must be %s, got %s", want, v.got(n, x))
		}
		return i
	case kindNumber:
		f, ok := asNumber(x)
		if !ok || f < n.fmin || f > n.fmax {
			v.add(path, "must be a number from %g to %g, got %s", n.fmin, n.fmax, v.got(n, x))
		}
		return f
	case kindStrings:
		list, ok := x.([]any)
		if !ok {
			v.add(path, "must be a list of strings, got %s", v.got(n, x))
			return nil
		}
		out := make([]any, len(list))
		for i, el := range list {
			p := fmt.Sprintf("%s[%d]", path, i)
			s, ok := el.(string)
			if !ok {
				v.add(p, "must be a string, got %s", v.got(n, el))
				continue
			}
			v.format(n, p, s)
			out[i] = s
		}
		return out
	case kindMap:
		return v.mapValue(n, path, x)
	}
	panic("configgen: unknown node kind")
}

func (v *validator) object(n *node, path string, x any) any {
	m, ok := x.(map[string]any)
	if !ok {
		if n.notObject != "" {
			v.add(path, "%s", n.notObject)
			return nil
		}
		if s, isStr := x.(string); isStr && path == "agents.defaults.model" {
			v.add(path, "must be an object like {primary: %q}, got the bare string %s", DefaultModel, quote(s))
		} else {
			v.add(path, "must be an object, got %s", v.got(n, x))
		}
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]any, len(n.fields))
	for _, k := range keys {
		c := n.child(k)
		if c == nil {
			v.add(join(path, k), "unknown key%s", suggest(n, path, k))
			continue
		}
		if c.ignored {
			continue
		}
		out[k] = v.value(c, join(path, k), m[k])
	}
	for _, c := range n.fields {
		if _, present := m[c.key]; present || c.ignored {
			continue
		}
		switch {
		case c.required:
			v.add(join(path, c.key), "is required%s", requiredHint(c))
		case c.kind == kindObject:
			out[c.key] = v.object(c, join(path, c.key), map[string]any{})
		case c.def != nil:
			out[c.key] = cloneDefault(c.def)
		}
	}
	return out
}

func requiredHint(n *node) string {
	if n.kind == kindEnum && len(n.enum) == 1 {
		return fmt.Sprintf(" (set it to %q)", n.enum[0])
	}
	return ""
}

func cloneDefault(d any) any {
	if l, ok := d.([]any); ok {
		return append([]any{}, l...)
	}
	if m, ok := d.(map[string]any); ok {
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = cloneDefault(e)
		}
		return out
	}
	return d
}

// mapValue checks an object whose keys are names the person chose.
func (v *validator) mapValue(n *node, path string, x any) any {
	m, ok := x.(map[string]any)
	if !ok {
		v.add(path, "must be an object of %s, got %s", keyFormatDoc(n.keyFormat), v.got(n, x))
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > maxMapKeys {
		v.add(path, "has %d entries; at most %d are allowed", len(keys), maxMapKeys)
		return nil
	}
	out := make(map[string]any, len(m))
	for _, k := range keys {
		if msg := keyProblem(n.keyFormat, k); msg != "" {
			v.add(join(path, quoteKey(k)), "%s", msg)
			continue
		}
		out[k] = v.value(n.elem, join(path, k), m[k])
	}
	return out
}

// maxMapKeys bounds a map key such as mcp.servers: each server is a process
// or a connection, and config.set takes text from clients.
const maxMapKeys = 64

// MaxServerNameLen leaves room for the tool's own name within Bedrock's
// 64-character limit on tool names (<server>__<tool>).
const MaxServerNameLen = 24

var (
	serverNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerNameRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	mcpToolRe    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// ValidServerName reports whether s may name an MCP server: a letter, then
// letters, digits, - and single _, so "__" can only be the separator in
// <server>__<tool>.
func ValidServerName(s string) bool {
	return len(s) <= MaxServerNameLen && serverNameRe.MatchString(s) && !strings.Contains(s, "__") && !strings.HasSuffix(s, "_")
}

// SplitMCPToolName splits "<server>__<tool>" (tool may be "*" in
// tools.allow / tools.deny); ok is false for anything else, built-in names
// included.
func SplitMCPToolName(name string) (server, tool string, ok bool) {
	server, tool, ok = strings.Cut(name, "__")
	if !ok || !ValidServerName(server) || tool == "" || tool != "*" && !mcpToolRe.MatchString(tool) {
		return "", "", false
	}
	return server, tool, true
}

func keyProblem(f format, k string) string {
	switch f {
	case fmtServerName:
		if !ValidServerName(k) {
			return fmt.Sprintf("server name must start with a letter and use letters, digits, - and single _ (at most %d characters; \"__\" separates server and tool in tool names), got %s", MaxServerNameLen, quote(k))
		}
	case fmtEnvName:
		if !envNameRe.MatchString(k) {
			return fmt.Sprintf("must be an environment variable name (letters, digits and _, not starting with a digit), got %s", quote(k))
		}
		if contains(SecretEnvNames(), k) {
			return fmt.Sprintf("%s is the gateway's own secret and is never passed to MCP servers; remove it", k)
		}
	case fmtHeaderName:
		if !headerNameRe.MatchString(k) {
			return fmt.Sprintf("must be an HTTP header name, got %s", quote(k))
		}
	}
	return ""
}

func keyFormatDoc(f format) string {
	switch f {
	case fmtServerName:
		return "server name → server"
	case fmtEnvName:
		return "variable name → string"
	case fmtHeaderName:
		return "header name → {env or file, prefix}"
	}
	return "name → value"
}

// quoteKey shows a rejected key in a path readably and boundedly.
func quoteKey(k string) string {
	if envNameRe.MatchString(k) {
		return k
	}
	return quote(k)
}

var (
	sha256Re  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	modelIDRe = regexp.MustCompile(`^[A-Za-z0-9._:/-]+$`)
)

func (v *validator) format(n *node, path, s string) {
	switch n.format {
	case fmtIP:
		if _, err := netip.ParseAddr(s); err != nil {
			v.add(path, "must be an IP address, got %s", quote(s))
		}
	case fmtIPOrCIDR:
		// The same reading the breadth check below applies.
		if _, err := netbreadth.ParsePrefixOrAddr(s); err != nil {
			v.add(path, "must be an IP address or CIDR (such as 10.0.0.0/8), got %s", quote(s))
		}
	case fmtOrigin:
		if !validOrigin(s) {
			v.add(path, "must be an origin like https://host[:port] with no path, got %s", quote(s))
		}
	case fmtSHA256:
		if !sha256Re.MatchString(s) {
			// Never echo: a user may have pasted the secret itself here.
			v.add(path, "must be 64 lowercase hex characters (a SHA-256 digest), got %d characters", utf8.RuneCountInString(s))
		}
	case fmtSecret:
		if n := utf8.RuneCountInString(s); n < minSecretLen {
			v.add(path, "must be at least %d characters, got %d", minSecretLen, n)
		}
	case fmtPath:
		if !(strings.HasPrefix(s, "/") || s == "~" || strings.HasPrefix(s, "~/")) || strings.ContainsRune(s, 0) {
			v.add(path, "must be an absolute path or start with ~/, got %s", quote(s))
		}
	case fmtModelRef:
		provider, id, ok := strings.Cut(s, "/")
		switch {
		case !ok:
			v.add(path, "must be \"%s/<modelId>\", got %s", Provider, quote(s))
		case provider != Provider:
			v.add(path, "provider must be %s, got %s in %s", Provider, quote(provider), quote(s))
		case !modelIDRe.MatchString(id):
			v.add(path, "model id must be letters, digits and . _ : / -, got %s", quote(id))
		}
	case fmtRegion:
		if !regionRe.MatchString(s) {
			v.add(path, "must be an AWS region such as us-east-1, got %s", quote(s))
		}
	case fmtURL:
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(path, "must be an http:// or https:// URL, got %s", quote(s))
		}
	case fmtToolName:
		// <server>__<tool> names are checked against mcp.servers in
		// crossChecks, where the servers are known.
		if _, _, mcp := SplitMCPToolName(s); !contains(toolNames, s) && !mcp {
			v.add(path, "must be one of %s, or <server>__<tool> / <server>__* for a server in mcp.servers; got %s", strings.Join(toolNames, ", "), quote(s))
		}
	case fmtEnvName:
		if !envNameRe.MatchString(s) {
			v.add(path, "must be an environment variable name (letters, digits and _, not starting with a digit), got %s", quote(s))
		}
	case fmtDuration:
		if _, err := ParseDuration(s); err != nil {
			v.add(path, "must be a duration such as 30m, 1h or 1d: %v", err)
		}
	case fmtClock:
		if !validClock(s) {
			v.add(path, "must be a time of day HH:MM from 00:00 to 24:00, got %s", quote(s))
		}
	case fmtTimeZone:
		if _, err := LoadTimeZone(s); err != nil {
			v.add(path, "%v", err)
		}
	case fmtPrice:
		if _, err := ParsePrice(s); err != nil {
			v.add(path, "%v", err)
		}
	case fmtCommand:
		if s == "" || strings.ContainsAny(s, " \t\n\x00") || strings.Contains(s, "/") && !strings.HasPrefix(s, "/") {
			v.add(path, "must be a binary name or an absolute path, got %s", quote(s))
		}
	}
}

func validOrigin(s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return false
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "#") || strings.HasSuffix(s, "?") {
		return false
	}
	if u.Path != "" || u.Opaque != "" {
		return false
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

// crossChecks enforces the rules that involve more than one key. It runs on
// every tree, also one with problems elsewhere, so a file's issues are all
// reported at once; a rule whose inputs are themselves invalid is skipped
// (those inputs already have an issue of their own).
func (v *validator) crossChecks(t map[string]any) {
	gw := subMap(t, "gateway")
	auth := subMap(gw, "auth")
	bind, bindOK := gw["bind"].(string)
	if _, has := gw["customBindHost"]; bindOK && has != (bind == "custom") {
		if has {
			v.add("gateway.customBindHost", "only allowed when gateway.bind is \"custom\" (bind is %q)", bind)
		} else {
			v.add("gateway.customBindHost", "is required when gateway.bind is \"custom\"")
		}
	}
	mode, modeOK := auth["mode"].(string)
	if modeOK && bindOK && mode == "none" && bind != "loopback" {
		v.add("gateway.auth.mode", "\"none\" is only allowed with gateway.bind \"loopback\" (bind is %q); use token auth", bind)
	}
	for _, m := range []string{"token", "password"} {
		if !modeOK || auth == nil {
			break
		}
		env := EnvToken
		if m == "password" {
			env = EnvPassword
		}
		plainKey, hashKey := m, m+"Sha256"
		var set []string
		for _, k := range []string{plainKey, hashKey} {
			if _, ok := auth[k]; ok {
				set = append(set, k)
			}
		}
		if m != mode {
			for _, k := range set {
				v.add("gateway.auth."+k, "only used when gateway.auth.mode is %q (mode is %q)", m, mode)
			}
			continue
		}
		if v.getenv(env) != "" {
			set = append(set, env)
		}
		switch len(set) {
		case 0:
			v.add("gateway.auth", "%s mode needs a %s: set gateway.auth.%s (or gateway.auth.%s), or the %s environment variable", m, m, hashKey, plainKey, env)
		case 1:
		default:
			v.add("gateway.auth", "set exactly one of %s, %s and the %s environment variable; found %s", plainKey, hashKey, env, strings.Join(set, " and "))
		}
	}
	v.trustedProxies(gw)
	v.mcpServers(t)
	reset := subMap(subMap(t, "session"), "reset")
	if _, has := reset["idleMinutes"]; !has && reset["mode"] == "idle" {
		v.add("session.reset.idleMinutes", "is required when session.reset.mode is \"idle\"")
	}
}

// trustedProxies refuses a list that together reaches too much of the
// internet: the gateway takes a client's address (for auth rate limiting
// and logs) from X-Forwarded-For when the peer is listed, so trusting
// everyone lets any client pick its own address. Refused, not warned: no real proxy
// fleet needs more than a /8, and the Koi itself sets ["127.0.0.1"].
// Entries that do not parse already have an issue of their own.
func (v *validator) trustedProxies(gw map[string]any) {
	list, _ := gw["trustedProxies"].([]any)
	var ps []netip.Prefix
	for _, x := range list {
		if s, ok := x.(string); ok {
			if p, err := netbreadth.ParsePrefixOrAddr(s); err == nil {
				ps = append(ps, p)
			}
		}
	}
	if err := netbreadth.Check(ps); err != nil {
		v.add("gateway.trustedProxies", "would believe X-Forwarded-For from too much of the internet, so any client could claim any address: %v; list only your proxies' addresses, such as [\"127.0.0.1\"] for nginx on the same host", err)
	}
}

// subMap returns m[k] when it is an object, else nil (reads of a nil map are
// fine, so callers need no checks).
func subMap(m map[string]any, k string) map[string]any {
	sub, _ := m[k].(map[string]any)
	return sub
}

// got renders a rejected value for a message. Secrets are never echoed.
func (v *validator) got(n *node, x any) string {
	secret := n.format == fmtSecret || n.format == fmtSHA256
	switch x := x.(type) {
	case nil:
		return "null"
	case string:
		if secret {
			return "a string"
		}
		return quote(x)
	case bool:
		return strconv.FormatBool(x)
	case json5.Number:
		if secret {
			return "a number"
		}
		return string(x)
	case float64: // NaN and Infinity literals, named as the file spells them
		switch {
		case math.IsNaN(x):
			return "NaN"
		case x > 0:
			return "Infinity"
		default:
			return "-Infinity"
		}
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", x)
}

// quote renders a user string for a message, bounded so a huge value cannot
// flood a terminal or a log.
func quote(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return strconv.Quote(string(r[:max])) + "…"
	}
	return strconv.Quote(s)
}

// maxSafeInt is the largest integer a JSON number held as an IEEE double (as
// in a browser, or Go's map[string]any) keeps exactly. Larger values would
// change silently when a client reads the config and writes it back.
const maxSafeInt = 1<<53 - 1

func asInt(x any) (int64, bool) {
	n, ok := x.(json5.Number)
	if !ok {
		return 0, false
	}
	s := string(n)
	if i, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 0, 64); err == nil {
		return i, i >= -maxSafeInt && i <= maxSafeInt
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxSafeInt {
		return 0, false
	}
	return int64(f), true
}

// asNumber reads a finite decimal number (NaN and Infinity are not).
func asNumber(x any) (float64, bool) {
	n, ok := x.(json5.Number)
	if !ok {
		return 0, false
	}
	if i, ok := asInt(x); ok {
		return float64(i), true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
}

// aboveSafe reports whether x is a number above maxSafeInt, including ones
// too large for int64 or float64.
func aboveSafe(x any) bool {
	n, ok := x.(json5.Number)
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		// Hex integers, which ParseFloat does not read without an exponent.
		i, err := strconv.ParseInt(strings.TrimPrefix(string(n), "+"), 0, 64)
		return (err == nil || errors.Is(err, strconv.ErrRange)) && i > maxSafeInt
	}
	return f > maxSafeInt
}

func intRange(n *node) string {
	switch {
	case n.min != nil && n.max != nil:
		return fmt.Sprintf("an integer from %d to %d", *n.min, *n.max)
	case n.min != nil:
		return fmt.Sprintf("an integer of at least %d", *n.min)
	default:
		return "an integer"
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// mcpServers checks each MCP server's transport against its keys, and that
// tools.allow / tools.deny name only configured servers.
func (v *validator) mcpServers(t map[string]any) {
	servers := subMap(subMap(t, "mcp"), "servers")
	names := make([]string, 0, len(servers))
	for name := range servers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		srv, ok := servers[name].(map[string]any)
		if !ok {
			continue
		}
		p := "mcp.servers." + name
		_, hasCmd := srv["command"]
		_, hasURL := srv["url"]
		tr, trOK := srv["transport"].(string)
		switch {
		case hasCmd && hasURL:
			v.add(p, "set either command (a stdio server) or url (a streamable HTTP server), not both")
		case !hasCmd && !hasURL:
			v.add(p, "needs command (a stdio server) or url (a streamable HTTP server)")
		case trOK && tr == "stdio" && !hasCmd:
			v.add(p+".transport", "\"stdio\" needs command; with url use \"streamable-http\"")
		case trOK && tr == "streamable-http" && !hasURL:
			v.add(p+".transport", "\"streamable-http\" needs url; with command use \"stdio\"")
		}
		if hasURL {
			for _, k := range []string{"args", "env", "cwd"} {
				if _, has := srv[k]; has {
					v.add(p+"."+k, "only used by stdio servers (those with command), not with url")
				}
			}
			if u, ok := srv["url"].(string); ok {
				if pu, err := url.Parse(u); err == nil && pu.User != nil {
					v.add(p+".url", "must not carry credentials; put them in headers, read from env or a file")
				}
			}
		}
		if _, has := srv["headers"]; has && hasCmd {
			v.add(p+".headers", "only used by streamable HTTP servers (those with url), not with command")
		}
		hs, _ := srv["headers"].(map[string]any)
		for h, x := range hs {
			hv, ok := x.(map[string]any)
			if !ok {
				continue
			}
			_, e := hv["env"]
			_, f := hv["file"]
			if e == f {
				v.add(p+".headers."+h, "set exactly one of env and file")
			}
		}
	}
	tools := subMap(t, "tools")
	for _, key := range []string{"allow", "deny"} {
		list, _ := tools[key].([]any)
		for i, x := range list {
			s, _ := x.(string)
			server, _, ok := SplitMCPToolName(s)
			if !ok || contains(toolNames, s) {
				continue
			}
			if _, configured := servers[server]; !configured {
				known := "none is configured"
				if len(names) > 0 {
					known = "configured: " + strings.Join(names, ", ")
				}
				v.add(fmt.Sprintf("tools.%s[%d]", key, i), "names MCP server %s, which mcp.servers does not define (%s)", quote(server), known)
			}
		}
	}
}

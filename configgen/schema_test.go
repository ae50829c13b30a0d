package configgen_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// findSpec looks for shared/CONFIG.md beside the repository or any directory
// above the test's working directory: CI clones the repo with a copy of
// shared/ next to it, and a developer's checkout may sit deeper.
func findSpec(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "CONFIG.md")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	const why = "shared/CONFIG.md not found in any directory above the package"
	if os.Getenv("CI") != "" {
		t.Fatal(why + "; CI must provide it")
	}
	t.Skip(why)
	return ""
}

var backticked = regexp.MustCompile("`([^`]+)`")

// specKeys reads the first column of the table under "## Keys". A cell such as
// "`gateway.auth.password` / `passwordSha256`" names two keys: a name with no
// dot is a sibling of the first name in the cell.
func specKeys(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	inKeys := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			inKeys = line == "## Keys"
			continue
		}
		if !inKeys || !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
		var first string
		for i, m := range backticked.FindAllStringSubmatch(cell, -1) {
			name := m[1]
			if i == 0 {
				first = name
			} else if !strings.Contains(name, ".") {
				name = first[:strings.LastIndex(first, ".")+1] + name
			}
			keys = append(keys, name)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatalf("no keys found in the table of %s; has its layout changed?", path)
	}
	return keys
}

// beyondSpec lists the keys an issue added after shared/CONFIG.md's table
// was written, each with that issue: the issue is the newer word, and the
// spec's table is not ours to edit. Anything else the schema has and the
// spec lacks is drift, and fails below.
var beyondSpec = map[string]string{
	"agents.defaults.contextTokens": "issue 13",

	"tools.web.allowPrivate":           "issue 14",
	"tools.web.fetch.enabled":          "issue 14",
	"tools.web.fetch.maxChars":         "issue 14",
	"tools.web.fetch.maxCharsCap":      "issue 14",
	"tools.web.fetch.maxResponseBytes": "issue 14",
	"tools.web.fetch.timeoutSeconds":   "issue 14",
	"tools.web.fetch.maxRedirects":     "issue 14",
	"tools.web.fetch.readability":      "issue 14",
	"tools.web.search.enabled":         "issue 14",
	"tools.web.search.provider":        "issue 14",
	"tools.web.search.apiKeyFile":      "issue 14",
	"tools.web.search.baseUrl":         "issue 14",
	"tools.web.search.maxResults":      "issue 14",
	"tools.web.search.timeoutSeconds":  "issue 14",

	"gateway.idle.wakeLeadMinutes": "issue 12",

	// MCP tool servers.
	"mcp.servers":                            "issue 14",
	"mcp.servers.<name>.enabled":             "issue 14",
	"mcp.servers.<name>.transport":           "issue 14",
	"mcp.servers.<name>.command":             "issue 14",
	"mcp.servers.<name>.args":                "issue 14",
	"mcp.servers.<name>.env":                 "issue 14",
	"mcp.servers.<name>.cwd":                 "issue 14",
	"mcp.servers.<name>.url":                 "issue 14",
	"mcp.servers.<name>.headers":             "issue 14",
	"mcp.servers.<name>.requestTimeoutMs":    "issue 14",
	"mcp.servers.<name>.connectionTimeoutMs": "issue 14",

	"agents.defaults.heartbeat.every":       "issue 12",
	"agents.defaults.heartbeat.activeHours": "issue 12",
	"agents.defaults.heartbeat.prompt":      "issue 12",
	"cron.enabled":                          "issue 12",

	"usage.budget.dailyTokens":   "issue 15",
	"usage.budget.monthlyTokens": "issue 15",
	"usage.budget.dailyUsd":      "issue 15",
	"usage.budget.monthlyUsd":    "issue 15",
	"usage.prices":               "issue 15",
}

func TestRowsMatchSpec(t *testing.T) {
	spec := specKeys(t, findSpec(t))
	rows := configgen.Rows()
	// Sibling names must resolve to the full paths, or the comparison below
	// would pass vacuously on the two-key cells.
	for _, k := range []string{"$schema", "gateway.auth.passwordSha256", "tools.deny"} {
		if !slices.Contains(spec, k) {
			t.Errorf("spec parsing missed %s; got %q", k, spec)
		}
	}
	for _, k := range spec {
		if !slices.Contains(rows, k) {
			t.Errorf("CONFIG.md documents %s, which configgen.Rows() lacks", k)
		}
	}
	for _, k := range rows {
		if !slices.Contains(spec, k) && beyondSpec[k] == "" {
			t.Errorf("configgen.Rows() has %s, which CONFIG.md does not document (a key an issue adds goes in beyondSpec with the issue)", k)
		}
	}
	for k := range beyondSpec {
		if slices.Contains(spec, k) || !slices.Contains(rows, k) {
			t.Errorf("beyondSpec lists %s, which the spec now documents or the schema no longer has; drop it", k)
		}
	}
}

func TestMarkdownGolden(t *testing.T) {
	checkGolden(t, filepath.Join("..", "docs", "config.md"), configgen.Markdown())
}

func TestSchemaGolden(t *testing.T) {
	got := configgen.SchemaJSON()
	if !json.Valid(got) {
		t.Fatal("SchemaJSON is not valid JSON")
	}
	checkGolden(t, filepath.Join("testdata", "schema.golden.json"), got)
}

// schemaLeaves lists the dotted paths of every property that has no
// properties of its own.
func schemaLeaves(s map[string]any, prefix string, out *[]string) {
	props, _ := s["properties"].(map[string]any)
	for k, v := range props {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		child := v.(map[string]any)
		if _, nested := child["properties"]; nested {
			schemaLeaves(child, p, out)
		} else {
			*out = append(*out, p)
		}
	}
}

// structLeaves lists the JSON paths of every non-struct field of t.
func structLeaves(t reflect.Type, prefix string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		if f.Type.Kind() == reflect.Struct {
			structLeaves(f.Type, p, out)
		} else {
			*out = append(*out, p)
		}
	}
}

func TestSchemaMatchesConfigStruct(t *testing.T) {
	var fromSchema, fromStruct []string
	schemaLeaves(configgen.Schema(), "", &fromSchema)
	structLeaves(reflect.TypeFor[configgen.Config](), "", &fromStruct)
	// $schema is accepted in the file and dropped; Config has no place for it.
	fromSchema = slices.DeleteFunc(fromSchema, func(p string) bool { return p == "$schema" })
	sort.Strings(fromSchema)
	sort.Strings(fromStruct)
	if len(fromStruct) < 30 {
		t.Fatalf("walked only %d Config fields; the reflection walk is broken", len(fromStruct))
	}
	if !slices.Equal(fromSchema, fromStruct) {
		t.Errorf("schema leaves and Config fields differ\n schema: %q\n struct: %q", fromSchema, fromStruct)
	}
}

// validate is a deliberately small JSON Schema checker: just the keywords the
// cases below need to show the published schema is usable by an editor.
// Anything it does not understand it ignores.
func validate(s map[string]any, x any, path string) []string {
	var errs []string
	bad := func(format string, args ...any) {
		errs = append(errs, path+": "+fmt.Sprintf(format, args...))
	}
	if typ, ok := s["type"].(string); ok {
		okType := false
		switch typ {
		case "object":
			_, okType = x.(map[string]any)
		case "array":
			_, okType = x.([]any)
		case "string":
			_, okType = x.(string)
		case "boolean":
			_, okType = x.(bool)
		case "integer":
			f, isNum := x.(float64)
			okType = isNum && f == math.Trunc(f)
		}
		if !okType {
			bad("not of type %s", typ)
			return errs
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, x) {
		bad("%v not in enum", x)
	}
	if f, ok := x.(float64); ok {
		if lo, ok := s["minimum"].(float64); ok && f < lo {
			bad("%v below minimum %v", f, lo)
		}
		if hi, ok := s["maximum"].(float64); ok && f > hi {
			bad("%v above maximum %v", f, hi)
		}
	}
	if str, ok := x.(string); ok {
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			bad("%q does not match %s", str, p)
		}
	}
	if list, ok := x.([]any); ok {
		if items, ok := s["items"].(map[string]any); ok {
			for i, el := range list {
				errs = append(errs, validate(items, el, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	if m, ok := x.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := m[r.(string)]; !ok {
				bad("missing required %s", r)
			}
		}
		for k, v := range m {
			p := strings.TrimPrefix(path+"."+k, ".")
			if sub, ok := props[k].(map[string]any); ok {
				errs = append(errs, validate(sub, v, p)...)
			} else if s["additionalProperties"] == false {
				errs = append(errs, p+": additional property")
			}
		}
	}
	return errs
}

func asList(x any) []any { l, _ := x.([]any); return l }

func TestSchemaAgreesWithParse(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(configgen.SchemaJSON(), &schema); err != nil {
		t.Fatal(err)
	}
	koi, err := configgen.Generate(configgen.Options{TokenSha256: goldenHash, Region: "us-east-2",
		Fallbacks: []string{fallbackModel}, ResetMode: "idle", ResetIdleMinutes: 60})
	if err != nil {
		t.Fatal(err)
	}
	// $H stands for a valid digest; each case is plain JSON so the schema
	// checker (which knows no JSON5) sees exactly what Parse sees.
	const gwOK = `"gateway": {"mode": "local", "auth": {"tokenSha256": "$H"}}`
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"minimal", `{` + gwOK + `}`, true},
		{"generated Koi config", string(koi), true},
		{"many keys", `{"$schema": "` + configgen.SchemaID + `", "gateway": {"mode": "local", "port": 443, "bind": "lan",
			"auth": {"mode": "token", "tokenSha256": "$H", "rateLimit": {"maxAttempts": 3, "windowMs": 1000, "lockoutMs": 0}},
			"trustedProxies": ["127.0.0.1", "10.0.0.0/8"], "controlUi": {"enabled": false, "allowedOrigins": ["https://a.example:8443"]}},
			"agents": {"defaults": {"workspace": "~/koi", "maxTokens": 200000, "thinking": "high"}},
			"tools": {"exec": {"security": "allowlist", "allowlist": ["git", "/usr/bin/ls"]}, "allow": ["read"], "deny": ["exec"]},
			"session": {"dmScope": "main", "reset": {"mode": "off", "atHour": 23}},
			"logging": {"level": "warn"}}`, true},
		{"wrong enum", `{` + gwOK + `, "tools": {"exec": {"security": "all"}}}`, false},
		{"unsupported dmScope", `{` + gwOK + `, "session": {"dmScope": "per-peer"}}`, false},
		{"wrong enum in a list", `{` + gwOK + `, "tools": {"allow": ["shell"]}}`, false},
		{"port above range", `{"gateway": {"mode": "local", "port": 65536, "auth": {"tokenSha256": "$H"}}}`, false},
		{"atHour below range", `{` + gwOK + `, "session": {"reset": {"atHour": -1}}}`, false},
		{"fractional int", `{` + gwOK + `, "agents": {"defaults": {"maxTokens": 10.5}}}`, false},
		{"port as string", `{"gateway": {"mode": "local", "port": "18789", "auth": {"tokenSha256": "$H"}}}`, false},
		{"unknown top-level key", `{` + gwOK + `, "exec": {}}`, false},
		{"unknown nested key", `{"gateway": {"mode": "local", "prot": 1, "auth": {"tokenSha256": "$H"}}}`, false},
		{"missing gateway.mode", `{"gateway": {"auth": {"tokenSha256": "$H"}}}`, false},
		{"missing gateway", `{}`, false},
		{"digest not hex", `{"gateway": {"mode": "local", "auth": {"tokenSha256": "XYZ"}}}`, false},
		{"non-bedrock model", `{` + gwOK + `, "agents": {"defaults": {"model": {"primary": "openai/gpt-5"}}}}`, false},
		{"bare-string model", `{` + gwOK + `, "agents": {"defaults": {"model": "amazon-bedrock/x"}}}`, false},
		{"relative allowlist entry", `{` + gwOK + `, "tools": {"exec": {"allowlist": ["bin/rm"]}}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.ReplaceAll(tt.in, "$H", goldenHash)
			_, parseErr := configgen.ParseEnv([]byte(in), noEnv)
			if (parseErr == nil) != tt.valid {
				t.Fatalf("Parse: valid=%v, want %v (%v)", parseErr == nil, tt.valid, parseErr)
			}
			var x any
			dec := json.NewDecoder(bytes.NewReader([]byte(in)))
			if err := dec.Decode(&x); err != nil {
				t.Fatalf("case is not plain JSON: %v", err)
			}
			errs := validate(schema, x, "")
			if (len(errs) == 0) != tt.valid {
				t.Errorf("schema: valid=%v, want %v %q", len(errs) == 0, tt.valid, errs)
			}
		})
	}
}

package gateway

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestProtocolDocMatchesMethodTable keeps docs/protocol.md honest: every
// method the gateway serves is documented with its scope, and nothing more.
func TestProtocolDocMatchesMethodTable(t *testing.T) {
	data, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, methods, ok := strings.Cut(string(data), "## Methods")
	if !ok {
		t.Fatal("docs/protocol.md has no Methods section")
	}
	methods, _, _ = strings.Cut(methods, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z.-]+)` \\| ([a-z.]+) \\|")
	doc := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(methods, -1) {
		doc[m[1]] = m[2]
	}
	ts := startServer(t)
	served := ts.MethodScopes()
	var problems []string
	for name, scope := range served {
		if d, ok := doc[name]; !ok {
			problems = append(problems, "undocumented method "+name)
		} else if d != scope {
			problems = append(problems, name+": documented scope "+d+", served "+scope)
		}
	}
	for name := range doc {
		if _, ok := served[name]; !ok {
			problems = append(problems, "documented but not served: "+name)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Error(strings.Join(problems, "\n"))
	}
}

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// TestReadmeFacts keeps README.md's facts tied to their sources: the Go
// version in go.mod, every package `make deps` installs (the Makefile's
// DEB_TOOLS), the default model (configgen), and the pointers a newcomer
// needs (make vmtest, skykoi doctor, docs/deploy.md).
func TestReadmeFacts(t *testing.T) {
	root := filepath.Join("..", "..")
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readme, makefile, gomod := read("README.md"), read("Makefile"), read("go.mod")

	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	var pkgs []string
	for _, m := range regexp.MustCompile(`(?m)^DEB_TOOLS \+?:?= ((?:[^\n\\]|\\\n)*)`).FindAllStringSubmatch(makefile, -1) {
		for _, pair := range strings.Fields(strings.ReplaceAll(m[1], "\\", " ")) {
			_, pkg, ok := strings.Cut(pair, ":")
			if !ok {
				t.Fatalf("DEB_TOOLS entry %q is not cmd:package", pair)
			}
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("found no DEB_TOOLS in the Makefile")
	}
	want := []string{"Go " + goVersion[1], "Debian", "Ubuntu", "make vmtest", "skykoi doctor", "(docs/deploy.md)",
		"`" + configgen.DefaultModel + "`", "full shell"}
	for _, p := range pkgs {
		want = append(want, "`"+p+"`")
	}
	for _, w := range want {
		if !strings.Contains(readme, w) {
			t.Errorf("README.md does not mention %s", w)
		}
	}
}

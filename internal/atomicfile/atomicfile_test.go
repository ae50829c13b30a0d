package atomicfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		perm os.FileMode
	}{
		{"plain.txt", 0o600},
		{"script.sh", 0o755},
		// 254 bytes, with a two-byte character across the temp name's cut:
		// the temp file's name must still fit NAME_MAX.
		{strings.Repeat("a", 199) + strings.Repeat("é", 27) + "z", 0o644},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name)
		for _, content := range []string{"first\n", "second, longer than the first\n"} {
			if err := atomicfile.Write(p, []byte(content), tt.perm); err != nil {
				t.Fatalf("%.20s…: %v", tt.name, err)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != content {
				t.Fatalf("%.20s…: read %q, %v; want %q", tt.name, got, err, content)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != tt.perm {
				t.Errorf("%.20s…: mode %v, want %v", tt.name, fi.Mode().Perm(), tt.perm)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(tests) {
		t.Errorf("%d entries in the directory, want %d (a temp file left behind?)", len(entries), len(tests))
	}
}

package cloudinit

import (
	"embed"
	"io/fs"
)

// The starter files of a new workspace. They are written to a staging
// directory and copied into the workspace only where it lacks them, so a
// person's own versions on the data volume always win.
//
//go:embed seed/*.md
var seedFS embed.FS

// DefaultSeedFiles returns the default workspace seed files by name.
func DefaultSeedFiles() map[string]string {
	out := map[string]string{}
	entries, _ := fs.ReadDir(seedFS, "seed") // embedded: cannot fail
	for _, e := range entries {
		b, _ := fs.ReadFile(seedFS, "seed/"+e.Name())
		out[e.Name()] = string(b)
	}
	return out
}

func seeds(overrides map[string]string) map[string][]byte {
	out := map[string][]byte{}
	for name, content := range DefaultSeedFiles() {
		out[name] = []byte(content)
	}
	for name, content := range overrides {
		out[name] = []byte(content)
	}
	return out
}

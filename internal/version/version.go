// Package version holds the build's identity, stamped by the linker:
//
//	go build -ldflags "-X github.com/skykoi/skykoi/internal/version.Version=v1.2.3 -X github.com/skykoi/skykoi/internal/version.Commit=abc123"
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set by -ldflags -X; a plain `go build` leaves the defaults and Commit falls
// back to the VCS stamp Go records when it can.
var (
	Version = "dev"
	Commit  = ""
)

// Info is what `skykoi version` prints and the gateway reports in hello-ok.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

// Get returns the build's identity.
func Get() Info {
	commit := Commit
	if commit == "" {
		commit = vcsRevision()
	}
	return Info{Version: Version, Commit: commit, GoVersion: runtime.Version()}
}

// vcsRevision reads the commit Go recorded, once: parsing the build info
// allocates kilobytes, and the gateway asks for every hello-ok and presence
// list.
var vcsRevision = sync.OnceValue(func() string {
	commit := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	return commit
})

package procstat

import (
	"os"
	"testing"
)

func TestRSSBytes(t *testing.T) {
	self, ok := RSSBytes(0)
	if !ok || self < 1<<20 {
		t.Fatalf("own RSS %d %v", self, ok)
	}
	if byPid, ok := RSSBytes(os.Getpid()); !ok || byPid < 1<<20 {
		t.Fatalf("RSS by pid %d %v", byPid, ok)
	}
	if _, ok := RSSBytes(1 << 30); ok {
		t.Fatal("a pid that does not exist has an RSS")
	}
}

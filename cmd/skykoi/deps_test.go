package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBoxBinaryHasNoPulumi keeps the binary shipped to the box free of the
// Pulumi SDK (DESIGN.md: small and fast to build): infra must never leak in.
func TestBoxBinaryHasNoPulumi(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "pulumi") || strings.HasSuffix(pkg, "/skykoi/infra") {
			t.Errorf("the box binary depends on %s", pkg)
		}
	}
}

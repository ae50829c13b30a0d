package infra

import (
	"strings"
	"testing"
)

func TestArchOf(t *testing.T) {
	for _, tc := range []struct {
		instanceType string
		want         Arch
		err          string
	}{
		{"t3.small", AMD64, ""},
		{"t3a.medium", AMD64, ""},
		{"t2.micro", AMD64, ""},
		{"m7i-flex.large", AMD64, ""},
		{"c7a.xlarge", AMD64, ""},
		{"r7iz.2xlarge", AMD64, ""},
		{"z1d.large", AMD64, ""},
		{"m5zn.large", AMD64, ""},
		{"u7i-12tb.224xlarge", AMD64, ""},
		// GPU families carry their g before the generation: x86.
		{"g4dn.xlarge", AMD64, ""},
		{"g5.xlarge", AMD64, ""},
		{"g6e.xlarge", AMD64, ""},
		{"gr6.4xlarge", AMD64, ""},
		{"p5.48xlarge", AMD64, ""},
		{"inf2.xlarge", AMD64, ""},
		// Graviton: a g after the generation.
		{"t4g.small", ARM64, ""},
		{"t4g.nano", ARM64, ""},
		{"m6g.medium", ARM64, ""},
		{"m7g.large", ARM64, ""},
		{"m7gd.large", ARM64, ""},
		{"c7g.large", ARM64, ""},
		{"c7gn.large", ARM64, ""},
		{"c8g.large", ARM64, ""},
		{"r8gd.large", ARM64, ""},
		{"x2gd.large", ARM64, ""},
		{"im4gn.large", ARM64, ""},
		{"is4gen.large", ARM64, ""},
		{"g5g.xlarge", ARM64, ""},
		{"hpc7g.4xlarge", ARM64, ""},
		{"i8g.large", ARM64, ""},
		// The first Graviton generation, from the table.
		{"a1.medium", ARM64, ""},
		{"mac2.metal", "", "macOS only"},
		{"mac2-m2pro.metal", "", "macOS only"},
		{"t3small", "", "want a type like"},
		{"", "", "want a type like"},
		{"T3.small", "", "want a type like"},
		{"t3.", "", "want a type like"},
	} {
		got, err := ArchOf(tc.instanceType)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ArchOf(%q) = %q, %v; want an error with %q", tc.instanceType, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ArchOf(%q) = %q, %v; want %q", tc.instanceType, got, err, tc.want)
		}
	}
}

func TestKoiName(t *testing.T) {
	for _, tc := range []struct{ stack, want, err string }{
		{"dev", "skykoi-dev", ""},
		{"Ada_Prod", "skykoi-ada-prod", ""},
		{"org.team", "skykoi-org-team", ""},
		{"x-", "skykoi-x", ""},
		{strings.Repeat("a", 33), "skykoi-" + strings.Repeat("a", 33), ""},
		{strings.Repeat("a", 34), "", "shorter stack name"},
	} {
		got, err := KoiName(tc.stack)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("KoiName(%q) = %q, %v; want an error with %q", tc.stack, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("KoiName(%q) = %q, %v; want %q", tc.stack, got, err, tc.want)
		}
	}
}

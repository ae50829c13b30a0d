package cloudinit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testToken is a gateway token no output may ever contain.
const testToken = "koi-test-token-7f3a9c1e5b2d4a6f8e0c1b3d5f7a9e2c"

// gatewayBinary stands in for the real binary in the artifact fakes; like the
// stub commands, it logs how it was called.
var gatewayBinary = []byte("#!/bin/sh\nprintf '%s\\n' \"skykoi $*\" >>\"$STUB_LOG\"\n")

func sha256Hex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// realistic is what the Pulumi program sends for a typical Koi.
func realistic() cloudinit.Options {
	return cloudinit.Options{
		ConfigOptions: configgen.Options{
			TokenSha256:     configgen.HashSecret(testToken),
			Fallbacks:       []string{"amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
			AllowedOrigins:  []string{"https://app.skykoi.dev"},
			IdleStopMinutes: 120,
			Region:          "us-west-2",
		},
		DataVolumeID: "vol-0a1b2c3d4e5f60718",
		Artifact: cloudinit.Artifact{
			S3Bucket: "skykoi-artifacts-123456789012",
			S3Key:    "releases/v1.4.0/skykoi-linux-arm64",
			Region:   "us-west-2",
		},
		BinarySHA256: sha256Hex(gatewayBinary),
		Hostname:     "koi-ada",
	}
}

func renderParts(t *testing.T, o cloudinit.Options) cloudinit.Parts {
	t.Helper()
	p, err := cloudinit.RenderParts(o)
	if err != nil {
		t.Fatalf("RenderParts: %v", err)
	}
	return p
}

// requireTool finds a program the test drives for real. A missing tool
// fails the test in CI, where `make deps` should have installed it, and
// skips it elsewhere.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (run `make deps`)", name)
	}
	t.Skipf("%s is not installed; `make deps` installs it", name)
	return ""
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./cloudinit -update` to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output (run `go test ./cloudinit -update` and review the diff)", path)
	}
}

func writeTemp(t *testing.T, dir, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// buildSkykoi builds the real binary for tests that run it.
func buildSkykoi(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "skykoi")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/skykoi").CombinedOutput(); err != nil {
		t.Fatalf("building skykoi: %v\n%s", err, out)
	}
	return bin
}

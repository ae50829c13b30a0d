package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
)

const udToken = "userdata-test-token-4b1d6e0a9c7f3e2d8a5b"

var udBinarySHA = strings.Repeat("ab", 32)

// udArgs is a complete, valid command line for a Koi whose binary is in S3.
func udArgs(extra ...string) []string {
	return append([]string{"userdata", "render",
		"--data-volume-id", "vol-0a1b2c3d4e5f60718",
		"--s3-bucket", "skykoi-artifacts-123456789012",
		"--s3-key", "releases/v1.4.0/skykoi-linux-arm64",
		"--region", "us-west-2",
		"--binary-sha256", udBinarySHA,
		"--allowed-origin", "https://app.skykoi.dev",
	}, extra...)
}

type udResult struct {
	out, err []byte
	code     int
}

func udRun(t *testing.T, stdin string, args ...string) udResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
	return udResult{out.Bytes(), errb.Bytes(), code}
}

// udPlain returns the cloud-config whether or not it was gzipped.
func udPlain(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func TestUserdataRenderTokenFromStdin(t *testing.T) {
	r := udRun(t, udToken+"\n", udArgs("--token-stdin")...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if len(r.out) > cloudinit.MaxUserDataSize {
		t.Fatalf("user-data is %d bytes, over EC2's limit", len(r.out))
	}
	plain := udPlain(t, r.out)
	if !bytes.HasPrefix(plain, []byte("#cloud-config\n")) {
		t.Fatalf("not a cloud-config:\n%.200s", plain)
	}
	// The token appears only as its SHA-256, anywhere the command writes.
	for name, b := range map[string][]byte{"stdout": r.out, "cloud-config": plain, "stderr": r.err} {
		if bytes.Contains(b, []byte(udToken)) {
			t.Errorf("%s contains the plaintext token", name)
		}
	}
	if !bytes.Contains(plain, []byte(`"tokenSha256": "`+configgen.HashSecret(udToken)+`"`)) {
		t.Error("the token's SHA-256 is not in the config")
	}

	// Same inputs, same bytes; and the same bytes the Pulumi program gets
	// from cloudinit.Render with the equivalent options.
	again := udRun(t, udToken+"\n", udArgs("--token-stdin")...)
	if !bytes.Equal(r.out, again.out) {
		t.Error("the same command rendered different user-data")
	}
	digest := udRun(t, "", udArgs("--token-sha256", configgen.HashSecret(udToken))...)
	if !bytes.Equal(r.out, digest.out) {
		t.Error("--token-sha256 and --token-stdin with the same token differ")
	}
	want, err := cloudinit.Render(cloudinit.Options{
		ConfigOptions: configgen.Options{
			TokenSha256:    configgen.HashSecret(udToken),
			AllowedOrigins: []string{"https://app.skykoi.dev"},
			Region:         "us-west-2",
		},
		DataVolumeID: "vol-0a1b2c3d4e5f60718",
		Artifact: cloudinit.Artifact{
			S3Bucket: "skykoi-artifacts-123456789012",
			S3Key:    "releases/v1.4.0/skykoi-linux-arm64",
			Region:   "us-west-2",
		},
		BinarySHA256: udBinarySHA,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.out, want) {
		t.Error("the command's output differs from cloudinit.Render with the same options")
	}
}

func TestUserdataRenderOptions(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "skykoi")
	if err := os.WriteFile(binary, []byte("a gateway build\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "user.md")
	if err := os.WriteFile(seed, []byte("# USER.md\n\nAda Lovelace.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "user-data")
	args := []string{"userdata", "render", "--token-sha256", configgen.HashSecret(udToken),
		"--data-volume-id", "vol-0a1b2c3d", "--artifact-url", "https://releases.skykoi.dev/v1/skykoi",
		"--binary", binary, "--seed", "USER.md=" + seed, "--hostname", "koi-ada",
		"--metadata-endpoint", "http://169.254.169.254", "--bedrock-endpoint", "http://169.254.169.250:8080",
		"--gzip", "--out", out}
	r := udRun(t, "", args...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if len(r.out) != 0 {
		t.Error("--out must leave stdout empty")
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != 0x1f || data[1] != 0x8b {
		t.Fatal("--gzip did not gzip")
	}
	plain := string(udPlain(t, data))
	for _, want := range []string{
		"readonly BINARY_SHA256='" + configgen.HashSecret("a gateway build\n") + "'",
		"readonly ARTIFACT_URL='https://releases.skykoi.dev/v1/skykoi'",
		"Ada Lovelace.",
		"hostname: koi-ada",
		`"endpoint": "http://169.254.169.250:8080"`,
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestUserdataRenderBadFlags(t *testing.T) {
	cfgWithToken := filepath.Join(t.TempDir(), "skykoi.json")
	if err := os.WriteFile(cfgWithToken, []byte(`{gateway: {mode: "local", auth: {token: "`+udToken+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"unknown flag", "", udArgs("--token-stdin", "--bogus"), "unknown flag: --bogus"},
		{"no token", "", udArgs(), "a token is required"},
		{"both token flags", udToken, udArgs("--token-stdin", "--token-sha256", configgen.HashSecret(udToken)), "not both"},
		{"empty stdin", "", udArgs("--token-stdin"), "stdin was empty"},
		{"bad digest", "", udArgs("--token-sha256", "abc"), "tokenSha256"},
		{"no volume", udToken, []string{"userdata", "render", "--token-stdin", "--binary-sha256", udBinarySHA,
			"--artifact-url", "https://x.example/skykoi"}, "--data-volume-id is required"},
		{"bad volume", udToken, udArgs("--token-stdin", "--data-volume-id", "vol-nope"), "DataVolumeID"},
		{"no digest", udToken, []string{"userdata", "render", "--token-stdin", "--data-volume-id", "vol-0a1b2c3d",
			"--artifact-url", "https://x.example/skykoi"}, "--binary-sha256 HEX or --binary FILE"},
		{"no artifact", udToken, []string{"userdata", "render", "--token-stdin", "--data-volume-id", "vol-0a1b2c3d",
			"--binary-sha256", udBinarySHA}, "needs a source"},
		{"two artifacts", udToken, udArgs("--token-stdin", "--artifact-url", "https://x.example/skykoi"), "not both"},
		{"bad seed", udToken, udArgs("--token-stdin", "--seed", "USER.md"), "NAME=FILE"},
		{"bad model", udToken, udArgs("--token-stdin", "--model", "openai/gpt"), "model"},
		{"bad port", udToken, udArgs("--token-stdin", "--https-port", "70000"), "HTTPSPort"},
		{"plaintext config", "", udArgs("--config", cfgWithToken), "plaintext"},
		{"config and token", udToken, udArgs("--config", cfgWithToken, "--token-stdin"), "drop --token-stdin"},
		{"arguments", udToken, udArgs("--token-stdin", "extra"), "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := udRun(t, tt.stdin, tt.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.err)
			}
			if !strings.Contains(string(r.err), tt.want) {
				t.Fatalf("stderr %q lacks %q", r.err, tt.want)
			}
			if len(r.out) != 0 {
				t.Errorf("wrote output on error: %.100s", r.out)
			}
			if bytes.Contains(r.err, []byte(udToken)) {
				t.Error("an error message repeats the token")
			}
		})
	}
}

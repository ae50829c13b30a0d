package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/skykoi/skykoi/gateway"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/update"
)

// TestKoiUpdateUsage: mistakes in how `skykoi koi update` is called are
// usage errors (exit 2) that say what to give, before anything is uploaded.
func TestKoiUpdateUsage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "skykoi")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := []string{"koi", "update", "--instance", "i-0123456789abcdef0", "--region", "us-west-2"}
	cases := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no binary", []string{"--bucket", "b-bucket"}, "tok", "--binary FILE is required"},
		{"no bucket", []string{"--binary", bin}, "tok", "--bucket is required"},
		{"ready timeout too short", []string{"--binary", bin, "--bucket", "b-bucket", "--ready-timeout", "1s"}, "tok", "--ready-timeout must be from"},
		{"http url", []string{"--binary", bin, "--bucket", "b-bucket", "--url", "https://x/"}, "tok", "--url must start with"},
		{"no token", []string{"--binary", bin, "--bucket", "b-bucket"}, "", "gateway token is needed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SKYKOI_TOKEN", tc.env)
			var out, errb strings.Builder
			code := run(context.Background(), append(append([]string{}, base...), tc.args...), stdio{in: strings.NewReader(""), out: &out, err: &errb})
			if code != 2 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tc.want)
			}
		})
	}
}

// TestKoiUpdateUploadsAndRequests: `skykoi koi update` puts the binary in
// the bucket under its SHA-256 (through the real S3 client, at the AWS
// stand-in, which checks the signature and the checksum), and the Koi's
// gateway, asked with update.run, fetches that object with its own
// credentials and stages it for the supervisor. No supervisor runs here (it
// is a root systemd unit; the VM test drives it), so the command gives up
// waiting for the outcome at its --timeout and says so.
func TestKoiUpdateUploadsAndRequests(t *testing.T) {
	srv := koiEnv(t)
	const bucket = "skykoi-dev-artifacts-a1b2c3d"
	bin := []byte("#!/bin/sh\necho the next gateway\n")
	file := filepath.Join(t.TempDir(), "skykoi")
	if err := os.WriteFile(file, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	sha := hex.EncodeToString(sum[:])

	state := t.TempDir()
	env := map[string]string{update.EnvBucket: bucket, update.EnvRegion: koiTestRegion, update.EnvEndpoint: srv.URL()}
	g := startChatGW(t, bedrocktest.NewServer(), state, "127.0.0.1:0", func(o *gateway.Options) {
		o.Getenv = func(k string) string { return env[k] }
		o.AWSCredentials = credentials.NewStaticCredentialsProvider("AKIDKOICLITEST", "koi-cli-test-secret", "")
	})
	t.Setenv("SKYKOI_TOKEN", chatTestToken)
	code, out, errOut := runKoi(t, srv, "update", "--instance", koiTestID, "--bucket", bucket, "--binary", file,
		"--url", g.url, "--s3-endpoint", srv.URL(), "--timeout", "3s")
	if code != 1 || !strings.Contains(errOut, "did not show within 3s") {
		t.Errorf("exit %d\n%s%s\nwant 1 and the give-up at --timeout", code, out, errOut)
	}
	if !strings.Contains(errOut, "the Koi verified it") {
		t.Errorf("the gateway did not accept update.run:\n%s", errOut)
	}
	got, ok := srv.Object(bucket, update.Key(sha))
	if !ok || !bytes.Equal(got, bin) {
		t.Fatalf("s3://%s/%s holds %q (present %v), want the binary", bucket, update.Key(sha), got, ok)
	}
	st, err := update.New(update.Options{StateDir: state}).ReadStatus()
	if err != nil || st.State != update.StateRequested || st.SHA256 != sha {
		t.Fatalf("the gateway's update status %+v (%v), want %s staged for the supervisor", st, err, sha)
	}
	var puts int
	for _, c := range srv.Calls() {
		if c.Service == "s3" && c.Method == http.MethodPut && c.Err == "" && c.Rejected == "" {
			puts++
		}
	}
	if puts != 1 {
		t.Errorf("%d accepted S3 uploads, want 1", puts)
	}
}

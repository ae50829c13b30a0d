package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// TestTokenNew runs the real binary: stdout must hold the token and
// nothing else, so that "$(skykoi token new)" is exactly the token.
func TestTokenNew(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		r := skykoi(t, "", nil, "token", "new")
		if r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		token, ok := strings.CutSuffix(r.stdout, "\n")
		if !ok || !tokenRe.MatchString(token) {
			t.Fatalf("stdout %q, want 43 base64url characters and a newline", r.stdout)
		}
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token %q decodes to %d bytes (%v), want 32", token, len(raw), err)
		}
		if seen[token] {
			t.Fatalf("token %q came twice", token)
		}
		seen[token] = true
		if strings.Contains(r.stderr, token) {
			t.Error("the token is on stderr too")
		}
		if !strings.Contains(r.stderr, `pulumi config set --secret skykoi:gatewayToken "$(skykoi token new)"`) {
			t.Errorf("stderr %q lacks the pulumi hint", r.stderr)
		}
	}
}

func TestTokenUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"token"}, exitUsage, "token needs a command: new"},
		{[]string{"token", "new", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"token", "new", "--length", "5"}, exitUsage, "unknown flag"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
		if code != tc.code || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.err)
		}
		if out.Len() != 0 {
			t.Errorf("%v: stdout %q, want nothing", tc.args, out.String())
		}
	}
}

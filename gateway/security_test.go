package gateway

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/protocol"
)

// TestTokenRotationTakesEffect: OpenClaw once kept accepting the old token
// after a rotation because auth was resolved at startup. Here a reload that
// changes the token refuses the old one on the next connect at once, and
// admits the new one.
func TestTokenRotationTakesEffect(t *testing.T) {
	ts := startServer(t)
	const newToken = "rotated-token-0123456789abcdefghijklmnopqrstuvwxyz"
	cfg := fmt.Sprintf(`{gateway: {mode: "local", auth: {tokenSha256: %q}}}`, configgen.HashSecret(newToken))
	if err := os.WriteFile(ts.opts.ConfigPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	old := dialRaw(t, ts.url, nil)
	if res := old.connect(connectParams()); res.OK || detailsCode(res.Error) != protocol.AuthTokenMismatch {
		t.Fatalf("the old token after rotation: %+v, want AUTH_TOKEN_MISMATCH", res.Error)
	}
	dialConnected(t, ts, func(p map[string]any) { p["auth"] = map[string]any{"token": newToken} })
}

// TestLogsCarryNoSecrets: logs.tail is a read-scope method, so the log must
// never hold a secret a reader could use to get more (OpenClaw's CVSS 9.0
// token-in-log report). Neither a wrong token nor the right one may appear.
func TestLogsCarryNoSecrets(t *testing.T) {
	ts := startServer(t)
	const wrong = "wrong-token-that-must-not-be-logged-0123456789"
	c := dialRaw(t, ts.url, nil)
	p := connectParams()
	p["auth"] = map[string]any{"token": wrong}
	if res := c.connect(p); res.OK {
		t.Fatal("a wrong token was accepted")
	}
	reader, _ := dialConnected(t, ts, func(p map[string]any) { p["scopes"] = []string{protocol.ScopeRead} })
	res := reader.call("logs.tail", map[string]any{"limit": 1000})
	if !res.OK {
		t.Fatalf("logs.tail: %+v", res.Error)
	}
	waitFor(t, "the failure in the log", func() bool { return strings.Contains(ts.logs.String(), `"msg":"auth failed"`) })
	for name, text := range map[string]string{"the log": ts.logs.String(), "logs.tail": string(res.Payload)} {
		for _, secret := range []string{wrong, testToken} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a token", name)
			}
		}
	}
}

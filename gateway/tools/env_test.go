package tools

import (
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// TestExecEnvHasNoGatewaySecrets runs env as the child the model would: the
// gateway's token and password, set in the gateway's environment, must not
// reach it, in the foreground or the background, while the rest of the
// environment (AWS credentials included) does.
func TestExecEnvHasNoGatewaySecrets(t *testing.T) {
	secrets := map[string]string{
		configgen.EnvToken:       "gw-token-4f1c9a",
		configgen.EnvPassword:    "gw-password-77b2e0",
		"SKYKOI_TOKEN":           "client-token-0d3e58",
		configgen.EnvBraveAPIKey: "brave-key-a81f3c",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	kept := map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIAKEEPTHISONE",
		"SKYKOI_STATE_DIR":  "/home/ubuntu/.skykoi",
		"SKYKOI_PLAIN":      "plain-value",
	}
	for k, v := range kept {
		t.Setenv(k, v)
	}
	check := func(t *testing.T, out string) {
		t.Helper()
		for k, v := range secrets {
			if strings.Contains(out, v) || strings.Contains(out, k+"=") {
				t.Errorf("the child saw %s: %q", k, out)
			}
		}
		for k, v := range kept {
			if !strings.Contains(out, k+"="+v+"\n") {
				t.Errorf("the child did not get %s: %q", k, out)
			}
		}
	}
	for _, security := range []string{SecurityFull, SecurityAllowlist} {
		s := newSet(t, func(o *Options) {
			o.Exec.Security = security
			o.Exec.Allowlist = []string{"env"}
		})
		t.Run(security+"/foreground", func(t *testing.T) {
			check(t, mustOK(t, run(t, s, "exec", map[string]any{"command": "env"})).Text)
		})
		t.Run(security+"/background", func(t *testing.T) {
			r := mustOK(t, run(t, s, "exec", map[string]any{"command": "env", "background": true}))
			h, _ := r.Details["handle"].(string)
			waitFor(t, "env to exit", func() bool {
				return run(t, s, "process", map[string]any{"action": "poll", "handle": h}).Details["status"] == "exited"
			})
			check(t, mustOK(t, run(t, s, "process", map[string]any{"action": "read", "handle": h})).Text)
		})
	}
	// A value the model sets itself is its own to pass on.
	s := newSet(t, nil)
	out := mustOK(t, run(t, s, "exec", map[string]any{"command": "env", "env": map[string]string{configgen.EnvToken: "model-chosen"}})).Text
	if !strings.Contains(out, configgen.EnvToken+"=model-chosen\n") || strings.Contains(out, secrets[configgen.EnvToken]) {
		t.Errorf("exec env field: %q", out)
	}
}

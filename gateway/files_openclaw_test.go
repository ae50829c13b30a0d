package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestOpenClawCLIAttachment: the real OpenClaw CLI sends chat.send with an
// image attachment in OpenClaw's own shape, and the image reaches Bedrock.
func TestOpenClawCLIAttachment(t *testing.T) {
	cli, env := openclawCLI(t)
	ts, fake := agentServer(t)
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("a red dot")})
	params, _ := json.Marshal(map[string]any{"sessionKey": "main", "message": "what is this?", "idempotencyKey": "cli-att",
		"attachments": []map[string]any{{"type": "image", "mimeType": "image/png", "fileName": "dot.png", "content": b64(testPNG)}}})
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "gateway", "call", "chat.send", "--url", ts.url, "--token", testToken,
		"--json", "--params", string(params))
	cmd.Env = env
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

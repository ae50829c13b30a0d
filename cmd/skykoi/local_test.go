package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/configgen"
)

// startLocal runs `skykoi local` as a person would (HOME is a temp dir) and
// returns its stdout up to the workspace line, and the process.
func startLocal(t *testing.T, home string, port int, extra ...string) (string, *exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"local", "--port", fmt.Sprint(port)}, extra...)...)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		// No AWS anywhere: the gateway must still start.
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + filepath.Join(home, "missing", "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "missing", "aws-credentials")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "workspace: ") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	return out.String(), cmd, logs
}

func waitReady(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(patience(t))
	for {
		ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
		if err == nil {
			ws.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stopLocal(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v", err)
		}
	case <-time.After(patience(t)):
		t.Fatal("did not exit after Ctrl-C")
	}
}

func TestLocalFirstRunAndReuse(t *testing.T) {
	home := t.TempDir()
	port := freeTCPPort(t)
	// A file the person already has is never overwritten by the seed.
	if err := os.MkdirAll(filepath.Join(home, "koi"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "koi", "USER.md"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, cmd, logs := startLocal(t, home, port)
	m := regexp.MustCompile(`http://127\.0\.0\.1:(\d+)/#token=([A-Za-z0-9_-]{43})`).FindStringSubmatch(out)
	if m == nil || m[1] != fmt.Sprint(port) {
		t.Fatalf("no web chat URL with the token in:\n%s", out)
	}
	token := m[2]
	waitReady(t, port)
	cfgPath := filepath.Join(home, ".skykoi", "skykoi.json")
	cfg, err := configgen.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.Auth.TokenSha256 != configgen.HashSecret(token) || cfg.Gateway.Auth.Token != "" {
		t.Error("the config does not hold exactly the token's digest")
	}
	raw, _ := os.ReadFile(cfgPath)
	if strings.Contains(string(raw), token) {
		t.Error("the plaintext token is in the config file")
	}
	if st, _ := os.Stat(cfgPath); st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v", st.Mode().Perm())
	}
	for _, f := range []string{"AGENTS.md", "SOUL.md", "TOOLS.md", "IDENTITY.md"} {
		if _, err := os.Stat(filepath.Join(home, "koi", f)); err != nil {
			t.Errorf("workspace not seeded: %v", err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(home, "koi", "USER.md")); string(b) != "mine" {
		t.Error("the seed overwrote the person's USER.md")
	}
	// The token works; health says the model is unreachable and why.
	// The credential check runs in the background right after start-up.
	h := healthOver(t, port, token)
	for deadline := time.Now().Add(patience(t)); !strings.Contains(h, `"reachable"`) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		h = healthOver(t, port, token)
	}
	if !strings.Contains(h, `"reachable":false`) || !strings.Contains(h, "AWS_PROFILE") {
		t.Errorf("health: %s", h)
	}
	stopLocal(t, cmd)
	if strings.Contains(logs.String(), token) {
		t.Error("the token appears in the gateway's logs")
	}

	// Second run: same config, no token printed.
	out2, cmd2, _ := startLocal(t, home, port)
	if strings.Contains(out2, "#token=") || strings.Contains(out2, token) {
		t.Errorf("second run printed a token:\n%s", out2)
	}
	waitReady(t, port)
	healthOver(t, port, token)
	stopLocal(t, cmd2)

	// --new-token: a new token works, the old one does not.
	out3, cmd3, _ := startLocal(t, home, port, "--new-token")
	m3 := regexp.MustCompile(`#token=([A-Za-z0-9_-]{43})`).FindStringSubmatch(out3)
	if m3 == nil || m3[1] == token {
		t.Fatalf("--new-token printed no new token:\n%s", out3)
	}
	waitReady(t, port)
	healthOver(t, port, m3[1])
	if code := connectCode(t, port, token); code != "AUTH_TOKEN_MISMATCH" {
		t.Errorf("old token after rotation: %s", code)
	}
	stopLocal(t, cmd3)
}

// healthOver connects with token and returns the raw health payload.
func healthOver(t *testing.T, port int, token string) string {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var f map[string]any
	_ = ws.ReadJSON(&f)
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": map[string]any{
		"minProtocol": 3, "maxProtocol": 4, "auth": map[string]any{"token": token},
		"client": map[string]any{"id": "t", "version": "1", "platform": "linux", "mode": "test"}}})
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "h", "method": "health"})
	for {
		_ = ws.SetReadDeadline(time.Now().Add(patience(t)))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading health: %v", err)
		}
		s := string(data)
		if strings.Contains(s, `"id":"c"`) && strings.Contains(s, `"ok":false`) {
			t.Fatalf("connect refused: %s", s)
		}
		if strings.Contains(s, `"id":"h"`) {
			return s
		}
	}
}

// connectCode returns details.code of a refused connect ("" if accepted).
func connectCode(t *testing.T, port int, token string) string {
	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var f map[string]any
	_ = ws.ReadJSON(&f)
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": map[string]any{
		"minProtocol": 3, "maxProtocol": 4, "auth": map[string]any{"token": token},
		"client": map[string]any{"id": "t", "version": "1", "platform": "linux", "mode": "test"}}})
	var res struct {
		OK    bool `json:"ok"`
		Error struct {
			Details struct {
				Code string `json:"code"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = ws.ReadJSON(&res)
	return res.Error.Details.Code
}

// TestRunPortFlagChecked: `local` and `gateway run` share the config loading,
// so both refuse a --port outside 1–65535 as a usage error, binding nothing
// and writing no config.
func TestRunPortFlagChecked(t *testing.T) {
	for _, args := range [][]string{{"local", "--port", "0"}, {"gateway", "run", "--port", "70000"}} {
		home := t.TempDir()
		r := skykoi(t, "", []string{"HOME=" + home, "SKYKOI_CONFIG_PATH="}, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--port must be from 1 to 65535") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(home, ".skykoi", "skykoi.json")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: a config was written (%v)", args, err)
		}
	}
}

// TestLocalPortTakenWritesNothing: when the port cannot be had, `local`
// fails before it creates a directory, writes or rotates a config, or shows
// a token, so the person is not left with a token for a Koi that never ran.
func TestLocalPortTakenWritesNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	existing := t.TempDir()
	existingCfg := filepath.Join(existing, "skykoi.json")
	existingWS := filepath.Join(existing, "koi")
	if r := skykoi(t, "", nil, "config", "generate", "--token-sha256", configgen.HashSecret("t"), "--workspace", existingWS, "--out", existingCfg); r.code != 0 {
		t.Fatalf("config generate: %d %s", r.code, r.stderr)
	}
	before, err := os.ReadFile(existingCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"first run", []string{"--config", filepath.Join(t.TempDir(), "sub", "skykoi.json")}},
		{"new token", []string{"--config", existingCfg, "--new-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			r := skykoi(t, "", []string{"HOME=" + home, "SKYKOI_CONFIG_PATH="}, append([]string{"local", "--port", port}, tc.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, "127.0.0.1:"+port) || !strings.Contains(r.stderr, "--port") {
				t.Errorf("exit %d, stderr %q; want a failure naming the address and --port", r.code, r.stderr)
			}
			if strings.Contains(r.stdout, "token") || strings.Contains(r.stdout, "Created") {
				t.Errorf("printed before failing:\n%s", r.stdout)
			}
			if _, err := os.Stat(filepath.Dir(tc.args[1])); tc.name == "first run" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the config's directory was created (%v)", err)
			}
			for _, ws := range []string{filepath.Join(home, "koi"), existingWS} {
				if _, err := os.Stat(ws); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the workspace %s was created (%v)", ws, err)
				}
			}
			if after, _ := os.ReadFile(existingCfg); string(after) != string(before) {
				t.Error("the existing config was changed")
			}
		})
	}
}

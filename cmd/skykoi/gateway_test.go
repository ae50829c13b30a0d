package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/configgen"
)

func TestGatewayRunRefusesInvalidConfig(t *testing.T) {
	port := freeTCPPort(t)
	path := writeFile(t, "skykoi.json", fmt.Sprintf(`{gateway: {mode: "remote", port: %d, auth: {tokenSha256: "x"}}, exec: {}}`, port))
	r := skykoi(t, "", nil, "gateway", "run", "--config", path)
	if r.code != 78 {
		t.Fatalf("exit %d, want 78; stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`exec: unknown key (did you mean tools.exec?)`,
		`gateway.auth.tokenSha256: must be 64 lowercase hex characters (a SHA-256 digest), got 1 characters`,
		`gateway.mode: must be "local", got "remote"`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "gateway listening") {
		t.Error("the gateway bound a port despite the invalid config")
	}
	if r := skykoi(t, "", nil, "gateway", "run", "--config", filepath.Join(t.TempDir(), "missing.json")); r.code != 78 {
		t.Errorf("missing config: exit %d, want 78", r.code)
	}
}

// lockedBuffer is a bytes.Buffer safe for a process writer and a test reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGatewayDaemonLifecycle runs the real binary as systemd would: notify
// socket, watchdog, SIGHUP with a bad file, then SIGTERM with a client
// connected.
func TestGatewayDaemonLifecycle(t *testing.T) {
	const token = "daemon-test-token-0123456789abcdefghijklmnop"
	dir := t.TempDir()
	port := freeTCPPort(t)
	cfgPath := filepath.Join(dir, "skykoi.json")
	good := fmt.Sprintf(`{gateway: {mode: "local", port: %d, auth: {tokenSha256: %q}}}`, port, configgen.HashSecret(token))
	if err := os.WriteFile(cfgPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	states := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				close(states)
				return
			}
			for _, s := range strings.Split(string(buf[:n]), "\n") {
				states <- s
			}
		}
	}()

	cmd := exec.Command(binary, "gateway", "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "HOME="+dir, "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=200000")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	waitState := func(want string) {
		t.Helper()
		timeout := time.After(patience(t))
		for {
			select {
			case s := <-states:
				if s == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %s from the daemon; logs:\n%s", want, logs.String())
			}
		}
	}
	waitState("READY=1")
	waitState("WATCHDOG=1")

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz %d", resp.StatusCode)
	}

	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readFrame := func() map[string]any {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(patience(t)))
		var f map[string]any
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("read: %v", err)
		}
		return f
	}
	readFrame() // challenge
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": map[string]any{
		"minProtocol": 3, "maxProtocol": 4, "auth": map[string]any{"token": token},
		"client": map[string]any{"id": "t", "version": "1", "platform": "linux", "mode": "test"}}})
	if f := readFrame(); f["ok"] != true {
		t.Fatalf("connect: %v", f)
	}

	// SIGHUP with an invalid file: logged, still serving the old config.
	if err := os.WriteFile(cfgPath, []byte(`{gateway: {mode: "local", port: "nope"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(patience(t))
	for !strings.Contains(logs.String(), "gateway.port: must be an integer") {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP with a bad file was not logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = ws.WriteJSON(map[string]any{"type": "req", "id": "h", "method": "health"})
	for {
		f := readFrame()
		if f["id"] == "h" {
			if f["ok"] != true {
				t.Fatalf("health after bad reload: %v", f)
			}
			break
		}
	}

	// SIGTERM: shutdown event, close 1012, exit 0, STOPPING=1.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	sawShutdown := false
	for {
		_ = ws.SetReadDeadline(time.Now().Add(patience(t)))
		_, data, err := ws.ReadMessage()
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != 1012 {
				t.Fatalf("closed with %v, want 1012", err)
			}
			break
		}
		var f map[string]any
		_ = json.Unmarshal(data, &f)
		sawShutdown = sawShutdown || f["event"] == "shutdown"
	}
	if !sawShutdown {
		t.Error("no shutdown event before the close")
	}
	waitState("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(patience(t)):
		t.Fatal("daemon did not exit after SIGTERM")
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the token appears in the daemon's logs")
	}
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

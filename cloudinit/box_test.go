package cloudinit_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/testwait"
)

// TestBox assembles a Koi's box from the rendered parts on this machine: the
// nginx site with a certificate made by the bootstrap's own function, a real
// nginx on high loopback ports, the real `skykoi gateway run` with the
// rendered config, and the fake Bedrock. A client connects over wss://
// through nginx with the certificate's fingerprint pinned, completes the
// handshake and one agent run, and the gateway sees the address nginx
// forwarded (the client dials from 127.0.0.2; nginx itself reaches the
// gateway from 127.0.0.1).
func TestBox(t *testing.T) {
	nginx := requireTool(t, "nginx")
	requireTool(t, "openssl")
	bash := requireTool(t, "bash")
	fake := bedrocktest.NewServer()
	defer fake.Close()
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("answer from the box")})

	const token = "box-test-token-0123456789abcdefghijklmnopqrstu"
	o := realistic()
	o.ConfigOptions.TokenSha256 = configgen.HashSecret(token)
	o.ConfigOptions.Port = freePort(t)
	o.ConfigOptions.Endpoint = fake.URL()
	o.ConfigOptions.Region = "us-east-1"
	o.ListenAddress, o.HTTPPort, o.HTTPSPort = "127.0.0.1", freePort(t), freePort(t)
	e := newNginxEnv(t, o)
	parts := renderParts(t, o)
	tlsDir := filepath.Join(e.dir, "tls")
	crt := filepath.Join(tlsDir, "skykoi.crt")
	makeCertWithBootstrap(t, bash, string(parts.Bootstrap), crt, filepath.Join(tlsDir, "skykoi.key"))

	// The rendered config, as written to the box; only the workspace moves
	// into the test's temp dir so nothing is created under /home/ubuntu.
	tree, err := configgen.DecodeRaw(parts.Config)
	if err != nil {
		t.Fatal(err)
	}
	configgen.Set(tree, "agents.defaults.workspace", filepath.Join(e.dir, "koi"))
	cfgBytes, err := configgen.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeTemp(t, e.dir, "skykoi.json", cfgBytes, 0o600)

	bin := buildSkykoi(t)
	gw := exec.Command(bin, "gateway", "run", "--config", cfgPath)
	gw.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true")
	gwLog, _ := os.Create(filepath.Join(e.dir, "gateway.log"))
	gw.Stdout, gw.Stderr = gwLog, gwLog
	startProcess(t, gw)
	ng := exec.Command(nginx, e.args()...)
	startProcess(t, ng)
	httpsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.HTTPSPort))
	waitListening(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(o.ConfigOptions.Port)), filepath.Join(e.dir, "gateway.log"))
	waitListening(t, httpsAddr, filepath.Join(e.dir, "error.log"))

	fp := fingerprintOf(t, crt)
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Patience(t))
	defer cancel()
	dialFrom := func(local string) func(context.Context, string, string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			return d.DialContext(ctx, network, addr)
		}
	}
	// The web frontend's mode: it shows in presence, where the test reads
	// the address the gateway saw (a one-shot "cli" client would not).
	c, err := client.Dial(ctx, client.Options{URL: "wss://" + httpsAddr + "/", Token: token,
		TLSFingerprintSHA256: fp, NetDialContext: dialFrom("127.0.0.2"),
		Client: protocol.Client{ID: "skykoi-box-test", Mode: "webchat"}})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(e.dir, "gateway.log"))
		t.Fatalf("connecting through nginx: %v\n%s", err, log)
	}
	defer c.Close()

	// One agent run.
	var final struct {
		Status string `json:"status"`
		Result struct {
			Payloads []struct {
				Text string `json:"text"`
			} `json:"payloads"`
		} `json:"result"`
	}
	var ack map[string]any
	if err := c.RequestFinal(ctx, "agent", map[string]any{"message": "hello box"}, &ack, &final); err != nil {
		t.Fatalf("agent run: %v", err)
	}
	if final.Status != "ok" || len(final.Result.Payloads) != 1 || final.Result.Payloads[0].Text != "answer from the box" {
		t.Fatalf("final %+v", final)
	}
	// The gateway saw the client's address from X-Forwarded-For (nginx is a
	// trusted proxy in the rendered config), not nginx's own.
	var presence []struct {
		IP   string `json:"ip"`
		Mode string `json:"mode"`
	}
	if err := c.Request(ctx, "system-presence", nil, &presence); err != nil {
		t.Fatal(err)
	}
	if len(presence) != 2 || presence[1].IP != "127.0.0.2" {
		t.Errorf("presence %+v, want the client at 127.0.0.2", presence)
	}
	// A wrong pin is refused before any WebSocket traffic.
	_, err = client.Dial(ctx, client.Options{URL: "wss://" + httpsAddr + "/", Token: token,
		TLSFingerprintSHA256: strings.Repeat("00", 32)})
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("a wrong pin: %v", err)
	}
}

// makeCertWithBootstrap runs the bootstrap script's own new_certificate
// function, with the instance metadata answered by a stand-in that reports
// 127.0.0.1 and no public name.
func makeCertWithBootstrap(t *testing.T, bash, script, crt, key string) {
	t.Helper()
	fn := regexp.MustCompile(`(?ms)^new_certificate\(\) \{\n.*?^\}\n`).FindString(script)
	if fn == "" {
		t.Fatal("the bootstrap script has no new_certificate function")
	}
	work := t.TempDir()
	prog := `set -euo pipefail
WORK=` + work + `
log() { :; }
fail() { echo "fail: $*" >&2; exit 1; }
imds_token() { :; }
imds() { case $1 in public-ipv4) echo 127.0.0.1 ;; public-hostname) echo "" ;; *) return 1 ;; esac; }
` + fn + `
new_certificate "$1" "$2"
`
	if out, err := exec.Command(bash, "-c", prog, "bash", crt, key).CombinedOutput(); err != nil {
		t.Fatalf("new_certificate: %v\n%s", err, out)
	}
	der := readPEM(t, crt)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("certificate SANs %v", cert.IPAddresses)
	}
}

func readPEM(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s is not PEM", path)
	}
	return block.Bytes
}

func fingerprintOf(t *testing.T, crt string) string {
	sum := sha256.Sum256(readPEM(t, crt))
	return hex.EncodeToString(sum[:])
}

func startProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

func waitListening(t *testing.T, addr, logPath string) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("nothing listens on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/internal/chatui"
	"github.com/skykoi/skykoi/internal/chatui/ptytest"
)

// These tests drive `skykoi chat` in-process against a real gateway (built
// with gateway.New, listening on loopback) whose Bedrock is the bedrocktest
// fake. Timeouts are safety nets against hangs, never assertions on speed.

const chatTestToken = "chat-test-token-0123456789abcdefghijklmnopqrstuv"

// chatGW is one gateway process-in-a-goroutine.
type chatGW struct {
	srv    *gateway.Server
	url    string
	addr   string
	cancel context.CancelFunc
	done   chan error
	logs   *chatBuf
}

// startChatGW starts a gateway with token auth, the fake as Bedrock and
// the state in stateDir, on addr ("127.0.0.1:0" for any port).
func startChatGW(t *testing.T, fake *bedrocktest.Server, stateDir, addr string, adjust ...func(*gateway.Options)) *chatGW {
	t.Helper()
	cfg := map[string]any{
		"gateway": map[string]any{
			"mode": "local",
			"auth": map[string]any{"mode": "token", "tokenSha256": configgen.HashSecret(chatTestToken)},
		},
		"agents": map[string]any{"defaults": map[string]any{"workspace": filepath.Join(stateDir, "koi")}},
	}
	configgen.Set(cfg, "models.providers.amazon-bedrock.endpoint", fake.URL())
	configgen.Set(cfg, "models.providers.amazon-bedrock.region", "us-east-1")
	configgen.Set(cfg, "tools.exec.security", "full")
	data, err := configgen.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	parsed, err := configgen.ParseEnv(data, noEnv)
	if err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	path := filepath.Join(stateDir, "skykoi.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &chatBuf{}
	o := gateway.Options{
		Config:         parsed,
		ConfigPath:     path,
		StateDir:       stateDir,
		Addr:           addr,
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
		Getenv:         noEnv,
		Hostname:       "koi-chat-test",
		AWSCredentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session"),
		ModelBackoff:   time.Millisecond,
	}
	for _, fn := range adjust {
		fn(&o)
	}
	srv, err := gateway.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &chatGW{srv: srv, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { g.done <- srv.Run(ctx) }()
	deadline := time.Now().Add(patience(t))
	for srv.Addr() == nil || !srv.Ready() {
		select {
		case err := <-g.done:
			t.Fatalf("gateway did not start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway did not start")
		}
		time.Sleep(2 * time.Millisecond)
	}
	g.addr = srv.Addr().String()
	g.url = "ws://" + g.addr + "/"
	t.Cleanup(func() {
		g.stop(t)
		if t.Failed() {
			t.Logf("gateway %s logs:\n%s", g.addr, logs.String())
		}
	})
	return g
}

// stop drains the gateway (once) and waits for Run to return.
func (g *chatGW) stop(t *testing.T) {
	t.Helper()
	g.cancel()
	select {
	case err, ok := <-g.done:
		if ok {
			close(g.done)
			if err != nil {
				t.Errorf("gateway Run: %v", err)
			}
		}
	case <-time.After(patience(t)):
		t.Error("gateway did not drain")
	}
}

// chatBuf is an output buffer a chat writes while the test reads it.
type chatBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *chatBuf) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

func (c *chatBuf) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// chatProc is a running `skykoi chat` with stdin as a pipe.
type chatProc struct {
	t        *testing.T
	in       *io.PipeWriter
	out, err *chatBuf
	exit     chan int
}

// startChat runs `skykoi chat args...` in-process.
func startChat(t *testing.T, args ...string) *chatProc {
	t.Helper()
	return startChatWith(t, func(ctx context.Context, io stdio) int {
		return run(ctx, append([]string{"chat"}, args...), io)
	})
}

// startChatWith runs fn (run or runChat) with a piped stdin and captured
// output; the chat is stopped and waited for at the end of the test.
func startChatWith(t *testing.T, fn func(context.Context, stdio) int) *chatProc {
	t.Helper()
	pr, pw := io.Pipe()
	p := &chatProc{t: t, in: pw, out: &chatBuf{}, err: &chatBuf{}, exit: make(chan int, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	go func() {
		p.exit <- fn(ctx, stdio{in: pr, out: p.out, err: p.err})
		// Like a process exiting: a later write to its stdin fails.
		pr.Close()
	}()
	t.Cleanup(func() {
		pw.Close()
		select {
		case <-p.exit:
		case <-time.After(patience(t)):
			t.Error("chat did not exit")
		}
		cancel()
		if t.Failed() {
			t.Logf("chat stdout:\n%s\nchat stderr:\n%s", p.out.String(), p.err.String())
		}
		for _, s := range []string{p.out.String(), p.err.String()} {
			if strings.Contains(s, chatTestToken) {
				t.Error("the token appears in the chat's output")
			}
		}
	})
	return p
}

func (p *chatProc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("writing %q to the chat: %v", line, err)
	}
}

// waitOut waits until stdout contains s.
func (p *chatProc) waitOut(s string) {
	p.t.Helper()
	chatWaitFor(p.t, "stdout to contain "+s, func() bool { return strings.Contains(p.out.String(), s) })
}

// waitErr waits until stderr contains s.
func (p *chatProc) waitErr(s string) {
	p.t.Helper()
	chatWaitFor(p.t, "stderr to contain "+s, func() bool { return strings.Contains(p.err.String(), s) })
}

// end closes stdin (Ctrl-D) and returns the exit status.
func (p *chatProc) end() int {
	p.t.Helper()
	p.in.Close()
	select {
	case code := <-p.exit:
		p.exit <- code // for the cleanup
		return code
	case <-time.After(patience(p.t)):
		p.t.Fatal("chat did not exit at the end of input")
		return -1
	}
}

func chatWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience(t))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func chatTokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// chatFixture is a gateway with its fake, and the flags to reach it.
func chatFixture(t *testing.T) (*chatGW, *bedrocktest.Server, []string) {
	t.Helper()
	fake := bedrocktest.NewServer()
	t.Cleanup(fake.Close)
	g := startChatGW(t, fake, t.TempDir(), "127.0.0.1:0")
	return g, fake, []string{"--url", g.url, "--token-file", chatTokenFile(t, chatTestToken)}
}

// chatHistory reads a session's transcript through a client of its own.
func chatHistory(t *testing.T, url, key string) []chatui.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{URL: url, Token: chatTestToken})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var h struct {
		Messages []chatui.Message `json:"messages"`
	}
	if err := cl.Request(ctx, "chat.history", map[string]any{"sessionKey": key}, &h); err != nil {
		t.Fatal(err)
	}
	return h.Messages
}

func texts(msgs []chatui.Message) []string {
	var out []string
	for i := range msgs {
		if s := msgs[i].Text(); s != "" {
			out = append(out, msgs[i].Role+": "+s)
		}
	}
	return out
}

func TestChatFullTurn(t *testing.T) {
	_, fake, flags := chatFixture(t)
	// The pauses make the gateway send several chat deltas (it coalesces
	// to one per 150 ms) rather than one.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Hello "), bedrocktest.Delay(200 * time.Millisecond),
		bedrocktest.Text("there, "), bedrocktest.Delay(200 * time.Millisecond), bedrocktest.Text("friend.")})
	p := startChat(t, flags...)
	p.send("hello")
	p.waitOut("Hello there, friend.\n")
	if code := p.end(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// A pipe is not a terminal: no prompt mixed into the answer.
	if got := p.out.String(); got != "Hello there, friend.\n" {
		t.Errorf("stdout %q", got)
	}
	if got := p.err.String(); got != "" {
		t.Errorf("stderr %q", got)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || len(reqs[0].Messages) != 1 || *reqs[0].Messages[0].Content[0].Text != "hello" {
		t.Fatalf("model requests %+v", reqs)
	}
}

func TestChatToolTurn(t *testing.T) {
	_, fake, flags := chatFixture(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Let me check."), bedrocktest.ToolUse("t1", "exec", `{"command":"echo hi"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.ToolUse("t2", "exec", `{"command":"exit 3"}`), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("It printed hi.")})
	p := startChat(t, flags...)
	p.send("run echo hi")
	p.waitOut("It printed hi.\n")
	if code := p.end(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := "Let me check.\n" +
		"[tool exec: echo hi] → ok (exit 0)\n" +
		"[tool exec: exit 3] → error: (no output) (exit 3)\n" +
		"It printed hi.\n"
	if got := p.out.String(); got != want {
		t.Errorf("stdout\n got %q\nwant %q", got, want)
	}
}

// TestChatCommands: /new starts a fresh transcript, /history and /sessions
// show the session, /session switches, /stop and /help answer.
func TestChatCommands(t *testing.T) {
	g, fake, flags := chatFixture(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("First answer.")})
	// /new first lets the agent save to memory: one silent model turn.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("NO_REPLY")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Second answer.")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Work answer.")})
	p := startChat(t, flags...)
	p.send("first")
	p.waitOut("First answer.\n")
	p.send("/new")
	p.waitOut("started a new session\n")
	p.send("second")
	p.waitOut("Second answer.\n")

	got := texts(chatHistory(t, g.url, "main"))
	if strings.Join(got, "|") != "user: second|assistant: Second answer." {
		t.Fatalf("history after /new: %q", got)
	}

	p.send("/history")
	p.waitOut("koi: Second answer.\n")
	if strings.Contains(p.out.String(), "you: first") {
		t.Error("/history shows the message from before /new")
	}
	p.send("/session work")
	p.waitOut("session work\n")
	p.send("for work")
	p.waitOut("Work answer.\n")
	if got := texts(chatHistory(t, g.url, "work")); strings.Join(got, "|") != "user: for work|assistant: Work answer." {
		t.Fatalf("work history: %q", got)
	}
	p.send("/sessions")
	p.waitOut("* work")
	p.waitOut("  main")
	p.send("/stop")
	p.waitOut("nothing to stop\n")
	p.send("/help")
	p.waitOut("/sessions")
	p.send("/bogus")
	p.waitErr("error: unknown command /bogus")
	p.send("/quit")
	select {
	case code := <-p.exit:
		p.exit <- code
		if code != 0 {
			t.Fatalf("exit %d after /quit", code)
		}
	case <-time.After(patience(t)):
		t.Fatal("/quit did not end the chat")
	}
}

// TestChatReconnectAfterRestart stops the gateway and starts a new one on
// the same port and state: the chat says so and carries on.
func TestChatReconnectAfterRestart(t *testing.T) {
	fake := bedrocktest.NewServer()
	t.Cleanup(fake.Close)
	state := t.TempDir()
	g1 := startChatGW(t, fake, state, "127.0.0.1:0")
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Before the restart.")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("After the restart.")})
	p := startChat(t, "--url", g1.url, "--token-file", chatTokenFile(t, chatTestToken))
	p.send("one")
	p.waitOut("Before the restart.\n")

	g1.stop(t)
	p.waitErr("[disconnected: ")
	g2 := startChatGW(t, fake, state, g1.addr)
	p.waitErr("[reconnected]")
	p.send("two")
	p.waitOut("After the restart.\n")
	if code := p.end(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// The new gateway has the whole conversation from the shared state.
	got := texts(chatHistory(t, g2.url, "main"))
	if strings.Join(got, "|") != "user: one|assistant: Before the restart.|user: two|assistant: After the restart." {
		t.Fatalf("history %q", got)
	}
	// The second request to the model carried the first turn.
	if reqs := fake.Requests(); len(reqs) != 2 || len(reqs[1].Messages) != 3 {
		t.Fatalf("model requests: %d", len(reqs))
	}
}

// cutProxy forwards TCP to a gateway and can drop every connection and
// refuse new ones, which a gateway restart cannot do while keeping a run
// going.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	refuse bool
}

// startCutProxy listens on loopback; with tlsCfg it terminates TLS in front
// of the gateway, as nginx does on a Koi.
func startCutProxy(t *testing.T, target string, tlsCfg *tls.Config) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	p := &cutProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.refuse {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.cut(true)
	})
	return p
}

func (p *cutProxy) url(scheme string) string { return scheme + "://" + p.ln.Addr().String() + "/" }

// cut drops every connection; with refuse, new ones are closed at once.
func (p *cutProxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = false
}

// TestChatRecoversRunAcrossDisconnect: the connection drops in the middle of
// a run and stays down until the run has ended, so its final event is lost;
// after the reconnect the chat prints the answer from agent.wait and
// chat.history.
func TestChatRecoversRunAcrossDisconnect(t *testing.T) {
	g, fake, _ := chatFixture(t)
	proxy := startCutProxy(t, g.addr, nil)
	// The run waits in a tool until the test creates the gate file, so the
	// disconnect happens at a known point of the run.
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := `while [ ! -e ` + gate + ` ]; do sleep 0.02; done; echo released`
	args, _ := json.Marshal(map[string]string{"command": cmd})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Working on it."), bedrocktest.ToolUse("t1", "exec", string(args)), bedrocktest.Stop("tool_use")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("All done.")})
	p := startChat(t, "--url", proxy.url("ws"), "--token-file", chatTokenFile(t, chatTestToken))
	p.send("do the slow thing")
	p.waitOut("[tool exec: while")

	proxy.cut(true)
	p.waitErr("[disconnected: ")
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	chatWaitFor(t, "the run to end on the gateway", func() bool {
		msgs := chatHistory(t, g.url, "main")
		return len(msgs) > 0 && msgs[len(msgs)-1].Text() == "All done."
	})
	if strings.Contains(p.out.String(), "All done.") {
		t.Fatal("the chat saw the end of the run while disconnected")
	}
	proxy.resume()
	p.waitErr("[reconnected]")
	p.waitOut("All done.\n")
	if code := p.end(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := strings.Count(p.out.String(), "All done."); n != 1 {
		t.Errorf("the answer was printed %d times:\n%s", n, p.out.String())
	}
	if strings.Contains(p.err.String(), "error") {
		t.Errorf("stderr %q", p.err.String())
	}
}

// selfSigned is a certificate for 127.0.0.1 signed by its own key, like the
// one a Koi's nginx has, and its SHA-256 fingerprint.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "koi"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, client.FormatFingerprint(sum[:])
}

// TestChatTLSPin reaches the gateway through TLS with a self-signed
// certificate: the right pin connects, a wrong one and none are refused.
func TestChatTLSPin(t *testing.T) {
	g, fake, _ := chatFixture(t)
	cert, fp := selfSigned(t)
	proxy := startCutProxy(t, g.addr, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("Over TLS.")})
	token := chatTokenFile(t, chatTestToken)
	tests := []struct {
		name     string
		pin      string
		code     int
		stdout   string
		inStderr string
	}{
		{name: "right pin", pin: fp, stdout: "Over TLS.\n"},
		{name: "right pin, lower case without colons", pin: strings.ToLower(strings.ReplaceAll(fp, ":", "")), stdout: "Over TLS.\n"},
		{name: "wrong pin", pin: strings.Repeat("AB:", 31) + "AB", code: 1, inStderr: "fingerprint did not match"},
		{name: "no pin", code: 1, inStderr: "hint: for a self-signed certificate, pin it with --tls-sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"chat", "--url", proxy.url("wss"), "--token-file", token, "--message", "hi"}
			if tc.pin != "" {
				args = append(args, "--tls-sha256", tc.pin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience(t))
			defer cancel()
			var out, errb bytes.Buffer
			code := run(ctx, args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
			if code != tc.code || out.String() != tc.stdout || !strings.Contains(errb.String(), tc.inStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q", code, out.String(), errb.String(), tc.code, tc.stdout, tc.inStderr)
			}
		})
	}
}

func TestChatOneShot(t *testing.T) {
	tests := []struct {
		name     string
		reply    bedrocktest.Reply
		code     int
		stdout   string
		inStderr string
		tokenEnv bool
	}{
		{name: "answer", reply: bedrocktest.Reply{bedrocktest.Text("Hello "), bedrocktest.Text("there.")}, stdout: "Hello there.\n"},
		{name: "token from the environment", reply: bedrocktest.Reply{bedrocktest.Text("Env works.")}, stdout: "Env works.\n", tokenEnv: true},
		{name: "model error", reply: bedrocktest.Reply{bedrocktest.HTTPError(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")},
			code: 1, inStderr: "error: "},
		{name: "error after some text", reply: bedrocktest.Reply{bedrocktest.Text("half an ans"), bedrocktest.Exception("modelStreamErrorException", "stream broke")},
			code: 1, stdout: "half an ans\n", inStderr: "error: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, fake, flags := chatFixture(t)
			fake.Enqueue("*", tc.reply)
			args := append([]string{"chat", "--message", "hi"}, flags...)
			if tc.tokenEnv {
				t.Setenv("SKYKOI_TOKEN", chatTestToken)
				args = []string{"chat", "--message", "hi", "--url", g.url}
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience(t))
			defer cancel()
			var out, errb bytes.Buffer
			code := run(ctx, args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			if out.String() != tc.stdout {
				t.Errorf("stdout %q, want %q", out.String(), tc.stdout)
			}
			if !strings.Contains(errb.String(), tc.inStderr) || (tc.inStderr == "" && errb.Len() > 0) {
				t.Errorf("stderr %q, want it to contain %q", errb.String(), tc.inStderr)
			}
			if strings.Contains(out.String()+errb.String(), chatTestToken) {
				t.Error("the token appears in the output")
			}
		})
	}
}

func TestChatUsageAndAuthErrors(t *testing.T) {
	g, _, _ := chatFixture(t)
	good := chatTokenFile(t, chatTestToken)
	const wrongToken = "wrong-token-that-must-not-be-printed-0123456789"
	wrong := chatTokenFile(t, wrongToken)
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no token", []string{"--url", g.url}, 2, "no gateway token: give --token-file FILE or set $SKYKOI_TOKEN"},
		{"missing token file", []string{"--url", g.url, "--token-file", filepath.Join(t.TempDir(), "nope")}, 2, "reading the token"},
		{"not a WebSocket URL", []string{"--url", "http://127.0.0.1:1/", "--token-file", good}, 2, "--url must start with ws:// or wss://"},
		{"pin on plain ws", []string{"--url", g.url, "--token-file", good, "--tls-sha256", strings.Repeat("ab", 32)}, 2, "--tls-sha256 needs a wss:// --url"},
		{"bad pin", []string{"--url", "wss://127.0.0.1:1/", "--token-file", good, "--tls-sha256", "abc"}, 2, "--tls-sha256"},
		{"bad session", []string{"--url", g.url, "--token-file", good, "--session", "a/b"}, 2, "--session"},
		{"empty message", []string{"--url", g.url, "--token-file", good, "--message", " "}, 2, "--message is empty"},
		{"positional argument", []string{"hello", "--url", g.url, "--token-file", good}, 2, "chat takes no arguments"},
		{"unknown flag", []string{"--token", "x"}, 2, "unknown flag: --token"},
		{"wrong token", []string{"--url", g.url, "--token-file", wrong, "--message", "hi"}, 1, "hint: the gateway refused the token"},
		{"nothing listening", []string{"--url", "ws://127.0.0.1:1/", "--token-file", good}, 1, "connecting to ws://127.0.0.1:1/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SKYKOI_TOKEN", "")
			ctx, cancel := context.WithTimeout(context.Background(), patience(t))
			defer cancel()
			var out, errb bytes.Buffer
			code := run(ctx, append([]string{"chat"}, tc.args...), stdio{in: strings.NewReader("hello\n"), out: &out, err: &errb})
			if code != tc.code || !strings.Contains(errb.String(), tc.inStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), tc.code, tc.inStderr)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q", out.String())
			}
			for _, secret := range []string{chatTestToken, wrongToken} {
				if strings.Contains(out.String()+errb.String(), secret) {
					t.Error("a token appears in the output")
				}
			}
		})
	}
}

// TestChatInterrupt drives the chat loop with an injected Ctrl-C: during an
// answer it stops the run and the chat goes on; a second one during an
// answer leaves; one while idle leaves too.
func TestChatInterrupt(t *testing.T) {
	g, fake, _ := chatFixture(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("partial"), bedrocktest.Hang()})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Second answer.")})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("more partial"), bedrocktest.Hang()})
	start := func(ints chan os.Signal) *chatProc {
		return startChatWith(t, func(ctx context.Context, io stdio) int {
			o := chatOptions{url: g.url, token: chatTestToken, sessionKey: "agent:main:main", interrupts: ints}
			if err := runChat(ctx, o, io); err != nil {
				return 1
			}
			return 0
		})
	}
	ints := make(chan os.Signal, 1)
	p := start(ints)
	p.send("go")
	p.waitOut("partial")
	ints <- os.Interrupt
	p.waitErr("[stopping; Ctrl-C again to quit]")
	p.waitErr("[aborted]")
	p.send("again")
	p.waitOut("Second answer.\n")
	if got := p.out.String(); got != "partial\nSecond answer.\n" {
		t.Errorf("stdout %q", got)
	}
	// Ctrl-C while idle leaves.
	ints <- os.Interrupt
	select {
	case code := <-p.exit:
		p.exit <- code
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(patience(t)):
		t.Fatal("Ctrl-C while idle did not end the chat")
	}

	// Two Ctrl-C during an answer: the first stops it, the second leaves
	// without waiting for the stop to finish.
	ints2 := make(chan os.Signal, 2)
	p2 := start(ints2)
	p2.send("go on")
	p2.waitOut("more partial")
	ints2 <- os.Interrupt
	p2.waitErr("[stopping")
	ints2 <- os.Interrupt
	select {
	case code := <-p2.exit:
		p2.exit <- code
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(patience(t)):
		t.Fatal("a second Ctrl-C did not end the chat")
	}
}

// TestChatLifeIgnoresInterrupt: main cancels its context on SIGINT, but in
// a chat Ctrl-C is handled by the chat; any other cancellation ends it.
func TestChatLifeIgnoresInterrupt(t *testing.T) {
	interrupted, stop := context.WithCancelCause(context.Background())
	life, cancel := chatLife(interrupted)
	defer cancel()
	stop(errors.New(os.Interrupt.String() + " signal received"))
	// chatLife reacts through context.AfterFunc, in a goroutine of its own:
	// give it time to (wrongly) cancel before concluding it did not.
	select {
	case <-life.Done():
		t.Fatal("the chat ended on the interrupt cancellation")
	case <-time.After(200 * time.Millisecond):
	}

	parent, stopParent := context.WithCancel(context.Background())
	life2, cancel2 := chatLife(parent)
	defer cancel2()
	stopParent()
	select {
	case <-life2.Done():
	case <-time.After(patience(t)):
		t.Fatal("the chat outlived its parent context")
	}
}

// TestChatBinarySIGINT checks Ctrl-C in the real binary, where main turns
// SIGINT into a cancelled context: during an answer it stops the run and
// the chat stays; while idle it leaves with status 0.
func TestChatBinarySIGINT(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send on Windows")
	}
	_, fake, flags := chatFixture(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("partial"), bedrocktest.Hang()})
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Still here.")})
	cmd := exec.Command(binary, append([]string{"chat"}, flags...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SKYKOI_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, errb := &chatBuf{}, &chatBuf{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		}
	})
	write := func(s string) {
		if _, err := io.WriteString(stdin, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	write("go")
	chatWaitFor(t, "the partial answer", func() bool { return strings.Contains(out.String(), "partial") })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	chatWaitFor(t, "the run to be stopped", func() bool { return strings.Contains(errb.String(), "[aborted]") })
	write("again")
	chatWaitFor(t, "the next answer", func() bool { return strings.Contains(out.String(), "Still here.\n") })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("chat exited with %v", err)
		}
	case <-time.After(patience(t)):
		t.Fatal("Ctrl-C while idle did not end the chat")
	}
}

// TestChatPTY runs the chat on a real pseudo-terminal: the prompt shows, a
// line typed at it gets its answer, and Ctrl-D leaves.
func TestChatPTY(t *testing.T) {
	master, slave, err := ptytest.Open()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("no pty support on this platform")
	}
	if err != nil {
		t.Skipf("cannot open a pty here: %v", err)
	}
	defer master.Close()
	_, fake, flags := chatFixture(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Hi from the pty.")})

	screen := &chatBuf{}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(screen, master) // ends with EIO once the slave is closed
		close(copied)
	}()
	errb := &chatBuf{}
	exit := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	go func() { exit <- run(ctx, append([]string{"chat"}, flags...), stdio{in: slave, out: slave, err: errb}) }()

	chatWaitFor(t, "the prompt", func() bool { return strings.Contains(screen.String(), "you> ") })
	if _, err := master.Write([]byte("hello\r")); err != nil {
		t.Fatal(err)
	}
	chatWaitFor(t, "the answer and a new prompt", func() bool {
		s := screen.String()
		i := strings.Index(s, "Hi from the pty.")
		return i >= 0 && strings.Contains(s[i:], "you> ")
	})
	if _, err := master.Write([]byte{4}); err != nil { // Ctrl-D at the start of a line
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, errb.String())
		}
	case <-time.After(patience(t)):
		t.Fatalf("Ctrl-D did not end the chat; screen %q", screen.String())
	}
	slave.Close()
	<-copied
	if strings.Contains(screen.String()+errb.String(), chatTestToken) {
		t.Error("the token appears on the terminal")
	}
}

// noChatCreds finds no AWS credentials, as on a laptop without AWS setup.
type noChatCreds struct{}

func (noChatCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("no EC2 IMDS role found, no AWS_ACCESS_KEY_ID in the environment")
}

// TestChatSaysModelUnreachable: without model credentials `skykoi chat`
// says so on arrival, in the gateway's one sentence with the fix, before
// anything is sent; a message sent anyway fails with that sentence, and
// /history still has the question and the error.
func TestChatSaysModelUnreachable(t *testing.T) {
	fake := bedrocktest.NewServer()
	t.Cleanup(fake.Close)
	g := startChatGW(t, fake, t.TempDir(), "127.0.0.1:0", func(o *gateway.Options) { o.AWSCredentials = noChatCreds{} })
	// The gateway checks credentials in the background after start; the
	// chat must arrive after health knows, which is what this waits for.
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{URL: g.url, Token: chatTestToken})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var h gateway.Health
	chatWaitFor(t, "health to know the model", func() bool {
		return cl.Request(ctx, "health", nil, &h) == nil && h.Model.Reachable != nil
	})
	sentence := h.Model.Error
	if !strings.HasPrefix(sentence, "The model is unreachable") || strings.Contains(sentence, "IMDS") {
		t.Fatalf("health says %q", sentence)
	}

	p := startChat(t, "--url", g.url, "--token-file", chatTokenFile(t, chatTestToken))
	p.waitErr("warning: " + sentence + "\n")
	if out := p.out.String(); out != "" {
		t.Errorf("stdout before any message: %q", out)
	}
	p.send("hello?")
	p.waitErr("error: " + sentence + "\n")
	p.send("/history")
	p.waitOut("you: hello?\n")
	p.waitOut("koi: [error] " + sentence + "\n")
	if code := p.end(); code != 0 {
		t.Errorf("exit %d", code)
	}
	if strings.Count(p.err.String(), "warning: ") != 1 {
		t.Errorf("the warning was shown more than once:\n%s", p.err.String())
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d model requests without credentials", n)
	}
}

// TestChatShowsCronAnnouncement: a scheduled job's answer, announced to
// the main session, is printed by a `skykoi chat` that sits waiting for
// input, though it started no run.
func TestChatShowsCronAnnouncement(t *testing.T) {
	g, fake, flags := chatFixture(t)
	p := startChat(t, flags...)
	// The chat is connected once a turn of its own has been answered.
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("ready.")})
	p.send("hello")
	p.waitOut("ready.\n")
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Inbox: 3 new mails.")})

	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{URL: g.url, Token: chatTestToken, Scopes: client.OwnerScopes()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Request(ctx, "cron.add", map[string]any{"name": "inbox", "schedule": map[string]any{"kind": "at", "at": "1s"},
		"payload": map[string]any{"kind": "agentTurn", "message": "check my inbox"}}, nil); err != nil {
		t.Fatalf("cron.add: %v", err)
	}
	p.waitOut("[cron: inbox] Inbox: 3 new mails.")
	if code := p.end(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

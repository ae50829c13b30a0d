package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/protocol"
)

// testToken is the gateway token of test servers.
const testToken = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a real gateway on 127.0.0.1:0.
type testServer struct {
	*Server
	url    string // ws://127.0.0.1:port/
	http   string // http://127.0.0.1:port
	dir    string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// serverOpt adjusts a test server before it starts.
type serverOpt func(cfgJSON map[string]any, o *Options)

// startServer writes a config (token auth by default), starts the gateway and
// waits for it to listen. The server is drained at the end of the test.
func startServer(t testing.TB, opts ...serverOpt) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"gateway": map[string]any{
			"mode": "local",
			"auth": map[string]any{"mode": "token", "tokenSha256": configgen.HashSecret(testToken)},
		},
		"agents": map[string]any{"defaults": map[string]any{"workspace": filepath.Join(dir, "koi")}},
	}
	logs := &syncBuffer{}
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	ring := NewLogRing(logRingLines)
	o := Options{
		Addr:     "127.0.0.1:0",
		LogLevel: level,
		LogRing:  ring,
		Logger:   NewLogger(logs, level, ring),
		Getenv:   func(string) string { return "" },
		Hostname: "koi-test",
		// Not the SDK's default chain: it would ask this machine's instance
		// metadata service, if any, for a role.
		AWSCredentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session"),
	}
	for _, fn := range opts {
		fn(cfg, &o)
	}
	data, err := configgen.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "skykoi.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	parsed, err := configgen.ParseEnv(data, o.Getenv)
	if err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	o.Config = parsed
	o.ConfigPath = path
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, dir: dir, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Run(ctx) }()
	deadline := time.Now().Add(patience(t))
	for s.Addr() == nil || !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ts.url = "ws://" + s.Addr().String() + "/"
	ts.http = "http://" + s.Addr().String()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop drains the server once and returns Run's result.
func (ts *testServer) stop(t testing.TB) error {
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok {
			close(ts.done)
		}
		return err
	case <-time.After(patience(t)):
		t.Error("server did not drain")
		return nil
	}
}

// setConfig rewrites one key of a running test server's config file and
// reloads it, as an owner editing the file and sending SIGHUP would.
func (ts *testServer) setConfig(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(ts.opts.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := configgen.DecodeRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	configgen.Set(tree, path, v)
	out, err := configgen.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ts.opts.ConfigPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
}

func withConfig(path string, v any) serverOpt {
	return func(cfg map[string]any, _ *Options) { configgen.Set(cfg, path, v) }
}

func withOptions(fn func(*Options)) serverOpt {
	return func(_ map[string]any, o *Options) { fn(o) }
}

// wsClient is a raw protocol peer: tests see every frame exactly.
type wsClient struct {
	t  testing.TB
	ws *websocket.Conn
	mu sync.Mutex
	n  int
	// skipped holds frames readRes passed over while waiting for a
	// response; later reads see them first, so an event that raced ahead of
	// its request's response is not lost.
	skipped []frame
}

func dialRaw(t testing.TB, url string, h http.Header) *wsClient {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return &wsClient{t: t, ws: ws}
}

// frame is any inbound frame.
type frame struct {
	Type         string                 `json:"type"`
	ID           string                 `json:"id"`
	OK           bool                   `json:"ok"`
	Payload      json.RawMessage        `json:"payload"`
	Error        *protocol.Error        `json:"error"`
	Event        string                 `json:"event"`
	Seq          *uint64                `json:"seq"`
	StateVersion *protocol.StateVersion `json:"stateVersion"`
}

// read returns the next frame, or the close error.
func (c *wsClient) read() (frame, error) {
	c.t.Helper()
	if len(c.skipped) > 0 {
		f := c.skipped[0]
		c.skipped = c.skipped[1:]
		return f, nil
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(patience(c.t)))
	typ, data, err := c.ws.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("server sent a non-text frame")
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("server sent invalid JSON %q: %v", data, err)
	}
	return f, nil
}

func (c *wsClient) mustRead() frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// readRes skips events until the response with id.
func (c *wsClient) readRes(id string) frame {
	c.t.Helper()
	var passed []frame
	defer func() { c.skipped = append(passed, c.skipped...) }()
	for {
		f := c.mustRead()
		if f.Type == "res" && f.ID == id {
			return f
		}
		passed = append(passed, f)
	}
}

// readEvent skips frames until the named event.
func (c *wsClient) readEvent(name string) frame {
	c.t.Helper()
	for {
		f := c.mustRead()
		if f.Type == "event" && f.Event == name {
			return f
		}
	}
}

// expectClose reads until the socket closes and returns the close code and text.
func (c *wsClient) expectClose() (int, string) {
	c.t.Helper()
	for {
		_, err := c.read()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, ce.Text
		}
		return -1, err.Error()
	}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *wsClient) sendRaw(typ int, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws.WriteMessage(typ, data)
}

// request sends a req and returns its id.
func (c *wsClient) request(method string, params any) string {
	c.mu.Lock()
	c.n++
	id := fmt.Sprintf("r%d", c.n)
	c.mu.Unlock()
	req := map[string]any{"type": "req", "id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	c.send(req)
	return id
}

// call sends a request and waits for its response.
func (c *wsClient) call(method string, params any) frame {
	c.t.Helper()
	return c.readRes(c.request(method, params))
}

// agentTurn sends an agent request and waits for both of its responses
// (accepted, then the run's end), failing the test unless both are ok.
func (c *wsClient) agentTurn(message, key string) {
	c.t.Helper()
	id := c.request("agent", map[string]any{"message": message, "idempotencyKey": key})
	if ack := c.readRes(id); !ack.OK {
		c.t.Fatalf("ack %s", ack.Payload)
	}
	if final := c.readRes(id); !final.OK {
		c.t.Fatalf("final %s", final.Payload)
	}
}

// challenge reads connect.challenge and returns its nonce.
func (c *wsClient) challenge() string {
	c.t.Helper()
	f := c.mustRead()
	if f.Event != protocol.EventConnectChallenge {
		c.t.Fatalf("first frame is %+v, want connect.challenge", f)
	}
	if f.Seq != nil {
		c.t.Errorf("connect.challenge carries seq %d; it must carry none", *f.Seq)
	}
	var ch protocol.Challenge
	_ = json.Unmarshal(f.Payload, &ch)
	if len(ch.Nonce) != 36 || ch.TS == 0 {
		c.t.Fatalf("bad challenge %s", f.Payload)
	}
	return ch.Nonce
}

// connectParams are valid connect params for the test token; mutate as needed.
func connectParams() map[string]any {
	return map[string]any{
		"minProtocol": 3, "maxProtocol": 4,
		"client": map[string]any{"id": "test", "version": "1.0.0", "platform": "linux", "mode": "test"},
		"auth":   map[string]any{"token": testToken},
	}
}

// connect completes a handshake with params and returns the connect response.
func (c *wsClient) connect(params map[string]any) frame {
	c.t.Helper()
	c.challenge()
	return c.call("connect", params)
}

// dialConnected opens an authenticated connection.
func dialConnected(t testing.TB, ts *testServer, mutate ...func(map[string]any)) (*wsClient, protocol.HelloOK) {
	t.Helper()
	c := dialRaw(t, ts.url, nil)
	p := connectParams()
	for _, m := range mutate {
		m(p)
	}
	res := c.connect(p)
	if !res.OK {
		t.Fatalf("connect failed: %+v", res.Error)
	}
	var hello protocol.HelloOK
	if err := json.Unmarshal(res.Payload, &hello); err != nil {
		t.Fatal(err)
	}
	return c, hello
}

// waitFor polls cond up to a generous bound; it is a safety net for
// asynchronous effects, not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience(t))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func detailsCode(e *protocol.Error) string {
	if e == nil {
		return ""
	}
	m, _ := e.Details.(map[string]any)
	s, _ := m["code"].(string)
	return s
}

func unmarshal[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

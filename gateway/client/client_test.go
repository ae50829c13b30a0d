package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/testwait"
)

// fakeGateway is a test peer speaking just enough of PROTOCOL.md: the
// challenge, connect (token, protocol range, device proof), hello-ok, and a
// few methods that exercise the client's paths. It is not the gateway.
//
// Methods: echo (payload = params), agent (ack, one event, final), fail
// (NOT_FOUND with details), emit {count, skipAt} (events with seq, skipping
// skipAt), hang (no answer), unhang (answers the last hang, then itself),
// restart (close 1012).
type fakeGateway struct {
	srv *httptest.Server

	mu       sync.Mutex
	token    string
	conns    []*websocket.Conn
	accepted int

	methods chan string // every request's method, for synchronisation
	devices chan error  // result of verifying each device proof
	closes  chan int    // close codes received from clients
	pings   chan struct{}
	// mutePings makes the peer ignore pings, as a dead host would; set
	// before dialling.
	mutePings bool
}

func newFakeGateway(t *testing.T, token string, useTLS bool) *fakeGateway {
	t.Helper()
	g := &fakeGateway{
		token:   token,
		methods: make(chan string, 256),
		devices: make(chan error, 16),
		closes:  make(chan int, 16),
		pings:   make(chan struct{}, 1),
	}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	// Refused TLS handshakes are the point of some tests, not news.
	g.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		g.srv.StartTLS()
	} else {
		g.srv.Start()
	}
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) url() string {
	if strings.HasPrefix(g.srv.URL, "https://") {
		return "wss://" + strings.TrimPrefix(g.srv.URL, "https://")
	}
	return "ws://" + strings.TrimPrefix(g.srv.URL, "http://")
}

func (g *fakeGateway) setToken(tok string) {
	g.mu.Lock()
	g.token = tok
	g.mu.Unlock()
}

// drop cuts every connection without a close frame, as a network would.
func (g *fakeGateway) drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		_ = c.NetConn().Close()
	}
	g.conns = nil
}

func signal[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func writeJSON(c *websocket.Conn, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.WriteMessage(websocket.TextMessage, data)
}

func okRes(id string, payload any) protocol.Response {
	return protocol.Response{Type: protocol.TypeResponse, ID: id, OK: true, Payload: payload}
}

func errRes(id string, e *protocol.Error) protocol.Response {
	return protocol.Response{Type: protocol.TypeResponse, ID: id, Error: e}
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetPingHandler(func(data string) error {
		signal(g.pings, struct{}{})
		if g.mutePings {
			return nil
		}
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	g.mu.Lock()
	g.accepted++
	connID := "c" + strconv.Itoa(g.accepted)
	g.conns = append(g.conns, c)
	token := g.token
	g.mu.Unlock()

	nonce := "nonce-" + connID
	if writeJSON(c, protocol.Event{Type: protocol.TypeEvent, Event: protocol.EventConnectChallenge,
		Payload: protocol.Challenge{Nonce: nonce, TS: 1}}) != nil {
		return
	}
	req, ok := readRequest(c, g.closes)
	if !ok || req.Method != "connect" {
		return
	}
	var p protocol.ConnectParams
	if err := json.Unmarshal(req.Params, &p); err != nil {
		return
	}
	if perr := g.checkConnect(&p, token, nonce); perr != nil {
		_ = writeJSON(c, errRes(req.ID, perr))
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.ClosePolicyViolation, "handshake failed"))
		return
	}
	proto := min(p.MaxProtocol, protocol.MaxProtocol)
	if writeJSON(c, okRes(req.ID, protocol.HelloOK{Type: "hello-ok", Protocol: proto,
		Server: protocol.ServerInfo{Version: "test", ConnID: connID},
		Auth:   protocol.HelloAuth{Role: protocol.RoleOperator, Method: "token"}})) != nil {
		return
	}

	var seq uint64
	event := func(name string, payload any) error {
		seq++
		s := seq
		return writeJSON(c, protocol.Event{Type: protocol.TypeEvent, Event: name, Payload: payload, Seq: &s})
	}
	hangID := ""
	for {
		req, ok := readRequest(c, g.closes)
		if !ok {
			return
		}
		signal(g.methods, req.Method)
		var err error
		switch req.Method {
		case "echo":
			params := req.Params
			if len(params) == 0 {
				params = json.RawMessage("{}")
			}
			err = writeJSON(c, okRes(req.ID, params))
		case "agent":
			run := map[string]any{"runId": "run-" + req.ID}
			if err = writeJSON(c, okRes(req.ID, map[string]any{"runId": run["runId"], "status": "accepted"})); err != nil {
				return
			}
			if err = event(protocol.EventAgent, run); err != nil {
				return
			}
			err = writeJSON(c, okRes(req.ID, map[string]any{"runId": run["runId"], "status": "ok", "summary": "completed"}))
		case "fail":
			err = writeJSON(c, errRes(req.ID, protocol.Errorf(protocol.CodeNotFound, "unknown run").
				WithDetails(map[string]any{"runId": "r-404"})))
		case "emit":
			var a struct {
				Count  int    `json:"count"`
				SkipAt uint64 `json:"skipAt"`
			}
			_ = json.Unmarshal(req.Params, &a)
			for i := 1; i <= a.Count && err == nil; i++ {
				if seq+1 == a.SkipAt {
					seq++
				}
				err = event(protocol.EventTick, map[string]int{"n": i})
			}
			if err == nil {
				err = writeJSON(c, okRes(req.ID, map[string]int{"sent": a.Count}))
			}
		case "hang":
			hangID = req.ID
		case "unhang":
			if err = writeJSON(c, okRes(hangID, map[string]bool{"late": true})); err == nil {
				err = writeJSON(c, okRes(req.ID, map[string]bool{"ok": true}))
			}
		case "restart":
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.CloseServiceRestart, "service restart"))
			return
		default:
			err = writeJSON(c, errRes(req.ID, protocol.Errorf(protocol.CodeInvalidRequest, "unknown method: "+req.Method)))
		}
		if err != nil {
			return
		}
	}
}

// readRequest reads one request, recording a close frame's code.
func readRequest(c *websocket.Conn, closes chan int) (protocol.Request, bool) {
	var req protocol.Request
	_, data, err := c.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			signal(closes, ce.Code)
		}
		return req, false
	}
	return req, json.Unmarshal(data, &req) == nil
}

func authError(msg, code string) *protocol.Error {
	return protocol.Errorf(protocol.CodeInvalidRequest, msg).WithDetails(map[string]any{"code": code})
}

func (g *fakeGateway) checkConnect(p *protocol.ConnectParams, token, nonce string) *protocol.Error {
	if p.MaxProtocol < protocol.MinProtocol || p.MinProtocol > protocol.MaxProtocol {
		return protocol.Errorf(protocol.CodeInvalidRequest, "protocol mismatch").
			WithDetails(map[string]any{"supported": protocol.SupportedProtocols()})
	}
	if p.Client.ID == "" || p.Client.Version == "" || p.Client.Platform == "" || p.Client.Mode == "" {
		return protocol.Errorf(protocol.CodeInvalidRequest, "invalid connect params: client")
	}
	sent := ""
	if p.Auth != nil {
		sent = p.Auth.Token
	}
	switch {
	case token == "":
	case sent == "":
		return authError("unauthorized: gateway token missing", protocol.AuthTokenMissing)
	case sent != token:
		return authError("unauthorized: gateway token mismatch", protocol.AuthTokenMismatch)
	}
	if p.Device != nil {
		err := verifyDevice(p, nonce)
		signal(g.devices, err)
		if err != nil {
			return authError("device signature invalid: "+err.Error(), protocol.DeviceAuthSignatureInvalid)
		}
	}
	return nil
}

// verifyDevice checks a device proof from first principles (crypto/ed25519
// over the v3 string spelled out here), not with the protocol package's
// helpers, so a bug shared by signer and helper cannot hide.
func verifyDevice(p *protocol.ConnectParams, nonce string) error {
	d := p.Device
	pub, err := base64.RawURLEncoding.DecodeString(d.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key: %v (%d bytes)", err, len(pub))
	}
	sum := sha256.Sum256(pub)
	if d.ID != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("device id %q is not the key's SHA-256", d.ID)
	}
	if d.Nonce != nonce {
		return fmt.Errorf("nonce %q, challenge was %q", d.Nonce, nonce)
	}
	role := p.Role
	if role == "" {
		role = protocol.RoleOperator
	}
	token := ""
	if p.Auth != nil {
		token = p.Auth.Token
	}
	norm := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	payload := strings.Join([]string{"v3", d.ID, p.Client.ID, p.Client.Mode, role, strings.Join(p.Scopes, ","),
		strconv.FormatInt(d.SignedAt, 10), token, nonce, norm(p.Client.Platform), norm(p.Client.DeviceFamily)}, "|")
	sig, err := base64.RawURLEncoding.DecodeString(d.Signature)
	if err != nil {
		return fmt.Errorf("signature encoding: %v", err)
	}
	if !ed25519.Verify(pub, []byte(payload), sig) {
		return fmt.Errorf("signature does not verify over %q", payload)
	}
	return nil
}

// testCtx bounds a test so a bug fails it with its own message before the
// global timeout; it is a safety net, never an assertion about timing, and
// follows the -timeout so a loaded machine only slows it down.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testwait.Patience(t))
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, g *fakeGateway, edit func(*Options)) *Client {
	t.Helper()
	o := Options{URL: g.url(), Token: "secret"}
	if edit != nil {
		edit(&o)
	}
	c, err := Dial(testCtx(t), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func waitMethod(t *testing.T, ctx context.Context, g *fakeGateway, method string) {
	t.Helper()
	for {
		select {
		case m := <-g.methods:
			if m == method {
				return
			}
		case <-ctx.Done():
			t.Fatalf("the fake gateway never received %s", method)
		}
	}
}

func nextEvent(t *testing.T, ctx context.Context, ch <-chan EventFrame) EventFrame {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return ev
	case <-ctx.Done():
		t.Fatal("no event arrived")
	}
	return EventFrame{}
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*Options)
		wantCode    string // protocol error code; "" for success
		wantDetails string // details.code
		wantMessage string
	}{
		{name: "token accepted"},
		{name: "token missing", edit: func(o *Options) { o.Token = "" },
			wantCode: protocol.CodeInvalidRequest, wantDetails: protocol.AuthTokenMissing, wantMessage: "token missing"},
		{name: "token mismatch", edit: func(o *Options) { o.Token = "wrong" },
			wantCode: protocol.CodeInvalidRequest, wantDetails: protocol.AuthTokenMismatch, wantMessage: "token mismatch"},
		{name: "no common protocol", edit: func(o *Options) { o.MinProtocol, o.MaxProtocol = 5, 6 },
			wantCode: protocol.CodeInvalidRequest, wantMessage: "protocol mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway(t, "secret", false)
			o := Options{URL: g.url(), Token: "secret"}
			if tt.edit != nil {
				tt.edit(&o)
			}
			c, err := Dial(testCtx(t), o)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				h := c.Hello()
				if h.Protocol != protocol.MaxProtocol || h.Server.ConnID != "c1" {
					t.Errorf("hello = protocol %d conn %q, want %d c1", h.Protocol, h.Server.ConnID, protocol.MaxProtocol)
				}
				return
			}
			var perr *protocol.Error
			if !errors.As(err, &perr) {
				t.Fatalf("Dial error = %v, want a *protocol.Error", err)
			}
			if perr.Code != tt.wantCode || !strings.Contains(perr.Message, tt.wantMessage) {
				t.Errorf("error = %s %q, want %s containing %q", perr.Code, perr.Message, tt.wantCode, tt.wantMessage)
			}
			if got := DetailsCode(err); got != tt.wantDetails {
				t.Errorf("details.code = %q, want %q", got, tt.wantDetails)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	// A peer that upgrades and then says nothing, like a stuck proxy.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	url := "ws://" + strings.TrimPrefix(srv.URL, "http://")

	_, err := Dial(testCtx(t), Options{URL: url, HandshakeTimeout: 20 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "handshake did not finish") {
		t.Errorf("Dial with a silent peer = %v, want a handshake timeout", err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := Dial(ctx, Options{URL: url}); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestConnectSendsClientDefaults(t *testing.T) {
	o, err := Options{URL: "ws://127.0.0.1:1"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Client.ID != DefaultClientID || o.Client.Mode != DefaultClientMode || o.Client.Version == "" || o.Client.Platform == "" {
		t.Errorf("client defaults = %+v", o.Client)
	}
	if o.Role != protocol.RoleOperator || o.MinProtocol != 3 || o.MaxProtocol != 4 {
		t.Errorf("role %q protocols %d..%d", o.Role, o.MinProtocol, o.MaxProtocol)
	}
	for _, bad := range []Options{
		{URL: "http://127.0.0.1:1"},
		{URL: "ws://127.0.0.1:1", TLSFingerprintSHA256: strings.Repeat("ab", 32)},
		{URL: "ws://127.0.0.1:1", DeviceKey: ed25519.PrivateKey{1, 2, 3}},
	} {
		if _, err := Dial(testCtx(t), bad); err == nil {
			t.Errorf("Dial(%+v) succeeded, want an options error", bad)
		}
	}
}

func TestDeviceProofVerifies(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g := newFakeGateway(t, "secret", false)
	dial(t, g, func(o *Options) {
		o.DeviceKey = priv
		o.Scopes = []string{protocol.ScopeWrite, protocol.ScopeRead}
		o.Client.Platform = " Linux "
		o.Client.DeviceFamily = "Laptop"
	})
	select {
	case err := <-g.devices:
		if err != nil {
			t.Fatalf("device proof rejected: %v", err)
		}
	default:
		t.Fatal("the client sent no device proof")
	}
}

func TestRequest(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, nil)
	tests := []struct {
		name, method string
		params       any
		want         string // payload JSON
		wantCode     string
		wantDetails  string // a key expected in details
	}{
		{name: "round trip", method: "echo", params: map[string]any{"a": 1, "b": []string{"x"}}, want: `{"a":1,"b":["x"]}`},
		{name: "no params", method: "echo", want: `{}`},
		{name: "error response", method: "fail", wantCode: protocol.CodeNotFound, wantDetails: "runId"},
		{name: "unknown method", method: "nope", wantCode: protocol.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out json.RawMessage
			err := c.Request(testCtx(t), tt.method, tt.params, &out)
			if tt.wantCode != "" {
				var perr *protocol.Error
				if !errors.As(err, &perr) || perr.Code != tt.wantCode {
					t.Fatalf("err = %v, want %s", err, tt.wantCode)
				}
				if tt.wantDetails != "" {
					if d, _ := perr.Details.(map[string]any); d[tt.wantDetails] == nil {
						t.Errorf("details = %v, want key %s", perr.Details, tt.wantDetails)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("payload = %s, want %s", out, tt.want)
			}
		})
	}
}

func TestRequestFinal(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, nil)
	events, _ := c.Subscribe(8)
	var ack, final struct {
		RunID   string `json:"runId"`
		Status  string `json:"status"`
		Summary string `json:"summary"`
	}
	if err := c.RequestFinal(testCtx(t), "agent", map[string]string{"message": "hi"}, &ack, &final); err != nil {
		t.Fatal(err)
	}
	if ack.Status != "accepted" || final.Status != "ok" || final.Summary != "completed" || ack.RunID == "" || ack.RunID != final.RunID {
		t.Errorf("ack = %+v, final = %+v", ack, final)
	}
	if ev := nextEvent(t, testCtx(t), events); ev.Event != protocol.EventAgent || ev.Seq != 1 {
		t.Errorf("event = %s seq %d, want agent seq 1", ev.Event, ev.Seq)
	}
}

func TestRequestContextCancel(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() { errc <- c.Request(ctx, "hang", nil, nil) }()
	waitMethod(t, testCtx(t), g, "hang")
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	c.mu.Lock()
	s := c.cur
	c.mu.Unlock()
	s.mu.Lock()
	n := len(s.pending)
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d requests still pending after cancel", n)
	}
	// The late answer to the forgotten request is dropped; the next
	// request still gets its own.
	var out map[string]bool
	if err := c.Request(testCtx(t), "unhang", nil, &out); err != nil || !out["ok"] || out["late"] {
		t.Fatalf("unhang = %v, %v", out, err)
	}
}

func TestEvents(t *testing.T) {
	tests := []struct {
		name       string
		count      int
		skipAt     uint64
		wantSeqs   []uint64 // 0 marks the gap notice
		wantGaps   uint64
		wantMissed uint64
	}{
		{name: "in order", count: 5, wantSeqs: []uint64{1, 2, 3, 4, 5}},
		{name: "gap", count: 4, skipAt: 3, wantSeqs: []uint64{1, 2, 0, 4, 5}, wantGaps: 1, wantMissed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway(t, "secret", false)
			c := dial(t, g, nil)
			events, unsubscribe := c.Subscribe(0)
			defer unsubscribe()
			if err := c.Request(testCtx(t), "emit", map[string]any{"count": tt.count, "skipAt": tt.skipAt}, nil); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, want := range tt.wantSeqs {
				ev := nextEvent(t, testCtx(t), events)
				if want == 0 {
					var gap map[string]uint64
					if ev.Event != EventSeqGap || json.Unmarshal(ev.Payload, &gap) != nil || gap["expected"] != tt.skipAt || gap["received"] != tt.skipAt+1 {
						t.Fatalf("got %s %s, want the gap notice", ev.Event, ev.Payload)
					}
					continue
				}
				n++
				var p map[string]int
				if ev.Event != protocol.EventTick || ev.Seq != want || json.Unmarshal(ev.Payload, &p) != nil || p["n"] != n {
					t.Fatalf("got %s seq %d %s, want tick seq %d n %d", ev.Event, ev.Seq, ev.Payload, want, n)
				}
			}
			st := c.Stats()
			if st.SeqGaps != tt.wantGaps || st.MissedEvents != tt.wantMissed || st.Dropped != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestSlowSubscriberDoesNotStall(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, nil)
	slow, _ := c.Subscribe(1) // never read until the end
	fast, _ := c.Subscribe(500)
	const n = 200
	if err := c.Request(testCtx(t), "emit", map[string]int{"count": n}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Request(testCtx(t), "echo", nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if ev := nextEvent(t, testCtx(t), fast); ev.Seq != uint64(i) || ev.Dropped != 0 {
			t.Fatalf("fast subscriber got seq %d dropped %d, want %d 0", ev.Seq, ev.Dropped, i)
		}
	}
	if got := c.Stats().Dropped; got != n-1 {
		t.Errorf("Stats().Dropped = %d, want %d", got, n-1)
	}
	if ev := nextEvent(t, testCtx(t), slow); ev.Seq != 1 || ev.Dropped != 0 {
		t.Errorf("slow subscriber's first event: seq %d dropped %d", ev.Seq, ev.Dropped)
	}
	if err := c.Request(testCtx(t), "emit", map[string]int{"count": 1}, nil); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, testCtx(t), slow); ev.Seq != n+1 || ev.Dropped != n-1 {
		t.Errorf("slow subscriber's next event: seq %d dropped %d, want %d %d", ev.Seq, ev.Dropped, n+1, n-1)
	}
}

func TestServerCloseSurfacesInErr(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, nil)
	events, _ := c.Subscribe(4)
	err := c.Request(testCtx(t), "restart", nil, nil)
	if !errors.Is(err, ErrConnectionLost) || !IsRetryable(err) {
		t.Errorf("request err = %v, want a retryable ErrConnectionLost", err)
	}
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("client not done after the gateway closed")
	}
	var ce *CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseServiceRestart || !strings.Contains(c.Err().Error(), "1012 (service restart)") {
		t.Errorf("Err() = %v, want close 1012", c.Err())
	}
	if _, ok := <-events; ok {
		t.Error("subscription still open after the client ended")
	}
	if err := c.Request(testCtx(t), "echo", nil, nil); !errors.As(err, &ce) {
		t.Errorf("request after the end = %v, want the close error", err)
	}
}

func TestClose(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, nil)
	errc := make(chan error, 1)
	go func() { errc <- c.Request(testCtx(t), "hang", nil, nil) }()
	waitMethod(t, testCtx(t), g, "hang")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("outstanding request = %v, want ErrClosed", err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
	select {
	case code := <-g.closes:
		if code != websocket.CloseNormalClosure {
			t.Errorf("gateway saw close %d, want 1000", code)
		}
	case <-testCtx(t).Done():
		t.Error("the gateway saw no close frame")
	}
	if err := c.Request(testCtx(t), "echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("request after Close = %v, want ErrClosed", err)
	}
	_ = c.Close() // idempotent
}

func TestReconnect(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, func(o *Options) {
		o.Reconnect = true
		o.Backoff = Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}
	})
	events, _ := c.Subscribe(16)
	full, _ := c.Subscribe(1) // not read until the end: notices must evict
	if err := c.Request(testCtx(t), "emit", map[string]int{"count": 2}, nil); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Request(testCtx(t), "hang", nil, nil) }()
	waitMethod(t, testCtx(t), g, "hang")
	g.drop()

	if err := <-errc; !errors.Is(err, ErrConnectionLost) || !IsRetryable(err) {
		t.Fatalf("pending request = %v, want a retryable ErrConnectionLost", err)
	}
	var names []string
	for len(names) == 0 || names[len(names)-1] != EventReconnected {
		ev := nextEvent(t, testCtx(t), events)
		names = append(names, ev.Event)
		if ev.Event == EventReconnected {
			var h protocol.HelloOK
			if err := json.Unmarshal(ev.Payload, &h); err != nil || h.Server.ConnID != "c2" {
				t.Errorf("reconnected notice = %s (%v), want the new hello", ev.Payload, err)
			}
		}
	}
	if want := []string{"tick", "tick", EventDisconnected, EventReconnected}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("events = %v, want %v", names, want)
	}
	// The full subscriber lost tick 2 (no room), then tick 1 and the
	// disconnect notice to make room for the notices that followed. The
	// notice reaches subscribers one after another under subsMu; taking it
	// waits until it has reached this one too.
	c.subsMu.Lock()
	//lint:ignore SA2001 an empty critical section is the barrier
	c.subsMu.Unlock()
	if ev := nextEvent(t, testCtx(t), full); ev.Event != EventReconnected || ev.Dropped != 1 || c.Stats().Dropped != 3 {
		t.Errorf("full subscriber got %s dropped %d, total dropped %d; want %s 1 3", ev.Event, ev.Dropped, c.Stats().Dropped, EventReconnected)
	}
	var out map[string]int
	if err := c.Request(testCtx(t), "echo", map[string]int{"after": 1}, &out); err != nil || out["after"] != 1 {
		t.Fatalf("request after reconnect = %v, %v", out, err)
	}
	if id := c.Hello().Server.ConnID; id != "c2" {
		t.Errorf("Hello().Server.ConnID = %q, want c2", id)
	}
	// seq is per connection: the new one starts at 1 without a reported gap.
	if err := c.Request(testCtx(t), "emit", map[string]int{"count": 1}, nil); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, testCtx(t), events); ev.Seq != 1 {
		t.Errorf("first event on the new connection has seq %d", ev.Seq)
	}
	if st := c.Stats(); st.Reconnects != 1 || st.SeqGaps != 0 {
		t.Errorf("stats = %+v", st)
	}
	if c.Err() != nil {
		t.Errorf("Err() = %v while connected", c.Err())
	}
}

func TestReconnectStopsWhenRefused(t *testing.T) {
	g := newFakeGateway(t, "secret", false)
	c := dial(t, g, func(o *Options) {
		o.Reconnect = true
		o.Backoff = Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}
	})
	g.setToken("rotated")
	g.drop()
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("client kept reconnecting with a refused token")
	}
	if DetailsCode(c.Err()) != protocol.AuthTokenMismatch {
		t.Errorf("Err() = %v, want AUTH_TOKEN_MISMATCH", c.Err())
	}
}

func TestPing(t *testing.T) {
	t.Run("pings are sent and answered", func(t *testing.T) {
		g := newFakeGateway(t, "secret", false)
		// The long PongTimeout keeps a busy scheduler from failing the test.
		c := dial(t, g, func(o *Options) { o.PingInterval, o.PongTimeout = time.Millisecond, time.Hour })
		select {
		case <-g.pings:
		case <-testCtx(t).Done():
			t.Fatal("the client never pinged")
		}
		if err := c.Request(testCtx(t), "echo", nil, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a silent peer is found dead", func(t *testing.T) {
		g := newFakeGateway(t, "secret", false)
		g.mutePings = true
		c := dial(t, g, func(o *Options) { o.PingInterval, o.PongTimeout = time.Millisecond, 10*time.Millisecond })
		select {
		case <-c.Done():
		case <-testCtx(t).Done():
			t.Fatal("a peer that never answers pings was not found dead")
		}
		if !strings.Contains(fmt.Sprint(c.Err()), "not even a pong") {
			t.Errorf("Err() = %v, want a keepalive timeout", c.Err())
		}
	})
}

func TestTLSFingerprint(t *testing.T) {
	g := newFakeGateway(t, "secret", true)
	sum := sha256.Sum256(g.srv.Certificate().Raw)
	tests := []struct {
		name        string
		fingerprint string
		wantErr     string
	}{
		{name: "pinned, openssl style", fingerprint: FormatFingerprint(sum[:])},
		{name: "pinned, plain hex", fingerprint: hex.EncodeToString(sum[:])},
		{name: "wrong pin", fingerprint: strings.Repeat("00", 32), wantErr: "fingerprint did not match"},
		{name: "no pin, self-signed", wantErr: "certificate"},
		{name: "malformed pin", fingerprint: "abc", wantErr: "64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(testCtx(t), Options{URL: g.url(), Token: "secret", TLSFingerprintSHA256: tt.fingerprint})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				_ = c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			var fe *FingerprintError
			if tt.name == "wrong pin" && (!errors.As(err, &fe) || fe.Got != FormatFingerprint(sum[:])) {
				t.Errorf("err = %v, want a *FingerprintError naming the server's fingerprint", err)
			}
		})
	}
}

func TestTLSFingerprintKeepsCallerConfig(t *testing.T) {
	g := newFakeGateway(t, "secret", true)
	sum := sha256.Sum256(g.srv.Certificate().Raw)
	called := false
	c, err := Dial(testCtx(t), Options{
		URL: g.url(), Token: "secret", TLSFingerprintSHA256: FormatFingerprint(sum[:]),
		TLSConfig: &tls.Config{VerifyConnection: func(tls.ConnectionState) error { called = true; return nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !called {
		t.Error("the caller's VerifyConnection was not called after the pin")
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax}
	for attempt := range 12 {
		ceiling := min(DefaultBackoffMin<<attempt, DefaultBackoffMax)
		for range 50 {
			if d := b.delay(attempt); d < ceiling/2 || d > ceiling {
				t.Fatalf("delay(%d) = %s, want within [%s, %s]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
}

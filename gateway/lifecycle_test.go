package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/protocol"
)

func TestHelloOK(t *testing.T) {
	ts := startServer(t)
	_, hello := dialConnected(t, ts)
	if hello.Server.Host != "koi-test" || hello.Server.ConnID == "" || hello.Server.Version == "" {
		t.Errorf("server info %+v", hello.Server)
	}
	// features.methods is exactly the method table.
	want := ts.methodNames()
	if strings.Join(hello.Features.Methods, ",") != strings.Join(want, ",") {
		t.Errorf("methods %v, want %v", hello.Features.Methods, want)
	}
	for _, ev := range []string{"tick", "presence", "health", "shutdown"} {
		if !contains(hello.Features.Events, ev) {
			t.Errorf("events %v lack %s", hello.Features.Events, ev)
		}
	}
	pol := hello.Policy
	if pol.Attachments == nil || *pol.Attachments != (protocol.AttachmentPolicy{MaxBytes: 4_500_000, MaxImageBytes: 3_750_000, MaxCount: 10, MaxTotalBytes: 16 << 20}) {
		t.Errorf("policy.attachments %+v", pol.Attachments)
	}
	pol.Attachments = nil
	if pol != (protocol.Policy{MaxPayload: 26214400, MaxBufferedBytes: 52428800, TickIntervalMs: 30000}) {
		t.Errorf("policy %+v", hello.Policy)
	}
	sd := hello.Snapshot.SessionDefaults
	if sd.DefaultAgentID != "main" || sd.MainKey != "main" || sd.MainSessionKey != "agent:main:main" {
		t.Errorf("session defaults %+v", sd)
	}
	if len(hello.Snapshot.Presence) != 2 || hello.Snapshot.Presence[0].Mode != "gateway" || hello.Snapshot.Presence[0].Reason != "self" {
		t.Errorf("presence %+v", hello.Snapshot.Presence)
	}
	if hello.Snapshot.StateVersion.Presence == 0 {
		t.Error("stateVersion.presence is 0 after a connect")
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// TestEventsAndSeq checks per-connection seq without gaps across ticks,
// presence and health events.
func TestEventsAndSeq(t *testing.T) {
	ts := startServer(t, withOptions(func(o *Options) {
		o.TickInterval = 20 * time.Millisecond
		o.HealthInterval = 35 * time.Millisecond
	}))
	a, _ := dialConnected(t, ts)
	b, _ := dialConnected(t, ts) // a sees presence for b
	var last uint64
	seen := map[string]int{}
	var presenceVersion uint64
	for len(seen) < 3 || seen["tick"] < 3 {
		f := a.mustRead()
		if f.Type != "event" {
			continue
		}
		if f.Seq == nil || *f.Seq != last+1 {
			t.Fatalf("event %s seq %v after %d: gap or missing", f.Event, f.Seq, last)
		}
		last = *f.Seq
		seen[f.Event]++
		switch f.Event {
		case "presence", "health":
			if f.StateVersion == nil {
				t.Fatalf("%s without stateVersion", f.Event)
			}
			if f.Event == "presence" {
				presenceVersion = f.StateVersion.Presence
			}
		case "tick":
			tick := unmarshal[protocol.Tick](t, f.Payload)
			if tick.TS == 0 {
				t.Error("tick without ts")
			}
		}
	}
	b.ws.Close()
	// a learns that b left, with a newer presence version.
	for {
		f := a.readEvent("presence")
		var p struct {
			Presence []protocol.PresenceEntry `json:"presence"`
		}
		_ = json.Unmarshal(f.Payload, &p)
		if len(p.Presence) == 2 {
			if f.StateVersion.Presence <= presenceVersion {
				t.Errorf("presence version %d did not grow past %d", f.StateVersion.Presence, presenceVersion)
			}
			break
		}
	}
}

// TestSlowConsumer: a client that stops reading is closed with 1008 once its
// queue overflows, while another client keeps being served.
func TestSlowConsumer(t *testing.T) {
	ts := startServer(t, withOptions(func(o *Options) {
		o.MaxBufferedBytes = 1 << 20
		// slow reads only after the cut-off, to take the close frame: the
		// frame write the writer is stuck in must not time out first (and
		// abort the socket) on a loaded machine.
		o.WriteWait = patience(t)
	}))
	line := strings.Repeat("y", 4000)
	for i := 0; i < 1000; i++ {
		_, _ = ts.opts.LogRing.Write([]byte(line + "\n"))
	}
	slow, _ := dialConnected(t, ts)
	fast, _ := dialConnected(t, ts)
	// Each answer is ~250 KB; 200 of them (~50 MB) overflow the kernel
	// buffers and then the 1 MiB queue, since slow never reads.
	for i := 0; i < 200; i++ {
		slow.request("logs.tail", map[string]any{"limit": 5000, "maxBytes": 250000})
	}
	waitFor(t, "slow consumer to be cut off", func() bool {
		return strings.Contains(ts.logs.String(), "slow consumer: closing")
	})
	if r := fast.call("health", nil); !r.OK {
		t.Fatalf("fast client: %+v", r.Error)
	}
	code, text := slow.expectClose()
	if code != protocol.ClosePolicyViolation || text != "slow consumer" {
		t.Errorf("close %d %q, want 1008 slow consumer", code, text)
	}
}

// TestTickDroppedWhenFull: a full queue drops a tick silently (no close, no
// seq consumed) but closes the connection for any other event.
func TestTickDroppedWhenFull(t *testing.T) {
	ts := startServer(t, withOptions(func(o *Options) { o.MaxBufferedBytes = 300 }))
	c := &conn{s: ts.Server, wake: make(chan struct{}, 1)}
	c.sendEvent("tick", json.RawMessage(`{"ts":1}`), nil, true)
	big := json.RawMessage(`"` + strings.Repeat("z", 250) + `"`)
	c.sendEvent("tick", big, nil, true) // does not fit: dropped
	if c.closing || c.seq != 1 || len(c.queue) != 1 {
		t.Fatalf("after dropped tick: closing=%v seq=%d queued=%d", c.closing, c.seq, len(c.queue))
	}
	c.sendEvent("health", big, nil, false)
	if !c.closing {
		t.Fatal("an event that does not fit must close the connection")
	}
}

// TestDeadPeerReaped: a peer that stops answering pings is dropped, and
// the gateway goes on serving.
func TestDeadPeerReaped(t *testing.T) {
	ts := startServer(t, withOptions(func(o *Options) { o.PongWait = 200 * time.Millisecond }))
	dead, _ := dialConnected(t, ts)
	_ = dead // never reads again, so never answers a ping
	waitFor(t, "dead peer to be reaped", func() bool { return len(ts.connList()) == 0 })
	c, _ := dialConnected(t, ts)
	if r := c.call("health", nil); !r.OK {
		t.Fatal(r.Error)
	}
}

func TestReadiness(t *testing.T) {
	ts := startServer(t)
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.http + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	tests := []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, `{"ok":true,"status":"live"}`},
		{"/readyz", 200, `{"ok":true,"status":"ready"}`},
		{"/nope", 404, `{"error":"not found","ok":false,"path":"/nope"}`},
	}
	for _, tt := range tests {
		if code, body := get(tt.path); code != tt.code || body != tt.body {
			t.Errorf("GET %s = %d %s, want %d %s", tt.path, code, body, tt.code, tt.body)
		}
	}
	ts.draining.Store(true) // what drain sets first
	if code, body := get("/readyz"); code != 503 || body != `{"ok":false,"status":"draining"}` {
		t.Errorf("draining /readyz = %d %s", code, body)
	}
	// An upgrade that completes once drain has begun is not counted for
	// drain's wait (counting it then would race with the Wait).
	if ts.trackConn() {
		ts.connWG.Done()
		t.Error("a connection was tracked while draining")
	}
	ts.draining.Store(false)
	if !ts.trackConn() {
		t.Error("a connection was refused while serving")
	} else {
		ts.connWG.Done()
	}
}

// TestGracefulShutdown: an in-flight request completes, clients get the
// shutdown event, then close 1012, and Run returns nil.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	ts := startServer(t)
	ts.methods["test.slow"] = method{protocol.ScopeRead, func(*call) (any, *protocol.Error) {
		close(started)
		<-release
		return map[string]any{"done": true}, nil
	}}
	c, _ := dialConnected(t, ts)
	id := c.request("test.slow", nil)
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop(t) }()
	ev := c.readEvent("shutdown")
	var sd map[string]any
	_ = json.Unmarshal(ev.Payload, &sd)
	if _, ok := sd["restartExpectedMs"]; !ok || sd["reason"] == "" {
		t.Errorf("shutdown payload %s", ev.Payload)
	}
	waitFor(t, "readyz 503 while draining", func() bool { return !ts.Ready() })
	// New work is refused while draining.
	if r := c.call("health", nil); r.OK || r.Error.Code != protocol.CodeUnavailable || !r.Error.Retryable {
		t.Errorf("request during drain: %+v", r)
	}
	close(release)
	if r := c.readRes(id); !r.OK {
		t.Fatalf("in-flight request: %+v", r.Error)
	}
	code, _ := c.expectClose()
	if code != protocol.CloseServiceRestart {
		t.Errorf("close code %d, want 1012", code)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run returned %v", err)
	}
}

func TestReload(t *testing.T) {
	ts := startServer(t)
	write := func(s string) {
		if err := os.WriteFile(ts.opts.ConfigPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := fmt.Sprintf(`{gateway: {mode: "local", auth: {tokenSha256: %q}, controlUi: {allowedOrigins: [%%s]}}}`, configgen.HashSecret(testToken))
	// Valid: a newly allowed origin works at once.
	write(fmt.Sprintf(base, `"https://new.example"`))
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Origin": {"https://new.example"}}
	c := dialRaw(t, ts.url, h)
	if res := c.connect(connectParams()); !res.OK {
		t.Fatalf("reloaded origin refused: %+v", res.Error)
	}
	// Invalid: the running config stays and every issue is logged.
	write(`{gateway: {mode: "local", port: "x", auth: {tokenSha256: "short"}}}`)
	if err := ts.Reload(); err == nil {
		t.Fatal("invalid reload accepted")
	}
	logs := ts.logs.String()
	for _, want := range []string{"gateway.port: must be an integer", "gateway.auth.tokenSha256: must be 64 lowercase hex"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if got := ts.cfg().Gateway.ControlUI.AllowedOrigins; len(got) != 1 || got[0] != "https://new.example" {
		t.Errorf("running config changed to %v", got)
	}
	c2 := dialRaw(t, ts.url, h)
	if res := c2.connect(connectParams()); !res.OK {
		t.Fatalf("after failed reload: %+v", res.Error)
	}
}

// TestPresenceCapped: past MaxPresenceEntries the list keeps the gateway and
// the most recently connected clients, newest first, in hello-ok and in
// system-presence alike; a client that leaves makes room for an older one.
func TestPresenceCapped(t *testing.T) {
	ts := startServer(t)
	const extra = 5
	total := MaxPresenceEntries - 1 + extra // clients; the gateway is one more entry
	clients := make([]*wsClient, total)
	var hello protocol.HelloOK
	for i := range clients {
		clients[i], hello = dialConnected(t, ts, func(p map[string]any) {
			p["client"].(map[string]any)["instanceId"] = fmt.Sprintf("inst-%03d", i)
		})
	}
	want := func(newest, n int) []string {
		out := []string{"self"}
		for i := newest; len(out) < n; i-- {
			out = append(out, fmt.Sprintf("inst-%03d", i))
		}
		return out
	}
	ids := func(list []*protocol.PresenceEntry) []string {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.InstanceID
			if e.Reason == "self" {
				out[i] = "self"
			}
		}
		return out
	}
	if got, w := ids(hello.Snapshot.Presence), want(total-1, MaxPresenceEntries); !slices.Equal(got, w) {
		t.Errorf("hello-ok presence of the last client: %d entries %v…, want %d %v…", len(got), got[:3], len(w), w[:3])
	}
	last := clients[total-1]
	if got, w := ids(unmarshal[[]*protocol.PresenceEntry](t, last.call("system-presence", nil).Payload)), want(total-1, MaxPresenceEntries); !slices.Equal(got, w) {
		t.Errorf("system-presence: %d entries, want %d; tail %v, want %v", len(got), len(w), got[len(got)-3:], w[len(w)-3:])
	}
	// The newest client leaves: the next-oldest one comes back into the list.
	last.ws.Close()
	waitFor(t, "the newest client to leave presence", func() bool {
		got := ids(unmarshal[[]*protocol.PresenceEntry](t, clients[0].call("system-presence", nil).Payload))
		return slices.Equal(got, want(total-2, MaxPresenceEntries))
	})
}

// TestPresenceSkipsEphemeralClients: a command-line call (mode cli), a
// backend or a probe is not presence: it is not listed and its coming and
// going does not move stateVersion.presence.
func TestPresenceSkipsEphemeralClients(t *testing.T) {
	ts := startServer(t)
	a, helloA := dialConnected(t, ts)
	for _, mode := range []string{"cli", "CLI", "backend", "probe"} {
		c, hello := dialConnected(t, ts, func(p map[string]any) { p["client"].(map[string]any)["mode"] = mode })
		if n := len(hello.Snapshot.Presence); n != 2 {
			t.Errorf("mode %s: hello-ok presence has %d entries, want 2 (gateway, a)", mode, n)
		}
		if list := unmarshal[[]*protocol.PresenceEntry](t, a.call("system-presence", nil).Payload); len(list) != 2 {
			t.Errorf("mode %s: system-presence lists %d entries, want 2: %+v", mode, len(list), list)
		}
		c.ws.Close()
	}
	_, helloB := dialConnected(t, ts)
	if got, want := helloB.Snapshot.StateVersion.Presence, helloA.Snapshot.StateVersion.Presence+1; got != want {
		t.Errorf("stateVersion.presence %d after a, four ephemeral clients and b; want %d (b alone)", got, want)
	}
	if n := len(helloB.Snapshot.Presence); n != 3 {
		t.Errorf("b sees %d presence entries, want 3", n)
	}
}

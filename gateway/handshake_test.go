package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/protocol"
)

func TestHandshakeProtocolNegotiation(t *testing.T) {
	ts := startServer(t)
	tests := []struct {
		name     string
		min, max int
		want     int // 0: mismatch
	}{
		{"protocol 3 only", 3, 3, 3},
		{"protocol 4 only", 4, 4, 4},
		{"3 to 4 picks 4", 3, 4, 4},
		{"2 to 9 picks 4", 2, 9, 4},
		{"future only", 5, 6, 0},
		{"past only", 1, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.url, nil)
			p := connectParams()
			p["minProtocol"], p["maxProtocol"] = tt.min, tt.max
			res := c.connect(p)
			if tt.want == 0 {
				if res.OK || res.Error.Code != protocol.CodeInvalidRequest || res.Error.Message != "protocol mismatch" {
					t.Fatalf("got %+v, want INVALID_REQUEST protocol mismatch", res)
				}
				d, _ := json.Marshal(res.Error.Details)
				if !strings.Contains(string(d), `"supported":[3,4]`) {
					t.Errorf("details %s lack supported:[3,4]", d)
				}
				if code, _ := c.expectClose(); code != protocol.CloseProtocolError {
					t.Errorf("close code %d, want 1002", code)
				}
				return
			}
			if !res.OK {
				t.Fatalf("connect failed: %+v", res.Error)
			}
			hello := unmarshal[protocol.HelloOK](t, res.Payload)
			if hello.Protocol != tt.want || hello.Type != "hello-ok" {
				t.Errorf("protocol %d type %q, want %d hello-ok", hello.Protocol, hello.Type, tt.want)
			}
		})
	}
}

func TestHandshakeAuthModes(t *testing.T) {
	const password = "a-long-gateway-password-for-tests-only!"
	tests := []struct {
		name      string
		server    []serverOpt
		auth      map[string]any // nil: no auth field
		wantCode  string         // "" = success
		wantMsg   string
		wantScope string
	}{
		{"token ok", nil, map[string]any{"token": testToken}, "", "", "token"},
		{"token missing", nil, nil, protocol.AuthTokenMissing, "unauthorized: gateway token missing", ""},
		{"token empty", nil, map[string]any{"token": ""}, protocol.AuthTokenMissing, "unauthorized: gateway token missing", ""},
		{"token mismatch", nil, map[string]any{"token": testToken + "x"}, protocol.AuthTokenMismatch, "unauthorized: gateway token mismatch", ""},
		{"password ok", []serverOpt{passwordMode(password)}, map[string]any{"password": password}, "", "", "password"},
		{"password missing", []serverOpt{passwordMode(password)}, map[string]any{"token": testToken}, protocol.AuthPasswordMissing, "unauthorized: gateway password missing", ""},
		{"password mismatch", []serverOpt{passwordMode(password)}, map[string]any{"password": "nope"}, protocol.AuthPasswordMismatch, "unauthorized: gateway password mismatch", ""},
		{"none", []serverOpt{withConfig("gateway.auth", map[string]any{"mode": "none"})}, nil, "", "", "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.server...)
			c := dialRaw(t, ts.url, nil)
			p := connectParams()
			delete(p, "auth")
			if tt.auth != nil {
				p["auth"] = tt.auth
			}
			res := c.connect(p)
			if tt.wantCode == "" {
				if !res.OK {
					t.Fatalf("connect failed: %+v", res.Error)
				}
				hello := unmarshal[protocol.HelloOK](t, res.Payload)
				if hello.Auth.Method != tt.wantScope {
					t.Errorf("auth.method %q, want %q", hello.Auth.Method, tt.wantScope)
				}
				// The connection is usable.
				if r := c.call("health", nil); !r.OK {
					t.Errorf("health after connect: %+v", r.Error)
				}
				return
			}
			if res.OK || res.Error.Code != protocol.CodeInvalidRequest || detailsCode(res.Error) != tt.wantCode || res.Error.Message != tt.wantMsg {
				t.Fatalf("got %+v, want %s %q", res.Error, tt.wantCode, tt.wantMsg)
			}
			if code, _ := c.expectClose(); code != protocol.ClosePolicyViolation {
				t.Errorf("close code %d, want 1008", code)
			}
		})
	}
}

func passwordMode(pw string) serverOpt {
	return withConfig("gateway.auth", map[string]any{"mode": "password", "passwordSha256": configgen.HashSecret(pw)})
}

func TestHandshakeFirstFrameMustBeConnect(t *testing.T) {
	ts := startServer(t)
	tests := []struct {
		name    string
		typ     int
		data    string
		wantRes bool // a response with the request's id comes first
	}{
		{"another method", websocket.TextMessage, `{"type":"req","id":"1","method":"health"}`, true},
		{"not JSON", websocket.TextMessage, `hello`, false},
		{"binary", websocket.BinaryMessage, `{"type":"req","id":"1","method":"connect"}`, false},
		{"event instead of req", websocket.TextMessage, `{"type":"event","id":"1","event":"x"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.url, nil)
			c.challenge()
			if err := c.sendRaw(tt.typ, []byte(tt.data)); err != nil {
				t.Fatal(err)
			}
			if tt.wantRes {
				res := c.mustRead()
				if res.ID != "1" || res.OK || res.Error.Message != "invalid handshake: first request must be connect" {
					t.Fatalf("got %+v", res)
				}
			}
			code, _ := c.expectClose()
			if code != protocol.ClosePolicyViolation {
				t.Errorf("close code %d, want 1008", code)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	ts := startServer(t, withOptions(func(o *Options) { o.HandshakeTimeout = 150 * time.Millisecond }))
	c := dialRaw(t, ts.url, nil)
	c.challenge()
	code, text := c.expectClose()
	if code != protocol.ClosePolicyViolation || text != "handshake timeout" {
		t.Errorf("close %d %q, want 1008 handshake timeout", code, text)
	}
}

func TestHandshakeInvalidConnectParams(t *testing.T) {
	ts := startServer(t)
	tests := []struct {
		name   string
		mutate func(map[string]any)
		want   string
	}{
		{"no client id", func(p map[string]any) { p["client"].(map[string]any)["id"] = "" }, "invalid connect params: client.id must be a non-empty string"},
		{"client id too long", func(p map[string]any) { p["client"].(map[string]any)["id"] = strings.Repeat("x", 129) }, "invalid connect params: client.id must be at most 128 characters"},
		{"no protocol", func(p map[string]any) { delete(p, "minProtocol") }, "invalid connect params: minProtocol and maxProtocol are required positive integers"},
		{"min above max", func(p map[string]any) { p["minProtocol"] = 4; p["maxProtocol"] = 3 }, "invalid connect params: minProtocol 4 is greater than maxProtocol 3"},
		{"protocol as string", func(p map[string]any) { p["minProtocol"] = "3" }, "invalid params: minProtocol must be an integer, got string"},
		{"bad role", func(p map[string]any) { p["role"] = "root" }, `invalid connect params: role must be "operator" or "node", got "root"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.url, nil)
			p := connectParams()
			tt.mutate(p)
			res := c.connect(p)
			if res.OK || res.Error.Code != protocol.CodeInvalidRequest || res.Error.Message != tt.want {
				t.Fatalf("got %+v, want %q", res.Error, tt.want)
			}
			if code, _ := c.expectClose(); code != protocol.ClosePolicyViolation {
				t.Errorf("close code %d, want 1008", code)
			}
		})
	}
}

// deviceKey is a test device identity.
type deviceKey struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newDeviceKey(t testing.TB) deviceKey {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return deviceKey{pub, priv}
}

// proof signs the connect params p for nonce, as a client would.
func (k deviceKey) proof(version string, p map[string]any, nonce string, signedAt time.Time) map[string]any {
	cl := p["client"].(map[string]any)
	var scopes []string
	if s, ok := p["scopes"].([]string); ok {
		scopes = s
	}
	token := ""
	if a, ok := p["auth"].(map[string]any); ok {
		token, _ = a["token"].(string)
	}
	role, _ := p["role"].(string)
	platform, _ := cl["platform"].(string)
	family, _ := cl["deviceFamily"].(string)
	d := protocol.NewDeviceProof(k.priv, version, protocol.SignatureFields{
		ClientID: cl["id"].(string), ClientMode: cl["mode"].(string), Role: role, Scopes: scopes,
		SignedAtMs: signedAt.UnixMilli(), Token: token, Nonce: nonce, Platform: platform, DeviceFamily: family,
	})
	raw, _ := json.Marshal(d)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

func TestHandshakeDeviceIdentity(t *testing.T) {
	ts := startServer(t)
	key := newDeviceKey(t)
	other := newDeviceKey(t)
	pemKey := func() string {
		der, _ := x509.MarshalPKIXPublicKey(key.pub)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}()
	tests := []struct {
		name  string
		build func(p map[string]any, nonce string) map[string]any
		want  string // details.code; "" = success
	}{
		{"v3", func(p map[string]any, n string) map[string]any {
			p["client"].(map[string]any)["deviceFamily"] = " Desktop "
			return key.proof("v3", p, n, time.Now())
		}, ""},
		{"v2", func(p map[string]any, n string) map[string]any { return key.proof("v2", p, n, time.Now()) }, ""},
		{"PEM public key", func(p map[string]any, n string) map[string]any {
			d := key.proof("v3", p, n, time.Now())
			d["publicKey"] = pemKey
			return d
		}, ""},
		{"nonce missing", func(p map[string]any, n string) map[string]any {
			d := key.proof("v3", p, n, time.Now())
			delete(d, "nonce")
			return d
		}, protocol.DeviceAuthNonceRequired},
		{"nonce replayed from another challenge", func(p map[string]any, n string) map[string]any {
			return key.proof("v3", p, "00000000-0000-4000-8000-000000000000", time.Now())
		}, protocol.DeviceAuthNonceMismatch},
		{"stale signedAt", func(p map[string]any, n string) map[string]any {
			return key.proof("v3", p, n, time.Now().Add(-3*time.Minute))
		}, protocol.DeviceAuthSignatureExpired},
		{"future signedAt", func(p map[string]any, n string) map[string]any {
			return key.proof("v3", p, n, time.Now().Add(3*time.Minute))
		}, protocol.DeviceAuthSignatureExpired},
		{"forged signature", func(p map[string]any, n string) map[string]any {
			d := key.proof("v3", p, n, time.Now())
			d["signature"] = other.proof("v3", p, n, time.Now())["signature"]
			return d
		}, protocol.DeviceAuthSignatureInvalid},
		{"signature over other scopes", func(p map[string]any, n string) map[string]any {
			q := connectParams()
			q["scopes"] = []string{"operator.admin"}
			return key.proof("v3", q, n, time.Now())
		}, protocol.DeviceAuthSignatureInvalid},
		{"device id of another key", func(p map[string]any, n string) map[string]any {
			d := key.proof("v3", p, n, time.Now())
			d["id"] = protocol.DeviceIDFromPublicKey(other.pub)
			return d
		}, protocol.DeviceAuthDeviceIDMismatch},
		{"garbage public key", func(p map[string]any, n string) map[string]any {
			d := key.proof("v3", p, n, time.Now())
			d["publicKey"] = "not-a-key"
			return d
		}, protocol.DeviceAuthPublicKeyInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.url, nil)
			nonce := c.challenge()
			p := connectParams()
			p["device"] = tt.build(p, nonce)
			res := c.call("connect", p)
			if tt.want == "" {
				if !res.OK {
					t.Fatalf("connect failed: %+v", res.Error)
				}
				// Remembered and shown in presence.
				devID := protocol.DeviceIDFromPublicKey(key.pub)
				if _, ok := ts.devices.Get(devID); !ok {
					t.Error("device not remembered")
				}
				pres := unmarshal[[]protocol.PresenceEntry](t, c.call("system-presence", nil).Payload)
				found := false
				for _, e := range pres {
					found = found || e.DeviceID == devID
				}
				if !found {
					t.Errorf("device %s not in presence %+v", devID, pres)
				}
				return
			}
			if res.OK || detailsCode(res.Error) != tt.want {
				t.Fatalf("got %+v, want details.code %s", res.Error, tt.want)
			}
			if code, _ := c.expectClose(); code != protocol.ClosePolicyViolation {
				t.Errorf("close code %d, want 1008", code)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(ts.dir, "devices", "paired.json")); err != nil {
		t.Errorf("paired.json not written: %v", err)
	}
}

func TestOriginCheck(t *testing.T) {
	// koi.example.com is a name of the gateway (as behind nginx), so these
	// cases reach the Origin rule; TestDNSRebindingRefused has the Host rule.
	ts := startServer(t, withConfig("gateway.controlUi.allowedOrigins", []any{"https://app.skykoi.dev", "https://koi.example.com"}))
	tests := []struct {
		name   string
		origin string
		host   string
		ok     bool
	}{
		{"no origin (CLI)", "", "", true},
		{"listed origin", "https://app.skykoi.dev", "", true},
		{"loopback origin to loopback host", "http://localhost:5173", "", true},
		{"origin equal to host", "https://koi.example.com", "koi.example.com", true},
		{"foreign origin", "https://evil.example", "", false},
		{"foreign origin spoofing host prefix", "https://koi.example.com.evil.example", "koi.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			if tt.host != "" {
				h.Set("Host", tt.host)
			}
			d := websocket.Dialer{}
			ws, resp, err := d.Dial(ts.url, h)
			if tt.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				ws.Close()
				return
			}
			if err == nil {
				ws.Close()
				t.Fatal("connection accepted, want 403")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %v, want HTTP 403", err)
			}
		})
	}
}

package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/protocol"
)

// TestBadFramesAfterHandshake sends each kind of bad frame and checks the
// exact answer, that the socket stays open, and that a bystander is served.
func TestBadFramesAfterHandshake(t *testing.T) {
	ts := startServer(t)
	bystander, _ := dialConnected(t, ts)
	tests := []struct {
		name    string
		typ     int
		data    string
		wantID  string
		wantMsg string
	}{
		{"binary frame", websocket.BinaryMessage, `{"type":"req","id":"b1","method":"health"}`, "invalid",
			"binary frames are not supported; send each frame as JSON text"},
		{"not JSON", websocket.TextMessage, `{"type":"req",`, "invalid",
			"invalid frame: not valid JSON: unexpected end of JSON input"},
		{"JSON array", websocket.TextMessage, `[1,2,3]`, "invalid", "invalid frame: must be a JSON object"},
		{"JSON string", websocket.TextMessage, `"hello"`, "invalid", "invalid frame: must be a JSON object"},
		{"no id", websocket.TextMessage, `{"type":"req","method":"health"}`, "invalid",
			"invalid frame: id must be a non-empty string of at most 256 characters"},
		{"numeric id", websocket.TextMessage, `{"type":"req","id":7,"method":"health"}`, "invalid",
			"invalid frame: id must be a non-empty string of at most 256 characters"},
		{"wrong type", websocket.TextMessage, `{"type":"res","id":"x1","method":"health"}`, "x1", `invalid frame: type must be "req"`},
		{"no method", websocket.TextMessage, `{"type":"req","id":"x2"}`, "x2", "invalid frame: method must be a non-empty string"},
		{"params not an object", websocket.TextMessage, `{"type":"req","id":"x3","method":"health","params":[1]}`, "x3",
			"invalid frame: params must be an object"},
		{"unknown method", websocket.TextMessage, `{"type":"req","id":"x4","method":"no.such"}`, "x4", "unknown method: no.such"},
		{"second connect", websocket.TextMessage, `{"type":"req","id":"x5","method":"connect","params":{}}`, "x5",
			"connect is only valid as the first request"},
		{"wrong param type", websocket.TextMessage, `{"type":"req","id":"x6","method":"logs.tail","params":{"limit":"ten"}}`, "x6",
			"invalid params: limit must be an integer, got string"},
	}
	c, _ := dialConnected(t, ts)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.sendRaw(tt.typ, []byte(tt.data)); err != nil {
				t.Fatal(err)
			}
			res := c.readRes(tt.wantID)
			if res.OK || res.Error == nil || res.Error.Code != protocol.CodeInvalidRequest || res.Error.Message != tt.wantMsg {
				t.Fatalf("got %+v, want INVALID_REQUEST %q", res.Error, tt.wantMsg)
			}
			// Still open and serving.
			if r := c.call("health", nil); !r.OK {
				t.Fatalf("health after bad frame: %+v", r.Error)
			}
			if r := bystander.call("health", nil); !r.OK {
				t.Fatalf("bystander health: %+v", r.Error)
			}
		})
	}
}

func TestOversizedFrames(t *testing.T) {
	ts := startServer(t)
	bystander, _ := dialConnected(t, ts)
	t.Run("before handshake: 64 KiB", func(t *testing.T) {
		c := dialRaw(t, ts.url, nil)
		c.challenge()
		big := fmt.Sprintf(`{"type":"req","id":"1","method":"connect","params":{"pad":%q}}`, strings.Repeat("x", protocol.MaxPreHandshakePayload))
		_ = c.sendRaw(websocket.TextMessage, []byte(big))
		if code, _ := c.expectClose(); code != protocol.CloseMessageTooBig {
			t.Errorf("close code %d, want 1009", code)
		}
	})
	t.Run("after handshake: 25 MiB", func(t *testing.T) {
		c, _ := dialConnected(t, ts)
		// Just under the limit is fine.
		ok := fmt.Sprintf(`{"type":"req","id":"ok","method":"health","params":{"pad":%q}}`, strings.Repeat("x", protocol.MaxPayload-200))
		_ = c.sendRaw(websocket.TextMessage, []byte(ok))
		if r := c.readRes("ok"); !r.OK {
			t.Fatalf("frame under the limit refused: %+v", r.Error)
		}
		big := bytes.Repeat([]byte("x"), protocol.MaxPayload+1)
		_ = c.sendRaw(websocket.TextMessage, big)
		if code, _ := c.expectClose(); code != protocol.CloseMessageTooBig {
			t.Errorf("close code %d, want 1009", code)
		}
	})
	if r := bystander.call("health", nil); !r.OK {
		t.Fatalf("bystander: %+v", r.Error)
	}
}

// TestRateLimit hammers the gateway with wrong tokens from a browser page on
// loopback (which is not exempt) and checks the lockout, that the right token
// is refused while locked, and that other clients are unaffected.
func TestRateLimit(t *testing.T) {
	ts := startServer(t, withConfig("gateway.auth.rateLimit", map[string]any{"maxAttempts": 10, "windowMs": 60000, "lockoutMs": 300000}))
	bystander, _ := dialConnected(t, ts) // CLI on loopback: exempt
	origin := http.Header{"Origin": {"http://127.0.0.1"}}
	attempt := func(token string) frame {
		c := dialRaw(t, ts.url, origin)
		p := connectParams()
		p["auth"] = map[string]any{"token": token}
		res := c.connect(p)
		c.ws.Close()
		return res
	}
	for i := 1; i <= 10; i++ {
		res := attempt("wrong-token")
		if detailsCode(res.Error) != protocol.AuthTokenMismatch {
			t.Fatalf("attempt %d: %+v, want AUTH_TOKEN_MISMATCH", i, res.Error)
		}
	}
	// A thousand more, concurrently: every one is refused as rate limited.
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 125; i++ {
				res := attempt("wrong-token")
				if res.Error == nil || detailsCode(res.Error) != protocol.AuthRateLimited || !res.Error.Retryable ||
					res.Error.RetryAfterMs <= 0 || res.Error.RetryAfterMs > 300000 {
					errs <- fmt.Sprintf("%+v", res.Error)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("want AUTH_RATE_LIMITED with retryAfterMs, got %s", e)
	}
	if res := attempt(testToken); detailsCode(res.Error) != protocol.AuthRateLimited {
		t.Errorf("right token during lockout: %+v, want AUTH_RATE_LIMITED", res.Error)
	}
	if r := bystander.call("health", nil); !r.OK {
		t.Fatalf("bystander: %+v", r.Error)
	}
	if strings.Contains(ts.logs.String(), testToken) || strings.Contains(ts.logs.String(), "wrong-token") {
		t.Error("a token appears in the logs")
	}
}

func TestForwardedFor(t *testing.T) {
	tests := []struct {
		name    string
		proxies []any
		xff     string
		wantIP  string
		warned  bool
	}{
		{"untrusted peer: XFF ignored and logged", nil, "203.0.113.7", "127.0.0.1", true},
		{"trusted peer: left-most XFF", []any{"127.0.0.1"}, "203.0.113.7, 10.0.0.1", "203.0.113.7", false},
		{"trusted CIDR, IPv4-mapped XFF folded", []any{"127.0.0.0/8"}, "::ffff:198.51.100.4", "198.51.100.4", false},
		{"trusted peer without XFF", []any{"127.0.0.1"}, "", "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []serverOpt{}
			if tt.proxies != nil {
				opts = append(opts, withConfig("gateway.trustedProxies", tt.proxies))
			}
			ts := startServer(t, opts...)
			h := http.Header{}
			if tt.xff != "" {
				h.Set("X-Forwarded-For", tt.xff)
			}
			c := dialRaw(t, ts.url, h)
			res := c.connect(connectParams())
			if !res.OK {
				t.Fatal(res.Error)
			}
			var pres []protocol.PresenceEntry
			pres = unmarshal[[]protocol.PresenceEntry](t, c.call("system-presence", nil).Payload)
			if len(pres) != 2 || pres[1].IP != tt.wantIP {
				t.Fatalf("presence %+v, want client ip %s", pres, tt.wantIP)
			}
			warned := strings.Contains(ts.logs.String(), "ignoring forwarding headers from untrusted peer")
			if warned != tt.warned {
				t.Errorf("warning logged: %v, want %v", warned, tt.warned)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	ts := startServer(t)
	tests := []struct {
		name       string
		scopes     []string
		method     string
		wantMissed string // "" = allowed
		wantGrant  []string
	}{
		{"default read+write can read", nil, "health", "", []string{"operator.read", "operator.write"}},
		{"default cannot admin", nil, "config.get", "operator.admin", nil},
		{"write implies read", []string{"operator.write"}, "status", "", []string{"operator.read", "operator.write"}},
		{"read only", []string{"operator.read"}, "system-presence", "", []string{"operator.read"}},
		{"admin implies all", []string{"operator.admin"}, "config.get", "", []string{"operator.admin", "operator.read", "operator.write"}},
		{"unrelated scope gets nothing else", []string{"operator.pairing"}, "health", "operator.read", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, hello := dialConnected(t, ts, func(p map[string]any) {
				if tt.scopes != nil {
					p["scopes"] = tt.scopes
				}
			})
			if tt.wantGrant != nil && strings.Join(hello.Auth.Scopes, ",") != strings.Join(tt.wantGrant, ",") {
				t.Errorf("granted %v, want %v", hello.Auth.Scopes, tt.wantGrant)
			}
			res := c.call(tt.method, nil)
			if tt.wantMissed == "" {
				if !res.OK {
					t.Fatalf("%s refused: %+v", tt.method, res.Error)
				}
				return
			}
			if res.OK || res.Error.Code != protocol.CodeForbidden {
				t.Fatalf("got %+v, want FORBIDDEN", res)
			}
			if m, _ := res.Error.Details.(map[string]any); m["missingScope"] != tt.wantMissed {
				t.Errorf("details %v, want missingScope %s", res.Error.Details, tt.wantMissed)
			}
		})
	}
}

// TestScopesV3Default: OpenClaw's protocol 3 gives a shared-secret client
// that asks for no scopes operator.admin; SkyKoi does the same when 3 is the
// protocol negotiated, and keeps read+write for protocol 4 and for auth
// "none", where no secret says the client is the owner.
func TestScopesV3Default(t *testing.T) {
	const password = "a-long-gateway-password-for-tests-only!"
	none := withConfig("gateway.auth", map[string]any{"mode": "none"})
	admin := []string{"operator.admin", "operator.read", "operator.write"}
	readWrite := []string{"operator.read", "operator.write"}
	tests := []struct {
		name      string
		server    []serverOpt
		maxProto  int
		auth      map[string]any
		scopes    []string // nil: field absent
		wantGrant []string
	}{
		{"v3, token, no scopes", nil, 3, map[string]any{"token": testToken}, nil, admin},
		{"v3, token, empty scopes", nil, 3, map[string]any{"token": testToken}, []string{}, admin},
		{"v3, password, no scopes", []serverOpt{passwordMode(password)}, 3, map[string]any{"password": password}, nil, admin},
		{"v3, token, asks for read", nil, 3, map[string]any{"token": testToken}, []string{"operator.read"}, []string{"operator.read"}},
		{"v3, auth none, no scopes", []serverOpt{none}, 3, nil, nil, readWrite},
		{"v4, token, no scopes", nil, 4, map[string]any{"token": testToken}, nil, readWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.server...)
			c, hello := dialConnected(t, ts, func(p map[string]any) {
				p["maxProtocol"] = tt.maxProto
				delete(p, "auth")
				if tt.auth != nil {
					p["auth"] = tt.auth
				}
				if tt.scopes != nil {
					p["scopes"] = tt.scopes
				}
			})
			if hello.Protocol != tt.maxProto {
				t.Fatalf("negotiated protocol %d, want %d", hello.Protocol, tt.maxProto)
			}
			if strings.Join(hello.Auth.Scopes, ",") != strings.Join(tt.wantGrant, ",") {
				t.Fatalf("granted %v, want %v", hello.Auth.Scopes, tt.wantGrant)
			}
			// The grant is what the method table enforces, not just what
			// hello-ok says.
			res := c.call("config.get", nil)
			if isAdmin := slices.Contains(tt.wantGrant, "operator.admin"); res.OK != isAdmin {
				t.Errorf("config.get ok=%v with grant %v: %+v", res.OK, tt.wantGrant, res.Error)
			}
		})
	}
}

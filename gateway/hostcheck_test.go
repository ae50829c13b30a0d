package gateway

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/protocol"
)

// hostRequest sends an HTTP request to ts with the given Host and Origin
// (either may be empty) and returns the status and body. req.Host, not a
// header, is what Go's client puts on the wire.
func hostRequest(t *testing.T, ts *testServer, path, host, origin string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s with Host %q: %v", path, host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// dialHost opens a WebSocket to ts with the given Host and Origin and
// returns the HTTP status of the upgrade (101 when it succeeded) and the
// body of a refusal.
func dialHost(t *testing.T, ts *testServer, host, origin string) (int, string, *websocket.Conn) {
	t.Helper()
	h := http.Header{}
	if host != "" {
		h.Set("Host", host)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(ts.url, h)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
		return resp.StatusCode, "", ws
	}
	if resp == nil {
		t.Fatalf("dial with Host %q Origin %q: %v", host, origin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// TestDNSRebindingRefused plays the attack of issue 16: a page on
// attacker.test whose name was rebound to 127.0.0.1 loads from the gateway
// and opens a socket that is "same-origin" with itself. Both must be
// refused, while the gateway's own names and CLI clients keep working.
func TestDNSRebindingRefused(t *testing.T) {
	ts := startServer(t, withConfig("gateway.controlUi.allowedOrigins", []any{"https://app.skykoi.dev"}))
	_, port, _ := net.SplitHostPort(ts.Addr().String())
	attacker := "attacker.test:" + port
	runHostCases(t, ts, []hostCase{
		{"rebound page", "/", attacker, "", false, http.StatusMisdirectedRequest},
		{"rebound asset", "/app.js", attacker, "", false, http.StatusMisdirectedRequest},
		{"rebound socket", "", attacker, "http://" + attacker, true, http.StatusMisdirectedRequest},
		{"rebound socket, foreign origin", "", attacker, "https://evil.example", true, http.StatusMisdirectedRequest},
		{"subdomain of localhost", "/", "evil.localhost:" + port, "", false, http.StatusMisdirectedRequest},
		{"allowed origin's name as a suffix", "/", "app.skykoi.dev.attacker.test", "", false, http.StatusMisdirectedRequest},
		{"page by IPv4 literal", "/", ts.Addr().String(), "", false, http.StatusOK},
		{"page by IPv6 literal", "/", "[::1]:" + port, "", false, http.StatusOK},
		{"page by public IP (behind nginx)", "/", "203.0.113.10", "", false, http.StatusOK},
		{"page by localhost", "/", "localhost:" + port, "", false, http.StatusOK},
		{"page by LOCALHOST.", "/", "LOCALHOST.:" + port, "", false, http.StatusOK},
		{"page by an allowed origin's host", "/", "app.skykoi.dev", "", false, http.StatusOK},
		{"socket by IP literal, same origin", "", ts.Addr().String(), "http://" + ts.Addr().String(), true, http.StatusSwitchingProtocols},
		{"socket by localhost, same origin", "", "localhost:" + port, "http://localhost:" + port, true, http.StatusSwitchingProtocols},
		// A CLI sends no Origin; it chose where to connect itself, so no
		// page's DNS can have steered it, and any Host is fine.
		{"CLI socket with any host", "", attacker, "", true, http.StatusSwitchingProtocols},
		// Probes carry whatever name the prober used and reveal nothing.
		{"healthz by any name", "/healthz", attacker, "", false, http.StatusOK},
		{"readyz by any name", "/readyz", attacker, "", false, http.StatusOK},
	})
}

// TestAllowedOriginHosts is the nginx case: the owner reaches the Koi by a
// DNS name, which is accepted once its origin is listed.
func TestAllowedOriginHosts(t *testing.T) {
	ts := startServer(t, withConfig("gateway.controlUi.allowedOrigins", []any{"https://koi.example.com"}))
	runHostCases(t, ts, []hostCase{
		{"page by the listed name", "/", "koi.example.com", "", false, http.StatusOK},
		{"page by the listed name with port", "/", "koi.example.com:8443", "", false, http.StatusOK},
		{"page by the listed name, other case, trailing dot", "/", "KOI.Example.COM.", "", false, http.StatusOK},
		{"socket from its own page", "", "koi.example.com", "https://koi.example.com", true, http.StatusSwitchingProtocols},
		{"socket from a foreign page to the listed name", "", "koi.example.com", "https://evil.example", true, http.StatusForbidden},
		{"a subdomain is not listed", "/", "x.koi.example.com", "", false, http.StatusMisdirectedRequest},
	})
}

// TestAuthNoneRefusesBrowsers: with auth "none", even a page the Host and
// Origin rules admit (a local page on loopback) must not get in, since any
// site the owner visits could be such a page after a rebinding the rules
// failed to catch, or a local page of another user. CLI clients still can.
func TestAuthNoneRefusesBrowsers(t *testing.T) {
	ts := startServer(t, withConfig("gateway.auth", map[string]any{"mode": "none"}))
	self := ts.Addr().String()

	code, body, ws := dialHost(t, ts, self, "http://"+self)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade from the gateway's own origin: HTTP %d (%s)", code, body)
	}
	c := &wsClient{t: t, ws: ws}
	p := connectParams()
	delete(p, "auth")
	res := c.connect(p)
	if res.OK {
		t.Fatal("a browser connected to a gateway with auth none")
	}
	if detailsCode(res.Error) != protocol.AuthNoneBrowser || !strings.Contains(res.Error.Message, "token") {
		t.Errorf("error %+v; want %s telling to use token auth", res.Error, protocol.AuthNoneBrowser)
	}
	if code, _ := c.expectClose(); code != protocol.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}

	cli := dialRaw(t, ts.url, nil)
	p = connectParams()
	delete(p, "auth")
	if res := cli.connect(p); !res.OK {
		t.Fatalf("a CLI client (no Origin) was refused with auth none: %+v", res.Error)
	}
}

// FuzzHostAllowed checks the Host rule on arbitrary headers: with no names
// configured only IP literals and localhost pass, the answer does not depend
// on case, and a configured name always passes with or without a port.
func FuzzHostAllowed(f *testing.F) {
	for _, s := range []string{"127.0.0.1:18789", "[::1]:80", "localhost", "LOCALHOST.", "attacker.test:80",
		"evil.localhost", "", ":80", "[", "fe80::1%eth0", "koi.example.com.", "0x7f.1", "2130706433"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		ok := hostAllowed(host, nil)
		if ok {
			h := hostName(host)
			if _, err := netip.ParseAddr(h); err != nil && h != "localhost" {
				t.Fatalf("Host %q (name %q) passed with no names configured", host, h)
			}
		}
		if hostAllowed(strings.ToUpper(host), nil) != ok {
			t.Fatalf("Host %q: the answer depends on case", host)
		}
		if h := hostName(host); h != "" && !strings.ContainsAny(h, "[]%:/") {
			names := map[string]bool{h: true}
			if !hostAllowed(host, names) || !hostAllowed(h+":443", names) {
				t.Fatalf("Host %q: its configured name %q does not pass", host, h)
			}
		}
	})
}

// hostCase is one request of the Host rule's tables: a page or asset at
// path, or (ws) a socket upgrade, with the Host and Origin it carries.
type hostCase struct {
	name, path, host, origin string
	ws                       bool
	want                     int
}

// runHostCases checks each case's status; a 421 must be a JSON error that
// names the refused host and the key to set.
func runHostCases(t *testing.T, ts *testServer, tests []hostCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			var body string
			if tt.ws {
				code, body, _ = dialHost(t, ts, tt.host, tt.origin)
			} else {
				code, body = hostRequest(t, ts, tt.path, tt.host, tt.origin)
			}
			if code != tt.want {
				t.Fatalf("Host %q Origin %q: HTTP %d, want %d (%s)", tt.host, tt.origin, code, tt.want, body)
			}
			if code == http.StatusMisdirectedRequest {
				var e struct {
					OK    bool   `json:"ok"`
					Error string `json:"error"`
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.OK {
					t.Fatalf("refusal is not a JSON error: %q", body)
				}
				if !strings.Contains(e.Error, "gateway.controlUi.allowedOrigins") || !strings.Contains(e.Error, hostOnly(tt.host)) {
					t.Errorf("refusal %q does not name the host and the key to set", e.Error)
				}
			}
		})
	}
}

package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/auth"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/version"
)

// maxClientField bounds client.* strings: they are shown in presence and logs.
const maxClientField = 128

// handshakeError answers the connect (or the first frame) and closes.
func (c *conn) handshakeFail(id string, code int, closeText string, e *protocol.Error) bool {
	c.sendError(id, e)
	c.closeWith(code, closeText, true)
	return false
}

// handshake handles the first frame, which must be a connect request. It
// returns true when the connection is authenticated.
func (c *conn) handshake(typ int, data []byte) bool {
	const firstMustBeConnect = "invalid handshake: first request must be connect"
	if typ != websocket.TextMessage {
		c.closeWith(protocol.ClosePolicyViolation, firstMustBeConnect, false)
		return false
	}
	req, id, perr := protocol.DecodeRequest(data)
	if perr != nil || req.Method != "connect" {
		if perr != nil && id == protocol.InvalidID {
			// Not a request at all: nothing to answer, just close.
			c.closeWith(protocol.ClosePolicyViolation, firstMustBeConnect, false)
			return false
		}
		return c.handshakeFail(id, protocol.ClosePolicyViolation, firstMustBeConnect,
			protocol.Errorf(protocol.CodeInvalidRequest, firstMustBeConnect))
	}
	var p protocol.ConnectParams
	if e := protocol.DecodeParams(req.Params, &p); e != nil {
		return c.handshakeFail(id, protocol.ClosePolicyViolation, "invalid connect params", e)
	}
	if e := validateConnect(&p); e != nil {
		return c.handshakeFail(id, protocol.ClosePolicyViolation, "invalid connect params", e)
	}
	proto := 0
	for v := protocol.MaxProtocol; v >= protocol.MinProtocol; v-- {
		if v >= p.MinProtocol && v <= p.MaxProtocol {
			proto = v
			break
		}
	}
	if proto == 0 {
		return c.handshakeFail(id, protocol.CloseProtocolError, "protocol mismatch",
			protocol.Errorf(protocol.CodeInvalidRequest, "protocol mismatch").
				WithDetails(map[string]any{"supported": protocol.SupportedProtocols(),
					"client": map[string]int{"minProtocol": p.MinProtocol, "maxProtocol": p.MaxProtocol}}))
	}

	lc := c.s.live.Load()
	if lc.secret.Mode == "none" && c.browser {
		// With no secret, a page is kept out only by the Host and Origin
		// rules; one slip there (or a local page of another user of the
		// box) would be a shell for any website. Only clients that chose
		// to dial the gateway themselves get in without a secret.
		c.s.log.Warn("browser refused: auth mode none", "ip", c.ip, "conn", c.id, "client", p.Client.ID)
		return c.handshakeFail(id, protocol.ClosePolicyViolation, "unauthorized",
			protocol.Errorf(protocol.CodeInvalidRequest, `unauthorized: a browser page cannot connect while gateway.auth.mode is "none"; `+
				`set gateway.auth.mode to "token" and open the page with the token`).
				WithDetails(map[string]any{"code": protocol.AuthNoneBrowser}))
	}
	// Loopback clients without a browser Origin are the box's own tools; a
	// page in a local browser is not exempt, since any site could script it.
	limited := !(isLoopbackIP(c.ip) && !c.browser)
	if limited {
		if ok, retry := lc.limiter.Allow(c.ip); !ok {
			c.s.log.Warn("auth rate limited", "ip", c.ip, "conn", c.id)
			return c.handshakeFail(id, protocol.ClosePolicyViolation, "rate limited", &protocol.Error{
				Code: protocol.CodeInvalidRequest, Message: "unauthorized: too many failed attempts; retry later",
				Details: map[string]any{"code": protocol.AuthRateLimited}, Retryable: true, RetryAfterMs: retry.Milliseconds()})
		}
	}
	token := ""
	if p.Auth != nil {
		token = p.Auth.Token
	}
	if code, msg := checkSecret(lc, p.Auth); code != "" {
		if limited {
			lc.limiter.Fail(c.ip)
		}
		c.s.log.Warn("auth failed", "ip", c.ip, "conn", c.id, "code", code, "client", p.Client.ID)
		return c.handshakeFail(id, protocol.ClosePolicyViolation, "unauthorized",
			protocol.Errorf(protocol.CodeInvalidRequest, msg).WithDetails(map[string]any{"code": code}))
	}
	if p.Device != nil {
		fields := protocol.SignatureFields{
			ClientID: p.Client.ID, ClientMode: p.Client.Mode, Role: p.Role, Scopes: p.Scopes,
			Token: token, Platform: p.Client.Platform, DeviceFamily: p.Client.DeviceFamily,
		}
		devID, code, err := auth.VerifyDevice(*p.Device, fields, c.nonce, c.s.opts.Now())
		if err != nil {
			if limited {
				lc.limiter.Fail(c.ip)
			}
			c.s.log.Warn("device auth failed", "ip", c.ip, "conn", c.id, "code", code)
			return c.handshakeFail(id, protocol.ClosePolicyViolation, "device auth failed",
				protocol.Errorf(protocol.CodeInvalidRequest, err.Error()).WithDetails(map[string]any{"code": code}))
		}
		c.deviceID = devID
	}
	if limited {
		lc.limiter.Succeed(c.ip)
	}

	c.protocol = proto
	c.params = p
	c.role = p.Role
	c.scopes = grantScopes(p.Scopes, proto, lc.secret.Mode != "none")
	c.caps = map[string]bool{}
	for _, cp := range p.Caps {
		c.caps[cp] = true
	}
	c.method = lc.cfg.Gateway.Auth.Mode
	if c.deviceID != "" {
		c.rememberDevice()
	}
	c.authed = true
	c.s.register(c, id)
	c.s.log.Info("client connected", "conn", c.id, "ip", c.ip, "client", p.Client.ID,
		"mode", p.Client.Mode, "protocol", proto, "role", c.role, "device", c.deviceID != "")
	return true
}

func validateConnect(p *protocol.ConnectParams) *protocol.Error {
	bad := func(msg string) *protocol.Error {
		return protocol.Errorf(protocol.CodeInvalidRequest, "invalid connect params: "+msg)
	}
	if p.MinProtocol < 1 || p.MaxProtocol < 1 {
		return bad("minProtocol and maxProtocol are required positive integers")
	}
	if p.MinProtocol > p.MaxProtocol {
		return bad(fmt.Sprintf("minProtocol %d is greater than maxProtocol %d", p.MinProtocol, p.MaxProtocol))
	}
	for _, f := range []struct{ name, v string }{
		{"client.id", p.Client.ID}, {"client.version", p.Client.Version},
		{"client.platform", p.Client.Platform}, {"client.mode", p.Client.Mode},
	} {
		if strings.TrimSpace(f.v) == "" {
			return bad(f.name + " must be a non-empty string")
		}
		if len(f.v) > maxClientField {
			return bad(fmt.Sprintf("%s must be at most %d characters", f.name, maxClientField))
		}
	}
	for name, v := range map[string]string{"client.displayName": p.Client.DisplayName,
		"client.deviceFamily": p.Client.DeviceFamily, "client.instanceId": p.Client.InstanceID} {
		if len(v) > maxClientField {
			return bad(fmt.Sprintf("%s must be at most %d characters", name, maxClientField))
		}
	}
	switch p.Role {
	case "":
		p.Role = protocol.RoleOperator
	case protocol.RoleOperator, protocol.RoleNode:
	default:
		return bad(fmt.Sprintf("role must be %q or %q, got %q", protocol.RoleOperator, protocol.RoleNode, p.Role))
	}
	if len(p.Scopes) > 64 || len(p.Caps) > 64 {
		return bad("too many scopes or caps (at most 64 each)")
	}
	return nil
}

// checkSecret returns a details code and message when the shared secret does
// not check out.
func checkSecret(lc *liveConfig, a *protocol.ConnectAuth) (code, msg string) {
	var token, password string
	if a != nil {
		token, password = a.Token, a.Password
	}
	switch lc.secret.Mode {
	case "token":
		if token == "" {
			return protocol.AuthTokenMissing, "unauthorized: gateway token missing"
		}
		if !lc.secret.Match(token) {
			return protocol.AuthTokenMismatch, "unauthorized: gateway token mismatch"
		}
	case "password":
		if password == "" {
			return protocol.AuthPasswordMissing, "unauthorized: gateway password missing"
		}
		if !lc.secret.Match(password) {
			return protocol.AuthPasswordMismatch, "unauthorized: gateway password mismatch"
		}
	}
	return "", ""
}

// grantScopes applies PROTOCOL.md: none asked for means read and write;
// write implies read; admin implies both. The exception is OpenClaw's
// protocol 3, which gives a client that proved the shared secret and asked
// for nothing operator.admin: an older OpenClaw client relies on that for
// config and session methods, and the secret's holder is the Koi's owner,
// who may ask for admin anyway. Without a secret (auth "none") nothing proves
// that, so the default stays read and write.
func grantScopes(asked []string, proto int, sharedSecret bool) map[string]bool {
	g := map[string]bool{}
	if len(asked) == 0 {
		asked = []string{protocol.ScopeRead, protocol.ScopeWrite}
		if proto == 3 && sharedSecret {
			asked = append(asked, protocol.ScopeAdmin)
		}
	}
	for _, s := range asked {
		g[s] = true
	}
	if g[protocol.ScopeAdmin] {
		g[protocol.ScopeWrite] = true
	}
	if g[protocol.ScopeWrite] {
		g[protocol.ScopeRead] = true
	}
	return g
}

func (c *conn) grantedScopes() []string {
	out := make([]string, 0, len(c.scopes))
	for s := range c.scopes {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (c *conn) rememberDevice() {
	now := c.s.opts.Now().UnixMilli()
	p := c.params
	// Store the key in one canonical form (raw, base64url) whatever the
	// client sent; it verified a moment ago, so it parses.
	pub, _ := auth.ParsePublicKey(p.Device.PublicKey)
	err := c.s.devices.Remember(context.Background(), auth.Device{
		ID: c.deviceID, PublicKey: protocol.EncodeBase64URL(pub), ClientID: p.Client.ID, ClientMode: p.Client.Mode,
		Platform: p.Client.Platform, DeviceFamily: p.Client.DeviceFamily, DisplayName: p.Client.DisplayName,
		Role: c.role, Scopes: c.grantedScopes(), FirstSeenMs: now, LastSeenMs: now,
	})
	if err != nil {
		// The connection is verified either way; failing to remember it
		// must not lock the person out.
		c.s.log.Error("remembering device", "conn", c.id, "err", err)
	}
}

func isLoopbackIP(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && a.Unmap().IsLoopback()
}

// helloOKLocked builds the hello-ok payload for c; s.mu is held.
func (s *Server) helloOKLocked(c *conn) protocol.HelloOK {
	v := version.Get()
	presence, sv := s.presenceLocked()
	return protocol.HelloOK{
		Type:     "hello-ok",
		Protocol: c.protocol,
		Server:   protocol.ServerInfo{Version: v.Version, Commit: v.Commit, Host: s.opts.Hostname, ConnID: c.id},
		Features: protocol.Features{Methods: s.methodNames(), Events: eventNames()},
		Snapshot: protocol.Snapshot{
			Presence:     presence,
			Health:       s.healthLocked(),
			StateVersion: sv,
			UptimeMs:     s.opts.Now().Sub(s.startedAt).Milliseconds(),
			SessionDefaults: protocol.SessionDefaults{DefaultAgentID: protocol.DefaultAgentID,
				MainKey: protocol.MainKey, MainSessionKey: protocol.MainSessionKey},
		},
		Auth: protocol.HelloAuth{Role: c.role, Scopes: c.grantedScopes(), Method: c.method},
		Policy: protocol.Policy{MaxPayload: protocol.MaxPayload, MaxBufferedBytes: s.opts.MaxBufferedBytes, TickIntervalMs: s.opts.TickInterval.Milliseconds(),
			Attachments: attachmentPolicy()},
	}
}

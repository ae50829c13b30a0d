package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/auth"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/webui"
)

func (s *Server) routes() http.Handler {
	ui := webui.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A WebSocket upgrade on any path opens a gateway connection.
		if websocket.IsWebSocketUpgrade(r) {
			s.serveWS(w, r)
			return
		}
		// Read per request so a reload that turns the page off (or on)
		// takes effect without a restart.
		if s.live.Load().cfg.Gateway.ControlUI.Enabled && ui.Serves(r.URL.Path) {
			ui.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			writeJSON(w, http.StatusOK, map[string]any{"ok": true, "status": "live"})
		case "/readyz":
			switch {
			case s.draining.Load():
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "status": "draining"})
			case !s.ready.Load():
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "status": "starting"})
			default:
				writeJSON(w, http.StatusOK, map[string]any{"ok": true, "status": "ready"})
			}
		default:
			writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "not found", "path": r.URL.Path})
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	lc := s.live.Load()
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "gateway is shutting down"})
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" && !originAllowed(origin, r.Host, lc.origins) {
		s.log.Warn("websocket origin rejected", "origin", origin, "host", r.Host, "peer", r.RemoteAddr)
		writeJSON(w, http.StatusForbidden, map[string]any{"ok": false,
			"error": fmt.Sprintf("origin %s is not allowed; add it to gateway.controlUi.allowedOrigins", origin)})
		return
	}
	ip := s.clientIP(r, lc)
	up := websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// The origin was checked above with the gateway's own rules.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade already answered the HTTP request with the reason.
		s.log.Debug("websocket upgrade failed", "err", err, "peer", r.RemoteAddr)
		return
	}
	if !s.trackConn() {
		// Drain began while this request was upgrading.
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(protocol.CloseServiceRestart, "gateway is shutting down"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	c := newConn(s, ws, ip, origin != "", r.UserAgent())
	go func() {
		defer s.connWG.Done()
		c.run()
	}()
}

// trackConn counts a new connection goroutine for drain to wait on, unless
// drain has begun. Shutdown stops waiting for a request once it hijacks the
// connection, so an upgrade can finish after drain started waiting; adding to
// the WaitGroup then would race with that Wait.
func (s *Server) trackConn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.connWG.Add(1)
	return true
}

// originAllowed applies PROTOCOL.md's rule: listed in allowedOrigins, or the
// origin's host equals the request's Host, or both are loopback.
func originAllowed(origin, host string, allowed map[string]bool) bool {
	if allowed[normalizeOrigin(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	return isLoopbackHost(u.Hostname()) && isLoopbackHost(hostOnly(host))
}

func normalizeOrigin(o string) string { return strings.ToLower(strings.TrimSuffix(o, "/")) }

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// clientIP is the TCP peer, or for a trusted proxy the left-most
// X-Forwarded-For entry. Forwarding headers from anyone else are ignored, and
// logged once per peer so a misconfigured proxy is visible without flooding.
func (s *Server) clientIP(r *http.Request, lc *liveConfig) string {
	peer := auth.NormalizeIP(hostOnly(r.RemoteAddr))
	xff := r.Header.Get("X-Forwarded-For")
	if peerIP := net.ParseIP(peer); peerIP != nil && inNets(peerIP, lc.proxies) {
		if first := strings.TrimSpace(strings.Split(xff, ",")[0]); first != "" {
			if a, err := netip.ParseAddr(hostOnly(first)); err == nil {
				return auth.NormalizeIP(a.String())
			}
		}
		return peer
	}
	if xff != "" || r.Header.Get("X-Real-IP") != "" || r.Header.Get("Forwarded") != "" {
		// Bounded: past this many peers we stop remembering, not logging.
		const maxRemembered = 1024
		if _, seen := s.untrustedLogged.Load(peer); !seen {
			if s.untrustedCount.Add(1) <= maxRemembered {
				s.untrustedLogged.Store(peer, struct{}{})
			}
			s.log.Warn("ignoring forwarding headers from untrusted peer; add it to gateway.trustedProxies if it is your proxy", "peer", peer)
		}
	}
	return peer
}

func parseIPNet(s string) (net.IPNet, error) {
	if strings.Contains(s, "/") {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return net.IPNet{}, err
		}
		return *n, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return net.IPNet{}, fmt.Errorf("%q is not an IP address", s)
	}
	if v4 := ip.To4(); v4 != nil {
		return net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}, nil
	}
	return net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}, nil
}

func inNets(ip net.IP, nets []net.IPNet) bool {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

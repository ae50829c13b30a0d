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
	"github.com/skykoi/skykoi/gateway/files"
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
		if lc := s.live.Load(); lc.cfg.Gateway.ControlUI.Enabled && ui.Serves(r.URL.Path) {
			if !s.refuseHost(w, r, lc) {
				ui.ServeHTTP(w, r)
			}
			return
		}
		// The probes and the 404 answer any Host: they are what health
		// checks reach by whatever name they use, and a rebinding page
		// reading them learns only that a gateway is up.
		if strings.HasPrefix(r.URL.Path, files.DownloadPrefix) {
			s.serveDownload(w, r)
			return
		}
		switch r.URL.Path {
		case "/metrics":
			s.serveMetrics(w, r, s.live.Load())
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
	// Only a socket with an Origin is checked for its Host: browsers always
	// send Origin on a WebSocket upgrade, and a client without one (the CLI,
	// a script) picked the address it dials itself, so no page's DNS can
	// have steered it there.
	if origin != "" && s.refuseHost(w, r, lc) {
		return
	}
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
	s.metrics.ConnOpened()
	go func() {
		defer s.connWG.Done()
		defer s.metrics.ConnClosed()
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

// refuseHost answers 421 and returns true when r's Host is not one of this
// gateway's names. This is the defence against DNS rebinding: a page on
// attacker.test whose name the attacker re-points at 127.0.0.1 reaches the
// gateway with Host and Origin both attacker.test, so the Origin rule alone
// would take it for the gateway's own page.
func (s *Server) refuseHost(w http.ResponseWriter, r *http.Request, lc *liveConfig) bool {
	if hostAllowed(r.Host, lc.hosts) {
		return false
	}
	h := hostName(r.Host)
	if len(h) > maxHostEcho {
		h = h[:maxHostEcho] + "…"
	}
	s.log.Warn("request for an unknown host refused", "host", h, "path", r.URL.Path, "peer", r.RemoteAddr)
	writeJSON(w, http.StatusMisdirectedRequest, map[string]any{"ok": false,
		"error": fmt.Sprintf("host %q is not a name of this gateway; if you reach the gateway by that name, add its origin (https://%s) to gateway.controlUi.allowedOrigins (IP addresses and localhost need no entry)", h, h)})
	return true
}

// maxHostEcho bounds how much of a refused Host goes back out and into the
// log; a DNS name is at most 253 characters.
const maxHostEcho = 253

// hostAllowed is the Host rule of docs/protocol.md. An IP literal cannot be
// a rebinding vector, since rebinding needs a DNS name the attacker
// controls; "localhost" is answered by the browser itself, never by DNS.
// Any other name must be the host of one of gateway.controlUi.allowedOrigins:
// the names the owner configured, such as the one nginx answers to. "*.localhost" is not exempt: whether it goes to
// DNS depends on the browser.
func hostAllowed(host string, names map[string]bool) bool {
	h := hostName(host)
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return h == "localhost" || names[h]
}

// hostName is the name in a Host header, lower-cased and without the port
// or a trailing dot, which name the same host.
func hostName(host string) string {
	return strings.TrimSuffix(strings.ToLower(hostOnly(host)), ".")
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

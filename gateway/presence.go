package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/skykoi/skykoi/gateway/budget"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/version"
)

// register makes c a live client and answers its connect. The hello-ok is
// queued under s.mu, before any broadcast can see c, so it is always the
// first frame after the challenge; the others then learn of c via presence.
func (s *Server) register(c *conn, reqID string) {
	var entry *protocol.PresenceEntry
	if !ephemeralMode(c.params.Client.Mode) {
		entry = c.presenceEntry() // fixed for the connection's life
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	c.entry = entry
	if entry != nil {
		s.joined = append(s.joined, c)
		s.presence++
	}
	hello := s.helloOKLocked(c)
	c.sendRes(reqID, hello)
	s.mu.Unlock()
	if entry != nil {
		s.presenceChanged()
	}
}

// ephemeralMode reports a client mode that comes, asks and goes: a command
// line call, a backend or a health probe. As in the OpenClaw gateway, such
// clients are not presence: listing them, and broadcasting their every
// arrival and departure to everyone, would tell nobody anything.
func ephemeralMode(mode string) bool {
	switch strings.ToLower(mode) {
	case "cli", "backend", "probe":
		return true
	}
	return false
}

// unregister drops c; others see a presence event.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	_, was := s.conns[c]
	delete(s.conns, c)
	listed := was && c.entry != nil
	if listed {
		s.presence++
		// Usually a recent arrival leaves: search from the end.
		for i := len(s.joined) - 1; i >= 0; i-- {
			if s.joined[i] == c {
				s.joined = slices.Delete(s.joined, i, i+1)
				break
			}
		}
	}
	s.mu.Unlock()
	if listed {
		s.presenceChanged()
	}
	if was {
		// A visit shorter than the idle check interval still counts.
		s.idle.Load().Touch()
		s.log.Info("client disconnected", "conn", c.id, "ip", c.ip, "client", c.params.Client.ID)
	}
}

// presenceCoalesce bounds presence broadcasts to about one per window. Each
// carries the whole list, so a burst of N connects would otherwise send N
// events of up to MaxPresenceEntries entries to N clients. The first change
// goes out at once; changes inside the window are folded into one trailing
// broadcast.
const presenceCoalesce = 250 * time.Millisecond

// MaxPresenceEntries caps the presence list, the gateway's own entry
// included, at the number the OpenClaw gateway keeps. Presence tells a person
// who else is connected; past a few hundred entries it tells them nothing
// more, and every connect would pay for encoding, sending and decoding the
// whole list (200 KB at 1,000 clients).
const MaxPresenceEntries = 200

// presenceWindowLocked widens the window with the cost of one broadcast, the
// list's length times the number of clients, so that with many connections
// (a load test, not one person's Koi) presence trades freshness for
// bandwidth: about 20 MB/s at most instead of hundreds.
func (s *Server) presenceWindowLocked() time.Duration {
	n := len(s.conns)
	return max(presenceCoalesce, time.Duration(n*min(n+1, MaxPresenceEntries))*10*time.Microsecond)
}

func (s *Server) presenceChanged() {
	s.mu.Lock()
	if s.presenceTimer != nil {
		s.mu.Unlock() // the scheduled broadcast will carry this change
		return
	}
	window := s.presenceWindowLocked()
	since := time.Since(s.presenceSent)
	if since >= window {
		s.presenceSent = time.Now()
		s.mu.Unlock()
		s.broadcastPresence()
		return
	}
	s.presenceTimer = time.AfterFunc(window-since, func() {
		s.mu.Lock()
		s.presenceTimer = nil
		s.presenceSent = time.Now()
		s.mu.Unlock()
		s.broadcastPresence()
	})
	s.mu.Unlock()
}

func (s *Server) broadcastPresence() {
	s.mu.Lock()
	list, _ := s.presenceLocked()
	s.mu.Unlock()
	s.broadcast(protocol.EventPresence, map[string]any{"presence": list}, nil, false)
}

// presenceLocked lists the gateway itself, then the clients, most recently
// connected first, up to MaxPresenceEntries in all; s.mu is held.
func (s *Server) presenceLocked() ([]*protocol.PresenceEntry, protocol.StateVersion) {
	v := version.Get()
	n := min(len(s.joined), MaxPresenceEntries-1)
	out := make([]*protocol.PresenceEntry, 1, n+1)
	out[0] = &protocol.PresenceEntry{
		TS: s.startedAt.UnixMilli(), Host: s.opts.Hostname, Version: v.Version,
		Mode: "gateway", Reason: "self", Text: "skykoi gateway",
	}
	for i := len(s.joined) - 1; i >= len(s.joined)-n; i-- {
		out = append(out, s.joined[i].entry)
	}
	return out, protocol.StateVersion{Presence: s.presence, Health: s.health}
}

// presenceEntry is how c shows in presence.
func (c *conn) presenceEntry() *protocol.PresenceEntry {
	p := c.params
	return &protocol.PresenceEntry{
		TS: c.opened.UnixMilli(), Host: p.Client.DisplayName, IP: c.ip, Version: p.Client.Version,
		Platform: p.Client.Platform, DeviceFamily: p.Client.DeviceFamily, Mode: p.Client.Mode,
		Reason: "connect", DeviceID: c.deviceID, InstanceID: p.Client.InstanceID,
		Roles: []string{c.role}, Scopes: c.grantedScopes(),
	}
}

// broadcast sends an event to every authenticated connection that filter
// accepts (nil: all). The payload is encoded once; each connection stamps its
// own seq. It never blocks on a client.
func (s *Server) broadcast(name string, payload any, filter func(*conn) bool, droppable bool) {
	raw, err := json.Marshal(payload)
	if err != nil {
		s.log.Error("encoding event", "event", name, "err", err)
		return
	}
	s.mu.Lock()
	sv := protocol.StateVersion{Presence: s.presence, Health: s.health}
	targets := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if filter == nil || filter(c) {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	var svp *protocol.StateVersion
	if name == protocol.EventPresence || name == protocol.EventHealth {
		svp = &sv
	}
	for _, c := range targets {
		c.sendEvent(name, raw, svp, droppable)
	}
}

// eventNames lists every event the gateway sends, for hello-ok features.
func eventNames() []string {
	return []string{
		protocol.EventConnectChallenge, protocol.EventTick, protocol.EventPresence,
		protocol.EventHealth, protocol.EventShutdown,
		protocol.EventAgent, protocol.EventChat, protocol.EventSessionsChanged,
		eventCron,

		budget.EventWarning,
	}
}

// Package web implements the web_fetch and web_search tools: an HTTP(S)
// fetcher whose every connection passes an address check at dial time, HTML
// to markdown or text conversion, and a Brave Search client.
//
// The address check sits in the net.Dialer's Control hook, which sees the
// IP the socket is about to connect to after DNS resolution. So a literal
// internal address, a hostname that resolves to one (however often its DNS
// answer changes), and a redirect to either are all refused by the same
// code, and no proxy is ever used: a proxy would make the dial go to the
// proxy, hiding the real destination from the check.
package web

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"

	"github.com/skykoi/skykoi/internal/netbreadth"
)

// AllowPrivateKey is the config key that lifts the block, named in errors.
const AllowPrivateKey = "tools.web.allowPrivate"

// The instance metadata service hands out the instance role's credentials,
// so a range in tools.web.allowPrivate does not reach it: only an entry
// naming exactly this address does.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
}

// blockedRange is one internal range and what to call it in an error.
type blockedRange struct {
	prefix netip.Prefix
	what   string
}

// blocked lists what netip's predicates do not name directly; the
// predicates (loopback, private, link-local, multicast, unspecified) are
// checked first in classify.
var blocked = []blockedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (198.18.0.0/15)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 (64:ff9b:1::/48)"},
	{netip.MustParsePrefix("100::/64"), "discard-only (100::/64)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation (2001:db8::/32)"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (fec0::/10)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (::/96)"},
}

// nat64 is the well-known NAT64 prefix: a VPC's NAT gateway translates
// 64:ff9b::a.b.c.d to the IPv4 address a.b.c.d, private ones included, so
// the embedded address is what gets judged.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// classify says why a is internal, or "" when it is a public address.
func classify(a netip.Addr) string {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		if why := classify(v4); why != "" {
			return why + " through NAT64"
		}
		return ""
	}
	for _, m := range metadataAddrs {
		if a == m {
			return "the instance metadata service, which hands out the instance role's credentials"
		}
	}
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	case a.IsPrivate() && a.Is4():
		return "private"
	case a.IsPrivate():
		return "unique-local"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, r := range blocked {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	return ""
}

// BlockedError is a refused connection: the address dialled and why it is
// internal.
type BlockedError struct {
	Addr   netip.Addr
	Reason string
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("refused to connect to %s (%s): web_fetch does not reach this machine, its network or the instance metadata service; "+
		"if this address is meant to be reachable, add %q to %s", e.Addr, e.Reason, e.Addr.String(), AllowPrivateKey)
}

// Guard decides which addresses may be dialled. The zero value blocks every
// internal address.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard parses tools.web.allowPrivate entries (IPs or CIDRs).
// IPv4-mapped IPv6 entries are read as the IPv4 addresses they map, as the
// dialled address is.
func NewGuard(allowPrivate []string) (*Guard, error) {
	g := &Guard{}
	for _, s := range allowPrivate {
		p, err := netbreadth.ParsePrefixOrAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", AllowPrivateKey, err)
		}
		p = p.Masked()
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		g.allow = append(g.allow, p)
	}
	return g, nil
}

// Check returns nil when a may be dialled, else a *BlockedError.
func (g *Guard) Check(a netip.Addr) error {
	a = a.Unmap()
	why := classify(a)
	if why == "" {
		return nil
	}
	exact := false
	for _, m := range metadataAddrs {
		exact = exact || a == m
	}
	for _, p := range g.allow {
		if !p.Contains(a) {
			continue
		}
		if exact && p.Bits() != a.BitLen() {
			continue // only a single-address entry lifts the metadata block
		}
		return nil
	}
	return &BlockedError{Addr: a, Reason: why}
}

// control is the net.Dialer Control hook: address is the resolved
// "ip:port" the socket is about to connect to.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Every TCP dial gives an IP here; anything else is not ours to let through.
		return fmt.Errorf("refused to connect to %q (%s): not an IP address and port", address, network)
	}
	return g.Check(ap.Addr())
}

// blockedIn finds a *BlockedError inside err, which the HTTP client wraps
// in url.Error and net.OpError.
func blockedIn(err error) *BlockedError {
	var be *BlockedError
	if errors.As(err, &be) {
		return be
	}
	return nil
}

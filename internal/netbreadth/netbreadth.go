// Package netbreadth decides whether a set of network prefixes reaches too
// much of the internet to be an allow-list.
//
// The rule: the union of the prefixes must cover fewer IPv4 addresses than
// a /7 (two /8s) and fewer IPv6 addresses than a /31 (two /32s). So any one
// prefix up to /8 (IPv6 /32) is fine, with smaller ones beside it (all of
// RFC 1918 passes), and any prefix shorter than that is refused however it
// is written. Judging the union rather than each prefix means a wide range
// cannot slip through split into narrower pieces (0.0.0.0/1 plus
// 128.0.0.0/1, or 512 adjacent /16s); overlapping prefixes are counted once,
// so 10.0.0.0/8 with 10.1.0.0/16 still passes. IPv4-mapped IPv6 prefixes
// (inside ::ffff:0:0/96) count against the IPv4 limit as the IPv4 range
// they map, since a dual-stack socket reports IPv4 peers that way:
// ::ffff:0:0/96 is all of IPv4.
package netbreadth

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Widest single prefixes allowed; the union must stay below twice their
// size.
const (
	maxIPv4Bits = 8
	maxIPv6Bits = 32
)

// Rule states the limit for error messages and docs.
const Rule = "all the prefixes together must cover fewer addresses than an IPv4 /7 and an IPv6 /31, that is one /8 (IPv6 /32) at most plus smaller ones; IPv4-mapped IPv6 counts as IPv4"

// mapped is the IPv6 block that holds IPv4-mapped addresses.
var mapped = netip.MustParsePrefix("::ffff:0:0/96")

// coverage is how many addresses a set of prefixes reaches in each family.
type coverage struct {
	V4, V6 *big.Int
}

// cover counts the addresses the union of ps reaches. Invalid prefixes are
// ignored; the caller reports those on its own.
func cover(ps []netip.Prefix) coverage {
	var v4, v6 []netip.Prefix
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		if p.Addr().Is4() {
			v4 = append(v4, p)
			continue
		}
		v6 = append(v6, p)
		switch {
		case p.Bits() >= mapped.Bits() && mapped.Contains(p.Addr()):
			v4 = append(v4, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-mapped.Bits()))
		case p.Bits() < mapped.Bits() && p.Contains(mapped.Addr()):
			v4 = append(v4, netip.PrefixFrom(netip.IPv4Unspecified(), 0))
		}
	}
	return coverage{V4: union(v4, 32), V6: union(v6, 128)}
}

// union sums the sizes of the outermost prefixes: two CIDR prefixes are
// either disjoint or one holds the other, so after sorting by first address
// (wider first) every prefix inside an earlier one can be skipped.
func union(ps []netip.Prefix, bitLen int) *big.Int {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	total := new(big.Int)
	var outer netip.Prefix
	for _, p := range ps {
		if outer.IsValid() && outer.Contains(p.Addr()) {
			continue
		}
		outer = p
		total.Add(total, new(big.Int).Lsh(big.NewInt(1), uint(bitLen-p.Bits())))
	}
	return total
}

// Refused from this many addresses on: twice the widest prefix allowed.
var (
	refuseV4 = new(big.Int).Lsh(big.NewInt(1), 32-maxIPv4Bits+1)
	refuseV6 = new(big.Int).Lsh(big.NewInt(1), 128-maxIPv6Bits+1)
)

// Check returns an error naming the family whose union is too broad, or nil.
func Check(ps []netip.Prefix) error {
	c := cover(ps)
	var msgs []string
	if c.V4.Cmp(refuseV4) >= 0 {
		msgs = append(msgs, fmt.Sprintf("together they reach as many IPv4 addresses as a /%d", equivalentBits(c.V4, 32)))
	}
	if c.V6.Cmp(refuseV6) >= 0 {
		msgs = append(msgs, fmt.Sprintf("together they reach as many IPv6 addresses as a /%d", equivalentBits(c.V6, 128)))
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("too broad: %s (the rule: %s)", strings.Join(msgs, "; "), Rule)
}

// equivalentBits is the length of the widest prefix no larger than n
// addresses, so a message can say "as many as a /0" for two /1s.
func equivalentBits(n *big.Int, bitLen int) int {
	return bitLen - (n.BitLen() - 1)
}

// ParsePrefixOrAddr reads a CIDR, or a bare address as its single-address
// prefix.
func ParsePrefixOrAddr(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parsing %q as an IP address or CIDR: %w", s, err)
	}
	return p, nil
}

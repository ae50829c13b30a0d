package netbreadth

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		p, err := ParsePrefixOrAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	return ps
}

// adjacent is n consecutive prefixes of length bits starting at first.
func adjacent(first string, bits, n int) []string {
	a := netip.MustParseAddr(first)
	var out []string
	for range n {
		p := netip.PrefixFrom(a, bits)
		out = append(out, p.String())
		// Step past the prefix's last address.
		b := a.As16()
		if a.Is4() {
			b4 := a.As4()
			v := uint32(b4[0])<<24 | uint32(b4[1])<<16 | uint32(b4[2])<<8 | uint32(b4[3])
			v += 1 << (32 - bits)
			a = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			continue
		}
		// IPv6: only steps on a 16-bit boundary are needed here.
		i := bits/8 - 1
		for ; i >= 0; i-- {
			b[i]++
			if b[i] != 0 {
				break
			}
		}
		a = netip.AddrFrom16(b)
	}
	return out
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cidrs []string
		want  string // "" for accepted, else a substring of the error
	}{
		{"one host", []string{"203.0.113.7/32"}, ""},
		{"one /8", []string{"10.0.0.0/8"}, ""},
		{"nested counted once", []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3"}, ""},
		{"duplicate counted once", []string{"10.0.0.0/8", "10.0.0.0/8"}, ""},
		{"loopback", []string{"127.0.0.1", "::1"}, ""},
		{"one /32 v6", []string{"2001:db8::/32"}, ""},
		{"v4 /8 and v6 /32 together", []string{"10.0.0.0/8", "2001:db8::/32"}, ""},
		{"mapped host", []string{"::ffff:127.0.0.1/128"}, ""},
		{"mapped /8", []string{"::ffff:10.0.0.0/104"}, ""},
		{"whole v4", []string{"0.0.0.0/0"}, "IPv4 addresses as a /0"},
		{"a /7", []string{"10.0.0.0/7"}, "IPv4 addresses as a /7"},
		{"two /8s", []string{"10.0.0.0/8", "11.0.0.0/8"}, "IPv4 addresses as a /7"},
		{"two halves", []string{"0.0.0.0/1", "128.0.0.0/1"}, "IPv4 addresses as a /0"},
		{"256 adjacent /16s", adjacent("10.0.0.0", 16, 256), ""},
		{"511 adjacent /16s", adjacent("10.0.0.0", 16, 511), ""},
		{"512 adjacent /16s", adjacent("10.0.0.0", 16, 512), "IPv4 addresses as a /7"},
		{"256 adjacent /16s twice over", append(adjacent("10.0.0.0", 16, 256), adjacent("12.0.0.0", 16, 256)...), "IPv4 addresses as a /7"},
		{"all of RFC 1918", []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.1"}, ""},
		{"a /8 and a host", []string{"10.0.0.0/8", "127.0.0.1"}, ""},
		{"whole v6", []string{"::/0"}, "IPv6 addresses as a /0"},
		{"v6 halves", []string{"::/1", "8000::/1"}, "IPv6 addresses as a /0"},
		{"256 adjacent v6 /40s", adjacent("2001:db8::", 40, 256), ""},
		{"512 adjacent v6 /40s", adjacent("2001:db8::", 40, 512), "IPv6 addresses as a /31"},
		{"a v6 /31", []string{"2001:db8::/31"}, "IPv6 addresses as a /31"},
		{"two v6 /32s", adjacent("2001:db8::", 32, 2), "IPv6 addresses as a /31"},
		{"mapped is all of v4", []string{"::ffff:0:0/96"}, "IPv4 addresses as a /0"},
		{"mapped halves", []string{"::ffff:0.0.0.0/97", "::ffff:128.0.0.0/97"}, "IPv4 addresses as a /0"},
		{"mapped plus native", []string{"::ffff:10.0.0.0/104", "11.0.0.0/8"}, "IPv4 addresses as a /7"},
		{"both families at the limit", []string{"10.0.0.0/8", "2001:db8::/32", "::ffff:127.0.0.1"}, ""},
		{"mapped overlaps native", []string{"::ffff:10.0.0.0/104", "10.0.0.0/8"}, ""},
		{"v6 holding mapped", []string{"::/80"}, "IPv4 addresses as a /0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(prefixes(t, tc.cidrs...))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check(%v) = %v, want nil", tc.cidrs, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check(%v) = %v, want an error containing %q", tc.cidrs, err, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), Rule):
				t.Errorf("Check(%v) = %v, want the rule stated", tc.cidrs, err)
			}
		})
	}
}

// halves splits p into its two halves, or returns nil for a host prefix.
func halves(p netip.Prefix) []netip.Prefix {
	if p.Bits() == p.Addr().BitLen() {
		return nil
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	b := p.Addr().AsSlice()
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	return []netip.Prefix{lo, netip.PrefixFrom(hiAddr, p.Bits()+1)}
}

// FuzzCheck holds the properties that make the rule unsplittable: the
// verdict does not depend on order, splitting a prefix into halves changes
// nothing, adding a prefix never turns a refusal into an acceptance, and
// any single prefix wider than the limit is refused.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"0.0.0.0/1,128.0.0.0/1",
		"::/1,8000::/1",
		"::ffff:0:0/96",
		"10.0.0.0/8,10.1.0.0/16",
		"127.0.0.1,::1",
		"10.0.0.0/7",
		"2001:db8::/32,2001:db9::/32",
		"::ffff:10.0.0.0/104,11.0.0.0/8",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		var ps []netip.Prefix
		for _, s := range strings.Split(list, ",") {
			if p, err := ParsePrefixOrAddr(strings.TrimSpace(s)); err == nil && p.IsValid() {
				ps = append(ps, p.Masked())
			}
		}
		if len(ps) == 0 || len(ps) > 64 {
			return
		}
		verdict := Check(ps) == nil
		rev := slices.Clone(ps)
		slices.Reverse(rev)
		if (Check(rev) == nil) != verdict {
			t.Fatalf("order changes the verdict for %v", ps)
		}
		for i, p := range ps {
			h := halves(p)
			if h == nil {
				continue
			}
			split := append(slices.Clone(ps[:i]), h...)
			split = append(split, ps[i+1:]...)
			if (Check(split) == nil) != verdict {
				t.Fatalf("splitting %s into %v changes the verdict for %v", p, h, ps)
			}
			break
		}
		if !verdict && Check(append(slices.Clone(ps), netip.MustParsePrefix("192.0.2.1/32"))) == nil {
			t.Fatalf("adding a host accepted the refused %v", ps)
		}
		for _, p := range ps {
			limit := maxIPv4Bits
			if p.Addr().Is6() {
				limit = maxIPv6Bits
			}
			if p.Bits() < limit && Check([]netip.Prefix{p}) == nil {
				t.Fatalf("accepted the single prefix %s", p)
			}
		}
	})
}

package web

import (
	"net/netip"
	"strings"
	"testing"
)

func TestGuardClassifies(t *testing.T) {
	tests := []struct {
		addr string
		want string // substring of the reason; "" = allowed
	}{
		{"127.0.0.1", "loopback"},
		{"127.9.9.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"169.254.169.254", "metadata"},
		{"fd00:ec2::254", "metadata"},
		{"::ffff:169.254.169.254", "metadata"},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"::ffff:192.168.1.1", "private"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"fc00::1", "unique-local"},
		{"fd12:3456::1", "unique-local"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"0.1.2.3", "this network"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"198.18.0.1", "benchmarking"},
		{"64:ff9b::a00:1", "private through NAT64"},
		{"64:ff9b::a9fe:a9fe", "metadata service, which hands out the instance role's credentials through NAT64"},
		{"64:ff9b:1::1", "NAT64"},
		{"fec0::1", "site-local"},
		{"::7f00:1", "IPv4-compatible"},
		// Public addresses pass.
		{"93.184.216.34", ""},
		{"8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"2606:4700::1111", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
	}
	g := &Guard{}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := g.Check(netip.MustParseAddr(tt.addr))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v; want allowed", tt.addr, err)
				}
				return
			}
			be, ok := err.(*BlockedError)
			if !ok {
				t.Fatalf("Check(%s) = %v; want a *BlockedError (%s)", tt.addr, err, tt.want)
			}
			if !strings.Contains(be.Reason, tt.want) {
				t.Errorf("Check(%s) reason %q; want it to say %q", tt.addr, be.Reason, tt.want)
			}
			if msg := be.Error(); !strings.Contains(msg, AllowPrivateKey) || !strings.Contains(msg, be.Addr.String()) {
				t.Errorf("the error does not name the address and %s: %s", AllowPrivateKey, msg)
			}
		})
	}
}

func TestGuardAllowPrivate(t *testing.T) {
	tests := []struct {
		name    string
		allow   []string
		addr    string
		allowed bool
	}{
		{"single address", []string{"127.0.0.1"}, "127.0.0.1", true},
		{"single address, not its neighbour", []string{"127.0.0.1"}, "127.0.0.2", false},
		{"range", []string{"10.0.0.0/8"}, "10.200.0.9", true},
		{"range, other private", []string{"10.0.0.0/8"}, "192.168.0.1", false},
		{"mapped entry reads as IPv4", []string{"::ffff:10.0.0.1"}, "10.0.0.1", true},
		{"mapped address dialled", []string{"10.0.0.1"}, "::ffff:10.0.0.1", true},
		{"IPv6 range", []string{"fd00:1::/32"}, "fd00:1::5", true},
		{"a link-local range does not reach the metadata service", []string{"169.254.0.0/16"}, "169.254.169.254", false},
		{"the link-local range still works for the rest", []string{"169.254.0.0/16"}, "169.254.1.1", true},
		{"everything does not reach the metadata service", []string{"0.0.0.0/0", "::/0"}, "169.254.169.254", false},
		{"a ULA range does not reach the IPv6 metadata service", []string{"fd00::/8"}, "fd00:ec2::254", false},
		{"the metadata service named exactly", []string{"169.254.169.254"}, "169.254.169.254", true},
		{"the IPv6 metadata service named exactly", []string{"fd00:ec2::254"}, "fd00:ec2::254", true},
		{"public stays allowed", []string{"127.0.0.1"}, "8.8.8.8", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGuard(tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			err = g.Check(netip.MustParseAddr(tt.addr))
			if (err == nil) != tt.allowed {
				t.Errorf("Check(%s) with allowPrivate %v = %v; want allowed=%v", tt.addr, tt.allow, err, tt.allowed)
			}
		})
	}
}

func TestNewGuardRejectsBadEntries(t *testing.T) {
	for _, bad := range []string{"localhost", "10.0.0.0/33", "", "1.2.3"} {
		if _, err := NewGuard([]string{bad}); err == nil || !strings.Contains(err.Error(), AllowPrivateKey) {
			t.Errorf("NewGuard(%q) = %v; want an error naming %s", bad, err, AllowPrivateKey)
		}
	}
}

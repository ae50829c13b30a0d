package configgen

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestValidHostname(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		in   string
		want bool
	}{
		{"koi.example.com", true},
		{"KOI.Example.Com", true},
		{"ec2-203-0-113-10.compute-1.amazonaws.com", true},
		{"mybox", true},
		{"xn--bcher-kva.example", true},
		{long + ".example", true},
		{"", false},
		{"koi.example.com.", false},
		{".example.com", false},
		{"koi..example", false},
		{"-koi.example", false},
		{"koi-.example", false},
		{"koi.example.com:443", false},
		{"https://koi.example.com", false},
		{"koi.example.com/x", false},
		{"*.example.com", false},
		{"koi_1.example", false},
		{"koi example", false},
		{long + "a.example", false},
		{strings.Repeat("a.", 127) + "ab", false}, // 256 characters
		{"203.0.113.10", false},
		{"1.2.3.4.5", false},
	}
	for _, tt := range tests {
		if got := ValidHostname(tt.in); got != tt.want {
			t.Errorf("ValidHostname(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestAllowedHostsValidation(t *testing.T) {
	tests := []struct {
		host string
		want string // "" = valid; else part of the issue
	}{
		{"koi.example.com", ""},
		{"203.0.113.10", "IP addresses are always accepted"},
		{"[::1]", "IP addresses are always accepted"},
		{"https://koi.example.com", "must be a host name"},
		{"*.example.com", "must be a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			src := `{gateway: {mode: "local", auth: {mode: "none"}, controlUi: {allowedHosts: ["` + tt.host + `"]}}}`
			c, err := ParseEnv([]byte(src), func(string) string { return "" })
			if tt.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if got := c.Gateway.ControlUI.AllowedHosts; len(got) != 1 || got[0] != tt.host {
					t.Errorf("allowedHosts = %q", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "gateway.controlUi.allowedHosts[0]") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v; want an issue at gateway.controlUi.allowedHosts[0] saying %q", err, tt.want)
			}
		})
	}
}

// FuzzValidHostname checks ValidHostname against its definition: the JSON
// Schema's pattern plus the length limits, never an IP address, and
// indifferent to case.
func FuzzValidHostname(f *testing.F) {
	for _, s := range []string{"koi.example.com", "a", "1.2.3.4", "a-.b", "ä.example", "x..y", strings.Repeat("a", 64), "::1", "koi.example.com."} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(hostnamePattern)
	f.Fuzz(func(t *testing.T, s string) {
		got := ValidHostname(s)
		want := pattern.MatchString(s) && len(s) <= 253
		if want {
			labels := strings.Split(s, ".")
			for _, l := range labels {
				if len(l) > 63 {
					want = false
				}
			}
			if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
				want = false
			}
		}
		if got != want {
			t.Fatalf("ValidHostname(%q) = %v, want %v", s, got, want)
		}
		if got {
			if _, err := netip.ParseAddr(s); err == nil {
				t.Fatalf("ValidHostname accepted the IP address %q", s)
			}
			if !ValidHostname(strings.ToLower(s)) || !ValidHostname(strings.ToUpper(s)) {
				t.Fatalf("ValidHostname(%q) depends on case", s)
			}
		}
	})
}

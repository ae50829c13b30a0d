package session

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeKey(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"", MainKey, nil},
		{"   ", MainKey, nil},
		{"main", MainKey, nil},
		{"work", "agent:main:work", nil},
		{"telegram:dm:123", "agent:main:telegram:dm:123", nil},
		{"agent:main:main", MainKey, nil},
		{"agent:main:x", "agent:main:x", nil},
		{"Agent:MAIN:Work", "agent:main:Work", nil},
		{"agent:ops:x", "", ErrUnknownAgent},
		{"agent:main", "", ErrInvalidKey},
		{"agent:", "", ErrInvalidKey},
		{"agent:main:", "", ErrInvalidKey},
		{"agent::x", "", ErrInvalidKey},
		{"a::b", "", ErrInvalidKey},
		{"x:", "", ErrInvalidKey},
		{"../etc/passwd", "", ErrInvalidKey},
		{"a/b", "", ErrInvalidKey},
		{`a\b`, "", ErrInvalidKey},
		{"a..b", "", ErrInvalidKey},
		{"a\x00b", "", ErrInvalidKey},
		{"a\nb", "", ErrInvalidKey},
		{"a\u0085b", "", ErrInvalidKey},
		{"bad\xffutf8", "", ErrInvalidKey},
		{"with space", "agent:main:with space", nil},
		{"日本語", "agent:main:日本語", nil},
		{strings.Repeat("k", maxKeyLen-len(keyPrefix)), keyPrefix + strings.Repeat("k", maxKeyLen-len(keyPrefix)), nil},
		{strings.Repeat("k", maxKeyLen-len(keyPrefix)+1), "", ErrInvalidKey},
	}
	for _, tt := range tests {
		got, err := NormalizeKey(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("NormalizeKey(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeKey(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		// Normal forms are fixed points.
		if again, err := NormalizeKey(got); err != nil || again != got {
			t.Errorf("NormalizeKey(%q) = %q, %v; not a fixed point", got, again, err)
		}
	}
}

func TestUnknownAgentMessage(t *testing.T) {
	_, err := NormalizeKey("agent:ops:main")
	if err == nil || !strings.Contains(err.Error(), "unknown agent") {
		t.Fatalf("error %v does not say unknown agent", err)
	}
}

func TestKeyKind(t *testing.T) {
	for key, want := range map[string]string{
		MainKey:                          "direct",
		"agent:main:telegram:dm:1":       "direct",
		"agent:main:telegram:group:-100": "group",
		"agent:main:discord:channel:9:x": "group",
		"agent:main:groupies":            "direct",
	} {
		if got := KeyKind(key); got != want {
			t.Errorf("KeyKind(%q) = %q, want %q", key, got, want)
		}
	}
}

// FuzzNormalizeKey: any input either fails or yields a key that is a fixed
// point and satisfies every rule a key promises.
func FuzzNormalizeKey(f *testing.F) {
	for _, s := range []string{"", "main", "agent:main:x", "AGENT:Main:y", "agent:ops:z", "a/b", "a..b", "x:", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		k, err := NormalizeKey(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(k, keyPrefix) || len(k) > maxKeyLen || strings.ContainsAny(k, `/\`) || strings.Contains(k, "..") {
			t.Fatalf("NormalizeKey(%q) = %q breaks a rule", in, k)
		}
		if again, err := NormalizeKey(k); err != nil || again != k {
			t.Fatalf("NormalizeKey(%q) = %q, %v; not a fixed point of %q", k, again, err, in)
		}
	})
}

package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/protocol"
)

func TestDeviceSignaturePayload(t *testing.T) {
	f := protocol.SignatureFields{
		DeviceID:     "dev",
		ClientID:     "cli",
		ClientMode:   "cli",
		Role:         "operator",
		Scopes:       []string{"operator.write", "operator.read"},
		SignedAtMs:   1737264000000,
		Token:        "tok",
		Nonce:        "n-1",
		Platform:     "  MacOS\t",
		DeviceFamily: "\u00a0Desktop\ufeff",
	}
	noRole := f
	noRole.Role = ""
	noMeta := f
	noMeta.Platform, noMeta.DeviceFamily, noMeta.Scopes, noMeta.Token = "", "", nil, ""
	unicode := f
	unicode.Platform = "ÄPPLE"       // only ASCII is lower-cased, as in every OpenClaw runtime
	unicode.DeviceFamily = "\u0085x" // NEL is not JavaScript whitespace
	tests := []struct {
		name    string
		version string
		f       protocol.SignatureFields
		want    string
	}{
		{"v3", protocol.SignatureV3, f, "v3|dev|cli|cli|operator|operator.write,operator.read|1737264000000|tok|n-1|macos|desktop"},
		{"v2", protocol.SignatureV2, f, "v2|dev|cli|cli|operator|operator.write,operator.read|1737264000000|tok|n-1"},
		{"empty role is operator", protocol.SignatureV3, noRole, "v3|dev|cli|cli|operator|operator.write,operator.read|1737264000000|tok|n-1|macos|desktop"},
		{"absent fields are empty", protocol.SignatureV3, noMeta, "v3|dev|cli|cli|operator||1737264000000||n-1||"},
		{"ascii-only lowering, js trim", protocol.SignatureV3, unicode, "v3|dev|cli|cli|operator|operator.write,operator.read|1737264000000|tok|n-1|Äpple|\u0085x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := protocol.DeviceSignaturePayload(tt.version, tt.f); got != tt.want {
				t.Errorf("payload\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDeviceIDFromPublicKey(t *testing.T) {
	// SHA-256 of 32 zero bytes, a well-known vector.
	const want = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
	if got := protocol.DeviceIDFromPublicKey(make(ed25519.PublicKey, 32)); got != want {
		t.Errorf("DeviceIDFromPublicKey(zero) = %s, want %s", got, want)
	}
}

func TestVerifyDevice(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_800_000_000_000)
	const nonce = "6f1c2a3e-challenge"
	base := protocol.SignatureFields{
		ClientID:     "openclaw-control-ui",
		ClientMode:   "webchat",
		Role:         "operator",
		Scopes:       []string{"operator.read", "operator.write"},
		SignedAtMs:   now.UnixMilli(),
		Token:        "secret-token",
		Nonce:        nonce,
		Platform:     "macos",
		DeviceFamily: "desktop",
	}
	// sign returns a proof made by priv over base after edit, as a client
	// would send it; the server-side fields stay base unless a case changes
	// them.
	sign := func(version string, edit func(*protocol.SignatureFields)) protocol.Device {
		f := base
		f.Scopes = append([]string(nil), base.Scopes...)
		if edit != nil {
			edit(&f)
		}
		return protocol.NewDeviceProof(priv, version, f)
	}
	pemKey := func() string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	rsaPEM := func() string {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	at := func(d time.Duration) func(*protocol.SignatureFields) {
		return func(f *protocol.SignatureFields) { f.SignedAtMs = now.Add(d).UnixMilli() }
	}

	tests := []struct {
		name      string
		device    func() protocol.Device
		server    func(*protocol.SignatureFields) // what the server saw in connect
		challenge string                          // default nonce
		wantCode  string
		wantMsg   string
	}{
		{name: "valid v3", device: func() protocol.Device { return sign(protocol.SignatureV3, nil) }},
		{name: "valid v2", device: func() protocol.Device { return sign(protocol.SignatureV2, nil) }},
		{
			name: "v3 metadata normalised",
			device: func() protocol.Device {
				return sign(protocol.SignatureV3, func(f *protocol.SignatureFields) { f.Platform, f.DeviceFamily = "  MacOS ", "DeskTop\n" })
			},
			server: func(f *protocol.SignatureFields) { f.Platform, f.DeviceFamily = "macOS", " desktop" },
		},
		{
			name:     "v3 platform differs",
			device:   func() protocol.Device { return sign(protocol.SignatureV3, nil) },
			server:   func(f *protocol.SignatureFields) { f.Platform = "linux" },
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name:   "v2 ignores platform",
			device: func() protocol.Device { return sign(protocol.SignatureV2, nil) },
			server: func(f *protocol.SignatureFields) { f.Platform = "linux" },
		},
		{
			name: "omitted role signed as operator",
			device: func() protocol.Device {
				return sign(protocol.SignatureV3, func(f *protocol.SignatureFields) { f.Role = "operator" })
			},
			server: func(f *protocol.SignatureFields) { f.Role = "" },
		},
		{
			name: "pem spki key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = pemKey()
				return d
			},
		},
		{
			name: "std base64 padded key and signature",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = base64.StdEncoding.EncodeToString(pub)
				sig, _ := base64.RawURLEncoding.DecodeString(d.Signature)
				d.Signature = base64.StdEncoding.EncodeToString(sig)
				return d
			},
		},
		{
			name: "base64url padded key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = base64.URLEncoding.EncodeToString(pub)
				return d
			},
		},
		{name: "signedAt 119s past", device: func() protocol.Device { return sign(protocol.SignatureV3, at(-119*time.Second)) }},
		{name: "signedAt 120s future", device: func() protocol.Device { return sign(protocol.SignatureV3, at(120*time.Second)) }},
		{
			name: "missing nonce",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.Nonce = ""
				return d
			},
			wantCode: protocol.DeviceAuthNonceRequired,
		},
		{
			name: "wrong nonce",
			device: func() protocol.Device {
				return sign(protocol.SignatureV3, func(f *protocol.SignatureFields) { f.Nonce = "some-other-nonce" })
			},
			wantCode: protocol.DeviceAuthNonceMismatch,
		},
		{
			name:      "nonce prefix of challenge",
			device:    func() protocol.Device { return sign(protocol.SignatureV3, nil) },
			challenge: nonce + "x",
			wantCode:  protocol.DeviceAuthNonceMismatch,
		},
		{
			name:     "signedAt 121s past",
			device:   func() protocol.Device { return sign(protocol.SignatureV3, at(-121*time.Second)) },
			wantCode: protocol.DeviceAuthSignatureExpired,
			wantMsg:  "signedAt is 121s behind server time (limit 120s)",
		},
		{
			name:     "signedAt 121s future",
			device:   func() protocol.Device { return sign(protocol.SignatureV3, at(121*time.Second)) },
			wantCode: protocol.DeviceAuthSignatureExpired,
			wantMsg:  "signedAt is 121s ahead of server time (limit 120s)",
		},
		{
			name:     "signedAt 1ms over",
			device:   func() protocol.Device { return sign(protocol.SignatureV3, at(-120001*time.Millisecond)) },
			wantCode: protocol.DeviceAuthSignatureExpired,
			wantMsg:  "signedAt is 120.001s behind",
		},
		{
			name: "signedAt extreme",
			device: func() protocol.Device {
				return sign(protocol.SignatureV3, func(f *protocol.SignatureFields) { f.SignedAtMs = -1 << 63 })
			},
			wantCode: protocol.DeviceAuthSignatureExpired,
		},
		{
			name: "garbage key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = "not a key!!"
				return d
			},
			wantCode: protocol.DeviceAuthPublicKeyInvalid,
		},
		{
			name: "31-byte key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = protocol.EncodeBase64URL(pub[:31])
				return d
			},
			wantCode: protocol.DeviceAuthPublicKeyInvalid,
			wantMsg:  "decodes to 31 bytes",
		},
		{
			name: "empty key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = ""
				return d
			},
			wantCode: protocol.DeviceAuthPublicKeyInvalid,
		},
		{
			name: "oversized key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = strings.Repeat("A", maxEncodedLen+1)
				return d
			},
			wantCode: protocol.DeviceAuthPublicKeyInvalid,
		},
		{
			name: "pem rsa key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = rsaPEM()
				return d
			},
			wantCode: protocol.DeviceAuthPublicKeyInvalid,
			wantMsg:  "expected Ed25519",
		},
		{
			name: "pem wrong block type",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = strings.ReplaceAll(pemKey(), "PUBLIC KEY", "PRIVATE KEY")
				return d
			},
			wantCode: protocol.DeviceAuthPublicKeyInvalid,
		},
		{
			name: "pem followed by a second block",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.PublicKey = pemKey() + pemKey()
				return d
			},
			wantCode: protocol.DeviceAuthPublicKeyInvalid,
		},
		{
			name: "id mismatch",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.ID = protocol.DeviceIDFromPublicKey(otherPriv.Public().(ed25519.PublicKey))
				return d
			},
			wantCode: protocol.DeviceAuthDeviceIDMismatch,
		},
		{
			name: "id upper case",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.ID = strings.ToUpper(d.ID)
				return d
			},
			wantCode: protocol.DeviceAuthDeviceIDMismatch,
		},
		{
			name: "signature by another key",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				f := base
				f.DeviceID = d.ID
				d.Signature = protocol.EncodeBase64URL(ed25519.Sign(otherPriv, []byte(protocol.DeviceSignaturePayload(protocol.SignatureV3, f))))
				return d
			},
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name:   "signature over different scopes",
			device: func() protocol.Device { return sign(protocol.SignatureV3, nil) },
			server: func(f *protocol.SignatureFields) {
				f.Scopes = []string{"operator.read", "operator.write", "operator.admin"}
			},
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name:     "scopes reordered",
			device:   func() protocol.Device { return sign(protocol.SignatureV3, nil) },
			server:   func(f *protocol.SignatureFields) { f.Scopes = []string{"operator.write", "operator.read"} },
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name:     "token differs",
			device:   func() protocol.Device { return sign(protocol.SignatureV3, nil) },
			server:   func(f *protocol.SignatureFields) { f.Token = "other-token" },
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name:     "role differs",
			device:   func() protocol.Device { return sign(protocol.SignatureV2, nil) },
			server:   func(f *protocol.SignatureFields) { f.Role = "node" },
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name: "signedAt differs from signed value",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.SignedAt++
				return d
			},
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name: "truncated signature",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.Signature = d.Signature[:len(d.Signature)-4]
				return d
			},
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name: "signature not base64",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.Signature = "!!" + d.Signature[2:]
				return d
			},
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
		{
			name: "oversized signature",
			device: func() protocol.Device {
				d := sign(protocol.SignatureV3, nil)
				d.Signature = strings.Repeat("A", maxEncodedLen+4)
				return d
			},
			wantCode: protocol.DeviceAuthSignatureInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.device()
			f := base
			f.Scopes = append([]string(nil), base.Scopes...)
			// The server does not know these; VerifyDevice must take them
			// from the proof, so poison them to prove it does.
			f.DeviceID, f.SignedAtMs, f.Nonce = "poison", 1, "poison"
			if tt.server != nil {
				tt.server(&f)
			}
			challenge := nonce
			if tt.challenge != "" {
				challenge = tt.challenge
			}
			id, code, err := VerifyDevice(d, f, challenge, now)
			if code != tt.wantCode {
				t.Fatalf("code = %q (err %v), want %q", code, err, tt.wantCode)
			}
			if tt.wantCode == "" {
				if err != nil || id != protocol.DeviceIDFromPublicKey(pub) {
					t.Fatalf("VerifyDevice = %q, %v; want %s, nil", id, err, protocol.DeviceIDFromPublicKey(pub))
				}
				return
			}
			if err == nil || id != "" {
				t.Fatalf("failure %s returned id %q, err %v; want empty id and an error", code, id, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParsePublicKeyForms(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for _, s := range []string{
		protocol.EncodeBase64URL(pub),
		base64.URLEncoding.EncodeToString(pub),
		base64.RawStdEncoding.EncodeToString(pub),
		base64.StdEncoding.EncodeToString(pub),
		pemText,
		strings.ReplaceAll(pemText, "\n", "\r\n"),
		"  " + protocol.EncodeBase64URL(pub) + "\n",
	} {
		got, err := ParsePublicKey(s)
		if err != nil {
			t.Errorf("ParsePublicKey(%q): %v", s, err)
			continue
		}
		if !pub.Equal(got) {
			t.Errorf("ParsePublicKey(%q) = %x, want %x", s, got, pub)
		}
	}
}

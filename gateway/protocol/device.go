package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// Versions of the device signature payload. A client signs one of them; the
// server accepts either, v3 first, because OpenClaw clients older than the
// platform/deviceFamily binding still sign v2.
const (
	SignatureV3 = "v3"
	SignatureV2 = "v2"
)

// SignatureFields are the values a device signature covers. Scopes are the
// scopes exactly as the client sent them (order and duplicates matter: the
// signature is over bytes, not over a set).
type SignatureFields struct {
	DeviceID     string
	ClientID     string
	ClientMode   string
	Role         string
	Scopes       []string
	SignedAtMs   int64
	Token        string
	Nonce        string
	Platform     string
	DeviceFamily string
}

// DeviceSignaturePayload is the UTF-8 string a device signs for version
// SignatureV3 or SignatureV2. An empty Role stands for RoleOperator because
// that is what connect means when role is omitted, and the server signs over
// the role it will act on. Any other version panics: it is a programming
// error, and silently signing a malformed payload would only surface later as
// a confusing DEVICE_AUTH_SIGNATURE_INVALID.
func DeviceSignaturePayload(version string, f SignatureFields) string {
	role := f.Role
	if role == "" {
		role = RoleOperator
	}
	parts := []string{
		version,
		f.DeviceID,
		f.ClientID,
		f.ClientMode,
		role,
		strings.Join(f.Scopes, ","),
		strconv.FormatInt(f.SignedAtMs, 10),
		f.Token,
		f.Nonce,
	}
	switch version {
	case SignatureV2:
	case SignatureV3:
		parts = append(parts, normalizeSignedMetadata(f.Platform), normalizeSignedMetadata(f.DeviceFamily))
	default:
		panic("protocol: unknown device signature version " + strconv.Quote(version))
	}
	return strings.Join(parts, "|")
}

// normalizeSignedMetadata trims like JavaScript's String.prototype.trim and
// lower-cases ASCII letters only. Both choices follow the OpenClaw clients
// (TypeScript, Swift, Kotlin), which agree on exactly this so that a
// signature made in one runtime verifies in another; full Unicode case
// folding differs between runtimes and would break that.
func normalizeSignedMetadata(s string) string {
	s = strings.TrimFunc(s, isJSWhitespace)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b.Grow(len(s))
			b.WriteString(s[:i])
			for ; i < len(s); i++ {
				c := s[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				b.WriteByte(c)
			}
			return b.String()
		}
	}
	return s
}

// isJSWhitespace is the set JavaScript's trim removes (WhiteSpace and
// LineTerminator in ECMA-262). It differs from unicode.IsSpace in U+FEFF (JS
// trims it) and U+0085 (JS keeps it); the TypeScript gateway is the reference.
func isJSWhitespace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x00A0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return 0x2000 <= r && r <= 0x200A
}

// DeviceIDFromPublicKey is a device's id: the lowercase hex SHA-256 of its
// raw 32-byte Ed25519 public key.
func DeviceIDFromPublicKey(raw ed25519.PublicKey) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// EncodeBase64URL is the encoding of device keys and signatures on the wire:
// base64url without padding.
func EncodeBase64URL(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewDeviceProof signs f with priv and returns the connect.device object.
// version is SignatureV3 (the current form) or SignatureV2. f.DeviceID is
// ignored and derived from the key, so a client cannot send an
// id that does not match its own key. f.Nonce must be the challenge nonce and
// f.SignedAtMs the client's current time in Unix milliseconds.
func NewDeviceProof(priv ed25519.PrivateKey, version string, f SignatureFields) Device {
	pub := priv.Public().(ed25519.PublicKey)
	f.DeviceID = DeviceIDFromPublicKey(pub)
	sig := ed25519.Sign(priv, []byte(DeviceSignaturePayload(version, f)))
	return Device{
		ID:        f.DeviceID,
		PublicKey: EncodeBase64URL(pub),
		Signature: EncodeBase64URL(sig),
		SignedAt:  f.SignedAtMs,
		Nonce:     f.Nonce,
	}
}

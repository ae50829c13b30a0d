// Package auth holds the gateway's connect-time checks that need no
// connection state: device identity proofs, the failed-auth rate limiter, and
// the store of devices that proved their identity.
package auth

import (
	"crypto/ed25519"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/skykoi/skykoi/gateway/protocol"
)

// MaxSignatureSkew is how far device.signedAt may be from the server's clock,
// either way. The nonce already makes a proof single-use; the bound keeps a
// proof captured before a challenge was answered from being usable later.
const MaxSignatureSkew = 2 * time.Minute

// maxEncodedLen bounds the publicKey and signature strings. The largest
// legitimate value, a PEM SPKI Ed25519 key, is about 113 bytes; 8 KiB leaves
// room for odd line endings and still keeps base64, PEM and DER parsing of
// hostile input cheap.
const maxEncodedLen = 8 << 10

// VerifyDevice checks a connect's device proof against the challenge nonce
// sent on this socket. f carries the connect's client.id, client.mode, role,
// scopes (as sent), auth.token, client.platform and client.deviceFamily;
// DeviceID, SignedAtMs and Nonce are taken from d. On success it returns
// d.ID; on failure the protocol details code and an error that says what was
// wrong, in words fit for the client's user.
func VerifyDevice(d protocol.Device, f protocol.SignatureFields, challengeNonce string, now time.Time) (deviceID string, code string, err error) {
	if d.Nonce == "" {
		return "", protocol.DeviceAuthNonceRequired, errors.New("device nonce required: sign the nonce from the connect.challenge event and send it as device.nonce")
	}
	if subtle.ConstantTimeCompare([]byte(d.Nonce), []byte(challengeNonce)) != 1 {
		return "", protocol.DeviceAuthNonceMismatch, errors.New("device nonce mismatch: device.nonce must be the nonce of this connection's connect.challenge event")
	}
	if msg, ok := checkSkew(d.SignedAt, now); !ok {
		return "", protocol.DeviceAuthSignatureExpired, errors.New(msg)
	}
	pub, err := ParsePublicKey(d.PublicKey)
	if err != nil {
		return "", protocol.DeviceAuthPublicKeyInvalid, err
	}
	if want := protocol.DeviceIDFromPublicKey(pub); d.ID != want {
		return "", protocol.DeviceAuthDeviceIDMismatch, fmt.Errorf("device id mismatch: device.id must be the lowercase hex SHA-256 of the raw public key (%s), got %s", want, quoteShort(d.ID))
	}
	sig, err := decodeBase64(d.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", protocol.DeviceAuthSignatureInvalid, fmt.Errorf("device signature invalid: device.signature must be a %d-byte Ed25519 signature in base64url", ed25519.SignatureSize)
	}
	f.DeviceID = d.ID
	f.SignedAtMs = d.SignedAt
	f.Nonce = d.Nonce
	for _, v := range []string{protocol.SignatureV3, protocol.SignatureV2} {
		if ed25519.Verify(pub, []byte(protocol.DeviceSignaturePayload(v, f)), sig) {
			return d.ID, "", nil
		}
	}
	return "", protocol.DeviceAuthSignatureInvalid, errors.New("device signature invalid: it verifies over neither the v3 nor the v2 payload built from this connect's client, role, scopes, token and nonce")
}

// checkSkew reports whether signedAt (Unix ms) is within MaxSignatureSkew of
// now, and if not, a message saying by how much and which way, because
// "expired" for a clock that runs ahead sends users looking in the wrong
// place.
func checkSkew(signedAt int64, now time.Time) (string, bool) {
	nowMs := now.UnixMilli()
	// The difference of two int64s fits in a uint64 when taken from the
	// larger; signedAt is attacker-chosen and may be near either extreme.
	var diff uint64
	dir := "behind"
	if signedAt > nowMs {
		diff = uint64(signedAt) - uint64(nowMs)
		dir = "ahead of"
	} else {
		diff = uint64(nowMs) - uint64(signedAt)
	}
	limit := uint64(MaxSignatureSkew / time.Millisecond)
	if diff <= limit {
		return "", true
	}
	return fmt.Sprintf("device signature expired: signedAt is %s %s server time (limit %s); check the client's clock and sign right after the challenge",
		formatMs(diff), dir, formatMs(limit)), false
}

// formatMs prints milliseconds as seconds without rounding, so a value just
// over the limit never reads as equal to it.
func formatMs(ms uint64) string {
	s := strconv.FormatUint(ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", frac), "0")
	}
	return s + "s"
}

// ParsePublicKey decodes a device public key as the protocol allows it: the
// raw 32-byte Ed25519 key in base64url (padding and the standard alphabet are
// tolerated, since hand-rolled clients get these wrong), or a PEM "PUBLIC
// KEY" block holding an Ed25519 SubjectPublicKeyInfo, which is what Node's
// crypto exports by default. Anything else is an error.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	if len(s) > maxEncodedLen {
		return nil, fmt.Errorf("device public key invalid: %d bytes is more than the %d allowed", len(s), maxEncodedLen)
	}
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-----BEGIN") {
		return parsePEMPublicKey(t)
	}
	raw, err := decodeBase64(t)
	if err != nil {
		return nil, errors.New("device public key invalid: not base64url (expected the raw 32-byte Ed25519 key, or a PEM SPKI key)")
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("device public key invalid: decodes to %d bytes, an Ed25519 key is %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

func parsePEMPublicKey(s string) (ed25519.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("device public key invalid: malformed PEM")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("device public key invalid: PEM block is %s, expected PUBLIC KEY", quoteShort(block.Type))
	}
	// A second block would leave it unclear which key the id refers to.
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("device public key invalid: unexpected data after the PEM block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errors.New("device public key invalid: PEM does not hold a valid SubjectPublicKeyInfo")
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("device public key invalid: PEM holds a %T key, expected Ed25519", key)
	}
	return pub, nil
}

// decodeBase64 accepts base64url or standard base64, padded or not. The
// alphabet is picked from the characters present; a string mixing both
// alphabets is rejected by whichever decoder is chosen.
func decodeBase64(s string) ([]byte, error) {
	if len(s) > maxEncodedLen {
		return nil, errors.New("too long")
	}
	std := strings.ContainsAny(s, "+/")
	padded := strings.HasSuffix(s, "=")
	var enc *base64.Encoding
	switch {
	case std && padded:
		enc = base64.StdEncoding
	case std:
		enc = base64.RawStdEncoding
	case padded:
		enc = base64.URLEncoding
	default:
		enc = base64.RawURLEncoding
	}
	return enc.DecodeString(s)
}

// quoteShort quotes a peer-supplied string for an error message, cut short so
// a hostile value cannot bloat the response or the log.
func quoteShort(s string) string {
	const limit = 80
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}

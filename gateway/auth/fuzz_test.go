package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/protocol"
)

// The fuzz key is fixed so that seeds, including crashers saved under
// testdata, stay valid proofs from one run to the next.
var fuzzPriv = ed25519.NewKeyFromSeed([]byte("skykoi gateway/auth fuzz seed 32"))

const (
	fuzzNonce = "2b0f3c1e-7d5a-4e8b-9c61-0f2d3a4b5c6d"
	fuzzToken = "tok"
)

var fuzzNow = time.UnixMilli(1_800_000_000_000)

func fuzzFields(scopesCSV string) protocol.SignatureFields {
	var scopes []string
	if scopesCSV != "" {
		scopes = strings.Split(scopesCSV, ",")
	}
	return protocol.SignatureFields{
		ClientID:     "cli",
		ClientMode:   "cli",
		Role:         "operator",
		Scopes:       scopes,
		Token:        fuzzToken,
		Platform:     "Linux",
		DeviceFamily: "server",
	}
}

func FuzzVerifyDevice(f *testing.F) {
	pub := fuzzPriv.Public().(ed25519.PublicKey)
	id := protocol.DeviceIDFromPublicKey(pub)
	proof := func(version, scopes string, signedAt int64) protocol.Device {
		fl := fuzzFields(scopes)
		fl.SignedAtMs, fl.Nonce = signedAt, fuzzNonce
		return protocol.NewDeviceProof(fuzzPriv, version, fl)
	}
	add := func(d protocol.Device, scopes string) {
		f.Add(d.ID, d.PublicKey, d.Signature, d.SignedAt, d.Nonce, scopes)
	}
	now := fuzzNow.UnixMilli()
	v3 := proof(protocol.SignatureV3, "operator.read,operator.write", now)
	add(v3, "operator.read,operator.write")
	add(proof(protocol.SignatureV2, "operator.admin", now-60_000), "operator.admin")
	add(proof(protocol.SignatureV3, "", now+120_000), "")
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	f.Add(id, pemKey, v3.Signature, v3.SignedAt, v3.Nonce, "operator.read,operator.write")
	f.Add(id, base64.StdEncoding.EncodeToString(pub), v3.Signature, v3.SignedAt, v3.Nonce, "operator.read,operator.write")
	// Broken ones: each fails a different check.
	f.Add(id, v3.PublicKey, v3.Signature, v3.SignedAt, "", "operator.read,operator.write")
	f.Add(id, v3.PublicKey, v3.Signature, v3.SignedAt, "other", "operator.read,operator.write")
	f.Add(id, v3.PublicKey, v3.Signature, now-121_000, v3.Nonce, "operator.read,operator.write")
	f.Add(id, v3.PublicKey, v3.Signature, int64(-1<<63), v3.Nonce, "")
	f.Add(id, "AAAA", v3.Signature, v3.SignedAt, v3.Nonce, "")
	f.Add(id, v3.PublicKey[:42], v3.Signature, v3.SignedAt, v3.Nonce, "")
	f.Add(id, "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", v3.Signature, v3.SignedAt, v3.Nonce, "")
	f.Add(strings.ToUpper(id), v3.PublicKey, v3.Signature, v3.SignedAt, v3.Nonce, "operator.read,operator.write")
	f.Add(id, v3.PublicKey, v3.Signature[:80], v3.SignedAt, v3.Nonce, "operator.read,operator.write")
	f.Add(id, v3.PublicKey, v3.Signature, v3.SignedAt, v3.Nonce, "operator.write,operator.read")
	f.Add(id, v3.PublicKey, v3.Signature+"==", v3.SignedAt, v3.Nonce, "operator.read,operator.write")

	f.Fuzz(func(t *testing.T, id, publicKey, signature string, signedAt int64, nonce, scopesCSV string) {
		d := protocol.Device{ID: id, PublicKey: publicKey, Signature: signature, SignedAt: signedAt, Nonce: nonce}
		gotID, code, err := VerifyDevice(d, fuzzFields(scopesCSV), fuzzNonce, fuzzNow)
		if err != nil {
			if code == "" || gotID != "" {
				t.Fatalf("failure with code %q and id %q: %v", code, gotID, err)
			}
			if !strings.HasPrefix(code, "DEVICE_AUTH_") {
				t.Fatalf("failure code %q is not a device code", code)
			}
			return
		}
		if code != "" || gotID != id {
			t.Fatalf("success with code %q, id %q (sent %q)", code, gotID, id)
		}
		if nonce != fuzzNonce {
			t.Fatalf("accepted nonce %q, challenge was %q", nonce, fuzzNonce)
		}
		if skew := absDiff(signedAt, fuzzNow.UnixMilli()); skew > 120_000 {
			t.Fatalf("accepted signedAt %d, %d ms from now", signedAt, skew)
		}
		if !independentlyVerifies(id, publicKey, signature, signedAt, nonce, scopesCSV) {
			t.Fatalf("accepted a proof that does not verify independently: id=%q key=%q sig=%q signedAt=%d scopes=%q",
				id, publicKey, signature, signedAt, scopesCSV)
		}
	})
}

// absDiff is |a-b|, exact for any two int64s: the fuzzer likes extremes.
func absDiff(a, b int64) uint64 {
	if a < b {
		a, b = b, a
	}
	return uint64(a) - uint64(b)
}

// independentlyVerifies re-checks an accepted proof without VerifyDevice's
// parsers or DeviceSignaturePayload: every key and signature reading the
// protocol allows is tried, and the payloads are spelled out by hand.
func independentlyVerifies(id, publicKey, signature string, signedAt int64, nonce, scopesCSV string) bool {
	ts := strconv.FormatInt(signedAt, 10)
	common := "|" + id + "|cli|cli|operator|" + scopesCSV + "|" + ts + "|" + fuzzToken + "|" + nonce
	payloads := []string{"v3" + common + "|linux|server", "v2" + common}
	for _, key := range candidateKeys(publicKey) {
		sum := sha256.Sum256(key)
		if hex.EncodeToString(sum[:]) != id {
			continue
		}
		for _, sig := range candidateBytes(signature) {
			for _, p := range payloads {
				if len(sig) == ed25519.SignatureSize && ed25519.Verify(key, []byte(p), sig) {
					return true
				}
			}
		}
	}
	return false
}

func candidateKeys(s string) []ed25519.PublicKey {
	var out []ed25519.PublicKey
	if block, _ := pem.Decode([]byte(strings.TrimSpace(s))); block != nil {
		if k, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
			if ek, ok := k.(ed25519.PublicKey); ok {
				out = append(out, ek)
			}
		}
	}
	for _, b := range candidateBytes(strings.TrimSpace(s)) {
		if len(b) == ed25519.PublicKeySize {
			out = append(out, ed25519.PublicKey(b))
		}
	}
	return out
}

func candidateBytes(s string) [][]byte {
	var out [][]byte
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// TestFuzzHarness guards the fuzz target's premise: a proof made the way the
// seeds are made is accepted and independently verifies, so the fuzzer starts
// from inputs on the success path and the property check is not vacuous.
func TestFuzzHarness(t *testing.T) {
	for _, version := range []string{protocol.SignatureV3, protocol.SignatureV2} {
		fl := fuzzFields("operator.read,operator.write")
		fl.SignedAtMs, fl.Nonce = fuzzNow.UnixMilli(), fuzzNonce
		d := protocol.NewDeviceProof(fuzzPriv, version, fl)
		if _, code, err := VerifyDevice(d, fuzzFields("operator.read,operator.write"), fuzzNonce, fuzzNow); err != nil {
			t.Fatalf("%s seed rejected: %s %v", version, code, err)
		}
		if !independentlyVerifies(d.ID, d.PublicKey, d.Signature, d.SignedAt, d.Nonce, "operator.read,operator.write") {
			t.Fatalf("%s seed does not verify independently", version)
		}
		if independentlyVerifies(d.ID, d.PublicKey, d.Signature, d.SignedAt, d.Nonce, "operator.read") {
			t.Fatalf("%s independent check accepts the wrong scopes", version)
		}
	}
}

package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/version"
)

// Defaults applied by Dial to fields left zero.
const (
	DefaultClientID     = "skykoi-cli"
	DefaultClientMode   = "cli"
	DefaultPingInterval = 30 * time.Second
	DefaultBackoffMin   = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
)

// Options configure a Client. Only URL is required.
type Options struct {
	// URL is the gateway's ws:// or wss:// address.
	URL string
	// Token and Password are the shared secret (auth.token, auth.password).
	Token    string
	Password string
	// Client describes this program; empty fields get DefaultClientID, the
	// build's version, runtime.GOOS and DefaultClientMode.
	Client protocol.Client
	// Role defaults to operator.
	Role string
	// Scopes are sent as given; none lets the gateway grant read and write.
	// SkyKoi's own clients send OwnerScopes().
	Scopes []string
	Caps   []string
	// DeviceKey, when set, proves a device identity: the v3 payload is
	// signed with the challenge's nonce.
	DeviceKey ed25519.PrivateKey
	// Header is sent with the upgrade request (Origin, for instance).
	Header http.Header
	// TLSConfig is used for wss:// URLs; nil means the system roots.
	TLSConfig *tls.Config
	// TLSFingerprintSHA256 pins the server's leaf certificate: hex of the
	// SHA-256 of its DER, colons allowed. When set, the pin replaces CA
	// chain verification (a Koi's nginx has a self-signed certificate) and
	// is always checked.
	TLSFingerprintSHA256 string
	// HandshakeTimeout bounds opening the socket plus connect; default
	// protocol.HandshakeTimeout.
	HandshakeTimeout time.Duration
	// PingInterval is how often the client pings. Default
	// DefaultPingInterval; a negative value turns keepalive off.
	PingInterval time.Duration
	// PongTimeout is how long the connection may stay silent (no frame, no
	// pong) before it is considered dead. Default twice PingInterval.
	PongTimeout time.Duration
	// Reconnect redials with jittered exponential backoff when the socket
	// drops (never after Close).
	Reconnect bool
	Backoff   Backoff
	// Logger defaults to discarding.
	Logger *slog.Logger
	// MinProtocol and MaxProtocol default to protocol.MinProtocol and
	// protocol.MaxProtocol.
	MinProtocol int
	MaxProtocol int
	// NetDialContext replaces how the TCP connection is made (nil: the
	// default dialer), e.g. to pick the local address.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// OwnerScopes are the scopes SkyKoi's own clients ask for: skykoi call,
// skykoi chat and the web page. Whoever holds the gateway token is the Koi's
// owner, and the owner must be able to reach everything, config.* and the
// session admin methods included; without admin those answer "missing
// scope" to the one person allowed to use them. The web page cannot import
// Go, so gateway/webui/static/app.js repeats this list and a test there keeps
// the two equal. A function, not a variable, so no caller can change the
// list for everyone.
func OwnerScopes() []string {
	return []string{protocol.ScopeRead, protocol.ScopeWrite, protocol.ScopeAdmin}
}

// Backoff bounds the delay between reconnect attempts. Zero fields get
// DefaultBackoffMin and DefaultBackoffMax.
type Backoff struct {
	Min time.Duration
	Max time.Duration
}

// delay is the wait before reconnect attempt n (from 0): Min doubled n
// times, capped at Max, with "equal jitter": half of it is fixed so the
// delay still grows, half is random so the clients a gateway restart drops
// all at once do not redial in lockstep.
func (b Backoff) delay(attempt int) time.Duration {
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return o, fmt.Errorf("parsing the gateway URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	default:
		return o, fmt.Errorf("gateway URL %q: scheme must be ws or wss", o.URL)
	}
	if o.TLSFingerprintSHA256 != "" && u.Scheme != "wss" {
		// A pin on a plain socket would look like protection and give none.
		return o, fmt.Errorf("a TLS fingerprint needs a wss:// URL, got %q", o.URL)
	}
	if o.DeviceKey != nil && len(o.DeviceKey) != ed25519.PrivateKeySize {
		return o, fmt.Errorf("device key: want an Ed25519 private key of %d bytes, got %d", ed25519.PrivateKeySize, len(o.DeviceKey))
	}
	if o.Client.ID == "" {
		o.Client.ID = DefaultClientID
	}
	if o.Client.Version == "" {
		o.Client.Version = version.Get().Version
	}
	if o.Client.Platform == "" {
		o.Client.Platform = runtime.GOOS
	}
	if o.Client.Mode == "" {
		o.Client.Mode = DefaultClientMode
	}
	if o.Role == "" {
		o.Role = protocol.RoleOperator
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = protocol.HandshakeTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = 2 * o.PingInterval
	}
	if o.Backoff.Min <= 0 {
		o.Backoff.Min = DefaultBackoffMin
	}
	if o.Backoff.Max <= 0 {
		o.Backoff.Max = DefaultBackoffMax
	}
	o.Backoff.Max = max(o.Backoff.Max, o.Backoff.Min)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinProtocol == 0 {
		o.MinProtocol = protocol.MinProtocol
	}
	if o.MaxProtocol == 0 {
		o.MaxProtocol = protocol.MaxProtocol
	}
	if o.MinProtocol > o.MaxProtocol {
		return o, fmt.Errorf("protocol range: min %d is above max %d", o.MinProtocol, o.MaxProtocol)
	}
	return o, nil
}

// tlsConfig is the configuration for wss:// dials, with the pin installed
// when one is given.
func (o Options) tlsConfig() (*tls.Config, error) {
	var cfg *tls.Config
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.TLSFingerprintSHA256 == "" {
		return cfg, nil
	}
	want, err := ParseFingerprint(o.TLSFingerprintSHA256)
	if err != nil {
		return nil, err
	}
	// InsecureSkipVerify only switches off the CA chain and host name check,
	// which a self-signed certificate cannot pass; VerifyConnection still
	// runs on every handshake, so the pin is the verification.
	cfg.InsecureSkipVerify = true
	userVerify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("TLS: the server presented no certificate to check the fingerprint against")
		}
		got := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return &FingerprintError{Want: FormatFingerprint(want), Got: FormatFingerprint(got[:])}
		}
		if userVerify != nil {
			return userVerify(cs)
		}
		return nil
	}
	return cfg, nil
}

// PinnedTLSConfig is a TLS configuration verified only by the pin: the
// SHA-256 of the server's leaf certificate must equal fingerprint (the
// self-signed certificate of a Koi's nginx has no chain to check). A
// mismatch fails the handshake with a *FingerprintError.
func PinnedTLSConfig(fingerprint string) (*tls.Config, error) {
	if fingerprint == "" {
		return nil, errors.New("no fingerprint to pin")
	}
	return Options{TLSFingerprintSHA256: fingerprint}.tlsConfig()
}

// FingerprintError is a TLS handshake refused because the server's
// certificate is not the pinned one.
type FingerprintError struct {
	Want, Got string
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("TLS certificate fingerprint did not match: the server presented SHA-256 %s, expected %s", e.Got, e.Want)
}

// ParseFingerprint reads a SHA-256 fingerprint written as 64 hex digits,
// optionally separated by colons (as openssl prints it).
func ParseFingerprint(s string) ([]byte, error) {
	clean := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("TLS fingerprint %q: want the SHA-256 of the certificate as 64 hex digits (colons allowed)", s)
	}
	return b, nil
}

// FormatFingerprint writes a fingerprint the way openssl prints it, so it can
// be compared by eye with `openssl x509 -noout -fingerprint -sha256`.
func FormatFingerprint(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

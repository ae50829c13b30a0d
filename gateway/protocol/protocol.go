// Package protocol holds the gateway's wire types: frames, payloads, error
// codes and the flow-control numbers. The server, the Go client and the tests
// all use it, so the wire format is defined once.
package protocol

import (
	"encoding/json"
	"time"
)

// Protocol versions this gateway speaks; connect picks the highest common one.
const (
	MinProtocol = 3
	MaxProtocol = 4
)

// SupportedProtocols lists every version in [MinProtocol, MaxProtocol].
func SupportedProtocols() []int {
	var out []int
	for v := MinProtocol; v <= MaxProtocol; v++ {
		out = append(out, v)
	}
	return out
}

// Flow control. These are part of the contract (policy in hello-ok), so they
// live here rather than in the server.
const (
	// MaxPayload bounds one inbound frame after the handshake.
	MaxPayload = 25 << 20
	// MaxPreHandshakePayload bounds inbound frames before connect succeeds:
	// an unauthenticated peer gets only enough room for a connect request.
	MaxPreHandshakePayload = 64 << 10
	// MaxBufferedBytes bounds one connection's outbound queue.
	MaxBufferedBytes = 50 << 20
	// MaxResponseBytes bounds the encoded payload of a response built from
	// stored data (chat.history, sessions.list, sessions.preview): such a
	// method leaves out or shortens parts and says so rather than exceed it.
	// It is a quarter of MaxPayload, so the frame fits every client's read
	// limit with room to spare and a few can sit in one outbound queue.
	MaxResponseBytes = MaxPayload / 4
	// TickInterval is how often the server sends tick.
	TickInterval = 30 * time.Second
	// HealthInterval is how often the server broadcasts health.
	HealthInterval = 60 * time.Second
	// HandshakeTimeout is how long a new socket has to send connect.
	HandshakeTimeout = 10 * time.Second
)

// Frame types.
const (
	TypeRequest  = "req"
	TypeResponse = "res"
	TypeEvent    = "event"
)

// Error codes.
const (
	CodeInvalidRequest = "INVALID_REQUEST"
	CodeUnavailable    = "UNAVAILABLE"
	CodeNotPaired      = "NOT_PAIRED"
	CodeAgentTimeout   = "AGENT_TIMEOUT"
	CodeForbidden      = "FORBIDDEN"
	CodeNotFound       = "NOT_FOUND"
)

// details.code values of handshake failures.
const (
	AuthTokenMissing     = "AUTH_TOKEN_MISSING"
	AuthTokenMismatch    = "AUTH_TOKEN_MISMATCH"
	AuthPasswordMissing  = "AUTH_PASSWORD_MISSING"
	AuthPasswordMismatch = "AUTH_PASSWORD_MISMATCH"
	AuthRateLimited      = "AUTH_RATE_LIMITED"
	// AuthNoneBrowser: auth mode "none" admits no connection that carries
	// a browser Origin; SkyKoi's own, not OpenClaw's.
	AuthNoneBrowser            = "AUTH_NONE_BROWSER"
	DeviceAuthNonceRequired    = "DEVICE_AUTH_NONCE_REQUIRED"
	DeviceAuthNonceMismatch    = "DEVICE_AUTH_NONCE_MISMATCH"
	DeviceAuthSignatureInvalid = "DEVICE_AUTH_SIGNATURE_INVALID"
	DeviceAuthSignatureExpired = "DEVICE_AUTH_SIGNATURE_EXPIRED"
	DeviceAuthDeviceIDMismatch = "DEVICE_AUTH_DEVICE_ID_MISMATCH"
	DeviceAuthPublicKeyInvalid = "DEVICE_AUTH_PUBLIC_KEY_INVALID"
)

// WebSocket close codes the gateway uses.
const (
	CloseNormal          = 1000
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseServiceRestart  = 1012
)

// Scopes.
const (
	ScopeRead  = "operator.read"
	ScopeWrite = "operator.write"
	ScopeAdmin = "operator.admin"
)

// Roles.
const (
	RoleOperator = "operator"
	RoleNode     = "node"
)

// Caps a client may declare.
const CapToolEvents = "tool-events"

// Request is an inbound {"type":"req"} frame.
type Request struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Response is a {"type":"res"} frame.
type Response struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	OK      bool   `json:"ok"`
	Payload any    `json:"payload,omitempty"`
	Error   *Error `json:"error,omitempty"`
}

// Event is a {"type":"event"} frame. Seq is nil only on connect.challenge.
type Event struct {
	Type         string        `json:"type"`
	Event        string        `json:"event"`
	Payload      any           `json:"payload,omitempty"`
	Seq          *uint64       `json:"seq,omitempty"`
	StateVersion *StateVersion `json:"stateVersion,omitempty"`
}

// Error is the error shape of a failed response.
type Error struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Details      any    `json:"details,omitempty"`
	Retryable    bool   `json:"retryable,omitempty"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an Error with a code and message.
func Errorf(code, message string) *Error { return &Error{Code: code, Message: message} }

// WithDetails returns e with details set.
func (e *Error) WithDetails(d any) *Error { c := *e; c.Details = d; return &c }

// StateVersion counts changes of presence and health, so clients can tell
// a stale snapshot from a fresh one.
type StateVersion struct {
	Presence uint64 `json:"presence"`
	Health   uint64 `json:"health"`
}

// Client describes the connecting program.
type Client struct {
	ID           string `json:"id"`
	DisplayName  string `json:"displayName,omitempty"`
	Version      string `json:"version"`
	Platform     string `json:"platform"`
	DeviceFamily string `json:"deviceFamily,omitempty"`
	ModelID      string `json:"modelIdentifier,omitempty"`
	Mode         string `json:"mode"`
	InstanceID   string `json:"instanceId,omitempty"`
}

// ConnectAuth carries the shared secret.
type ConnectAuth struct {
	Token    string `json:"token,omitempty"`
	Password string `json:"password,omitempty"`
}

// Device is a device identity proof.
type Device struct {
	ID        string `json:"id"`
	PublicKey string `json:"publicKey"`
	Signature string `json:"signature"`
	SignedAt  int64  `json:"signedAt"`
	Nonce     string `json:"nonce,omitempty"`
}

// ConnectParams are the params of the connect request.
type ConnectParams struct {
	MinProtocol int          `json:"minProtocol"`
	MaxProtocol int          `json:"maxProtocol"`
	Client      Client       `json:"client"`
	Role        string       `json:"role,omitempty"`
	Scopes      []string     `json:"scopes,omitempty"`
	Caps        []string     `json:"caps,omitempty"`
	Auth        *ConnectAuth `json:"auth,omitempty"`
	Device      *Device      `json:"device,omitempty"`
	Locale      string       `json:"locale,omitempty"`
	UserAgent   string       `json:"userAgent,omitempty"`
}

// Challenge is the payload of connect.challenge.
type Challenge struct {
	Nonce string `json:"nonce"`
	TS    int64  `json:"ts"`
}

// HelloOK is the payload of a successful connect.
type HelloOK struct {
	Type     string     `json:"type"`
	Protocol int        `json:"protocol"`
	Server   ServerInfo `json:"server"`
	Features Features   `json:"features"`
	Snapshot Snapshot   `json:"snapshot"`
	Auth     HelloAuth  `json:"auth"`
	Policy   Policy     `json:"policy"`
}

type ServerInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Host    string `json:"host"`
	ConnID  string `json:"connId"`
}

type Features struct {
	Methods []string `json:"methods"`
	Events  []string `json:"events"`
}

type Snapshot struct {
	Presence        []*PresenceEntry `json:"presence"`
	Health          any              `json:"health"`
	StateVersion    StateVersion     `json:"stateVersion"`
	UptimeMs        int64            `json:"uptimeMs"`
	SessionDefaults SessionDefaults  `json:"sessionDefaults"`
}

type SessionDefaults struct {
	DefaultAgentID string `json:"defaultAgentId"`
	MainKey        string `json:"mainKey"`
	MainSessionKey string `json:"mainSessionKey"`
}

type HelloAuth struct {
	Role   string   `json:"role"`
	Scopes []string `json:"scopes"`
	Method string   `json:"method"`
}

type Policy struct {
	MaxPayload       int   `json:"maxPayload"`
	MaxBufferedBytes int   `json:"maxBufferedBytes"`
	TickIntervalMs   int64 `json:"tickIntervalMs"`
	// Attachments are the decoded-size ceilings of chat attachments.
	Attachments *AttachmentPolicy `json:"attachments,omitempty"`
}

// AttachmentPolicy is hello-ok's policy.attachments: OpenClaw's maxBytes
// and maxImageBytes (per file), and SkyKoi's per-message count and total.
type AttachmentPolicy struct {
	MaxBytes      int `json:"maxBytes"`
	MaxImageBytes int `json:"maxImageBytes"`
	MaxCount      int `json:"maxCount"`
	MaxTotalBytes int `json:"maxTotalBytes"`
}

// PresenceEntry is one connected client (or the gateway itself).
type PresenceEntry struct {
	TS           int64    `json:"ts"`
	Host         string   `json:"host,omitempty"`
	IP           string   `json:"ip,omitempty"`
	Version      string   `json:"version,omitempty"`
	Platform     string   `json:"platform,omitempty"`
	DeviceFamily string   `json:"deviceFamily,omitempty"`
	Mode         string   `json:"mode,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	Text         string   `json:"text,omitempty"`
	DeviceID     string   `json:"deviceId,omitempty"`
	InstanceID   string   `json:"instanceId,omitempty"`
	Roles        []string `json:"roles,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
}

// Shutdown is the payload of the shutdown event.
type Shutdown struct {
	Reason            string `json:"reason"`
	RestartExpectedMs *int64 `json:"restartExpectedMs"`
}

// Tick is the payload of the tick event.
type Tick struct {
	TS int64 `json:"ts"`
}

// Event names.
const (
	EventConnectChallenge = "connect.challenge"
	EventTick             = "tick"
	EventPresence         = "presence"
	EventHealth           = "health"
	EventShutdown         = "shutdown"
	EventAgent            = "agent"
	EventChat             = "chat"
	EventSessionsChanged  = "sessions.changed"
)

// Session defaults of a Koi: one agent, "main".
const (
	DefaultAgentID = "main"
	MainKey        = "main"
	MainSessionKey = "agent:main:main"
)

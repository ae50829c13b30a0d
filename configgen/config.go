// Package configgen is the single source of truth for skykoi.json: its schema,
// loading (JSON5), validation, defaults, generation and JSON Schema.
package configgen

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is a validated skykoi.json with every default applied. Parse returns
// a fresh value each time; nothing in this package keeps or mutates it, and
// callers share it read-only (Clone gives a deep copy to change).
type Config struct {
	Gateway Gateway `json:"gateway"`
	Agents  Agents  `json:"agents"`
	Tools   Tools   `json:"tools"`
	Session Session `json:"session"`
	Cron    Cron    `json:"cron"`
	Models  Models  `json:"models"`
	Usage   Usage   `json:"usage"`
	Logging Logging `json:"logging"`
	MCP     MCP     `json:"mcp"`
}

// Usage is spend caps and price overrides (issue 15).
type Usage struct {
	Budget Budget   `json:"budget"`
	Prices []string `json:"prices,omitempty"`
}

// Budget caps; 0 means no cap.
type Budget struct {
	DailyTokens   int64   `json:"dailyTokens"`
	MonthlyTokens int64   `json:"monthlyTokens"`
	DailyUSD      float64 `json:"dailyUsd"`
	MonthlyUSD    float64 `json:"monthlyUsd"`
}

type Gateway struct {
	Mode           string    `json:"mode"`
	Port           int       `json:"port"`
	Bind           string    `json:"bind"`
	CustomBindHost string    `json:"customBindHost,omitempty"`
	Auth           Auth      `json:"auth"`
	TrustedProxies []string  `json:"trustedProxies"`
	ControlUI      ControlUI `json:"controlUi"`
	Reload         Reload    `json:"reload"`
	Idle           Idle      `json:"idle"`
}

// ListenAddr is the address the gateway listens on for gateway.bind and
// gateway.port: one answer for the daemon, `local` (which binds before it
// writes anything) and doctor.
func (g Gateway) ListenAddr() string {
	host := "127.0.0.1"
	switch g.Bind {
	case "lan":
		host = "0.0.0.0"
	case "custom":
		host = g.CustomBindHost
	}
	return net.JoinHostPort(host, strconv.Itoa(g.Port))
}

type Auth struct {
	Mode           string    `json:"mode"`
	Token          string    `json:"token,omitempty"`
	TokenSha256    string    `json:"tokenSha256,omitempty"`
	Password       string    `json:"password,omitempty"`
	PasswordSha256 string    `json:"passwordSha256,omitempty"`
	RateLimit      RateLimit `json:"rateLimit"`
}

type RateLimit struct {
	MaxAttempts int `json:"maxAttempts"`
	WindowMs    int `json:"windowMs"`
	LockoutMs   int `json:"lockoutMs"`
}

type ControlUI struct {
	Enabled        bool     `json:"enabled"`
	AllowedOrigins []string `json:"allowedOrigins"`
}

type Reload struct {
	Mode string `json:"mode"`
}

type Idle struct {
	StopAfterMinutes int `json:"stopAfterMinutes"`
	WakeLeadMinutes  int `json:"wakeLeadMinutes"`
}

type Agents struct {
	Defaults AgentDefaults `json:"defaults"`
}

type AgentDefaults struct {
	Workspace      string    `json:"workspace"`
	Model          Model     `json:"model"`
	MaxTokens      int       `json:"maxTokens"`
	ContextTokens  int       `json:"contextTokens"`
	TimeoutSeconds int       `json:"timeoutSeconds"`
	Thinking       string    `json:"thinking"`
	Heartbeat      Heartbeat `json:"heartbeat"`
}

// Heartbeat is agents.defaults.heartbeat (issue 12).
type Heartbeat struct {
	Every       string      `json:"every"`
	ActiveHours ActiveHours `json:"activeHours"`
	Prompt      string      `json:"prompt,omitempty"`
}

type ActiveHours struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	Timezone string `json:"timezone,omitempty"`
}

// Cron is the cron block (issue 12).
type Cron struct {
	Enabled bool `json:"enabled"`
}

type Model struct {
	Primary   string   `json:"primary"`
	Fallbacks []string `json:"fallbacks"`
}

type Tools struct {
	Exec  Exec     `json:"exec"`
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
	Web   Web      `json:"web"`
}

// Web is tools.web: web_fetch, web_search and the addresses web_fetch may
// reach although they are internal.
type Web struct {
	AllowPrivate []string  `json:"allowPrivate"`
	Fetch        WebFetch  `json:"fetch"`
	Search       WebSearch `json:"search"`
}

type WebFetch struct {
	Enabled          bool `json:"enabled"`
	MaxChars         int  `json:"maxChars"`
	MaxCharsCap      int  `json:"maxCharsCap"`
	MaxResponseBytes int  `json:"maxResponseBytes"`
	TimeoutSeconds   int  `json:"timeoutSeconds"`
	MaxRedirects     int  `json:"maxRedirects"`
	Readability      bool `json:"readability"`
}

type WebSearch struct {
	Enabled        bool   `json:"enabled"`
	Provider       string `json:"provider"`
	APIKeyFile     string `json:"apiKeyFile,omitempty"`
	BaseURL        string `json:"baseUrl"`
	MaxResults     int    `json:"maxResults"`
	TimeoutSeconds int    `json:"timeoutSeconds"`
}

// MCP is mcp.*: the MCP tool servers.
type MCP struct {
	Servers map[string]MCPServer `json:"servers,omitempty"`
}

// MCPServer is one mcp.servers entry. Exactly one of Command and URL is set.
type MCPServer struct {
	Enabled             bool                 `json:"enabled"`
	Transport           string               `json:"transport,omitempty"`
	Command             string               `json:"command,omitempty"`
	Args                []string             `json:"args,omitempty"`
	Env                 map[string]string    `json:"env,omitempty"`
	Cwd                 string               `json:"cwd,omitempty"`
	URL                 string               `json:"url,omitempty"`
	Headers             map[string]HeaderRef `json:"headers,omitempty"`
	RequestTimeoutMs    int                  `json:"requestTimeoutMs"`
	ConnectionTimeoutMs int                  `json:"connectionTimeoutMs"`
}

// IsStdio reports whether the server is a program started by the gateway.
func (s MCPServer) IsStdio() bool { return s.Command != "" }

// HeaderRef says where a header's value comes from: the environment or a
// file, so no credential sits in the config.
type HeaderRef struct {
	Env    string `json:"env,omitempty"`
	File   string `json:"file,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

type Exec struct {
	Security   string   `json:"security"`
	Host       string   `json:"host"`
	Allowlist  []string `json:"allowlist"`
	TimeoutSec int      `json:"timeoutSec"`
}

type Session struct {
	DMScope string `json:"dmScope"`
	Reset   Reset  `json:"reset"`
}

type Reset struct {
	Mode        string `json:"mode"`
	AtHour      int    `json:"atHour"`
	IdleMinutes int    `json:"idleMinutes,omitempty"`
}

type Models struct {
	Providers Providers `json:"providers"`
}

type Providers struct {
	AmazonBedrock BedrockProvider `json:"amazon-bedrock"`
}

type BedrockProvider struct {
	Region   string `json:"region,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
}

type Logging struct {
	Level string `json:"level"`
}

// Environment variables that stand in for a secret in the file.
const (
	EnvToken    = "SKYKOI_GATEWAY_TOKEN"
	EnvPassword = "SKYKOI_GATEWAY_PASSWORD"
	EnvConfig   = "SKYKOI_CONFIG_PATH"
	EnvStateDir = "SKYKOI_STATE_DIR"
	// EnvClientToken is the token the skykoi CLI (chat, call, bench)
	// presents to a gateway; a gateway started from such a shell has it too.
	EnvClientToken = "SKYKOI_TOKEN"
	// EnvBraveAPIKey is the Brave Search API key web_search uses (the name
	// OpenClaw and Brave's docs use).
	EnvBraveAPIKey = "BRAVE_API_KEY"
)

// SecretEnvNames are the environment variables that hold a credential for
// the gateway itself: the one list of what the gateway keeps from every
// process its tools start, so that a command the model runs cannot read the
// token and connect to the gateway as an operator, nor spend the Brave
// Search key outside web_search.
//
// AWS credentials are deliberately not here: the agent may use the AWS CLI
// under the Koi's role, and any process on the instance can fetch that
// role's credentials from the instance metadata service anyway, so hiding
// AWS_* would break legitimate use and protect nothing. SKYKOI_CONFIG_PATH
// and SKYKOI_STATE_DIR are locations, not secrets, and let a skykoi command
// the agent runs find the gateway's files.
func SecretEnvNames() []string {
	return []string{EnvToken, EnvPassword, EnvClientToken, EnvBraveAPIKey}
}

// Clone returns a deep copy.
func (c Config) Clone() Config {
	cp := func(s []string) []string { return append([]string{}, s...) }
	c.Gateway.TrustedProxies = cp(c.Gateway.TrustedProxies)
	c.Gateway.ControlUI.AllowedOrigins = cp(c.Gateway.ControlUI.AllowedOrigins)
	c.Agents.Defaults.Model.Fallbacks = cp(c.Agents.Defaults.Model.Fallbacks)
	c.Tools.Allow = cp(c.Tools.Allow)
	c.Tools.Deny = cp(c.Tools.Deny)
	c.Tools.Exec.Allowlist = cp(c.Tools.Exec.Allowlist)
	c.Tools.Web.AllowPrivate = cp(c.Tools.Web.AllowPrivate)

	c.MCP.Servers = cloneServers(c.MCP.Servers)
	return c
}

func cloneServers(in map[string]MCPServer) map[string]MCPServer {
	if in == nil {
		return nil
	}
	out := make(map[string]MCPServer, len(in))
	for name, srv := range in {
		if srv.Args != nil {
			srv.Args = append([]string{}, srv.Args...)
		}
		if srv.Env != nil {
			env := make(map[string]string, len(srv.Env))
			for k, v := range srv.Env {
				env[k] = v
			}
			srv.Env = env
		}
		if srv.Headers != nil {
			hs := make(map[string]HeaderRef, len(srv.Headers))
			for k, v := range srv.Headers {
				hs[k] = v
			}
			srv.Headers = hs
		}
		out[name] = srv
	}
	return out
}

// ModelRefs returns the primary model and then the fallbacks, in order.
func (c Config) ModelRefs() []string {
	return append([]string{c.Agents.Defaults.Model.Primary}, c.Agents.Defaults.Model.Fallbacks...)
}

// SplitModelRef splits "amazon-bedrock/<modelId>" into provider and model id.
func SplitModelRef(ref string) (provider, modelID string) {
	provider, modelID, _ = strings.Cut(ref, "/")
	return provider, modelID
}

// Secret is the digest of the shared secret clients must present, resolved
// from the file or the environment. The plaintext is never kept.
type Secret struct {
	Mode   string // "token", "password" or "none"
	digest [sha256.Size]byte
}

// ResolveSecret returns the digest clients' secrets are checked against. getenv
// is os.Getenv outside tests.
func (c Config) ResolveSecret(getenv func(string) string) Secret {
	a := c.Gateway.Auth
	s := Secret{Mode: a.Mode}
	var plain, hexDigest string
	switch a.Mode {
	case "token":
		plain, hexDigest = firstNonEmpty(a.Token, getenv(EnvToken)), a.TokenSha256
	case "password":
		plain, hexDigest = firstNonEmpty(a.Password, getenv(EnvPassword)), a.PasswordSha256
	default:
		return s
	}
	if hexDigest != "" {
		// Validation guarantees 64 hex characters.
		_, _ = hex.Decode(s.digest[:], []byte(hexDigest))
	} else {
		s.digest = sha256.Sum256([]byte(plain))
	}
	return s
}

// Match reports whether presented is the secret, comparing digests in
// constant time so the comparison leaks nothing about the secret's bytes.
func (s Secret) Match(presented string) bool {
	if s.Mode == "none" {
		return true
	}
	d := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(d[:], s.digest[:]) == 1
}

// HashSecret returns the lowercase hex SHA-256 of a token or password, the
// form the provisioner writes into tokenSha256.
func HashSecret(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(d[:])
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// DefaultPath is where the config lives: --config wins, then
// SKYKOI_CONFIG_PATH, then ~/.skykoi/skykoi.json.
func DefaultPath(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p := getenv(EnvConfig); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".skykoi", "skykoi.json"), nil
}

// StateDir is SKYKOI_STATE_DIR, else the config file's directory.
func StateDir(configPath string, getenv func(string) string) string {
	if d := getenv(EnvStateDir); d != "" {
		return d
	}
	return filepath.Dir(configPath)
}

// ExpandHome turns a leading "~/" into the user's home directory.
func ExpandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

package session

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/skykoi/skykoi/gateway/protocol"
)

const (
	// AgentID is the only agent a Koi has.
	AgentID = protocol.DefaultAgentID
	// MainKey is the session every direct chat lands in by default.
	MainKey = protocol.MainSessionKey

	keyPrefix = "agent:" + AgentID + ":"
	// maxKeyLen bounds keys in bytes: they are stored in the index and echoed
	// in every event, so a client must not be able to make them huge.
	maxKeyLen = 256
)

// NormalizeKey returns the canonical form of a session key:
//
//	""                → "agent:main:main"
//	"x" (short key)   → "agent:main:x"
//	"agent:main:..."  → kept (the "agent:main:" prefix is matched case-insensitively)
//	"agent:other:..." → ErrUnknownAgent
//
// Keys are opaque names, never paths (transcripts are named by sessionId), but
// they are still refused when they hold control characters, "/", "\" or "..",
// are not UTF-8, have an empty ":"-separated segment, or exceed 256 bytes,
// so that no consumer is tempted into treating one as a path or a log line.
func NormalizeKey(k string) (string, error) {
	k = strings.TrimSpace(k)
	if k == "" {
		return MainKey, nil
	}
	full := keyPrefix + k
	if len(k) >= len("agent:") && strings.EqualFold(k[:len("agent:")], "agent:") {
		agent, rest, ok := strings.Cut(k[len("agent:"):], ":")
		if !ok || agent == "" || rest == "" {
			return "", fmt.Errorf("%w %q: want agent:main:<name> or a short name", ErrInvalidKey, k)
		}
		if !strings.EqualFold(agent, AgentID) {
			return "", fmt.Errorf("%w %q in session key %q (this Koi has one agent, %q)", ErrUnknownAgent, agent, k, AgentID)
		}
		full = keyPrefix + rest
	}
	if err := checkKey(full); err != nil {
		return "", err
	}
	return full, nil
}

func checkKey(full string) error {
	if len(full) > maxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, maxKeyLen)
	}
	if !utf8.ValidString(full) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	}
	for _, r := range full {
		switch {
		case unicode.IsControl(r):
			return fmt.Errorf("%w %q: control character", ErrInvalidKey, full)
		case r == '/' || r == '\\':
			return fmt.Errorf("%w %q: %q is not allowed", ErrInvalidKey, full, r)
		}
	}
	if strings.Contains(full, "..") {
		return fmt.Errorf("%w %q: \"..\" is not allowed", ErrInvalidKey, full)
	}
	for _, seg := range strings.Split(full, ":") {
		if strings.TrimSpace(seg) == "" {
			return fmt.Errorf("%w %q: empty segment", ErrInvalidKey, full)
		}
	}
	return nil
}

// KeyKind classifies a normalized key for sessions.list's "kind": group and
// channel conversations ("...:group:..." / "...:channel:...") are "group",
// everything else is "direct".
func KeyKind(key string) string {
	if strings.Contains(key, ":group:") || strings.Contains(key, ":channel:") {
		return "group"
	}
	return "direct"
}

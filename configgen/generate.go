package configgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Options are the choices a provisioner makes for one Koi's config.
type Options struct {
	// TokenSha256 is the lowercase hex SHA-256 of the gateway token. The
	// plaintext token never enters the file.
	TokenSha256 string
	// Port defaults to 18789.
	Port int
	// Workspace defaults to /home/ubuntu/koi.
	Workspace string
	// Model defaults to DefaultModel; Fallbacks are tried in order.
	Model     string
	Fallbacks []string
	// TrustedProxies defaults to ["127.0.0.1"]: nginx on the same box.
	TrustedProxies []string
	// AllowedOrigins are extra browser origins (the web frontend's).
	AllowedOrigins []string
	// ExecSecurity defaults to "full": the Koi is the person's own machine.
	ExecSecurity string
	// ExecAllowlist names the commands allowed with ExecSecurity "allowlist".
	ExecAllowlist []string
	// ResetMode defaults to "daily"; ResetAtHour to 4; ResetIdleMinutes 0 = unset.
	ResetMode        string
	ResetAtHour      *int
	ResetIdleMinutes int
	// IdleStopMinutes > 0 lets the Koi stop its own instance when unused.
	IdleStopMinutes int
	// Region and Endpoint configure the Bedrock client; empty leaves them out.
	Region   string
	Endpoint string
	// LogLevel defaults to "info".
	LogLevel string
}

// KoiWorkspace is where a Koi's agent works.
const KoiWorkspace = "/home/ubuntu/koi"

func (o Options) withDefaults() Options {
	if o.Port == 0 {
		o.Port = 18789
	}
	if o.Workspace == "" {
		o.Workspace = KoiWorkspace
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if o.TrustedProxies == nil {
		o.TrustedProxies = []string{"127.0.0.1"}
	}
	if o.ExecSecurity == "" {
		o.ExecSecurity = "full"
	}
	if o.ResetMode == "" {
		o.ResetMode = "daily"
	}
	if o.ResetAtHour == nil {
		h := 4
		o.ResetAtHour = &h
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	return o
}

// Generate writes a Koi's config: plain JSON (which is JSON5), keys in schema
// order, two-space indent and a trailing newline, so the same options always
// give the same bytes. It validates its own output and never returns an
// invalid file.
func Generate(o Options) ([]byte, error) {
	o = o.withDefaults()
	strs := func(s []string) []any {
		out := make([]any, len(s))
		for i, e := range s {
			out[i] = e
		}
		return out
	}
	reset := map[string]any{"mode": o.ResetMode, "atHour": *o.ResetAtHour}
	if o.ResetIdleMinutes != 0 {
		reset["idleMinutes"] = o.ResetIdleMinutes
	}
	bedrock := map[string]any{}
	if o.Region != "" {
		bedrock["region"] = o.Region
	}
	if o.Endpoint != "" {
		bedrock["endpoint"] = o.Endpoint
	}
	tree := map[string]any{
		"gateway": map[string]any{
			"mode":           "local",
			"port":           o.Port,
			"bind":           "loopback",
			"auth":           map[string]any{"mode": "token", "tokenSha256": o.TokenSha256},
			"trustedProxies": strs(o.TrustedProxies),
			"controlUi":      map[string]any{"enabled": true, "allowedOrigins": strs(o.AllowedOrigins)},
			"idle":           map[string]any{"stopAfterMinutes": o.IdleStopMinutes},
		},
		"agents": map[string]any{"defaults": map[string]any{
			"workspace": o.Workspace,
			"model":     map[string]any{"primary": o.Model, "fallbacks": strs(o.Fallbacks)},
		}},
		"tools":   map[string]any{"exec": execTree(o)},
		"session": map[string]any{"reset": reset},
		"logging": map[string]any{"level": o.LogLevel},
	}
	if len(bedrock) > 0 {
		tree["models"] = map[string]any{"providers": map[string]any{Provider: bedrock}}
	}
	out, err := Marshal(tree)
	if err != nil {
		return nil, err
	}
	// Validate against an empty environment: the file must stand on its own.
	if _, err := ParseEnv(out, func(string) string { return "" }); err != nil {
		return nil, fmt.Errorf("generated config is invalid: %w", err)
	}
	return out, nil
}

func execTree(o Options) map[string]any {
	t := map[string]any{"security": o.ExecSecurity, "host": "gateway"}
	if len(o.ExecAllowlist) > 0 {
		list := make([]any, len(o.ExecAllowlist))
		for i, e := range o.ExecAllowlist {
			list[i] = e
		}
		t["allowlist"] = list
	}
	return t
}

// Marshal writes a config tree as indented JSON with keys in schema order
// (keys the schema does not know go last, sorted), ending in a newline.
func Marshal(tree map[string]any) ([]byte, error) {
	var b bytes.Buffer
	if err := writeOrdered(&b, root, tree, ""); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func writeOrdered(b *bytes.Buffer, n *node, v any, indent string) error {
	m, ok := v.(map[string]any)
	if !ok {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding config value: %w", err)
		}
		if len(raw) > 2 && raw[0] == '[' {
			// Lists are short: keep each on one line, as a person would write them.
			var l []any
			_ = json.Unmarshal(raw, &l)
			var lb bytes.Buffer
			lb.WriteByte('[')
			for i, e := range l {
				if i > 0 {
					lb.WriteString(", ")
				}
				r, _ := json.Marshal(e)
				lb.Write(r)
			}
			lb.WriteByte(']')
			raw = lb.Bytes()
		}
		b.Write(raw)
		return nil
	}
	if len(m) == 0 {
		b.WriteString("{}")
		return nil
	}
	var keys []string
	seen := map[string]bool{}
	if n != nil {
		for _, f := range n.fields {
			if _, ok := m[f.key]; ok {
				keys = append(keys, f.key)
				seen[f.key] = true
			}
		}
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	b.WriteString("{\n")
	for i, k := range keys {
		kb, _ := json.Marshal(k)
		b.WriteString(indent + "  ")
		b.Write(kb)
		b.WriteString(": ")
		var child *node
		if n != nil {
			child = n.child(k)
		}
		if err := writeOrdered(b, child, m[k], indent+"  "); err != nil {
			return err
		}
		if i < len(keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(indent + "}")
	return nil
}

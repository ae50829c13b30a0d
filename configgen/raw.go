package configgen

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/titanous/json5"
)

// Redacted replaces secrets in what config.get shows.
const Redacted = "__REDACTED__"

// SecretPaths lists the keys whose values are secrets (or digests of them),
// read off the schema so a new secret key cannot be forgotten here.
func SecretPaths() []string {
	var out []string
	walk(root, "", func(p string, n *node) {
		if n.format == fmtSecret || n.format == fmtSHA256 {
			out = append(out, p)
		}
	})
	return out
}

// DecodeRaw reads a JSON5 document as plain JSON values (numbers as
// json.Number) without validating it against the schema.
func DecodeRaw(data []byte) (map[string]any, error) {
	doc, iss := decode(data)
	if iss != nil {
		return nil, &Error{Issues: []Issue{*iss}}
	}
	m, ok := toJSON(doc).(map[string]any)
	if !ok {
		return nil, &Error{Issues: []Issue{{Message: "must be an object"}}}
	}
	return m, nil
}

func toJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = toJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = toJSON(e)
		}
		return out
	case json5.Number:
		if i, ok := asInt(v); ok {
			return json.Number(fmt.Sprint(i))
		}
		return json.Number(string(v))
	case float64: // Infinity, NaN: JSON cannot carry them
		return fmt.Sprint(v)
	}
	return v
}

// Get returns the value at a dotted schema path in a raw tree.
func Get(tree map[string]any, path string) (any, bool) {
	parts := splitPath(path)
	var cur any = tree
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Set stores v at a dotted schema path, creating objects on the way.
func Set(tree map[string]any, path string, v any) {
	parts := splitPath(path)
	m := tree
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// Delete removes the key at a dotted path, if it is there.
func Delete(tree map[string]any, path string) {
	parts := splitPath(path)
	m := tree
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, parts[len(parts)-1])
}

// splitPath splits on dots, except inside schema keys that contain one
// (none today; amazon-bedrock has a dash, not a dot).
func splitPath(path string) []string { return strings.Split(path, ".") }

// Redact returns a copy of tree with every secret replaced by Redacted.
func Redact(tree map[string]any) map[string]any {
	out := toJSON(tree).(map[string]any) // deep copy
	for _, p := range SecretPaths() {
		if _, ok := Get(out, p); ok {
			Set(out, p, Redacted)
		}
	}
	return out
}

package configgen

import (
	"encoding/json"
	"regexp"
	"strings"
)

// SchemaID is the $id of the JSON Schema, so editors can cache it.
const SchemaID = "https://skykoi.dev/schema/skykoi.json"

// Schema returns the JSON Schema (draft 2020-12) of skykoi.json, rendered from
// the same tree the validator walks. Rules across keys that JSON Schema can
// state are included; the validator remains the authority.
func Schema() map[string]any {
	s := schemaFor(root, "")
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = SchemaID
	s["title"] = "skykoi.json"
	s["required"] = []string{"gateway"}
	if props, ok := s["properties"].(map[string]any); ok {
		// Any value is accepted for $schema; it is only a hint for editors.
		props["$schema"] = map[string]any{"description": "ignored; lets editors find the JSON Schema"}
		reset := props["session"].(map[string]any)["properties"].(map[string]any)["reset"].(map[string]any)
		reset["if"] = map[string]any{"properties": map[string]any{"mode": map[string]any{"const": "idle"}}, "required": []string{"mode"}}
		reset["then"] = map[string]any{"required": []string{"idleMinutes"}}
		gw := props["gateway"].(map[string]any)
		gw["allOf"] = []any{
			map[string]any{
				"if":   map[string]any{"properties": map[string]any{"bind": map[string]any{"const": "custom"}}, "required": []string{"bind"}},
				"then": map[string]any{"required": []string{"customBindHost"}},
				"else": map[string]any{"not": map[string]any{"required": []string{"customBindHost"}}},
			},
		}
	}
	return s
}

// SchemaJSON is Schema as indented JSON with a trailing newline.
func SchemaJSON() []byte {
	b, err := json.MarshalIndent(Schema(), "", "  ")
	if err != nil {
		panic("configgen: schema does not encode: " + err.Error())
	}
	return append(b, '\n')
}

var formatPatterns = map[format]string{
	fmtSHA256:   `^[0-9a-f]{64}$`,
	fmtPath:     `^(/|~/|~$)`,
	fmtModelRef: `^` + Provider + `/[A-Za-z0-9._:/-]+$`,
	fmtRegion:   regionRe.String(),
	fmtCommand:  `^(/[^\s]*|[^/\s]+)$`,
	fmtOrigin:   `^https?://[^/?#\s]+$`,
	fmtPrice:    `^\S+( [a-zA-Z]+=\S+)+$`,
}

func schemaFor(n *node, path string) map[string]any {
	s := map[string]any{}
	if n.doc != "" {
		s["description"] = stripTicks(n.doc)
	}
	if n.def != nil {
		s["default"] = n.def
	}
	switch n.kind {
	case kindObject:
		s["type"] = "object"
		s["additionalProperties"] = false
		props := map[string]any{}
		var req []string
		for _, f := range n.fields {
			if f.ignored {
				props[f.key] = map[string]any{"type": "string", "description": stripTicks(f.doc)}
				continue
			}
			props[f.key] = schemaFor(f, join(path, f.key))
			if f.required {
				req = append(req, f.key)
			}
		}
		s["properties"] = props
		if len(req) > 0 {
			s["required"] = req
		}
	case kindString:
		s["type"] = "string"
		addFormat(s, n.format)
	case kindEnum:
		s["type"] = "string"
		s["enum"] = n.enum
	case kindBool:
		s["type"] = "boolean"
	case kindInt:
		s["type"] = "integer"
		if n.min != nil {
			s["minimum"] = *n.min
		}
		if n.max != nil {
			s["maximum"] = *n.max
		}
	case kindNumber:
		s["type"] = "number"
		s["minimum"] = n.fmin
		s["maximum"] = n.fmax
	case kindStrings:
		s["type"] = "array"
		item := map[string]any{"type": "string"}
		addFormat(item, n.format)
		s["items"] = item
	case kindMap:
		s["type"] = "object"
		s["maxProperties"] = maxMapKeys
		if p, ok := keyPatterns[n.keyFormat]; ok {
			s["propertyNames"] = map[string]any{"pattern": p}
		}
		s["additionalProperties"] = schemaFor(n.elem, path)
	}
	return s
}

var keyPatterns = map[format]string{
	fmtServerName: serverNameRe.String(),
	fmtEnvName:    envNameRe.String(),
	fmtHeaderName: headerNameRe.String(),
}

func addFormat(s map[string]any, f format) {
	switch f {
	case fmtIP:
		s["anyOf"] = []any{map[string]any{"format": "ipv4"}, map[string]any{"format": "ipv6"}}
	case fmtURL:
		s["format"] = "uri"
		s["pattern"] = `^https?://`
	case fmtSecret:
		s["minLength"] = minSecretLen
	case fmtToolName:
		// One pattern rather than anyOf of an enum and a pattern: editors
		// then name the valid shapes in a single message.
		quoted := make([]string, len(toolNames))
		for i, t := range toolNames {
			quoted[i] = regexp.QuoteMeta(t)
		}
		s["pattern"] = `^(` + strings.Join(quoted, "|") + `|[A-Za-z][A-Za-z0-9_-]*__([A-Za-z0-9_-]+|\*))$`
	case fmtIPOrCIDR:
		s["description"] = "IP address or CIDR"
	}
	if p, ok := formatPatterns[f]; ok {
		s["pattern"] = p
	}
}

func stripTicks(s string) string { return strings.ReplaceAll(s, "`", "") }

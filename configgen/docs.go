package configgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Rows lists the documented keys in schema order: every leaf, and objects
// marked row (rateLimit, model) as one entry each.
func Rows() []string {
	var out []string
	walkRows(func(p string, _ *node) { out = append(out, p) })
	return out
}

func walkRows(fn func(path string, n *node)) {
	var rec func(n *node, prefix string)
	rec = func(n *node, prefix string) {
		for _, f := range n.fields {
			p := join(prefix, f.key)
			if f.kind == kindObject && !f.row {
				rec(f, p)
				continue
			}
			fn(p, f)
			if f.kind == kindMap && f.elem.kind == kindObject && !f.row {
				rec(f.elem, p+".<name>")
			}
		}
	}
	rec(root, "")
}

// Markdown renders docs/config.md: the key table and the validation rules.
func Markdown() []byte {
	var b bytes.Buffer
	b.WriteString("<!-- Generated from configgen's schema by `go test ./configgen -update`. Do not edit. -->\n")
	b.WriteString("# skykoi.json reference\n\n")
	b.WriteString("The gateway's config file is JSON5 (comments, trailing commas, unquoted keys and single\n")
	b.WriteString("quotes are fine). It lives at `~/.skykoi/skykoi.json` (`/home/ubuntu/.skykoi/skykoi.json`\n")
	b.WriteString("on a Koi); `--config` or `SKYKOI_CONFIG_PATH` override that. `skykoi config schema` prints\n")
	b.WriteString("the JSON Schema and `skykoi config validate` checks a file with the gateway's own validator.\n\n")
	b.WriteString("| key | type / values | default | notes |\n|---|---|---|---|\n")
	walkRows(func(p string, n *node) {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p, typeDoc(n), defaultDoc(n), n.doc)
	})
	b.WriteString(`
## Rules across keys

- ` + "`gateway.customBindHost`" + ` is required with ` + "`bind:\"custom\"`" + ` and forbidden otherwise.
- ` + "`gateway.auth.mode:\"none\"`" + ` is allowed only with ` + "`bind:\"loopback\"`" + `.
- Token mode needs exactly one of ` + "`token`, `tokenSha256`" + ` and the ` + "`" + EnvToken + "`" + ` environment
  variable; password mode exactly one of ` + "`password`, `passwordSha256`" + ` and ` + "`" + EnvPassword + "`" + `.
  A secret for the other mode is an error.
- ` + "`session.reset.idleMinutes`" + ` is required with ` + "`session.reset.mode:\"idle\"`" + `.
` + execSecurityDoc() + `
## Keys a Koi's provisioner owns

When a replaced instance finds a config on its data volume, it keeps that file and takes
only these keys from the newly provisioned one (` + "`skykoi config merge`" + `); a key the new
config leaves out is removed:

` + provisionedList() + `
## Errors

Every problem is reported at once, one per line as ` + "`path: message`" + `, sorted by path; syntax
errors give ` + "`line L, column C`" + `. Unknown keys are errors with a suggestion. The gateway refuses
to start on any problem and exits with status 78; a failed reload or ` + "`config.set`" + ` keeps the
running config and writes nothing.
`)
	return b.Bytes()
}

func typeDoc(n *node) string {
	switch n.kind {
	case kindEnum:
		q := make([]string, len(n.enum))
		for i, e := range n.enum {
			q[i] = "`\"" + e + "\"`"
		}
		return strings.Join(q, " \\| ")
	case kindInt:
		switch {
		case n.min != nil && n.max != nil:
			return fmt.Sprintf("int %d–%d", *n.min, *n.max)
		case n.min != nil:
			return fmt.Sprintf("int ≥ %d", *n.min)
		}
		return "int"
	case kindBool:
		return "bool"
	case kindNumber:
		return fmt.Sprintf("number %g–%g", n.fmin, n.fmax)
	case kindString:
		return formatDoc(n.format, "string")
	case kindStrings:
		return formatDoc(n.format, "strings") + " (list)"
	case kindMap:
		if n.elem.kind == kindObject && !n.row {
			return "object (" + keyFormatDoc(n.keyFormat) + ", keys below)"
		}
		return "object (" + keyFormatDoc(n.keyFormat) + ")"
	case kindObject:
		parts := make([]string, len(n.fields))
		for i, f := range n.fields {
			parts[i] = f.key + ":" + strings.ReplaceAll(typeDoc(f), " ", "")
		}
		return "`{" + strings.ReplaceAll(strings.Join(parts, ", "), "`", "") + "}`"
	}
	return ""
}

func formatDoc(f format, plain string) string {
	switch f {
	case fmtIP:
		return "IP address"
	case fmtIPOrCIDR:
		return "IP or CIDR"
	case fmtOrigin:
		return "origin (`https://host[:port]`)"
	case fmtSHA256:
		return "64 lowercase hex"
	case fmtSecret:
		return fmt.Sprintf("string ≥ %d chars", minSecretLen)
	case fmtPath:
		return "absolute path (or `~/…`)"
	case fmtModelRef:
		return "`provider/modelId`"
	case fmtRegion:
		return "AWS region"
	case fmtURL:
		return "URL"
	case fmtToolName:
		return "tool name (" + strings.Join(toolNames, ", ") + ", or `<server>__<tool>`, `<server>__*`)"
	case fmtCommand:
		return "binary name or absolute path"
	case fmtEnvName:
		return "variable name"

	case fmtDuration:
		return "duration (`30m`, `1h`, `1d`)"
	case fmtClock:
		return "time of day `HH:MM`"
	case fmtTimeZone:
		return "IANA time zone"

	case fmtPrice:
		return "model price"
	}
	return plain
}

func defaultDoc(n *node) string {
	if n.defDoc != "" {
		return n.defDoc
	}
	if n.required {
		return "required"
	}
	if n.kind == kindObject {
		parts := make([]string, 0, len(n.fields))
		for _, f := range n.fields {
			if f.def != nil {
				raw, _ := json.Marshal(f.def)
				parts = append(parts, f.key+":"+string(raw))
			}
		}
		return "`{" + strings.Join(parts, ", ") + "}`"
	}
	if n.def == nil {
		return "—"
	}
	raw, _ := json.Marshal(n.def)
	return "`" + string(raw) + "`"
}

func provisionedList() string {
	var b strings.Builder
	for _, p := range ProvisionedPaths {
		fmt.Fprintf(&b, "- `%s`\n", p)
	}
	return b.String()
}

package configgen

// The tree below is the one definition of skykoi.json. The validator walks it,
// the JSON Schema and docs/config.md are rendered from it, and the generator
// orders its output by it, so none of them can drift from the others.

// kind is the JSON type a node accepts.
type kind int

const (
	kindObject kind = iota
	kindString
	kindInt
	kindBool
	kindEnum
	kindStrings // array of strings, each checked by the node's format
	// kindMap is an object whose keys the person chooses (mcp.servers,
	// env, headers): each key is checked by keyFormat, each value by elem.
	kindMap

	kindNumber // a decimal number from fmin to fmax (amounts of money)
)

// format names an extra check on a string (or on each string of a list).
type format int

const (
	fmtNone format = iota
	fmtIP
	fmtIPOrCIDR
	fmtOrigin
	fmtSHA256
	fmtSecret // at least minSecretLen characters
	fmtPath   // absolute or ~/…
	fmtModelRef
	fmtRegion
	fmtURL
	fmtToolName
	fmtCommand // binary name or absolute path
	fmtServerName
	fmtEnvName
	fmtHeaderName
	fmtDuration // "30m", "1h30m", "1d" (ParseDuration)
	fmtClock    // "HH:MM", 00:00 to 24:00
	fmtTimeZone // IANA zone name

	fmtPrice // a model's prices, see ParsePrice
)

// minSecretLen is the shortest token or password the gateway accepts: 32
// characters keeps a random token at 128 bits or more even in hex.
const minSecretLen = 32

// node is one key of the config file.
type node struct {
	key    string
	kind   kind
	doc    string
	def    any // default as it appears in JSON; nil means none
	defDoc string
	enum   []string
	// unsupported are OpenClaw values of an enum that SkyKoi recognises and
	// refuses with unsupportedWhy, so a carried-over config gets a reason
	// and a way out instead of a bare "must be".
	unsupported    []string
	unsupportedWhy string
	min            *int64
	max            *int64
	// fmin and fmax bound a kindNumber.
	fmin, fmax float64
	format     format
	fields     []*node
	// row marks an object documented as one row of the config table (its
	// children are listed in the type column rather than as rows of their own).
	row bool
	// ignored keys are accepted with any value and never reach Config.
	ignored bool
	// required keys must be present.
	required bool
	// elem and keyFormat describe a kindMap's values and keys.
	elem      *node
	keyFormat format
	// notObject, when set, is the whole message for an object-kind value
	// that is not an object; the value is never echoed (a header given as
	// a plaintext string is most likely the secret itself).
	notObject string
}

func i64(v int64) *int64 { return &v }

// Upper bounds for durations. The spec gives only lower bounds; without a
// ceiling a typo like 1e15 minutes would overflow time.Duration and make the
// Koi stop itself at once, so each gets a generous but finite limit.
const (
	dayMs      = 24 * 60 * 60 * 1000
	dayMinutes = 24 * 60
)

// Provider is the only model provider a Koi speaks to.
const Provider = "amazon-bedrock"

// DefaultModel is the model a config gets when it names none.
const DefaultModel = Provider + "/us.anthropic.claude-opus-4-6-v1"

// ToolNames lists the tools the gateway can offer a model, for tools.allow and
// tools.deny.
var toolNames = []string{"exec", "process", "read", "write", "edit", "memory_search", "memory_get", "web_fetch", "web_search"}

// ToolNames returns the tools the gateway can offer, in a fixed order.
func ToolNames() []string { return append([]string(nil), toolNames...) }

func obj(key, doc string, fields ...*node) *node {
	return &node{key: key, kind: kindObject, doc: doc, fields: fields}
}

var root = &node{kind: kindObject, fields: []*node{
	{key: "$schema", kind: kindString, ignored: true, doc: "ignored; lets editors find the JSON Schema"},
	obj("gateway", "the WebSocket gateway",
		&node{key: "mode", kind: kindEnum, enum: []string{"local"}, required: true, doc: "any other value: refuse to start"},
		&node{key: "port", kind: kindInt, min: i64(1), max: i64(65535), def: int64(18789), doc: "the one port for HTTP and WebSocket"},
		&node{key: "bind", kind: kindEnum, enum: []string{"loopback", "lan", "custom"}, def: "loopback", doc: "`lan` = 0.0.0.0"},
		&node{key: "customBindHost", kind: kindString, format: fmtIP, doc: "required with `bind:\"custom\"`, forbidden otherwise"},
		obj("auth", "how clients authenticate",
			&node{key: "mode", kind: kindEnum, enum: []string{"token", "password", "none"}, def: "token", doc: "`none` only with `bind:\"loopback\"`"},
			&node{key: "token", kind: kindString, format: fmtSecret, doc: "plaintext; for hand-written configs"},
			&node{key: "tokenSha256", kind: kindString, format: fmtSHA256, doc: "what the provisioner writes; exactly one of token / tokenSha256 / env `SKYKOI_GATEWAY_TOKEN` in token mode"},
			&node{key: "password", kind: kindString, format: fmtSecret, doc: "plaintext; password mode"},
			&node{key: "passwordSha256", kind: kindString, format: fmtSHA256, doc: "exactly one of password / passwordSha256 / env `SKYKOI_GATEWAY_PASSWORD` in password mode"},
			&node{key: "rateLimit", kind: kindObject, row: true, doc: "failed-auth limit per client IP", fields: []*node{
				{key: "maxAttempts", kind: kindInt, min: i64(1), max: i64(10000), def: int64(10), doc: "failures allowed per window"},
				{key: "windowMs", kind: kindInt, min: i64(1000), max: i64(dayMs), def: int64(60000), doc: "the window"},
				{key: "lockoutMs", kind: kindInt, min: i64(0), max: i64(dayMs), def: int64(300000), doc: "how long a client stays locked out"},
			}},
		),
		&node{key: "trustedProxies", kind: kindStrings, format: fmtIPOrCIDR, def: []any{}, doc: "peers whose X-Forwarded-For is believed; the Koi sets `[\"127.0.0.1\"]`. Refused when together the entries cover as much as an IPv4 /7 or an IPv6 /31 (one /8 or IPv6 /32 plus smaller ones is fine; `::ffff:0:0/96` counts as all of IPv4)"},
		obj("controlUi", "the web chat page",
			&node{key: "enabled", kind: kindBool, def: true, doc: "serves the web chat page at `/`"},
			&node{key: "allowedOrigins", kind: kindStrings, format: fmtOrigin, def: []any{}, doc: "browser origins allowed besides the gateway's own"},
		),
		obj("reload", "config reloads",
			&node{key: "mode", kind: kindEnum, enum: []string{"off", "hybrid"}, def: "hybrid", doc: "hybrid: hot-apply what can be, restart the listener for the rest"},
		),
		obj("idle", "idle sleep",
			&node{key: "stopAfterMinutes", kind: kindInt, min: i64(0), max: i64(30 * dayMinutes), def: int64(0), doc: "0 = never; >0: with no connection and no run for that long, the Koi stops its own EC2 instance"},
			&node{key: "wakeLeadMinutes", kind: kindInt, min: i64(1), max: i64(dayMinutes), def: int64(3), doc: "before an idle stop, an EventBridge Scheduler schedule starts the instance this long before the next due job or heartbeat; with one due sooner than this, it does not stop at all"},
		),
	),
	obj("agents", "the agent",
		obj("defaults", "settings for every agent",
			&node{key: "workspace", kind: kindString, format: fmtPath, def: "~/koi", doc: "the agent's working directory; the Koi sets `/home/ubuntu/koi`"},
			&node{key: "model", kind: kindObject, row: true, defDoc: "primary `" + DefaultModel + "`", doc: "a bare string is an error; provider must be `amazon-bedrock`", fields: []*node{
				{key: "primary", kind: kindString, format: fmtModelRef, def: DefaultModel, doc: "provider/modelId"},
				{key: "fallbacks", kind: kindStrings, format: fmtModelRef, def: []any{}, doc: "tried in order when the primary fails"},
			}},
			&node{key: "maxTokens", kind: kindInt, min: i64(1), max: i64(200000), def: int64(8192), doc: "per model response"},
			&node{key: "contextTokens", kind: kindInt, min: i64(0), max: i64(2000000), def: int64(0), doc: "the context window the agent keeps a session within, in tokens; `0` = the model's own (200000 for Claude on Bedrock); near 80% of it older turns are compacted into a summary"},
			&node{key: "timeoutSeconds", kind: kindInt, min: i64(1), max: i64(86400), def: int64(600), doc: "per run"},
			&node{key: "thinking", kind: kindEnum, enum: []string{"off", "low", "medium", "high"}, def: "off", doc: "extended thinking budget"},
			obj("heartbeat", "a periodic agent turn that reads `HEARTBEAT.md` in the workspace and stays silent unless it has something to say (see docs/automations.md)",
				&node{key: "every", kind: kindString, format: fmtDuration, def: "30m", doc: "how often; `0m` turns the heartbeat off. It runs only while `HEARTBEAT.md` has content (more than headings, comments and empty checklist items), so an empty or missing file costs no model call and never wakes a sleeping Koi"},
				&node{key: "activeHours", kind: kindObject, row: true, doc: "the daily window heartbeats run in; outside it they wait for the window to open", fields: []*node{
					{key: "start", kind: kindString, format: fmtClock, def: "00:00", doc: "inclusive, local time of the zone"},
					{key: "end", kind: kindString, format: fmtClock, def: "24:00", doc: "exclusive; `24:00` = end of day; a window may wrap past midnight (22:00 to 06:00)"},
					{key: "timezone", kind: kindString, format: fmtTimeZone, defDoc: "the Koi's local zone", doc: "IANA zone such as `Europe/Berlin`"},
				}},
				&node{key: "prompt", kind: kindString, defDoc: "reads HEARTBEAT.md and answers HEARTBEAT_OK when nothing needs attention", doc: "the heartbeat turn's message, sent verbatim; the contents of `HEARTBEAT.md` follow it"},
			),
		),
	),
	obj("tools", "the tools the agent may use",
		obj("exec", "the exec tool",
			&node{key: "security", kind: kindEnum, enum: []string{"deny", "allowlist", "full"}, def: "deny", doc: "`deny`: no shell, file tools confined to the workspace; `allowlist`: listed programs only, redirections and file tools confined to the workspace; `full`: the gateway user's shell, not a sandbox (see [What tools.exec.security protects](#what-toolsexecsecurity-protects)); the Koi sets `\"full\"`"},
			&node{key: "host", kind: kindEnum, enum: []string{"gateway"}, def: "gateway", doc: "`\"sandbox\"` / `\"node\"` are recognised and rejected as unsupported",
				unsupported: []string{"sandbox", "node"}, unsupportedWhy: `commands run on the gateway host, use "gateway"`},
			&node{key: "allowlist", kind: kindStrings, format: fmtCommand, def: []any{}, doc: "binary names or absolute paths; used with `security:\"allowlist\"`"},
			&node{key: "timeoutSec", kind: kindInt, min: i64(1), max: i64(86400), def: int64(1800), doc: "per command"},
		),
		&node{key: "allow", kind: kindStrings, format: fmtToolName, def: []any{}, doc: "tool names offered to the model; empty = every tool"},
		&node{key: "deny", kind: kindStrings, format: fmtToolName, def: []any{}, doc: "tool names never offered; deny wins over allow"},
		obj("web", "web_fetch and web_search",
			&node{key: "allowPrivate", kind: kindStrings, format: fmtIPOrCIDR, def: []any{},
				doc: "addresses web_fetch may connect to although they are loopback, link-local, private, unique-local, CGNAT or otherwise internal (IPs or CIDRs, checked against the address actually dialled); the metadata service (`169.254.169.254`, `fd00:ec2::254`) only when listed as that single address"},
			obj("fetch", "the web_fetch tool",
				&node{key: "enabled", kind: kindBool, def: true, doc: "offer web_fetch (HTTP(S) GET, HTML as markdown or text)"},
				&node{key: "maxChars", kind: kindInt, min: i64(100), max: i64(1000000), def: int64(20000), doc: "text returned when the call names no maxChars; at most maxCharsCap"},
				&node{key: "maxCharsCap", kind: kindInt, min: i64(100), max: i64(1000000), def: int64(20000), doc: "the most text one call may ask for"},
				&node{key: "maxResponseBytes", kind: kindInt, min: i64(32000), max: i64(10000000), def: int64(2000000), doc: "bytes of the response body read; the rest is cut off and the result says so"},
				&node{key: "timeoutSeconds", kind: kindInt, min: i64(1), max: i64(300), def: int64(30), doc: "for the whole fetch: connecting, redirects and reading the body"},
				&node{key: "maxRedirects", kind: kindInt, min: i64(0), max: i64(20), def: int64(3), doc: "redirects followed; each target passes the same address check"},
				&node{key: "readability", kind: kindBool, def: true, doc: "extract the page's main content (Readability) before converting; off converts the whole body"},
			),
			obj("search", "the web_search tool",
				&node{key: "enabled", kind: kindBool, def: true, doc: "offer web_search when a Brave Search API key is found (env `" + EnvBraveAPIKey + "`, else apiKeyFile)"},
				&node{key: "provider", kind: kindEnum, enum: []string{"brave"}, def: "brave", doc: "the search API; Brave Search is the one SkyKoi speaks"},
				&node{key: "apiKeyFile", kind: kindString, format: fmtPath, doc: "a file holding the Brave Search API key (one line), read when the tools are set up; env `" + EnvBraveAPIKey + "` wins"},
				&node{key: "baseUrl", kind: kindString, format: fmtURL, def: "https://api.search.brave.com", doc: "Brave-compatible endpoint; `/res/v1/web/search` is appended"},
				&node{key: "maxResults", kind: kindInt, min: i64(1), max: i64(10), def: int64(5), doc: "results when the call names no count"},
				&node{key: "timeoutSeconds", kind: kindInt, min: i64(1), max: i64(300), def: int64(30), doc: "per search"},
			),
		),
	),
	obj("session", "conversation sessions",
		&node{key: "dmScope", kind: kindEnum, enum: []string{"main"}, def: "main",
			doc:            "accepted for OpenClaw configs; SkyKoi has no messaging channels, so every conversation is the main session and `\"per-peer\"`, `\"per-channel-peer\"`, `\"per-account-channel-peer\"` are rejected",
			unsupported:    []string{"per-peer", "per-channel-peer", "per-account-channel-peer"},
			unsupportedWhy: `it has no messaging channels, so there are no direct messages to route and every conversation uses the main session; set "main" or remove the key`},
		obj("reset", "when a session starts afresh",
			&node{key: "mode", kind: kindEnum, enum: []string{"daily", "idle", "off"}, def: "daily", doc: "reset policy"},
			&node{key: "atHour", kind: kindInt, min: i64(0), max: i64(23), def: int64(4), doc: "local time of the Koi"},
			&node{key: "idleMinutes", kind: kindInt, min: i64(1), max: i64(365 * dayMinutes), doc: "the idle timeout; with mode `daily` too, whichever expires first; required with mode `idle`"},
		),
	),
	obj("cron", "scheduled jobs (see docs/automations.md)",
		&node{key: "enabled", kind: kindBool, def: true, doc: "`false`: jobs are kept and `cron.run` still runs one by hand, but none starts on its own (heartbeats neither)"},
	),
	obj("models", "model providers",
		obj("providers", "per-provider settings",
			obj(Provider, "Amazon Bedrock",
				&node{key: "region", kind: kindString, format: fmtRegion, defDoc: "from the environment, else `us-east-1`", doc: "AWS region"},
				&node{key: "endpoint", kind: kindString, format: fmtURL, doc: "for VPC endpoints and tests"},
			),
		),
	),
	obj("usage", "token usage and spend",
		obj("budget", "spend caps, in the Koi's local time (as `session.reset.atHour`); `0` = no cap. Checked before every model call (runs, compaction summaries, memory flushes, scheduled runs): at a cap the call is refused and the run ends with an error saying the cap, the spend and when it lifts; a `budget.warning` event goes out at 80%",
			&node{key: "dailyTokens", kind: kindInt, min: i64(0), max: i64(maxSafeInt), def: int64(0), doc: "tokens per local day (input, output and cache tokens together)"},
			&node{key: "monthlyTokens", kind: kindInt, min: i64(0), max: i64(maxSafeInt), def: int64(0), doc: "tokens per calendar month"},
			&node{key: "dailyUsd", kind: kindNumber, fmin: 0, fmax: 1e6, def: int64(0), doc: "estimated US dollars per local day, from `usage.prices` and the built-in price table"},
			&node{key: "monthlyUsd", kind: kindNumber, fmin: 0, fmax: 1e7, def: int64(0), doc: "estimated US dollars per calendar month"},
		),
		&node{key: "prices", kind: kindStrings, format: fmtPrice, defDoc: "none", doc: "price overrides, one per model: `\"<modelId> input=5 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01\"` (USD per million tokens, and the day the prices were read); they replace the built-in price of that model id"},
	),
	obj("logging", "the gateway's log",
		&node{key: "level", kind: kindEnum, enum: []string{"debug", "info", "warn", "error"}, def: "info", doc: "least severe level written"},
	),
	mcpNode,
}}

// mcpNode is mcp.*: MCP tool servers (issue 14). Key names follow OpenClaw's
// mcp.servers where SkyKoi has the same notion.
var mcpNode = obj("mcp", "MCP tool servers",
	&node{key: "servers", kind: kindMap, keyFormat: fmtServerName,
		doc: "MCP servers by name; their tools are offered as `<name>__<tool>`, filtered by tools.allow / tools.deny",
		elem: &node{kind: kindObject, fields: []*node{
			{key: "enabled", kind: kindBool, def: true, doc: "`false` keeps the definition but starts nothing"},
			{key: "transport", kind: kindEnum, enum: []string{"stdio", "streamable-http"}, defDoc: "`stdio` with command, `streamable-http` with url",
				doc: "`\"sse\"` is recognised and rejected as unsupported", unsupported: []string{"sse"},
				unsupportedWhy: `SkyKoi speaks streamable HTTP to remote servers; use "streamable-http" with the server's MCP endpoint`},
			{key: "command", kind: kindString, format: fmtCommand, doc: "stdio: the program to start; exactly one of command / url"},
			{key: "args", kind: kindStrings, doc: "stdio: its arguments"},
			{key: "env", kind: kindMap, keyFormat: fmtEnvName, elem: &node{kind: kindString},
				doc: "stdio: variables added to the gateway's environment, which the server gets without the gateway's secrets; shown by config.get, so keep credentials in the gateway's environment instead"},
			{key: "cwd", kind: kindString, format: fmtPath, defDoc: "the workspace", doc: "stdio: working directory"},
			{key: "url", kind: kindString, format: fmtURL, doc: "streamable-http: the endpoint; no credentials in it"},
			{key: "headers", kind: kindMap, keyFormat: fmtHeaderName, row: true,
				doc: "streamable-http: header name → `{env: NAME}` or `{file: /path}` (with optional `prefix`, such as `\"Bearer \"`); read at each connect, never stored in config or logged",
				elem: &node{kind: kindObject, notObject: "must be an object {env: NAME} or {file: /path}: header values come from the environment or a file, never from plaintext in the config", fields: []*node{
					{key: "env", kind: kindString, format: fmtEnvName, doc: "environment variable holding the value"},
					{key: "file", kind: kindString, format: fmtPath, doc: "file holding the value (trailing newline dropped)"},
					{key: "prefix", kind: kindString, doc: "put before the value"},
				}}},
			{key: "requestTimeoutMs", kind: kindInt, min: i64(100), max: i64(dayMs), def: int64(60000), doc: "per tool call; a call that takes longer fails with a timeout the model is told about"},
			{key: "connectionTimeoutMs", kind: kindInt, min: i64(100), max: i64(600000), def: int64(30000), doc: "for starting and initializing the server"},
		}}},
)

// walk calls fn for every node below n in schema order with its dotted path.
func walk(n *node, prefix string, fn func(path string, n *node)) {
	for _, f := range n.fields {
		p := join(prefix, f.key)
		fn(p, f)
		if f.kind == kindObject {
			walk(f, p, fn)
		}
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (n *node) child(key string) *node {
	for _, f := range n.fields {
		if f.key == key {
			return f
		}
	}
	return nil
}

// lookup finds the node at a dotted path (paths are split on the schema's own
// keys, so a key that contains a dot, such as none today, would still work).
func lookup(path string) *node {
	n := root
	for path != "" {
		var found *node
		for _, f := range n.fields {
			if path == f.key || len(path) > len(f.key) && path[:len(f.key)] == f.key && path[len(f.key)] == '.' {
				found = f
				path = path[len(f.key):]
				if path != "" {
					path = path[1:]
				}
				break
			}
		}
		if found == nil {
			return nil
		}
		n = found
	}
	return n
}

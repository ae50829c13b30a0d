package configgen

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// hash is a well-formed tokenSha256 for tests.
var hash = strings.Repeat("ab", 32)

// doc builds a config around a valid gateway section: $H in s stands for hash.
func doc(s string) string { return strings.ReplaceAll(s, "$H", hash) }

// gw is the smallest valid gateway section, for cases about other keys.
const gw = `gateway: {mode: "local", auth: {tokenSha256: "$H"}}`

func noEnv(string) string { return "" }

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		env  map[string]string
		want []string
	}{
		{"unknown root key", `{` + gw + `, colour: "blue"}`, nil,
			[]string{`colour: unknown key`}},
		{"heartbeat every without a unit", `{` + gw + `, agents: {defaults: {heartbeat: {every: "30"}}}}`, nil,
			[]string{`agents.defaults.heartbeat.every: must be a duration such as 30m, 1h or 1d: bad duration "30": each number needs a unit (ms, s, m, h, d or w)`}},
		{"heartbeat active hours", `{` + gw + `, agents: {defaults: {heartbeat: {activeHours: {start: "25:00", end: "9:00", timezone: "Mars/Base"}}}}}`, nil,
			[]string{`agents.defaults.heartbeat.activeHours.end: must be a time of day HH:MM from 00:00 to 24:00, got "9:00"`,
				`agents.defaults.heartbeat.activeHours.start: must be a time of day HH:MM from 00:00 to 24:00, got "25:00"`,
				`agents.defaults.heartbeat.activeHours.timezone: "Mars/Base" is not a known IANA time zone (such as Europe/Berlin or UTC)`}},
		{"cron enabled not a bool", `{` + gw + `, cron: {enabled: "yes"}}`, nil,
			[]string{`cron.enabled: must be true or false, got "yes"`}},
		{"unknown nested key with typo", `{gateway: {mode: "local", prot: 1, auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.prot: unknown key (did you mean gateway.port?)`}},
		{"top-level exec", `{` + gw + `, exec: {security: "full"}}`, nil,
			[]string{`exec: unknown key (did you mean tools.exec?)`}},
		{"misplaced nested key", `{` + gw + `, tools: {security: "full"}}`, nil,
			[]string{`tools.security: unknown key (did you mean tools.exec.security?)`}},
		{"dotted key", `{` + gw + `, "tools.exec.security": "full"}`, nil,
			[]string{`tools.exec.security: unknown key (dotted keys are not expanded; nest it: tools → exec → security)`}},
		{"port as string", `{gateway: {mode: "local", port: "18789", auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.port: must be an integer from 1 to 65535, got "18789"`}},
		{"port zero", `{gateway: {mode: "local", port: 0, auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.port: must be an integer from 1 to 65535, got 0`}},
		{"port too large", `{gateway: {mode: "local", port: 65536, auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.port: must be an integer from 1 to 65535, got 65536`}},
		{"port fractional", `{gateway: {mode: "local", port: 80.5, auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.port: must be an integer from 1 to 65535, got 80.5`}},
		{"port null", `{gateway: {mode: "local", port: null, auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.port: must be an integer from 1 to 65535, got null`}},
		{"mode not local", `{gateway: {mode: "remote", auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.mode: must be "local", got "remote"`}},
		{"mode missing", `{gateway: {auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.mode: is required (set it to "local")`}},
		{"gateway missing", `{}`, nil,
			[]string{
				`gateway.auth: token mode needs a token: set gateway.auth.tokenSha256 (or gateway.auth.token), or the SKYKOI_GATEWAY_TOKEN environment variable`,
				`gateway.mode: is required (set it to "local")`,
			}},
		{"gateway not an object", `{gateway: "local"}`, nil,
			[]string{`gateway: must be an object, got "local"`}},
		{"bind enum", `{gateway: {mode: "local", bind: "public", auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.bind: must be one of loopback, lan, custom; got "public"`}},
		{"auth mode enum", `{gateway: {mode: "local", auth: {mode: "oauth"}}}`, nil,
			[]string{`gateway.auth.mode: must be one of token, password, none; got "oauth"`}},
		{"lan with auth none", `{gateway: {mode: "local", bind: "lan", auth: {mode: "none"}}}`, nil,
			[]string{`gateway.auth.mode: "none" is only allowed with gateway.bind "loopback" (bind is "lan"); use token auth`}},
		{"customBindHost without custom bind", `{gateway: {mode: "local", customBindHost: "10.0.0.5", auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.customBindHost: only allowed when gateway.bind is "custom" (bind is "loopback")`}},
		{"custom bind without host", `{gateway: {mode: "local", bind: "custom", auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.customBindHost: is required when gateway.bind is "custom"`}},
		{"customBindHost not an IP", `{gateway: {mode: "local", bind: "custom", customBindHost: "myhost", auth: {tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.customBindHost: must be an IP address, got "myhost"`}},
		{"token mode without token", `{gateway: {mode: "local"}}`, nil,
			[]string{`gateway.auth: token mode needs a token: set gateway.auth.tokenSha256 (or gateway.auth.token), or the SKYKOI_GATEWAY_TOKEN environment variable`}},
		{"token and tokenSha256", `{gateway: {mode: "local", auth: {token: "` + strings.Repeat("t", 40) + `", tokenSha256: "$H"}}}`, nil,
			[]string{`gateway.auth: set exactly one of token, tokenSha256 and the SKYKOI_GATEWAY_TOKEN environment variable; found token and tokenSha256`}},
		{"tokenSha256 and env", `{` + gw + `}`, map[string]string{EnvToken: strings.Repeat("e", 40)},
			[]string{`gateway.auth: set exactly one of token, tokenSha256 and the SKYKOI_GATEWAY_TOKEN environment variable; found tokenSha256 and SKYKOI_GATEWAY_TOKEN`}},
		{"tokenSha256 uppercase", `{gateway: {mode: "local", auth: {tokenSha256: "` + strings.ToUpper(hash) + `"}}}`, nil,
			[]string{`gateway.auth.tokenSha256: must be 64 lowercase hex characters (a SHA-256 digest), got 64 characters`}},
		{"tokenSha256 short, never echoed", `{gateway: {mode: "local", auth: {tokenSha256: "s3cret-token"}}}`, nil,
			[]string{`gateway.auth.tokenSha256: must be 64 lowercase hex characters (a SHA-256 digest), got 12 characters`}},
		{"token too short", `{gateway: {mode: "local", auth: {token: "short"}}}`, nil,
			[]string{`gateway.auth.token: must be at least 32 characters, got 5`}},
		{"token wrong type, never echoed", `{gateway: {mode: "local", auth: {token: 12345}}}`, nil,
			[]string{`gateway.auth.token: must be a string, got a number`}},
		{"password mode without password", `{gateway: {mode: "local", auth: {mode: "password"}}}`, nil,
			[]string{`gateway.auth: password mode needs a password: set gateway.auth.passwordSha256 (or gateway.auth.password), or the SKYKOI_GATEWAY_PASSWORD environment variable`}},
		{"password in token mode", `{gateway: {mode: "local", auth: {tokenSha256: "$H", passwordSha256: "$H"}}}`, nil,
			[]string{`gateway.auth.passwordSha256: only used when gateway.auth.mode is "password" (mode is "token")`}},
		{"rateLimit maxAttempts", `{gateway: {mode: "local", auth: {tokenSha256: "$H", rateLimit: {maxAttempts: 0}}}}`, nil,
			[]string{`gateway.auth.rateLimit.maxAttempts: must be an integer from 1 to 10000, got 0`}},
		{"rateLimit windowMs", `{gateway: {mode: "local", auth: {tokenSha256: "$H", rateLimit: {windowMs: 999}}}}`, nil,
			[]string{`gateway.auth.rateLimit.windowMs: must be an integer from 1000 to 86400000, got 999`}},
		{"rateLimit lockoutMs", `{gateway: {mode: "local", auth: {tokenSha256: "$H", rateLimit: {lockoutMs: -1}}}}`, nil,
			[]string{`gateway.auth.rateLimit.lockoutMs: must be an integer from 0 to 86400000, got -1`}},
		{"bad CIDR", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, trustedProxies: ["127.0.0.1", "10.0.0.0/33"]}}`, nil,
			[]string{`gateway.trustedProxies[1]: must be an IP address or CIDR (such as 10.0.0.0/8), got "10.0.0.0/33"`}},
		{"trustedProxies everyone", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, trustedProxies: ["0.0.0.0/0"]}}`, nil,
			[]string{`gateway.trustedProxies: would believe X-Forwarded-For from too much of the internet, so any client could claim any address: too broad: together they reach as many IPv4 addresses as a /0 (the rule: all the prefixes together must cover fewer addresses than an IPv4 /7 and an IPv6 /31, that is one /8 (IPv6 /32) at most plus smaller ones; IPv4-mapped IPv6 counts as IPv4); list only your proxies' addresses, such as ["127.0.0.1"] for nginx on the same host`}},
		{"trustedProxies everyone split", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, trustedProxies: ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]}}`, nil,
			[]string{`gateway.trustedProxies: would believe X-Forwarded-For from too much of the internet, so any client could claim any address: too broad: together they reach as many IPv4 addresses as a /0; together they reach as many IPv6 addresses as a /0 (the rule: all the prefixes together must cover fewer addresses than an IPv4 /7 and an IPv6 /31, that is one /8 (IPv6 /32) at most plus smaller ones; IPv4-mapped IPv6 counts as IPv4); list only your proxies' addresses, such as ["127.0.0.1"] for nginx on the same host`}},
		{"trustedProxies all of IPv4 mapped", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, trustedProxies: ["127.0.0.1", "::ffff:0:0/96"]}}`, nil,
			[]string{`gateway.trustedProxies: would believe X-Forwarded-For from too much of the internet, so any client could claim any address: too broad: together they reach as many IPv4 addresses as a /0 (the rule: all the prefixes together must cover fewer addresses than an IPv4 /7 and an IPv6 /31, that is one /8 (IPv6 /32) at most plus smaller ones; IPv4-mapped IPv6 counts as IPv4); list only your proxies' addresses, such as ["127.0.0.1"] for nginx on the same host`}},
		{"trustedProxies not a list", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, trustedProxies: "127.0.0.1"}}`, nil,
			[]string{`gateway.trustedProxies: must be a list of strings, got "127.0.0.1"`}},
		{"origin with path", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, controlUi: {allowedOrigins: ["https://app.skykoi.dev/chat"]}}}`, nil,
			[]string{`gateway.controlUi.allowedOrigins[0]: must be an origin like https://host[:port] with no path, got "https://app.skykoi.dev/chat"`}},
		{"origin wrong scheme", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, controlUi: {allowedOrigins: ["ftp://files.example"]}}}`, nil,
			[]string{`gateway.controlUi.allowedOrigins[0]: must be an origin like https://host[:port] with no path, got "ftp://files.example"`}},
		{"controlUi.enabled not bool", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, controlUi: {enabled: "yes"}}}`, nil,
			[]string{`gateway.controlUi.enabled: must be true or false, got "yes"`}},
		{"reload mode enum", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, reload: {mode: "auto"}}}`, nil,
			[]string{`gateway.reload.mode: must be one of off, hybrid; got "auto"`}},
		{"idle stop negative", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, idle: {stopAfterMinutes: -5}}}`, nil,
			[]string{`gateway.idle.stopAfterMinutes: must be an integer from 0 to 43200, got -5`}},
		{"relative workspace", `{` + gw + `, agents: {defaults: {workspace: "koi"}}}`, nil,
			[]string{`agents.defaults.workspace: must be an absolute path or start with ~/, got "koi"`}},
		{"bare-string model", `{` + gw + `, agents: {defaults: {model: "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"}}}`, nil,
			[]string{`agents.defaults.model: must be an object like {primary: "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"}, got the bare string "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"`}},
		{"non-bedrock provider", `{` + gw + `, agents: {defaults: {model: {primary: "openai/gpt-5"}}}}`, nil,
			[]string{`agents.defaults.model.primary: provider must be amazon-bedrock, got "openai" in "openai/gpt-5"`}},
		{"model without provider", `{` + gw + `, agents: {defaults: {model: {primary: "claude"}}}}`, nil,
			[]string{`agents.defaults.model.primary: must be "amazon-bedrock/<modelId>", got "claude"`}},
		{"fallback not a string", `{` + gw + `, agents: {defaults: {model: {fallbacks: [42]}}}}`, nil,
			[]string{`agents.defaults.model.fallbacks[0]: must be a string, got 42`}},
		{"maxTokens zero", `{` + gw + `, agents: {defaults: {maxTokens: 0}}}`, nil,
			[]string{`agents.defaults.maxTokens: must be an integer from 1 to 200000, got 0`}},
		{"maxTokens too large", `{` + gw + `, agents: {defaults: {maxTokens: 200001}}}`, nil,
			[]string{`agents.defaults.maxTokens: must be an integer from 1 to 200000, got 200001`}},
		{"timeoutSeconds too large", `{` + gw + `, agents: {defaults: {timeoutSeconds: 86401}}}`, nil,
			[]string{`agents.defaults.timeoutSeconds: must be an integer from 1 to 86400, got 86401`}},
		{"thinking enum", `{` + gw + `, agents: {defaults: {thinking: "max"}}}`, nil,
			[]string{`agents.defaults.thinking: must be one of off, low, medium, high; got "max"`}},
		{"exec security enum", `{` + gw + `, tools: {exec: {security: "all"}}}`, nil,
			[]string{`tools.exec.security: must be one of deny, allowlist, full; got "all"`}},
		{"exec host sandbox", `{` + gw + `, tools: {exec: {host: "sandbox"}}}`, nil,
			[]string{`tools.exec.host: "sandbox" is not supported by SkyKoi: commands run on the gateway host, use "gateway"`}},
		{"exec host node", `{` + gw + `, tools: {exec: {host: "node"}}}`, nil,
			[]string{`tools.exec.host: "node" is not supported by SkyKoi: commands run on the gateway host, use "gateway"`}},
		{"exec host unknown", `{` + gw + `, tools: {exec: {host: "docker"}}}`, nil,
			[]string{`tools.exec.host: must be "gateway", got "docker"`}},
		{"allowlist relative path", `{` + gw + `, tools: {exec: {allowlist: ["ls", "bin/rm"]}}}`, nil,
			[]string{`tools.exec.allowlist[1]: must be a binary name or an absolute path, got "bin/rm"`}},
		{"exec timeout zero", `{` + gw + `, tools: {exec: {timeoutSec: 0}}}`, nil,
			[]string{`tools.exec.timeoutSec: must be an integer from 1 to 86400, got 0`}},
		{"unknown tool name", `{` + gw + `, tools: {allow: ["read", "shell"]}}`, nil,
			[]string{"tools.allow[1]: must be one of " + strings.Join(toolNames, ", ") + ", or <server>__<tool> / <server>__* for a server in mcp.servers; got \"shell\""}},
		{"deny not a list", `{` + gw + `, tools: {deny: "exec"}}`, nil,
			[]string{`tools.deny: must be a list of strings, got "exec"`}},
		{"dmScope unknown", `{` + gw + `, session: {dmScope: "global"}}`, nil,
			[]string{`session.dmScope: must be "main", got "global"`}},
		{"dmScope per-peer", `{` + gw + `, session: {dmScope: "per-peer"}}`, nil,
			[]string{`session.dmScope: "per-peer" is not supported by SkyKoi: it has no messaging channels, so there are no direct messages to route and every conversation uses the main session; set "main" or remove the key`}},
		{"dmScope per-channel-peer", `{` + gw + `, session: {dmScope: "per-channel-peer"}}`, nil,
			[]string{`session.dmScope: "per-channel-peer" is not supported by SkyKoi: it has no messaging channels, so there are no direct messages to route and every conversation uses the main session; set "main" or remove the key`}},
		{"dmScope per-account-channel-peer", `{` + gw + `, session: {dmScope: "per-account-channel-peer"}}`, nil,
			[]string{`session.dmScope: "per-account-channel-peer" is not supported by SkyKoi: it has no messaging channels, so there are no direct messages to route and every conversation uses the main session; set "main" or remove the key`}},
		{"reset mode enum", `{` + gw + `, session: {reset: {mode: "weekly"}}}`, nil,
			[]string{`session.reset.mode: must be one of daily, idle, off; got "weekly"`}},
		{"atHour 24", `{` + gw + `, session: {reset: {atHour: 24}}}`, nil,
			[]string{`session.reset.atHour: must be an integer from 0 to 23, got 24`}},
		{"idleMinutes zero", `{` + gw + `, session: {reset: {idleMinutes: 0}}}`, nil,
			[]string{`session.reset.idleMinutes: must be an integer from 1 to 525600, got 0`}},
		{"idle mode without minutes", `{` + gw + `, session: {reset: {mode: "idle"}}}`, nil,
			[]string{`session.reset.idleMinutes: is required when session.reset.mode is "idle"`}},
		{"bad region", `{` + gw + `, models: {providers: {"amazon-bedrock": {region: "useast1"}}}}`, nil,
			[]string{`models.providers.amazon-bedrock.region: must be an AWS region such as us-east-1, got "useast1"`}},
		{"bad endpoint", `{` + gw + `, models: {providers: {"amazon-bedrock": {endpoint: "bedrock.local"}}}}`, nil,
			[]string{`models.providers.amazon-bedrock.endpoint: must be an http:// or https:// URL, got "bedrock.local"`}},
		{"unknown provider", `{` + gw + `, models: {providers: {openai: {}}}}`, nil,
			[]string{`models.providers.openai: unknown key`}},
		{"log level enum", `{` + gw + `, logging: {level: "trace"}}`, nil,
			[]string{`logging.level: must be one of debug, info, warn, error; got "trace"`}},
		{"syntax error gives line and column", "{\n  gateway: {\n    mode: 'local',,\n  }\n}", nil,
			[]string{`line 3, column 19: invalid character ',' looking for beginning of object key`}},
		{"unclosed object", "{\n  gateway: {mode: 'local'}\n", nil,
			[]string{`line 3, column 1: unexpected end of file (is a bracket, brace or quote left open?)`}},
		{"empty file", "", nil,
			[]string{`(root): the file is empty; it needs at least {gateway: {mode: "local"}}`}},
		{"only a comment", "// nothing here\n", nil,
			[]string{`(root): the file is empty; it needs at least {gateway: {mode: "local"}}`}},
		{"array file", `[{gateway: {mode: "local"}}]`, nil,
			[]string{`(root): must be an object, got a list`}},
		{"content after the object", `{` + gw + `} {}`, nil,
			[]string{`line 1, column 117: unexpected content after the top-level object`}},
		{"not UTF-8", "{gateway: {mode: \"\xff\"}}", nil,
			[]string{`(root): the file is not valid UTF-8`}},
		{"cross-key rules reported beside other problems", `{gateway: {mode: "local", port: 0, auth: {mode: "token", token: "short", password: "p"}}}`, nil,
			[]string{
				`gateway.auth.password: must be at least 32 characters, got 1`,
				`gateway.auth.password: only used when gateway.auth.mode is "password" (mode is "token")`,
				`gateway.auth.token: must be at least 32 characters, got 5`,
				`gateway.port: must be an integer from 1 to 65535, got 0`,
			}},
		{"nesting too deep", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}}, x: ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, nil,
			[]string{`line 1, column 183: nesting deeper than 64 levels`}},
		{"brackets inside strings and comments do not count", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}}, /* [[[[ */ y: "` + strings.Repeat("[", 100) + `"}`, nil,
			[]string{`y: unknown key`}},
		{"very long unknown key is shortened", `{` + gw + `, "` + strings.Repeat("k", 300) + `": 1}`, nil,
			[]string{strings.Repeat("k", 200) + `…: unknown key`}},
		{"every problem at once, sorted by path", `{gateway: {mode: "local", port: "x", auth: {tokenSha256: "$H"}}, tools: {exec: {security: "all"}}, exec: {}}`, nil,
			[]string{
				`exec: unknown key (did you mean tools.exec?)`,
				`gateway.port: must be an integer from 1 to 65535, got "x"`,
				`tools.exec.security: must be one of deny, allowlist, full; got "all"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) string { return tt.env[k] }
			_, err := ParseEnv([]byte(doc(tt.in)), env)
			got := issueStrings(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("issues:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"defaults", `{` + gw + `}`, nil, func(t *testing.T, c Config) {
			want := Config{
				Gateway: Gateway{Mode: "local", Port: 18789, Bind: "loopback",
					Auth:           Auth{Mode: "token", TokenSha256: hash, RateLimit: RateLimit{10, 60000, 300000}},
					TrustedProxies: []string{}, ControlUI: ControlUI{Enabled: true, AllowedOrigins: []string{}},
					Reload: Reload{"hybrid"}, Idle: Idle{WakeLeadMinutes: 3}},
				Agents: Agents{Defaults: AgentDefaults{Workspace: "~/koi", Model: Model{Primary: DefaultModel, Fallbacks: []string{}},
					MaxTokens: 8192, TimeoutSeconds: 600, Thinking: "off",
					Heartbeat: Heartbeat{Every: "30m", ActiveHours: ActiveHours{Start: "00:00", End: "24:00"}}}},
				Cron: Cron{Enabled: true},
				Tools: Tools{Exec: Exec{Security: "deny", Host: "gateway", Allowlist: []string{}, TimeoutSec: 1800}, Allow: []string{}, Deny: []string{},
					Web: Web{AllowPrivate: []string{},
						Fetch:  WebFetch{Enabled: true, MaxChars: 20000, MaxCharsCap: 20000, MaxResponseBytes: 2000000, TimeoutSeconds: 30, MaxRedirects: 3, Readability: true},
						Search: WebSearch{Enabled: true, Provider: "brave", BaseURL: "https://api.search.brave.com", MaxResults: 5, TimeoutSeconds: 30}}},
				Session: Session{DMScope: "main", Reset: Reset{Mode: "daily", AtHour: 4}},
				Logging: Logging{Level: "info"},
			}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		}},
		{"JSON5: comments, trailing commas, unquoted keys, single quotes, hex", `
			// a hand-written config
			{
			  $schema: 'https://skykoi.dev/schema/skykoi.json',
			  gateway: {
			    mode: 'local', /* block comment */
			    port: 0x4965,
			    auth: {tokenSha256: '$H',},
			  },
			  'tools': {exec: {security: "allowlist", allowlist: ['ls', "/usr/bin/git",],},},
			} // trailing comment
			`, nil, func(t *testing.T, c Config) {
			if c.Gateway.Port != 0x4965 || c.Tools.Exec.Security != "allowlist" ||
				!reflect.DeepEqual(c.Tools.Exec.Allowlist, []string{"ls", "/usr/bin/git"}) {
				t.Errorf("got %+v", c)
			}
		}},
		{"byte-order mark", "\ufeff{" + gw + "}", nil, func(t *testing.T, c Config) {
			if c.Gateway.Mode != "local" {
				t.Errorf("mode %q", c.Gateway.Mode)
			}
		}},
		{"token from the environment", `{gateway: {mode: "local"}}`, map[string]string{EnvToken: strings.Repeat("k", 43)}, func(t *testing.T, c Config) {
			s := c.ResolveSecret(func(k string) string { return map[string]string{EnvToken: strings.Repeat("k", 43)}[k] })
			if !s.Match(strings.Repeat("k", 43)) || s.Match(strings.Repeat("k", 42)) {
				t.Error("env token does not match as it should")
			}
		}},
		{"password mode with a digest", `{gateway: {mode: "local", auth: {mode: "password", passwordSha256: "` + HashSecret("correct horse battery staple, long enough") + `"}}}`, nil, func(t *testing.T, c Config) {
			s := c.ResolveSecret(noEnv)
			if !s.Match("correct horse battery staple, long enough") || s.Match("wrong") {
				t.Error("password digest does not match as it should")
			}
		}},
		{"auth none on loopback", `{gateway: {mode: "local", auth: {mode: "none"}}}`, nil, func(t *testing.T, c Config) {
			if !c.ResolveSecret(noEnv).Match("anything") {
				t.Error("none mode must accept any secret")
			}
		}},
		{"custom bind", `{gateway: {mode: "local", bind: "custom", customBindHost: "::1", auth: {tokenSha256: "$H"}}}`, nil, func(t *testing.T, c Config) {
			if c.Gateway.CustomBindHost != "::1" {
				t.Errorf("customBindHost %q", c.Gateway.CustomBindHost)
			}
		}},
		{"idle reset and every tool filter", `{` + gw + `, session: {reset: {mode: "idle", idleMinutes: 90}}, tools: {allow: ["read", "exec"], deny: ["exec"]}}`, nil, func(t *testing.T, c Config) {
			if c.Session.Reset.IdleMinutes != 90 || len(c.Tools.Deny) != 1 {
				t.Errorf("got %+v", c)
			}
		}},
		{"origins and proxies", `{gateway: {mode: "local", auth: {tokenSha256: "$H"}, trustedProxies: ["127.0.0.1", "10.0.0.0/8", "::1"], controlUi: {allowedOrigins: ["https://app.skykoi.dev", "http://localhost:5173"]}}}`, nil, func(t *testing.T, c Config) {
			if len(c.Gateway.TrustedProxies) != 3 || len(c.Gateway.ControlUI.AllowedOrigins) != 2 {
				t.Errorf("got %+v", c.Gateway)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseEnv([]byte(doc(tt.in)), func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestIssuesAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("{" + doc(gw))
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, ", unknown%d: 1", i)
	}
	b.WriteString("}")
	_, err := ParseEnv([]byte(b.String()), noEnv)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v", err)
	}
	if len(ce.Issues) != maxIssues || ce.Issues[maxIssues-1].Message != "… and 401 more problems" {
		t.Errorf("%d issues, last %q", len(ce.Issues), ce.Issues[len(ce.Issues)-1].Message)
	}
}

func TestCloneIsDeep(t *testing.T) {
	c, err := ParseEnv([]byte(doc(`{`+gw+`, tools: {allow: ["read"]}}`)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Clone()
	d.Tools.Allow[0] = "exec"
	if c.Tools.Allow[0] != "read" {
		t.Error("Clone shares the allow list")
	}
}

func TestProvisionedPathsAreSchemaKeys(t *testing.T) {
	for _, p := range ProvisionedPaths {
		if lookup(p) == nil {
			t.Errorf("ProvisionedPaths has %q, which the schema does not define", p)
		}
	}
}

// issueStrings is the validator's issues of a parse that must have failed,
// as "path: message" lines.
func issueStrings(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *Error, got %v", err)
	}
	got := make([]string, len(ce.Issues))
	for i, is := range ce.Issues {
		got[i] = is.String()
	}
	return got
}

package configgen_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// update rewrites golden files instead of comparing against them:
// go test ./configgen -update. Only one test file of the package may declare
// it, since both test packages link into one binary with one flag set.
var update = flag.Bool("update", false, "rewrite golden files")

// goldenHash is a fixed tokenSha256 so the golden file never changes with a
// random token; it is not the digest of any real token.
const goldenHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const fallbackModel = "amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"

func noEnv(string) string { return "" }

// checkGolden compares got with the file at path, or rewrites it under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./configgen -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date (go test ./configgen -update rewrites it); got:\n%s", path, got)
	}
}

func TestGenerateGolden(t *testing.T) {
	out, err := configgen.Generate(configgen.Options{
		TokenSha256:     goldenHash,
		Fallbacks:       []string{fallbackModel},
		IdleStopMinutes: 30,
		Region:          "us-west-2",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "koi.golden.json"), out)
}

func TestGenerateDeterministic(t *testing.T) {
	// A token that looks like nothing else in the file, so finding it would
	// mean the plaintext leaked.
	const token = "plaintext-token-Zq8Xv2Lk9Pw4Rt6Yb1Nm3Hc5Jd7Fs0Ga"
	o := configgen.Options{
		TokenSha256:    configgen.HashSecret(token),
		Fallbacks:      []string{fallbackModel, "amazon-bedrock/us.amazon.nova-pro-v1:0"},
		AllowedOrigins: []string{"https://app.skykoi.dev", "http://localhost:5173"},
		Region:         "eu-central-1",
	}
	a, err := configgen.Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	// Map iteration order differs from run to run, so a second call is a real
	// check that key order comes from the schema rather than from the maps.
	for range 5 {
		b, err := configgen.Generate(o)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("two calls differ:\n%s\n---\n%s", a, b)
		}
	}
	if !bytes.HasSuffix(a, []byte("}\n")) || bytes.HasSuffix(a, []byte("\n\n")) {
		t.Errorf("output must end in exactly one newline after the object:\n%q", a[max(0, len(a)-10):])
	}
	if bytes.Contains(a, []byte(token)) {
		t.Error("the plaintext token is in the generated file")
	}
	if !bytes.Contains(a, []byte(configgen.HashSecret(token))) {
		t.Error("the token's digest is not in the generated file")
	}
}

// koiConfig is what Generate with zero Options must mean, written out from
// CONFIG.md and Options' documented defaults rather than from Generate's output.
func koiConfig() configgen.Config {
	return configgen.Config{
		Gateway: configgen.Gateway{
			Mode: "local", Port: 18789, Bind: "loopback",
			Auth: configgen.Auth{Mode: "token", TokenSha256: goldenHash,
				RateLimit: configgen.RateLimit{MaxAttempts: 10, WindowMs: 60000, LockoutMs: 300000}},
			TrustedProxies: []string{"127.0.0.1"},
			ControlUI:      configgen.ControlUI{Enabled: true, AllowedOrigins: []string{}},
			Reload:         configgen.Reload{Mode: "hybrid"},
			Idle:           configgen.Idle{WakeLeadMinutes: 3},
		},
		Agents: configgen.Agents{Defaults: configgen.AgentDefaults{
			Workspace:      "/home/ubuntu/koi",
			Model:          configgen.Model{Primary: "amazon-bedrock/us.anthropic.claude-opus-4-6-v1", Fallbacks: []string{}},
			MaxTokens:      8192,
			TimeoutSeconds: 600,
			Thinking:       "off",
			Heartbeat:      configgen.Heartbeat{Every: "30m", ActiveHours: configgen.ActiveHours{Start: "00:00", End: "24:00"}},
		}},
		Cron: configgen.Cron{Enabled: true},
		Tools: configgen.Tools{
			Exec:  configgen.Exec{Security: "full", Host: "gateway", Allowlist: []string{}, TimeoutSec: 1800},
			Allow: []string{}, Deny: []string{},
			Web: configgen.Web{AllowPrivate: []string{},
				Fetch: configgen.WebFetch{Enabled: true, MaxChars: 20000, MaxCharsCap: 20000, MaxResponseBytes: 2000000,
					TimeoutSeconds: 30, MaxRedirects: 3, Readability: true},
				Search: configgen.WebSearch{Enabled: true, Provider: "brave", BaseURL: "https://api.search.brave.com",
					MaxResults: 5, TimeoutSeconds: 30}},
		},
		Session: configgen.Session{DMScope: "main", Reset: configgen.Reset{Mode: "daily", AtHour: 4}},
		Logging: configgen.Logging{Level: "info"},
	}
}

func intp(i int) *int { return &i }

func TestGenerateRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		o    configgen.Options
		want func(c *configgen.Config)
	}{
		{"defaults", configgen.Options{}, func(*configgen.Config) {}},
		{"fallbacks and model",
			configgen.Options{Model: "amazon-bedrock/us.amazon.nova-pro-v1:0", Fallbacks: []string{fallbackModel, "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"}},
			func(c *configgen.Config) {
				c.Agents.Defaults.Model = configgen.Model{Primary: "amazon-bedrock/us.amazon.nova-pro-v1:0",
					Fallbacks: []string{fallbackModel, "amazon-bedrock/us.anthropic.claude-opus-4-6-v1"}}
			}},
		{"idle reset with idle minutes",
			configgen.Options{ResetMode: "idle", ResetIdleMinutes: 45, ResetAtHour: intp(0)},
			func(c *configgen.Config) { c.Session.Reset = configgen.Reset{Mode: "idle", AtHour: 0, IdleMinutes: 45} }},
		{"exec allowlist security", configgen.Options{ExecSecurity: "allowlist"},
			func(c *configgen.Config) { c.Tools.Exec.Security = "allowlist" }},
		{"endpoint, region, origins, proxies, port, log level",
			configgen.Options{Endpoint: "https://bedrock-runtime.vpce.example:8443", Region: "ap-southeast-2",
				AllowedOrigins: []string{"https://app.skykoi.dev"}, TrustedProxies: []string{"10.0.0.0/8", "::1"},
				Port: 28789, LogLevel: "debug", IdleStopMinutes: 90, Workspace: "/srv/koi"},
			func(c *configgen.Config) {
				c.Models.Providers.AmazonBedrock = configgen.BedrockProvider{Region: "ap-southeast-2", Endpoint: "https://bedrock-runtime.vpce.example:8443"}
				c.Gateway.ControlUI.AllowedOrigins = []string{"https://app.skykoi.dev"}
				c.Gateway.TrustedProxies = []string{"10.0.0.0/8", "::1"}
				c.Gateway.Port = 28789
				c.Gateway.Idle.StopAfterMinutes = 90
				c.Logging.Level = "debug"
				c.Agents.Defaults.Workspace = "/srv/koi"
			}},
		{"no trusted proxies", configgen.Options{TrustedProxies: []string{}},
			func(c *configgen.Config) { c.Gateway.TrustedProxies = []string{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.TokenSha256 = goldenHash
			out, err := configgen.Generate(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := configgen.ParseEnv(out, noEnv)
			if err != nil {
				t.Fatalf("generated file does not parse: %v\n%s", err, out)
			}
			want := koiConfig()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parsed config differs\n got  %+v\n want %+v", got, want)
			}

			// Reading the file as a plain JSON tree and writing it back must
			// give the same bytes: what an editor round trip or config.set
			// rewrite would do.
			var tree map[string]any
			if err := json.Unmarshal(out, &tree); err != nil {
				t.Fatalf("generated file is not plain JSON: %v", err)
			}
			again, err := configgen.Marshal(tree)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, out) {
				t.Errorf("Marshal of the parsed tree is not stable:\n%s\n---\n%s", out, again)
			}
		})
	}
}

func TestGenerateInvalid(t *testing.T) {
	tests := []struct {
		name string
		o    configgen.Options
		path string
	}{
		{"non-bedrock model", configgen.Options{TokenSha256: goldenHash, Model: "openai/x"}, "agents.defaults.model.primary"},
		{"bad fallback", configgen.Options{TokenSha256: goldenHash, Fallbacks: []string{"claude"}}, "agents.defaults.model.fallbacks[0]"},
		{"token digest not hex", configgen.Options{TokenSha256: "nothex"}, "gateway.auth.tokenSha256"},
		{"no token digest", configgen.Options{}, "gateway.auth.tokenSha256"},
		{"reset hour 25", configgen.Options{TokenSha256: goldenHash, ResetAtHour: intp(25)}, "session.reset.atHour"},
		{"idle reset without minutes", configgen.Options{TokenSha256: goldenHash, ResetMode: "idle"}, "session.reset.idleMinutes"},
		{"negative port", configgen.Options{TokenSha256: goldenHash, Port: -1}, "gateway.port"},
		{"exec security enum", configgen.Options{TokenSha256: goldenHash, ExecSecurity: "all"}, "tools.exec.security"},
		{"relative workspace", configgen.Options{TokenSha256: goldenHash, Workspace: "koi"}, "agents.defaults.workspace"},
		{"bad region", configgen.Options{TokenSha256: goldenHash, Region: "useast1"}, "models.providers.amazon-bedrock.region"},
		{"bad origin", configgen.Options{TokenSha256: goldenHash, AllowedOrigins: []string{"app.skykoi.dev"}}, "gateway.controlUi.allowedOrigins[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := configgen.Generate(tt.o)
			if err == nil {
				t.Fatalf("no error; generated:\n%s", out)
			}
			if out != nil {
				t.Errorf("returned output alongside the error:\n%s", out)
			}
			var ce *configgen.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v does not wrap *configgen.Error", err)
			}
			var paths []string
			for _, is := range ce.Issues {
				paths = append(paths, is.Path)
			}
			if len(paths) != 1 || paths[0] != tt.path {
				t.Errorf("issue paths %q, want just %q", paths, tt.path)
			}
			if !strings.Contains(err.Error(), tt.path+": ") {
				t.Errorf("message does not name %s: %v", tt.path, err)
			}
			if strings.Contains(err.Error(), "nothex") {
				t.Errorf("a rejected digest was echoed: %v", err)
			}
		})
	}
}

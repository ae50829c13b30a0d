package configgen_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

func TestMergeProvisioned(t *testing.T) {
	const (
		oldHash = "1111111111111111111111111111111111111111111111111111111111111111"
		newHash = "2222222222222222222222222222222222222222222222222222222222222222"
	)
	provisioned := func(t *testing.T, o configgen.Options) []byte {
		t.Helper()
		if o.TokenSha256 == "" {
			o.TokenSha256 = newHash
		}
		b, err := configgen.Generate(o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// edited is a Koi's first config after the person's edits through
	// config.set or by hand.
	edited := func(t *testing.T, edit func(tree map[string]any)) []byte {
		t.Helper()
		tree, err := configgen.DecodeRaw(provisioned(t, configgen.Options{
			TokenSha256: oldHash, Model: "amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
			IdleStopMinutes: 60, Region: "us-west-2",
		}))
		if err != nil {
			t.Fatal(err)
		}
		configgen.Set(tree, "logging.level", "debug")
		configgen.Set(tree, "gateway.auth.rateLimit", map[string]any{"maxAttempts": 3})
		configgen.Set(tree, "tools.exec.security", "allowlist")
		configgen.Set(tree, "tools.exec.allowlist", []any{"git", "ls"})
		if edit != nil {
			edit(tree)
		}
		b, err := configgen.Marshal(tree)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	newOpts := configgen.Options{
		Model:     "amazon-bedrock/us.anthropic.claude-opus-4-1-20250805-v1:0",
		Fallbacks: []string{"amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		Region:    "eu-central-1",
	}

	tests := []struct {
		name        string
		kept        func(t *testing.T) []byte
		provisioned configgen.Options
		wantChanged []string
		want        map[string]any // path → value after the merge; nil = absent
	}{
		{
			name:        "new token, model, idle and region apply; the person's edits stay",
			kept:        func(t *testing.T) []byte { return edited(t, nil) },
			provisioned: newOpts,
			wantChanged: []string{"gateway.auth.tokenSha256", "gateway.idle.stopAfterMinutes", "agents.defaults.model", "models.providers.amazon-bedrock.region"},
			want: map[string]any{
				"gateway.auth.tokenSha256":               newHash,
				"gateway.idle.stopAfterMinutes":          "0",
				"agents.defaults.model.primary":          newOpts.Model,
				"agents.defaults.model.fallbacks.0":      newOpts.Fallbacks[0],
				"models.providers.amazon-bedrock.region": "eu-central-1",
				"logging.level":                          "debug",
				"gateway.auth.rateLimit.maxAttempts":     "3",
				"tools.exec.security":                    "allowlist",
				"tools.exec.allowlist.1":                 "ls",
			},
		},
		{
			name: "a plaintext token and a port the person set give way",
			kept: func(t *testing.T) []byte {
				return edited(t, func(tree map[string]any) {
					configgen.Set(tree, "gateway.port", 19000)
					configgen.Set(tree, "gateway.auth.token", "my-own-token-123456789")
					configgen.Set(tree, "gateway.auth.tokenSha256", nil)
				})
			},
			provisioned: configgen.Options{TokenSha256: oldHash, Model: "amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", IdleStopMinutes: 60, Region: "us-west-2"},
			wantChanged: []string{"gateway.port", "gateway.auth.token", "gateway.auth.tokenSha256"},
			want: map[string]any{
				"gateway.port":             "18789",
				"gateway.auth.token":       nil,
				"gateway.auth.tokenSha256": oldHash,
				"logging.level":            "debug",
			},
		},
		{
			name: "an endpoint the provisioner no longer sets is removed",
			kept: func(t *testing.T) []byte {
				return edited(t, func(tree map[string]any) {
					configgen.Set(tree, "models.providers.amazon-bedrock.endpoint", "https://bedrock.example.test")
				})
			},
			provisioned: configgen.Options{TokenSha256: oldHash, Model: "amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", IdleStopMinutes: 60, Region: "us-west-2"},
			wantChanged: []string{"models.providers.amazon-bedrock.endpoint"},
			want: map[string]any{
				"models.providers.amazon-bedrock.endpoint": nil,
				"models.providers.amazon-bedrock.region":   "us-west-2",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept := tc.kept(t)
			merged, changed, err := configgen.MergeProvisioned(kept, provisioned(t, tc.provisioned))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(changed, tc.wantChanged) {
				t.Errorf("changed = %q, want %q", changed, tc.wantChanged)
			}
			if _, err := configgen.Parse(merged); err != nil {
				t.Fatalf("merged config is invalid: %v\n%s", err, merged)
			}
			tree, err := configgen.DecodeRaw(merged)
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.want {
				got, ok := getIndexed(tree, path)
				switch {
				case want == nil && ok:
					t.Errorf("%s = %v, want it removed", path, got)
				case want != nil && (!ok || stringOf(got) != want):
					t.Errorf("%s = %v (present %v), want %v", path, got, ok, want)
				}
			}
		})
	}
}

func TestMergeProvisionedUnchangedKeepsBytes(t *testing.T) {
	prov, err := configgen.Generate(configgen.Options{TokenSha256: strings.Repeat("a", 64), Region: "us-west-2"})
	if err != nil {
		t.Fatal(err)
	}
	// A hand-edited file with comments and JSON5 syntax, same provisioned values.
	kept := bytes.Replace(prov, []byte(`"logging": {`), []byte("// I like it quiet\n  \"logging\": {"), 1)
	kept = bytes.Replace(kept, []byte(`"level": "info"`), []byte(`level: 'warn',`), 1)
	if _, err := configgen.Parse(kept); err != nil {
		t.Fatalf("test input is invalid: %v\n%s", err, kept)
	}
	merged, changed, err := configgen.MergeProvisioned(kept, prov)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 || !bytes.Equal(merged, kept) {
		t.Errorf("nothing to merge, but changed = %q and the bytes differ:\n%s", changed, merged)
	}
}

func TestMergeProvisionedErrors(t *testing.T) {
	prov, err := configgen.Generate(configgen.Options{TokenSha256: strings.Repeat("a", 64)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		kept, provisioned []byte
		want              string
		configError       bool
	}{
		{"kept is not JSON5", []byte("{gateway: "), prov, "reading the kept config: ", true},
		{"provisioned is not JSON5", prov, []byte("[1,"), "reading the provisioned config: ", true},
		{"provisioned is invalid", prov, []byte(`{"gateway": {"port": 0}}`), "the provisioned config is invalid: ", true},
		{
			// A bad edit of the person's own: the merged file would not
			// start, so it is refused rather than written.
			name:        "merged result is invalid",
			kept:        bytes.Replace(prov, []byte(`"level": "info"`), []byte(`"level": "loud"`), 1),
			provisioned: bytes.Replace(prov, []byte(strings.Repeat("a", 64)), []byte(strings.Repeat("b", 64)), 1),
			want:        "the merged config would be invalid (gateway.auth.tokenSha256 changed): invalid config:\n  logging.level: ",
			configError: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			merged, _, err := configgen.MergeProvisioned(tc.kept, tc.provisioned)
			if err == nil {
				t.Fatalf("no error; merged:\n%s", merged)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want prefix %q", err, tc.want)
			}
			var ce *configgen.Error
			if errors.As(err, &ce) != tc.configError {
				t.Errorf("errors.As(*configgen.Error) = %v, want %v", !tc.configError, tc.configError)
			}
			if merged != nil {
				t.Error("an error came with bytes to write")
			}
		})
	}
}

// getIndexed is configgen.Get that also steps into arrays by index.
func getIndexed(tree map[string]any, path string) (any, bool) {
	var cur any = tree
	for _, p := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[p]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i := int(p[0] - '0')
			if len(p) != 1 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func stringOf(v any) string { return fmt.Sprint(v) }

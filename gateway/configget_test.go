package gateway

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// TestConfigGetValidates rewrites the config file behind the running
// gateway's back and checks that config.get judges the file with the full
// validator, not only its syntax.
func TestConfigGetValidates(t *testing.T) {
	hashLine := fmt.Sprintf(`tokenSha256: %q`, configgen.HashSecret(testToken))
	tests := []struct {
		name       string
		file       string
		valid      bool
		wantConfig bool
		wantIssues []string // "path: message"
	}{
		{
			name:       "valid file",
			file:       `{gateway: {mode: "local", auth: {` + hashLine + `}}, logging: {level: "warn"}}`,
			valid:      true,
			wantConfig: true,
		},
		{
			name:       "well-formed but invalid",
			file:       `{gateway: {mode: "local", port: 70000, prot: 1, auth: {` + hashLine + `}}, session: {dmScope: "per-peer"}}`,
			wantConfig: true,
			wantIssues: []string{
				"gateway.port: must be an integer from 1 to 65535, got 70000",
				"gateway.prot: unknown key (did you mean gateway.port?)",
				`session.dmScope: "per-peer" is not supported by SkyKoi: it has no messaging channels, so there are no direct messages to route and every conversation uses the main session; set "main" or remove the key`,
			},
		},
		{
			name:       "missing required key",
			file:       `{gateway: {auth: {` + hashLine + `}}}`,
			wantConfig: true,
			wantIssues: []string{`gateway.mode: is required (set it to "local")`},
		},
		{
			name:       "syntax error",
			file:       `{gateway: {mode: "local",`,
			wantIssues: nil, // a syntax issue has a line, not a path; checked below
		},
	}
	ts := startServer(t)
	c := adminClient(t, ts)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(ts.opts.ConfigPath, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			res := c.call("config.get", nil)
			if !res.OK {
				t.Fatalf("config.get failed: %+v", res.Error)
			}
			got := unmarshal[struct {
				configGet
				Issues []configgen.Issue `json:"issues"`
			}](t, res.Payload)
			if got.Valid != tt.valid {
				t.Errorf("valid = %v, want %v (issues %v)", got.Valid, tt.valid, got.Issues)
			}
			if got.Hash != hashHex([]byte(tt.file)) || got.Path != ts.opts.ConfigPath {
				t.Errorf("path %q hash %q do not describe the file on disk", got.Path, got.Hash)
			}
			if (got.Config != nil) != tt.wantConfig {
				t.Errorf("config present = %v, want %v", got.Config != nil, tt.wantConfig)
			}
			if tt.wantConfig {
				if v, _ := configgen.Get(got.Config, "gateway.auth.tokenSha256"); v != configgen.Redacted {
					t.Errorf("tokenSha256 shown as %v", v)
				}
			}
			if tt.name == "syntax error" {
				if len(got.Issues) != 1 || got.Issues[0].Line == 0 {
					t.Errorf("issues %+v, want one syntax issue with a line", got.Issues)
				}
				return
			}
			var issues []string
			for _, is := range got.Issues {
				issues = append(issues, is.Path+": "+is.Message)
			}
			if !slices.Equal(issues, tt.wantIssues) {
				t.Errorf("issues\n got  %q\n want %q", issues, tt.wantIssues)
			}
		})
	}
}

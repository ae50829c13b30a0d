package cloudinit_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
)

func TestGolden(t *testing.T) {
	p := renderParts(t, realistic())
	golden(t, "user-data.golden.yaml", p.CloudConfig)
	golden(t, "nginx-site.golden.conf", p.NginxSite)
	golden(t, "skykoi-gateway.golden.service", p.Unit)
	golden(t, "skykoi-console.golden.service", p.ConsoleUnit)
	golden(t, "skykoi-update.golden.path", p.UpdatePath)
	golden(t, "skykoi-update.golden.service", p.UpdateService)
	golden(t, "bootstrap.golden.sh", p.Bootstrap)
}

func TestRenderIsDeterministic(t *testing.T) {
	o := realistic()
	o.SeedFiles = map[string]string{"USER.md": "# USER.md\n\nAda.\n", "NOTES.md": "notes\n", "ZED.md": "z\n"}
	first, err := cloudinit.Render(o)
	if err != nil {
		t.Fatal(err)
	}
	// Map iteration order differs between runs; the bytes must not.
	for range 20 {
		again, err := cloudinit.Render(o)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("the same options rendered different user-data")
		}
	}
}

func TestUserDataFitsEC2Limit(t *testing.T) {
	o := realistic()
	ud, err := cloudinit.Render(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(ud) > cloudinit.MaxUserDataSize {
		t.Fatalf("user-data is %d bytes, over EC2's %d", len(ud), cloudinit.MaxUserDataSize)
	}
	p := renderParts(t, o)
	t.Logf("user-data: %d bytes sent, %d plain", len(ud), len(p.CloudConfig))
	// Over the limit it must be gzip that cloud-init can read back exactly.
	if len(p.CloudConfig) > cloudinit.MaxUserDataSize {
		if got := gunzip(t, ud); !bytes.Equal(got, p.CloudConfig) {
			t.Fatal("gzipped user-data does not decompress to the cloud-config")
		}
	} else if !bytes.Equal(ud, p.CloudConfig) {
		t.Fatal("user-data that fits was not sent as plain text")
	}
}

func TestGzipChoice(t *testing.T) {
	forced := realistic()
	forced.Gzip = true
	ud, err := cloudinit.Render(forced)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gunzip(t, ud), renderParts(t, forced).CloudConfig) {
		t.Fatal("forced gzip does not decompress to the cloud-config")
	}

	if out, err := cloudinit.Finish([]byte("#cloud-config\n"), false); err != nil || string(out) != "#cloud-config\n" {
		t.Fatalf("a small document must pass through unchanged, got %q, %v", out, err)
	}

	// Incompressible seed content cannot be squeezed under the limit:
	// Render must refuse rather than send user-data EC2 rejects.
	huge := realistic()
	var b strings.Builder
	x := uint32(1)
	for b.Len() < 40000 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteByte(byte('!' + x%90))
	}
	huge.SeedFiles = map[string]string{"NOISE.md": b.String() + "\n"}
	if _, err := cloudinit.Render(huge); err == nil || !strings.Contains(err.Error(), "over EC2's 16384-byte limit") {
		t.Fatalf("want an over-the-limit error, got %v", err)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("user-data is not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNoPlaintextSecret(t *testing.T) {
	p := renderParts(t, realistic())
	for name, b := range map[string][]byte{"cloud-config": p.CloudConfig, "config": p.Config} {
		if bytes.Contains(b, []byte(testToken)) {
			t.Errorf("%s contains the plaintext token", name)
		}
	}
	if !bytes.Contains(p.Config, []byte(configgen.HashSecret(testToken))) {
		t.Error("the config does not carry the token's SHA-256")
	}

	// A ready-made config with a plaintext secret is refused.
	for _, cfg := range []string{
		`{gateway: {mode: "local", auth: {token: "` + testToken + `"}}, agents: {defaults: {workspace: "/home/ubuntu/koi"}}}`,
		`{gateway: {mode: "local", auth: {mode: "password", password: "` + testToken + `"}}, agents: {defaults: {workspace: "/home/ubuntu/koi"}}}`,
	} {
		o := realistic()
		o.Config = []byte(cfg)
		_, err := cloudinit.Render(o)
		if err == nil || !strings.Contains(err.Error(), "plaintext") {
			t.Errorf("want a plaintext-secret error for %s, got %v", cfg, err)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Error("the error repeats the secret")
		}
	}
}

func TestRenderedConfigOption(t *testing.T) {
	digest := configgen.HashSecret(testToken)
	cfg := []byte(`{gateway: {mode: "local", port: 19001, auth: {tokenSha256: "` + digest + `"}}, agents: {defaults: {workspace: "/home/ubuntu/koi"}}}` + "\n")
	o := realistic()
	o.Config = cfg
	p := renderParts(t, o)
	if !bytes.Equal(p.Config, cfg) {
		t.Error("a ready-made config must be written as given")
	}
	// Its port is where nginx proxies and where the bootstrap waits.
	if !bytes.Contains(p.NginxSite, []byte("proxy_pass http://127.0.0.1:19001;")) {
		t.Error("nginx does not proxy to the config's port")
	}
	if !bytes.Contains(p.Bootstrap, []byte("GATEWAY_PORT=19001")) {
		t.Error("the bootstrap does not wait on the config's port")
	}

	for name, c := range map[string]string{
		"auth none":   `{gateway: {mode: "local", auth: {mode: "none"}}, agents: {defaults: {workspace: "/home/ubuntu/koi"}}}`,
		"workspace":   `{gateway: {mode: "local", auth: {tokenSha256: "` + digest + `"}}, agents: {defaults: {workspace: "/srv/koi"}}}`,
		"invalid":     `{gateway: {mode: "remote"}}`,
		"not json5 ":  `{`,
		"token route": `{gateway: {mode: "local"}}`, // token only from the environment, which the unit does not set
	} {
		o := realistic()
		o.Config = []byte(c)
		if _, err := cloudinit.Render(o); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*cloudinit.Options)
		want   string // substring of the error; "" = valid
	}{
		{"realistic", func(*cloudinit.Options) {}, ""},
		{"old-style volume id", func(o *cloudinit.Options) { o.DataVolumeID = "vol-0a1b2c3d" }, ""},
		{"url artifact", func(o *cloudinit.Options) {
			o.Artifact = cloudinit.Artifact{URL: "https://releases.skykoi.dev/v1/skykoi-linux-arm64"}
		}, ""},
		{"loopback nginx", func(o *cloudinit.Options) { o.ListenAddress = "127.0.0.1"; o.HTTPPort = 18080; o.HTTPSPort = 18443 }, ""},
		{"no volume", func(o *cloudinit.Options) { o.DataVolumeID = "" }, "DataVolumeID"},
		{"bad volume", func(o *cloudinit.Options) { o.DataVolumeID = "vol-XYZ" }, "DataVolumeID"},
		{"bad sha", func(o *cloudinit.Options) { o.BinarySHA256 = strings.Repeat("A", 64) }, "BinarySHA256"},
		{"no artifact", func(o *cloudinit.Options) { o.Artifact = cloudinit.Artifact{} }, "needs a source"},
		{"both artifacts", func(o *cloudinit.Options) { o.Artifact.URL = "https://x.example/skykoi" }, "not both"},
		{"dotted bucket", func(o *cloudinit.Options) { o.Artifact.S3Bucket = "a.b.c" }, "S3Bucket"},
		{"key with space", func(o *cloudinit.Options) { o.Artifact.S3Key = "a b" }, "S3Key"},
		{"key with dotdot", func(o *cloudinit.Options) { o.Artifact.S3Key = "a/../b" }, "S3Key"},
		{"no region", func(o *cloudinit.Options) { o.Artifact.Region = "" }, "Region"},
		{"endpoint with path", func(o *cloudinit.Options) { o.Artifact.S3Endpoint = "http://127.0.0.1:9000/x" }, "S3Endpoint"},
		{"quote in url", func(o *cloudinit.Options) {
			o.Artifact = cloudinit.Artifact{URL: "https://x.example/a'b"}
		}, "Artifact.URL"},
		{"ftp url", func(o *cloudinit.Options) { o.Artifact = cloudinit.Artifact{URL: "ftp://x.example/skykoi"} }, "Artifact.URL"},
		{"metadata with path", func(o *cloudinit.Options) { o.MetadataEndpoint = "http://169.254.169.254/latest" }, "MetadataEndpoint"},
		{"bad hostname", func(o *cloudinit.Options) { o.Hostname = "Koi_Ada" }, "Hostname"},
		{"logs on", func(o *cloudinit.Options) { o.Logs = cloudinit.Logs{Group: "/skykoi/koi-ada", Region: "us-west-2"} }, ""},
		{"logs group with space", func(o *cloudinit.Options) { o.Logs = cloudinit.Logs{Group: "/skykoi/koi ada", Region: "us-west-2"} }, "Logs.Group"},
		{"logs without region", func(o *cloudinit.Options) { o.Logs = cloudinit.Logs{Group: "/skykoi/koi-ada"} }, "Logs.Region"},
		{"seed path", func(o *cloudinit.Options) { o.SeedFiles = map[string]string{"../x.md": "x"} }, "SeedFiles"},
		{"hidden seed", func(o *cloudinit.Options) { o.SeedFiles = map[string]string{".profile": "x"} }, "SeedFiles"},
		{"port range", func(o *cloudinit.Options) { o.HTTPSPort = 70000 }, "HTTPSPort"},
		{"same ports", func(o *cloudinit.Options) { o.HTTPPort = 8443; o.HTTPSPort = 8443 }, "both 8443"},
		{"listen name", func(o *cloudinit.Options) { o.ListenAddress = "localhost" }, "ListenAddress"},
		{"relative tls dir", func(o *cloudinit.Options) { o.TLSDir = "tls" }, "TLSDir"},
		{"binary path with space", func(o *cloudinit.Options) { o.BinaryPath = "/usr/local/bin/sky koi" }, "BinaryPath"},
		{"other workspace", func(o *cloudinit.Options) { o.ConfigOptions.Workspace = "/srv/koi" }, "Workspace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := realistic()
			tt.change(&o)
			err := o.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("want an error naming %q, got %v", tt.want, err)
			}
			if _, rerr := cloudinit.Render(o); (rerr == nil) != (err == nil) {
				t.Fatalf("Render and Validate disagree: %v vs %v", rerr, err)
			}
		})
	}

	// Every problem at once, not just the first.
	err := cloudinit.Options{}.Validate()
	for _, want := range []string{"DataVolumeID", "BinarySHA256", "Artifact"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %s among the problems, got %v", want, err)
		}
	}
}

// TestCloudConfigRoundTrip reads the document back with PyYAML, the parser
// cloud-init itself uses, and checks every file arrives byte for byte,
// including content that cannot go in a literal block.
func TestCloudConfigRoundTrip(t *testing.T) {
	python := requireTool(t, "python3")
	o := realistic()
	o.SeedFiles = map[string]string{
		"USER.md":      "# USER.md\n\nAda, who writes\ttabs.\n",
		"LEADING.md":   "  indented first line\n",
		"CRLF.md":      "windows\r\nline endings\r\n",
		"NOEOL.md":     "no newline at the end",
		"TRAILING.md":  "several newlines\n\n\n",
		"BLANKS.md":    "a line of spaces\n   \nbelow\n",
		"UNICODE.md":   "Koi 🐟 ünïcode — fine\n",
		"SEPARATOR.md": "yaml 1.1 line separator\u2028here\n",
		"NEL.md":       "next line\u0085here\n",
		"EMPTY.md":     "",
		"HASH.md":      "#!/bin/sh\n# not a YAML comment\n'quoted' \"double\" key: value\n- dash\n",
	}
	p := renderParts(t, o)
	path := writeTemp(t, t.TempDir(), "user-data.yaml", p.CloudConfig, 0o644)
	script := `import json, sys, yaml, base64
doc = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
for f in doc["write_files"]:
    c = f.get("content", "")
    if f.get("encoding") == "b64":
        f["content"] = base64.b64decode(c).decode("utf-8")
json.dump(doc, sys.stdout)`
	out, err := exec.Command(python, "-c", script, path).Output()
	if err != nil {
		t.Fatalf("PyYAML could not read the cloud-config: %v", err)
	}
	var doc struct {
		User       map[string]any `json:"user"`
		Hostname   string         `json:"hostname"`
		WriteFiles []struct {
			Path, Owner, Permissions, Content, Encoding string
			Defer                                       bool
		} `json:"write_files"`
		Runcmd [][]string `json:"runcmd"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/etc/nginx/sites-available/skykoi":          string(p.NginxSite),
		"/etc/systemd/system/skykoi-gateway.service": string(p.Unit),
		"/etc/systemd/system/skykoi-console.service": string(p.ConsoleUnit),
		"/etc/systemd/system/skykoi-update.path":     string(p.UpdatePath),
		"/etc/systemd/system/skykoi-update.service":  string(p.UpdateService),
		"/usr/local/lib/skykoi/bootstrap":            string(p.Bootstrap),
		"/home/ubuntu/.skykoi/skykoi.json":           string(p.Config),
	}
	for name, c := range p.Seeds {
		want[filepath.Join("/var/lib/skykoi/seed", name)] = string(c)
	}
	seen := map[string]bool{}
	for _, f := range doc.WriteFiles {
		seen[f.Path] = true
		w, ok := want[f.Path]
		if !ok {
			t.Errorf("unexpected file %s", f.Path)
			continue
		}
		if f.Content != w {
			t.Errorf("%s: content changed in YAML: got %q, want %q", f.Path, f.Content, w)
		}
		isConfig := f.Path == "/home/ubuntu/.skykoi/skykoi.json"
		// Files owned by ubuntu must wait for the user to exist.
		if isConfig != f.Defer || isConfig != (f.Owner == "ubuntu:ubuntu") {
			t.Errorf("%s: defer=%v owner=%q", f.Path, f.Defer, f.Owner)
		}
		if isConfig && f.Permissions != "0600" {
			t.Errorf("the config must be 0600, got %s", f.Permissions)
		}
	}
	for path := range want {
		if !seen[path] {
			t.Errorf("%s is not written", path)
		}
	}
	if doc.User["name"] != "ubuntu" || doc.User["sudo"] != "ALL=(ALL) NOPASSWD:ALL" {
		t.Errorf("user: %v", doc.User)
	}
	if doc.Hostname != "koi-ada" {
		t.Errorf("hostname: %q", doc.Hostname)
	}
	if len(doc.Runcmd) != 1 || len(doc.Runcmd[0]) != 1 || doc.Runcmd[0][0] != "/usr/local/lib/skykoi/bootstrap" {
		t.Errorf("runcmd: %v", doc.Runcmd)
	}
	if bytes.Contains(p.CloudConfig, []byte("packages:")) {
		t.Error("the cloud-config must not install packages itself")
	}
}

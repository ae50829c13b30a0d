package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// These tests run the real binary, so they cover what an in-process call of
// run would miss: os.Exit statuses, flag parsing by the real main, and what
// actually reaches stdout and stderr.

// Linker-stamped identity, checked by the version test to prove the
// Makefile's -X flags reach the binary.
const (
	testVersion = "v0.0.0-clitest"
	testCommit  = "c0ffee0123"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skykoi-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "skykoi")
	pkg := "github.com/skykoi/skykoi/internal/version"
	// -buildvcs=false: the test must not depend on git being usable in the
	// checkout; the commit comes from -X as in `make build`.
	build := exec.Command("go", "build", "-buildvcs=false",
		"-ldflags", "-X "+pkg+".Version="+testVersion+" -X "+pkg+".Commit="+testCommit,
		"-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building skykoi:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// skykoi runs the binary with a clean environment: no SKYKOI_* variable of
// the developer's can change the outcome, and HOME points at a temp dir so
// no default path can touch the real ~/.skykoi.
func skykoi(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SKYKOI_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running skykoi: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var digest = configgen.HashSecret("a gateway token used only by these tests")

func TestConfigValidate(t *testing.T) {
	valid := writeFile(t, "valid.json", `{gateway: {mode: "local", auth: {tokenSha256: "`+digest+`"}}}`)
	// Three independent problems: the command must report all of them, not
	// stop at the first. The messages are the examples CONFIG.md promises.
	threeBad := writeFile(t, "bad.json", `{
  gateway: {mode: "local", port: "18789", auth: {tokenSha256: "`+digest+`"}},
  exec: {security: "full"},
  tools: {exec: {security: "all"}},
}`)
	missing := filepath.Join(t.TempDir(), "nope.json")

	tests := []struct {
		name       string
		env        []string
		args       []string
		code       int
		stdout     string
		stderr     string // exact, when wantErrSub is empty
		wantErrSub string
	}{
		{"valid file", nil, []string{"config", "validate", valid}, 0, valid + ": valid\n", "", ""},
		{"valid file from SKYKOI_CONFIG_PATH", []string{"SKYKOI_CONFIG_PATH=" + valid}, []string{"config", "validate"}, 0, valid + ": valid\n", "", ""},
		{"three problems", nil, []string{"config", "validate", threeBad}, 78, "",
			threeBad + ": 3 problem(s):\n" +
				"  exec: unknown key (did you mean tools.exec?)\n" +
				"  gateway.port: must be an integer from 1 to 65535, got \"18789\"\n" +
				"  tools.exec.security: must be one of deny, allowlist, full; got \"all\"\n", ""},
		{"missing file", nil, []string{"config", "validate", missing}, 1, "", "", "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := skykoi(t, "", tt.env, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if r.stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tt.stdout)
			}
			if tt.wantErrSub != "" {
				if !strings.Contains(r.stderr, tt.wantErrSub) {
					t.Errorf("stderr %q does not contain %q", r.stderr, tt.wantErrSub)
				}
			} else if r.stderr != tt.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, tt.stderr)
			}
		})
	}
}

func TestConfigGenerateWritesOnlyTheDigest(t *testing.T) {
	const token1 = "tok1-Hq7Vw3Zr9Lm2Xc5Bn8Kp4Jd6Fs1Ga0Ty"
	const token2 = "tok2-Ue4Ri8Oa2Sd6Fg0Hj3Kl7Zx1Cv5Bn9Mq"
	path := filepath.Join(t.TempDir(), "sub", "skykoi.json")
	noLeak := func(t *testing.T, r result, token string, file []byte) {
		t.Helper()
		for name, s := range map[string]string{"stdout": r.stdout, "stderr": r.stderr, "file": string(file)} {
			if strings.Contains(s, token) {
				t.Errorf("the token appears in %s", name)
			}
		}
	}
	load := func(t *testing.T) configgen.Config {
		t.Helper()
		// Load reads the process environment; a token there would make a
		// correct file look ambiguous.
		t.Setenv(configgen.EnvToken, "")
		c, err := configgen.Load(path)
		if err != nil {
			t.Fatalf("written file does not load: %v", err)
		}
		return c
	}

	r := skykoi(t, token1+"\n", nil, "config", "generate", "--token-stdin", "-o", path)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %o, want 600", perm)
	}
	if got := load(t).Gateway.Auth.TokenSha256; got != configgen.HashSecret(token1) {
		t.Errorf("tokenSha256 %s, want the digest of the token given on stdin", got)
	}
	noLeak(t, r, token1, first)

	// A second run must not clobber a Koi's config by accident.
	r = skykoi(t, token2+"\n", nil, "config", "generate", "--token-stdin", "-o", path)
	if r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("without --force: exit %d, stderr %q; want 1 and a hint to use --force", r.code, r.stderr)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, first) {
		t.Error("a refused generate changed the file")
	}
	noLeak(t, r, token2, nil)

	r = skykoi(t, token2+"\n", nil, "config", "generate", "--token-stdin", "--force", "-o", path)
	if r.code != 0 {
		t.Fatalf("with --force: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if got := load(t).Gateway.Auth.TokenSha256; got != configgen.HashSecret(token2) {
		t.Errorf("after --force, tokenSha256 %s, want the new token's digest", got)
	}
	second, _ := os.ReadFile(path)
	noLeak(t, r, token2, second)
}

func TestConfigGenerateUsageErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no token flag", "", []string{"config", "generate", "-o", "-"}, "a token is required: --token-stdin"},
		{"both token flags", "x\n", []string{"config", "generate", "--token-stdin", "--token-sha256", digest, "-o", "-"}, "not both"},
		{"unknown flag", "", []string{"config", "generate", "--tokn-stdin"}, "unknown flag: --tokn-stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := skykoi(t, tt.stdin, nil, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2 (usage)", r.code)
			}
			if !strings.HasPrefix(r.stderr, "skykoi: ") || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q, want a skykoi: line containing %q", r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("nothing should reach stdout on a usage error, got %q", r.stdout)
			}
		})
	}
}

func TestConfigSchema(t *testing.T) {
	r := skykoi(t, "", nil, "config", "schema")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if r.stdout != string(configgen.SchemaJSON()) {
		t.Errorf("printed schema differs from configgen.SchemaJSON():\n%s", r.stdout)
	}
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, stdout string)
	}{
		{"text", []string{"version"}, func(t *testing.T, stdout string) {
			want := fmt.Sprintf("skykoi %s (commit %s, %s)\n", testVersion, testCommit, runtime.Version())
			if !strings.HasPrefix(stdout, "skykoi ") || stdout != want {
				t.Errorf("got %q, want %q", stdout, want)
			}
		}},
		{"json", []string{"version", "--json"}, func(t *testing.T, stdout string) {
			var v map[string]any
			if err := json.Unmarshal([]byte(stdout), &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout)
			}
			want := map[string]any{"version": testVersion, "commit": testCommit, "goVersion": runtime.Version()}
			if !reflect.DeepEqual(v, want) {
				t.Errorf("got %v, want %v", v, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := skykoi(t, "", nil, tt.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			tt.check(t, r.stdout)
		})
	}
}

func TestConfigMerge(t *testing.T) {
	generate := func(t *testing.T, args ...string) []byte {
		t.Helper()
		r := skykoi(t, "", nil, append([]string{"config", "generate", "-o", "-", "--token-sha256"}, args...)...)
		if r.code != 0 {
			t.Fatalf("generate: exit %d: %s", r.code, r.stderr)
		}
		return []byte(r.stdout)
	}
	oldHash, newHash := strings.Repeat("1", 64), strings.Repeat("2", 64)
	first := generate(t, oldHash, "--idle-stop-minutes", "60")
	// The person's edit on the running Koi: a comment and debug logging.
	edited := bytes.Replace(first, []byte(`"level": "info"`), []byte(`"level": "debug" // chatty`), 1)
	if bytes.Equal(edited, first) {
		t.Fatal("the test's edit did not apply")
	}

	t.Run("new provisioned values apply, the edit stays", func(t *testing.T) {
		dir := t.TempDir()
		kept := writeFileIn(t, dir, "skykoi.json", edited, 0o640)
		prov := writeFileIn(t, dir, "skykoi.json.provisioned", generate(t, newHash, "--model", "amazon-bedrock/us.anthropic.claude-opus-4-1-20250805-v1:0"), 0o600)
		r := skykoi(t, "", nil, "config", "merge", "--from", prov, kept)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		want := kept + ": took gateway.auth.tokenSha256, gateway.idle.stopAfterMinutes, agents.defaults.model from " + prov + "; the previous file is " + kept + ".before-merge\n"
		if r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
		cfg, err := configgen.Load(kept)
		if err != nil {
			t.Fatalf("merged file: %v", err)
		}
		if cfg.Gateway.Auth.TokenSha256 != newHash || cfg.Logging.Level != "debug" || cfg.Gateway.Idle.StopAfterMinutes != 0 ||
			cfg.Agents.Defaults.Model.Primary != "amazon-bedrock/us.anthropic.claude-opus-4-1-20250805-v1:0" {
			t.Errorf("merged: token %s, level %s, idle %d, model %s", cfg.Gateway.Auth.TokenSha256, cfg.Logging.Level,
				cfg.Gateway.Idle.StopAfterMinutes, cfg.Agents.Defaults.Model.Primary)
		}
		if fi, err := os.Stat(kept); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("mode after the merge: %v %v, want 0640 kept", fi.Mode(), err)
		}
		if got, _ := os.ReadFile(kept + ".before-merge"); !bytes.Equal(got, edited) {
			t.Errorf("the backup is not the file as it was:\n%s", got)
		}
	})

	t.Run("nothing to take leaves the file alone", func(t *testing.T) {
		dir := t.TempDir()
		kept := writeFileIn(t, dir, "skykoi.json", edited, 0o600)
		prov := writeFileIn(t, dir, "skykoi.json.provisioned", first, 0o600)
		r := skykoi(t, "", nil, "config", "merge", "--from", prov, kept)
		if r.code != 0 || r.stdout != kept+" already has the provisioned values\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if got, _ := os.ReadFile(kept); !bytes.Equal(got, edited) {
			t.Error("the file changed")
		}
		if _, err := os.Stat(kept + ".before-merge"); !os.IsNotExist(err) {
			t.Errorf("a backup was written: %v", err)
		}
	})

	t.Run("an invalid result is refused and nothing is written", func(t *testing.T) {
		dir := t.TempDir()
		bad := bytes.Replace(edited, []byte(`"level": "debug"`), []byte(`"level": "loud"`), 1)
		kept := writeFileIn(t, dir, "skykoi.json", bad, 0o600)
		prov := writeFileIn(t, dir, "skykoi.json.provisioned", generate(t, newHash, "--idle-stop-minutes", "60"), 0o600)
		r := skykoi(t, "", nil, "config", "merge", "--from", prov, kept)
		if r.code != 78 {
			t.Errorf("exit %d, want 78", r.code)
		}
		for _, want := range []string{"not merged: the merged config would be invalid (gateway.auth.tokenSha256 changed)", "logging.level: must be one of"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr %q does not say %q", r.stderr, want)
			}
		}
		if got, _ := os.ReadFile(kept); !bytes.Equal(got, bad) {
			t.Error("the file changed")
		}
	})

	t.Run("usage", func(t *testing.T) {
		r := skykoi(t, "", nil, "config", "merge", filepath.Join(t.TempDir(), "x.json"))
		if r.code != 2 || !strings.Contains(r.stderr, "--from PROVISIONED is required") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func writeFileIn(t *testing.T, dir, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

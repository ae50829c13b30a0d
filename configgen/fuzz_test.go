package configgen_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/configgen"
)

// FuzzParse checks the validator's contract on arbitrary input: it never
// panics, a config it accepts survives being written back out (the path
// config.set and the generator take), and a config it rejects comes back as
// a well-formed *Error.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "fuzz-seeds", "*.json5"))
	if err != nil {
		f.Fatal(err)
	}
	// Without the seed files the fuzzer starts from almost nothing and the
	// seed run in `make test` checks little; a vanished directory must show.
	if len(seeds) < 5 {
		f.Fatalf("found %d seed files in testdata/fuzz-seeds, want at least 5", len(seeds))
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"{}",
		"null",
		`{gateway: {mode: "local", auth: {mode: "none"}}}`,
		`{gateway: {mode: "local", bind: "custom", customBindHost: "fe80::1%eth0", auth: {token: "0123456789abcdef0123456789abcdef"}}}`,
		"{gateway: {mode: 'local', auth: {tokenSha256: '" + goldenHash + "'}}, session: {reset: {mode: 'idle'}}}",
		"/* unterminated comment",
		"{\"a\": \"\\ud800\"}",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := configgen.ParseEnv(data, noEnv)
		if err != nil {
			var ce *configgen.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, not *configgen.Error: %v", err, err)
			}
			if len(ce.Issues) == 0 {
				t.Fatal("*Error with no issues")
			}
			for _, is := range ce.Issues {
				if is.String() == "" || is.Message == "" {
					t.Errorf("empty issue: %#v", is)
				}
			}
			if !sort.SliceIsSorted(ce.Issues, func(i, j int) bool { return ce.Issues[i].Path < ce.Issues[j].Path }) {
				t.Errorf("issues not sorted by path: %v", ce.Issues)
			}
			return
		}

		// Write the accepted config back out the way a rewrite would: typed
		// Config to a generic tree, then configgen.Marshal.
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var tree map[string]any
		if err := json.Unmarshal(raw, &tree); err != nil {
			t.Fatal(err)
		}
		out, err := configgen.Marshal(tree)
		if err != nil {
			t.Fatal(err)
		}
		again, err := configgen.ParseEnv(out, noEnv)
		if err != nil {
			t.Fatalf("an accepted config, written back, is rejected: %v\ninput: %q\nwritten: %s", err, data, out)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the config\n first  %+v\n second %+v", c, again)
		}
	})
}

// TestIntegersKeepExactly pins the fix for what FuzzParse's round trip
// exposed (testdata/fuzz/FuzzParse/int-beyond-2pow53): an integer above 2^53
// was accepted, then changed value once the config passed through a JSON
// double on its way back out.
func TestIntegersKeepExactly(t *testing.T) {
	const msg = "gateway.auth.rateLimit.lockoutMs: must be an integer from 0 to 86400000, got "
	tests := []struct {
		lockout string
		want    string // "" = valid
	}{
		{"86400000", ""},
		{"0x5265C00", ""}, // the same in hex
		{"86400001", msg + "86400001"},
		{"9007199254740993", msg + "9007199254740993"},
		{"0x20000000000000", msg + "0x20000000000000"},
		{"1e16", msg + "1e16"},
		{"99999999999999999999999", msg + "99999999999999999999999"},
		{"-9007199254740993", msg + "-9007199254740993"},
	}
	for _, tt := range tests {
		t.Run(tt.lockout, func(t *testing.T) {
			in := `{gateway: {mode: "local", auth: {tokenSha256: "` + goldenHash + `", rateLimit: {lockoutMs: ` + tt.lockout + `}}}}`
			c, err := configgen.ParseEnv([]byte(in), noEnv)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Gateway.Auth.RateLimit.LockoutMs != 86400000 {
					t.Errorf("lockoutMs %d", c.Gateway.Auth.RateLimit.LockoutMs)
				}
				return
			}
			var ce *configgen.Error
			if !errors.As(err, &ce) || len(ce.Issues) != 1 || ce.Issues[0].String() != tt.want {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}

// FuzzMergeProvisioned checks the merge a new instance runs on the config
// kept on its data volume: it never panics, it writes only a valid config,
// the provisioned keys end up exactly as provisioned, every other key stays
// as the person had it, and merging again changes nothing.
func FuzzMergeProvisioned(f *testing.F) {
	var provs [][]byte
	for _, o := range []configgen.Options{
		{TokenSha256: goldenHash},
		{TokenSha256: goldenHash, Model: "amazon-bedrock/us.anthropic.claude-opus-4-1-20250805-v1:0", Fallbacks: []string{fallbackModel}, IdleStopMinutes: 30, Region: "eu-west-1"},
		{TokenSha256: goldenHash, Port: 18800, Endpoint: "https://bedrock.example.test", Region: "us-west-2"},
	} {
		b, err := configgen.Generate(o)
		if err != nil {
			f.Fatal(err)
		}
		provs = append(provs, b)
		f.Add(b, uint8(len(provs)))
	}
	seeds, err := filepath.Glob(filepath.Join("testdata", "fuzz-seeds", "*.json5"))
	if err != nil {
		f.Fatal(err)
	}
	for i, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(i))
	}
	f.Add([]byte(`{gateway: {mode: "local", port: 19000, auth: {token: "0123456789abcdef0123456789abcdef", rateLimit: {maxAttempts: 3}}}, logging: {level: "debug"}}`), uint8(1))

	f.Fuzz(func(t *testing.T, kept []byte, which uint8) {
		prov := provs[int(which)%len(provs)]
		merged, changed, err := configgen.MergeProvisioned(kept, prov)
		if err != nil {
			if merged != nil || changed != nil {
				t.Fatalf("an error (%v) came with output", err)
			}
			return
		}
		if len(changed) == 0 {
			if !bytes.Equal(merged, kept) {
				t.Fatal("nothing changed, but the bytes differ")
			}
			return
		}
		if _, err := configgen.ParseEnv(merged, noEnv); err != nil {
			t.Fatalf("merged config is invalid: %v\n%s", err, merged)
		}
		mt, err := configgen.DecodeRaw(merged)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := configgen.DecodeRaw(prov)
		kt, err := configgen.DecodeRaw(kept)
		if err != nil {
			t.Fatalf("kept did not decode, yet merged: %v", err)
		}
		for _, p := range configgen.ProvisionedPaths {
			pv, pok := configgen.Get(pt, p)
			mv, mok := configgen.Get(mt, p)
			if pok != mok || !reflect.DeepEqual(pv, mv) {
				t.Errorf("%s: merged %v (%v), provisioned %v (%v)", p, mv, mok, pv, pok)
			}
		}
		for _, p := range configgen.ProvisionedPaths {
			configgen.Delete(mt, p)
			configgen.Delete(kt, p)
			// A non-object where a provisioned key's parent goes (say,
			// gateway.auth: "") is replaced by the object it must be.
			parts := strings.Split(p, ".")
			for i := 1; i < len(parts); i++ {
				prefix := strings.Join(parts[:i], ".")
				if v, ok := configgen.Get(kt, prefix); ok {
					if _, isObj := v.(map[string]any); !isObj {
						configgen.Delete(kt, prefix)
						configgen.Delete(mt, prefix)
					}
				}
			}
		}
		if !reflect.DeepEqual(pruneEmpty(mt), pruneEmpty(kt)) {
			t.Errorf("keys the provisioner does not own changed:\nkept   %v\nmerged %v", kt, mt)
		}
		again, changed2, err := configgen.MergeProvisioned(merged, prov)
		if err != nil || len(changed2) != 0 || !bytes.Equal(again, merged) {
			t.Errorf("merging again: changed %q, err %v", changed2, err)
		}
	})
}

// pruneEmpty drops objects left empty, which a merge may create or leave.
func pruneEmpty(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, e := range m {
		e = pruneEmpty(e)
		if em, ok := e.(map[string]any); ok && len(em) == 0 {
			continue
		}
		out[k] = e
	}
	return out
}

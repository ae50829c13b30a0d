package configgen_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
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

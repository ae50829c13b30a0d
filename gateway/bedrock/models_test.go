package bedrock

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseModelRef(t *testing.T) {
	for _, tc := range []struct {
		ref     string
		want    string
		wantErr string
	}{
		{"amazon-bedrock/us.anthropic.claude-opus-4-6-v1", "us.anthropic.claude-opus-4-6-v1", ""},
		{"amazon-bedrock/anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic.claude-3-7-sonnet-20250219-v1:0", ""},
		{"amazon-bedrock/global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", ""},
		{
			"amazon-bedrock/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
			"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", "",
		},
		{"amazon-bedrock/amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", ""},
		{"anthropic.claude-opus-4-6-v1", "", "want amazon-bedrock/<modelId>"},
		{"openai/gpt-5", "", `provider "openai" is not supported`},
		{"Amazon-Bedrock/x", "", "not supported"},
		{"amazon-bedrock/", "", "empty"},
		{"amazon-bedrock/us.anthropic.claude opus", "", "space"},
		{"amazon-bedrock/a\x00b", "", "control"},
		{"amazon-bedrock/" + strings.Repeat("a", maxModelIDLen+1), "", "longer than"},
		{"", "", "want amazon-bedrock/<modelId>"},
	} {
		got, err := ParseModelRef(tc.ref)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseModelRef(%q) error = %v, want one containing %q", tc.ref, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseModelRef(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
}

func TestSupportsPromptCache(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"us.anthropic.claude-opus-4-6-v1", true},
		{"anthropic.claude-opus-4-20250514-v1:0", true},
		{"us.anthropic.claude-opus-4-1-20250805-v1:0", true},
		{"eu.anthropic.claude-sonnet-4-20250514-v1:0", true},
		{"global.anthropic.claude-sonnet-4-5-20250929-v1:0", true},
		{"us.anthropic.claude-haiku-4-5-20251001-v1:0", true},
		{"anthropic.claude-3-7-sonnet-20250219-v1:0", true},
		{"apac.anthropic.claude-3-7-sonnet-20250219-v1:0", true},
		{"anthropic.claude-3-5-haiku-20241022-v1:0", true},
		{"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0", true},
		{"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0", true},
		{"amazon.nova-pro-v1:0", true},
		{"us.amazon.nova-lite-v1:0", true},
		{"amazon.nova-micro-v1:0", true},
		{"us.amazon.nova-premier-v1:0", true},
		{"anthropic.claude-5-sonnet-20270101-v1:0", true}, // future versions in the old scheme
		// Conservative noes.
		{"anthropic.claude-3-5-sonnet-20240620-v1:0", false},
		{"anthropic.claude-3-5-sonnet-20241022-v2:0", false},
		{"anthropic.claude-3-haiku-20240307-v1:0", false},
		{"anthropic.claude-3-opus-20240229-v1:0", false},
		{"anthropic.claude-v2:1", false},
		{"anthropic.claude-instant-v1", false},
		{"amazon.nova-canvas-v1:0", false},
		{"amazon.titan-text-express-v1", false},
		{"meta.llama3-70b-instruct-v1:0", false},
		{"mistral.mistral-large-2407-v1:0", false},
		{"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", false},
		{"", false},
		{"anthropic.claude-", false},
		{"anthropic.claude-opus", false},
	} {
		if got := SupportsPromptCache(tc.id); got != tc.want {
			t.Errorf("SupportsPromptCache(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestSupportsThinking(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"us.anthropic.claude-opus-4-6-v1", true},
		{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", true},
		{"us.anthropic.claude-haiku-4-5-20251001-v1:0", true},
		{"anthropic.claude-3-7-sonnet-20250219-v1:0", true},
		{"anthropic.claude-3-5-sonnet-20241022-v2:0", false},
		{"anthropic.claude-3-5-haiku-20241022-v1:0", false},
		{"amazon.nova-pro-v1:0", false},
		{"meta.llama3-70b-instruct-v1:0", false},
	} {
		if got := supportsThinking(tc.id); got != tc.want {
			t.Errorf("supportsThinking(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestThinkingBudget(t *testing.T) {
	for level, want := range map[string]int{"": 0, "off": 0, "low": 1024, "medium": 4096, "high": 16384} {
		if got, err := thinkingBudget(level); err != nil || got != want {
			t.Errorf("thinkingBudget(%q) = %d, %v; want %d", level, got, err, want)
		}
	}
	if _, err := thinkingBudget("max"); err == nil {
		t.Error("thinkingBudget(max) succeeded")
	}
}

func TestResolveRegion(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		configured string
		env        map[string]string
		want       string
	}{
		{"eu-west-3", map[string]string{"AWS_REGION": "us-west-2"}, "eu-west-3"},
		{"", map[string]string{"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-north-1"}, "us-west-2"},
		{"", map[string]string{"AWS_DEFAULT_REGION": "eu-north-1"}, "eu-north-1"},
		{"", nil, "us-east-1"},
	} {
		if got := resolveRegion(tc.configured, env(tc.env)); got != tc.want {
			t.Errorf("resolveRegion(%q, %v) = %q, want %q", tc.configured, tc.env, got, tc.want)
		}
	}
}

// FuzzParseModelRef: a ref that parses gives back its id unchanged, and the
// id never holds characters that would break the request path.
func FuzzParseModelRef(f *testing.F) {
	for _, s := range []string{
		"amazon-bedrock/us.anthropic.claude-opus-4-6-v1",
		"amazon-bedrock/arn:aws:bedrock:us-east-1:1:inference-profile/x",
		"openai/x", "", "/", "amazon-bedrock/a b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		id, err := ParseModelRef(ref)
		if err != nil {
			return
		}
		if ref != ProviderName+"/"+id {
			t.Fatalf("ParseModelRef(%q) = %q: not the ref's tail", ref, id)
		}
		if id == "" || len(id) > maxModelIDLen || !utf8.ValidString(id) || strings.ContainsAny(id, " \t\r\n\x00") {
			t.Fatalf("ParseModelRef(%q) accepted a bad id %q", ref, id)
		}
		// Classification must not panic on anything that parses.
		_ = SupportsPromptCache(id)
		_ = supportsThinking(id)
	})
}

func TestContextWindow(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want int
	}{
		{"us.anthropic.claude-opus-4-6-v1", 200000},
		{"anthropic.claude-3-5-sonnet-20240620-v1:0", 200000},
		{"global.anthropic.claude-sonnet-4-5-20250929-v1:0", 200000},
		{"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0", 200000},
		{"anthropic.claude-instant-v1", 200000},
		{"us.amazon.nova-micro-v1:0", 128000},
		{"amazon.nova-lite-v1:0", 300000},
		{"us.amazon.nova-pro-v1:0", 300000},
		{"us.amazon.nova-premier-v1:0", 1000000},
		{"meta.llama3-1-70b-instruct-v1:0", DefaultContextWindow},
		{"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123", DefaultContextWindow},
	} {
		if got := ContextWindow(tc.id); got != tc.want {
			t.Errorf("ContextWindow(%q) = %d, want %d", tc.id, got, tc.want)
		}
	}
}

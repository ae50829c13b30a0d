package infra

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	gwupdate "github.com/skykoi/skykoi/gateway/update"
)

func TestModelARNs(t *testing.T) {
	const p, r, a = "aws", "eu-west-1", "123456789012"
	for _, tc := range []struct {
		ref  string
		want []string
		err  string
	}{
		{ref: "amazon-bedrock/us.anthropic.claude-opus-4-6-v1", want: []string{
			"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1",
			"arn:aws:bedrock:*::foundation-model/anthropic.claude-opus-4-6-v1",
		}},
		{ref: "amazon-bedrock/eu.anthropic.claude-sonnet-4-5-20250929-v1:0", want: []string{
			"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
			"arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
		}},
		{ref: "amazon-bedrock/apac.amazon.nova-lite-v1:0", want: []string{
			"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/apac.amazon.nova-lite-v1:0",
			"arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0",
		}},
		{ref: "amazon-bedrock/global.anthropic.claude-sonnet-4-5-20250929-v1:0", want: []string{
			"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
			"arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
		}},
		// Called in-region, without a profile: that region's model only.
		{ref: "amazon-bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", want: []string{
			"arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
		}},
		{ref: "openai/gpt-5", err: "want \"amazon-bedrock/<modelId>\""},
		{ref: "us.anthropic.claude-opus-4-6-v1", err: "want \"amazon-bedrock/<modelId>\""},
		{ref: "amazon-bedrock/", err: "want \"amazon-bedrock/<modelId>\""},
		{ref: "amazon-bedrock/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc", err: "not an ARN"},
		{ref: "amazon-bedrock/us.claude", err: "names no model"},
		{ref: "amazon-bedrock/claude", err: "names no provider"},
		{ref: "amazon-bedrock/anthropic.claude*", err: "letters, digits"},
	} {
		m, err := parseModelRef(tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.ref, err)
			continue
		}
		if got := m.arns(p, r, a); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ARNs %v, want %v", tc.ref, got, tc.want)
		}
	}
}

func TestRolePolicyRefusesBadModels(t *testing.T) {
	base := rolePolicyParams{Partition: "aws", Region: "us-east-1", Account: "123456789012",
		Koi: "skykoi-dev", ArtifactBucket: "b", ArtifactKey: "k"}
	if _, err := rolePolicy(base); err == nil {
		t.Error("a policy without models was made")
	}
	base.Models = []string{"amazon-bedrock/us.anthropic.claude-opus-4-6-v1", "openai/gpt-5"}
	if _, err := rolePolicy(base); err == nil || !strings.Contains(err.Error(), "openai/gpt-5") {
		t.Errorf("err = %v, want the bad model named", err)
	}
}

// TestRolePolicyDeduplicates: two profiles over one foundation model grant
// it once, and the order of the models does not change the document.
func TestRolePolicyDeduplicates(t *testing.T) {
	p := rolePolicyParams{Partition: "aws", Region: "us-east-1", Account: "123456789012",
		Koi: "skykoi-dev", ArtifactBucket: "b", ArtifactKey: "k",
		Models: []string{"amazon-bedrock/us.anthropic.claude-opus-4-6-v1", "amazon-bedrock/global.anthropic.claude-opus-4-6-v1"}}
	a, err := rolePolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Models = []string{p.Models[1], p.Models[0]}
	b, err := rolePolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("the model order changed the policy")
	}
	if n := strings.Count(a, "foundation-model/anthropic.claude-opus-4-6-v1"); n != 1 {
		t.Errorf("the foundation model appears %d times:\n%s", n, a)
	}
}

// TestRolePolicyUpdatePrefix: the role reads the binaries update.run asks
// for, under the prefix `skykoi koi update` uploads to, and no other key
// of the bucket beyond the provisioned one; it may not list or write.
func TestRolePolicyUpdatePrefix(t *testing.T) {
	if updateKeyPrefix != gwupdate.KeyPrefix {
		t.Fatalf("infra grants %q, the gateway downloads %q", updateKeyPrefix, gwupdate.KeyPrefix)
	}
	doc, err := rolePolicy(rolePolicyParams{Partition: "aws", Region: "us-east-1", Account: "123456789012",
		Koi: "skykoi-dev", ArtifactBucket: "b", ArtifactKey: "releases/k",
		Models: []string{"amazon-bedrock/us.anthropic.claude-opus-4-6-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	var d policyDocument
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	var s3Resources []string
	for _, st := range d.Statement {
		for _, a := range st.Action {
			if strings.HasPrefix(a, "s3:") {
				if a != "s3:GetObject" {
					t.Errorf("the role may %s", a)
				}
				s3Resources = append(s3Resources, st.Resource...)
			}
		}
	}
	want := []string{"arn:aws:s3:::b/releases/k", "arn:aws:s3:::b/bin/skykoi-*"}
	if !slices.Equal(s3Resources, want) {
		t.Errorf("S3 resources %v, want %v", s3Resources, want)
	}
}

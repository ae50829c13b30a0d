package infra

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/skykoi/skykoi/gateway/wake"

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

// TestWakeIAM: with idle stop on, Scheduler's execution role may only
// start this instance and only Scheduler of this account may take it; the
// instance role may manage only its own schedule and pass only that role,
// only to Scheduler. The instance carries the role's ARN as a metadata tag.
func TestWakeIAM(t *testing.T) {
	f, outs := deployed(t, defaultStack(t))
	id := outs["instanceId"]
	if !strings.HasPrefix(id, "i-") {
		t.Fatalf("instance id %q", id)
	}
	const wakeARN = "arn:aws:iam::123456789012:role/skykoi-dev-wake-e5f6a7b"

	decode := func(doc string) []policyStatement {
		t.Helper()
		var d policyDocument
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("%v in %s", err, doc)
		}
		return d.Statement
	}
	wakeRole := f.named(t, typeRole, "skykoi-dev-wake")
	wantTrust := []policyStatement{{Effect: "Allow", Principal: map[string]any{"Service": "scheduler.amazonaws.com"},
		Action: []string{"sts:AssumeRole"}, Condition: map[string]map[string]string{"StringEquals": {"aws:SourceAccount": "123456789012"}}}}
	if got := decode(str(wakeRole.Inputs, "assumeRolePolicy")); !reflect.DeepEqual(got, wantTrust) {
		t.Errorf("wake role trust %+v", got)
	}
	for _, k := range []string{"managedPolicyArns", "inlinePolicies"} {
		if v, ok := wakeRole.Inputs[resource.PropertyKey(k)]; ok && v.IsArray() && len(v.ArrayValue()) > 0 {
			t.Errorf("wake role has %s: %v", k, v)
		}
	}

	tests := []struct {
		policy, role string
		want         []policyStatement
	}{
		{"skykoi-dev-wake", "skykoi-dev-wake-e5f6a7b", []policyStatement{{Sid: "StartThisKoi", Effect: "Allow",
			Action: []string{"ec2:StartInstances"}, Resource: []string{"arn:aws:ec2:us-west-2:123456789012:instance/" + id}}}},
		{"skykoi-dev-schedule", "skykoi-dev-e5f6a7b", []policyStatement{
			{Sid: "ManageOwnWakeSchedule", Effect: "Allow",
				Action:   []string{"scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule", "scheduler:UpdateSchedule"},
				Resource: []string{"arn:aws:scheduler:us-west-2:123456789012:schedule/default/" + wake.ScheduleName(id)}},
			{Sid: "PassWakeRoleToScheduler", Effect: "Allow", Action: []string{"iam:PassRole"}, Resource: []string{wakeARN},
				Condition: map[string]map[string]string{"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			pol := f.named(t, typeRolePolicy, tt.policy)
			if got := str(pol.Inputs, "role"); got != tt.role {
				t.Errorf("on role %q, want %q", got, tt.role)
			}
			if got := decode(str(pol.Inputs, "policy")); !reflect.DeepEqual(got, tt.want) {
				b, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("statements:\n%s", b)
			}
		})
	}
	// Nothing else grants Scheduler or PassRole, nor a wildcard of them.
	for _, pol := range f.ofType(typeRolePolicy) {
		for _, st := range decode(str(pol.Inputs, "policy")) {
			for _, a := range st.Action {
				if (strings.HasPrefix(a, "scheduler:") || a == "iam:PassRole") && pol.Name != "skykoi-dev-schedule" {
					t.Errorf("%s grants %s", pol.Name, a)
				}
				if strings.Contains(a, "*") {
					t.Errorf("%s grants wildcard action %s", pol.Name, a)
				}
			}
			for _, r := range st.Resource {
				if (strings.Contains(r, ":scheduler:") || strings.Contains(r, ":iam::")) && strings.Contains(r, "*") {
					t.Errorf("%s grants wildcard resource %s", pol.Name, r)
				}
			}
		}
	}
	inst := f.one(t, typeInstance)
	if got := str(inst.Inputs, "tags", wake.RoleTag); got != wakeARN {
		t.Errorf("instance tag %s = %q, want %q", wake.RoleTag, got, wakeARN)
	}
	if got := str(inst.Inputs, "metadataOptions", "instanceMetadataTags"); got != "enabled" {
		t.Errorf("instance metadata tags %q, want enabled", got)
	}
}

// TestNoWakeWithoutIdleStop: a Koi that never stops gets no wake role.
func TestNoWakeWithoutIdleStop(t *testing.T) {
	s := defaultStack(t)
	delete(s.config, "skykoi:idleStopMinutes")
	f, _ := deployed(t, s)
	for _, typ := range []string{typeRole, typeRolePolicy} {
		for _, name := range []string{"skykoi-dev-wake", "skykoi-dev-schedule"} {
			if slices.Contains(f.names(typ), name) {
				t.Errorf("a %s %s without idle stop (have %v)", typ, name, f.names(typ))
			}
		}
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

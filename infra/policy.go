package infra

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/wake"
)

// KoiTagKey tags every resource of a Koi with its name. The role's
// ec2:StopInstances permission is conditioned on it, so it must name one Koi
// only: NewKoi's name, which the program derives from the stack.
const KoiTagKey = "skykoi:koi"

// geoPrefixes are the scopes a cross-region inference profile id starts
// with (us.anthropic.…, global.anthropic.…). A model id without one is a
// foundation model called in the Koi's own region.
var geoPrefixes = []string{"us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"}

// modelIDRe is configgen's rule for model ids, less the "/" that only ARNs
// use: a Koi's role needs ids it can turn into resource ARNs.
var modelIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// bedrockModel is one model a Koi's role may invoke.
type bedrockModel struct {
	// profile is the inference profile id, empty for a foundation model
	// called directly.
	profile string
	// foundation is the foundation model id behind it.
	foundation string
}

// parseModelRef turns "amazon-bedrock/<id>" into the model the role needs.
func parseModelRef(ref string) (bedrockModel, error) {
	provider, id := configgen.SplitModelRef(ref)
	switch {
	case provider != configgen.Provider || id == "":
		return bedrockModel{}, fmt.Errorf("want %q, got %q", configgen.Provider+"/<modelId>", ref)
	case strings.HasPrefix(id, "arn:"):
		// An ARN (an application inference profile, a provisioned model) does
		// not say which foundation models it routes to, so the role could not
		// be scoped to them.
		return bedrockModel{}, fmt.Errorf("give a model or inference profile id like us.anthropic.claude-opus-4-6-v1, not an ARN: %q", ref)
	case !modelIDRe.MatchString(id):
		return bedrockModel{}, fmt.Errorf("model id must be letters, digits and . _ : -, got %q", id)
	}
	if geo, base, ok := strings.Cut(id, "."); ok && slices.Contains(geoPrefixes, geo) {
		if !strings.Contains(base, ".") {
			return bedrockModel{}, fmt.Errorf("inference profile %q names no model (want %s.<provider>.<model>)", id, geo)
		}
		return bedrockModel{profile: id, foundation: base}, nil
	}
	if !strings.Contains(id, ".") {
		return bedrockModel{}, fmt.Errorf("model id %q names no provider (want <provider>.<model>, like anthropic.claude-sonnet-4-5-20250929-v1:0)", id)
	}
	return bedrockModel{foundation: id}, nil
}

// arns are the resources InvokeModel is checked against for this model.
//
// A call through an inference profile is authorized twice: on the profile,
// which lives in the Koi's region and account, and on the foundation model
// in whichever region the profile routes that request to. The set of
// destination regions belongs to AWS and grows (us. covers us-east-1,
// us-east-2 and us-west-2 today; global. any commercial region), so the
// foundation-model ARN takes * for its region: pinning today's list would
// break the Koi the day AWS adds one. Foundation models are AWS-owned, hence
// the empty account. The model id itself stays exact, so the wildcard
// grants no other model.
func (m bedrockModel) arns(partition, region, account string) []string {
	if m.profile == "" {
		return []string{fmt.Sprintf("arn:%s:bedrock:%s::foundation-model/%s", partition, region, m.foundation)}
	}
	return []string{
		fmt.Sprintf("arn:%s:bedrock:%s:%s:inference-profile/%s", partition, region, account, m.profile),
		fmt.Sprintf("arn:%s:bedrock:*::foundation-model/%s", partition, m.foundation),
	}
}

// policyDocument is an IAM policy. Field order is the order IAM's own
// documents use; the golden file depends on it.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal any                          `json:"Principal,omitempty"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource,omitempty"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

func (d policyDocument) render() (string, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding an IAM policy: %w", err)
	}
	return string(b) + "\n", nil
}

// updateKeyPrefix is gateway/update.KeyPrefix (infra does not import the
// gateway; TestRolePolicyUpdatePrefix keeps the two equal).
const updateKeyPrefix = "bin/skykoi-"

// rolePolicyParams are what the instance role's permissions depend on.
type rolePolicyParams struct {
	Partition, Region, Account string
	// Koi is the value of the KoiTagKey tag on the Koi's instance.
	Koi string
	// ArtifactBucket and ArtifactKey locate the gateway binary.
	ArtifactBucket, ArtifactKey string
	// Models are the configured model refs, primary first.
	Models []string
	// IdleStop grants ec2:StopInstances, which only the gateway's idle stop
	// uses; without it the role cannot stop anything.
	IdleStop bool
}

// rolePolicy is the instance role's inline policy: everything the box does
// with its credentials, and nothing more. SSM comes from the managed
// AmazonSSMManagedInstanceCore policy, attached separately.
func rolePolicy(p rolePolicyParams) (string, error) {
	var resources []string
	var errs []error
	for _, ref := range p.Models {
		m, err := parseModelRef(ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resources = append(resources, m.arns(p.Partition, p.Region, p.Account)...)
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("the role's Bedrock permissions: %w", err)
	}
	if len(resources) == 0 {
		return "", errors.New("the role's Bedrock permissions: no model configured")
	}
	// Sorted and deduplicated: a fallback that shares a foundation model with
	// the primary must not change the document's bytes by its position.
	slices.Sort(resources)
	resources = slices.Compact(resources)

	doc := policyDocument{Version: "2012-10-17", Statement: []policyStatement{
		{
			Sid:      "InvokeConfiguredModels",
			Effect:   "Allow",
			Action:   []string{"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"},
			Resource: resources,
		},
		{
			// The bootstrap downloads this one object, which is replaced
			// (new key) whenever the binary changes.
			Sid:      "ReadGatewayBinary",
			Effect:   "Allow",
			Action:   []string{"s3:GetObject"},
			Resource: []string{fmt.Sprintf("arn:%s:s3:::%s/%s", p.Partition, p.ArtifactBucket, p.ArtifactKey)},
		},
		{
			// update.run downloads binaries `skykoi koi update` put under
			// bin/skykoi-<sha256>; nothing else of the bucket, and no list.
			Sid:      "ReadUpdateBinaries",
			Effect:   "Allow",
			Action:   []string{"s3:GetObject"},
			Resource: []string{fmt.Sprintf("arn:%s:s3:::%s/%s*", p.Partition, p.ArtifactBucket, updateKeyPrefix)},
		},
	}}
	if p.IdleStop {
		// The instance's own ID is not known when the role is made (the
		// instance needs the role first), so the grant is scoped by the tag
		// only this Koi's instance carries. The role cannot tag anything, so
		// it cannot extend this to other instances.
		doc.Statement = append(doc.Statement, policyStatement{
			Sid:       "StopItselfWhenIdle",
			Effect:    "Allow",
			Action:    []string{"ec2:StopInstances"},
			Resource:  []string{fmt.Sprintf("arn:%s:ec2:%s:%s:instance/*", p.Partition, p.Region, p.Account)},
			Condition: map[string]map[string]string{"StringEquals": {"aws:ResourceTag/" + KoiTagKey: p.Koi}},
		})
	}
	return doc.render()
}

// assumeRolePolicy lets EC2 instances, and nothing else, take the role.
func assumeRolePolicy() (string, error) {
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Effect:    "Allow",
		Principal: map[string]string{"Service": "ec2.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
	}}}.render()
}

// tlsOnlyBucketPolicy refuses plain-HTTP requests to the artifact bucket,
// whoever makes them: the binary's hash is checked on the box, but its
// credentials should not travel in the clear either.
func tlsOnlyBucketPolicy(partition, bucket string) (string, error) {
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Sid:       "DenyInsecureTransport",
		Effect:    "Deny",
		Principal: "*",
		Action:    []string{"s3:*"},
		Resource: []string{
			fmt.Sprintf("arn:%s:s3:::%s", partition, bucket),
			fmt.Sprintf("arn:%s:s3:::%s/*", partition, bucket),
		},
		Condition: map[string]map[string]string{"Bool": {"aws:SecureTransport": "false"}},
	}}}.render()
}

// schedulerTrustPolicy lets EventBridge Scheduler, acting for this account
// only (aws:SourceAccount, against the confused deputy), take the wake
// role.
func schedulerTrustPolicy(account string) (string, error) {
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Effect:    "Allow",
		Principal: map[string]string{"Service": "scheduler.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
		Condition: map[string]map[string]string{"StringEquals": {"aws:SourceAccount": account}},
	}}}.render()
}

// wakeStartPolicy is the wake role's whole power: starting this one
// instance.
func wakeStartPolicy(partition, region, account, instanceID string) (string, error) {
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Sid:      "StartThisKoi",
		Effect:   "Allow",
		Action:   []string{"ec2:StartInstances"},
		Resource: []string{fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", partition, region, account, instanceID)},
	}}}.render()
}

// wakeSchedulePolicy lets the instance role manage its own wake schedule
// (one name, derived from the instance ID) and hand Scheduler the wake
// role, and nothing else: no other schedule, no other role, no other
// service to pass it to.
func wakeSchedulePolicy(partition, region, account, instanceID, wakeRoleARN string) (string, error) {
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{
		{
			Sid:    "ManageOwnWakeSchedule",
			Effect: "Allow",
			Action: []string{"scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule", "scheduler:UpdateSchedule"},
			Resource: []string{fmt.Sprintf("arn:%s:scheduler:%s:%s:schedule/default/%s",
				partition, region, account, wake.ScheduleName(instanceID))},
		},
		{
			Sid:       "PassWakeRoleToScheduler",
			Effect:    "Allow",
			Action:    []string{"iam:PassRole"},
			Resource:  []string{wakeRoleARN},
			Condition: map[string]map[string]string{"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
		},
	}}.render()
}

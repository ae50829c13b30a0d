package infra

import (
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
)

// deployed runs the stack program (short of its exports) against a fake
// AWS and returns what it registered and the Koi's output values.
func deployed(t *testing.T, s stack) (*fakeAWS, map[string]string) {
	t.Helper()
	f := newFakeAWS()
	return f, deployedOn(t, s, f)
}

// deployedOn is deployed against any mock monitor, such as one that
// answers more look-ups than fakeAWS does.
func deployedOn(t *testing.T, s stack, f pulumi.MockResourceMonitor) map[string]string {
	t.Helper()
	var mu sync.Mutex
	outs := map[string]string{}
	err := s.run(f, func(ctx *pulumi.Context) error {
		k, err := deploy(ctx)
		if err != nil {
			return err
		}
		for name, o := range k.Outputs() {
			pulumi.ToOutputWithContext(ctx.Context(), o).ApplyT(func(v any) any {
				mu.Lock()
				defer mu.Unlock()
				outs[name], _ = v.(string)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("program: %v", err)
	}
	return outs
}

func defaultStack(t *testing.T) stack {
	return stack{config: goodConfig(), secrets: tokenSecret, root: projectDir(t)}
}

// ingressRules flattens a security group's ingress into one entry per
// CIDR, which is what a port-exposure policy is about.
type exposure struct {
	protocol string
	from, to int
	cidr     string
}

func ingressOf(sg pulumi.MockResourceArgs) []exposure {
	var out []exposure
	for _, r := range sg.Inputs["ingress"].ArrayValue() {
		o := r.ObjectValue()
		e := exposure{
			protocol: o["protocol"].StringValue(),
			from:     int(o["fromPort"].NumberValue()),
			to:       int(o["toPort"].NumberValue()),
		}
		for _, c := range append(strs(o["cidrBlocks"]), strs(o["ipv6CidrBlocks"])...) {
			e.cidr = c
			out = append(out, e)
		}
	}
	return out
}

func (e exposure) covers(port int) bool {
	return e.protocol == "-1" || e.protocol == "all" || (e.from <= port && port <= e.to)
}

// checkNoWorldSSH is the policy every security group must meet, whatever
// the config: port 22 is never open to too much of the internet.
func checkNoWorldSSH(t *testing.T, f *fakeAWS) {
	t.Helper()
	for _, sg := range f.ofType(typeSG) {
		var ps []netip.Prefix
		for _, e := range ingressOf(sg) {
			if e.covers(22) {
				ps = append(ps, netip.MustParsePrefix(e.cidr))
			}
		}
		// Worked out here, not with internal/netbreadth (which the program
		// itself uses), so a wrong rule there cannot pass its own check:
		// the plain sum of the prefixes' sizes, which can only overcount
		// the union, must stay under an IPv4 /7 and an IPv6 /31, with
		// IPv4-mapped IPv6 counted as IPv4.
		var v4, v6 float64
		for _, p := range ps {
			switch a := p.Addr(); {
			case a.Is4():
				v4 += math.Exp2(float64(32 - p.Bits()))
			case a.Is4In6() && p.Bits() >= 96:
				v4 += math.Exp2(float64(128 - p.Bits()))
			default:
				v6 += math.Exp2(float64(128 - p.Bits()))
			}
		}
		if v4 >= math.Exp2(25) || v6 >= math.Exp2(97) {
			t.Errorf("security group %s opens port 22 to %v: %.0f IPv4 and %.3g IPv6 addresses", sg.Name, ps, v4, v6)
		}
	}
}

func portsOpen(sg pulumi.MockResourceArgs, port int) []string {
	var cidrs []string
	for _, e := range ingressOf(sg) {
		if e.covers(port) {
			cidrs = append(cidrs, e.cidr)
		}
	}
	slices.Sort(cidrs)
	return cidrs
}

func TestSecurityGroupDefaults(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	checkNoWorldSSH(t, f)
	sg := f.one(t, typeSG)
	if got := portsOpen(sg, 22); len(got) != 0 {
		t.Errorf("port 22 open to %v without sshCidrs", got)
	}
	want := []string{"2001:db8:1234::/48", "203.0.113.7/32"}
	for _, port := range []int{443, 80} {
		if got := portsOpen(sg, port); !reflect.DeepEqual(got, want) {
			t.Errorf("port %d open to %v, want %v", port, got, want)
		}
	}
	for _, e := range ingressOf(sg) {
		if e.from != e.to || (e.from != 443 && e.from != 80) {
			t.Errorf("unexpected ingress %+v", e)
		}
	}
	if got := str(sg.Inputs, "vpcId"); got != "vpc-0default000000001" {
		t.Errorf("security group in %q, want the default VPC", got)
	}
}

func TestSSHCidrs(t *testing.T) {
	s := defaultStack(t)
	s.config["skykoi:sshCidrs"] = `["198.51.100.0/24","2001:db8::/64"]`
	f, _ := deployed(t, s)
	checkNoWorldSSH(t, f)
	if got, want := portsOpen(f.one(t, typeSG), 22), []string{"198.51.100.0/24", "2001:db8::/64"}; !reflect.DeepEqual(got, want) {
		t.Errorf("port 22 open to %v, want %v", got, want)
	}
}

// TestWorldSSHRefused calls NewKoi directly, past LoadConfig, with the
// whole internet for SSH: the component itself refuses, before creating
// anything.
func TestWorldSSHRefused(t *testing.T) {
	root := projectDir(t)
	var sixteens []string
	for i := range 512 {
		sixteens = append(sixteens, fmt.Sprintf("%d.%d.0.0/16", 10+i/256, i%256))
	}
	for _, cidrs := range [][]string{
		{"0.0.0.0/0"}, {"::/0"}, {"203.0.113.7/32", "0.0.0.0/0"},
		{"0.0.0.0/1", "128.0.0.0/1"}, {"::/1", "8000::/1"}, {"::ffff:0:0/96"},
		{"10.0.0.0/7"}, sixteens,
	} {
		f := newFakeAWS()
		err := stack{}.run(f, func(ctx *pulumi.Context) error {
			_, err := NewKoi(ctx, "skykoi-dev", KoiArgs{
				AllowedCidrs:  []string{"203.0.113.7/32"},
				SSHCidrs:      cidrs,
				TokenSha256:   configgen.HashSecret(testToken),
				GatewayBinary: filepath.Join(root, "dist", "skykoi-linux-amd64"),
			})
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "would open SSH to too much of the internet") {
			t.Errorf("sshCidrs %.200v: err = %.400v, want a refusal", cidrs, err)
		}
		if n := len(f.ofType(typeSG)) + len(f.ofType(typeInstance)); n != 0 {
			t.Errorf("sshCidrs %.200v: %d resources created before the refusal", cidrs, n)
		}
	}
}

func TestInstanceHardening(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	in := f.one(t, typeInstance).Inputs
	if got := str(in, "metadataOptions", "httpTokens"); got != "required" {
		t.Errorf("metadataOptions.httpTokens = %q, want required (IMDSv2 only)", got)
	}
	if got := in["metadataOptions"].ObjectValue()["httpPutResponseHopLimit"]; !got.IsNumber() || got.NumberValue() != 1 {
		t.Errorf("hop limit = %v, want 1", got)
	}
	root := in["rootBlockDevice"].ObjectValue()
	if !root["encrypted"].IsBool() || !root["encrypted"].BoolValue() {
		t.Error("root volume not encrypted")
	}
	if got := root["volumeType"].StringValue(); got != "gp3" {
		t.Errorf("root volume type %q, want gp3", got)
	}
	if got := root["volumeSize"].NumberValue(); got != DefaultRootVolumeGiB {
		t.Errorf("root volume %v GiB, want %d", got, DefaultRootVolumeGiB)
	}
	if !in["userDataReplaceOnChange"].BoolValue() {
		t.Error("userDataReplaceOnChange is not set")
	}
	if got := str(in, "ami"); got != testAMI {
		t.Errorf("ami = %q, want the looked-up %s", got, testAMI)
	}
	if got := str(in, "subnetId"); got != "subnet-0bbbbbbbbbbbbbbb2" {
		t.Errorf("subnet %q, want the default subnet of the first offering zone (us-west-2b)", got)
	}
	if got := str(in, "instanceType"); got != DefaultInstanceType {
		t.Errorf("instance type %q, want %s", got, DefaultInstanceType)
	}
	if got := str(in, "tags", KoiTagKey); got != "skykoi-dev" {
		t.Errorf("tag %s = %q, want skykoi-dev", KoiTagKey, got)
	}
	if got := str(in, "tags", "Name"); got != "skykoi-dev" {
		t.Errorf("tag Name = %q", got)
	}
	if got := str(in, "iamInstanceProfile"); got != "skykoi-dev-e5f6a7b" {
		t.Errorf("instance profile %q", got)
	}
	if _, ok := in["keyName"]; ok {
		t.Error("the instance has a key pair; SSM replaces SSH keys")
	}
}

func TestDataVolume(t *testing.T) {
	f, outs := deployed(t, defaultStack(t))
	vol := f.one(t, typeVolume)
	if !vol.Inputs["encrypted"].BoolValue() {
		t.Error("data volume not encrypted")
	}
	if got := str(vol.Inputs, "type"); got != "gp3" {
		t.Errorf("data volume type %q, want gp3", got)
	}
	if got := vol.Inputs["size"].NumberValue(); got != DefaultDataVolumeGiB {
		t.Errorf("data volume %v GiB, want %d", got, DefaultDataVolumeGiB)
	}
	if got := str(vol.Inputs, "availabilityZone"); got != "us-west-2b" {
		t.Errorf("data volume in %q, want the instance's zone us-west-2b", got)
	}
	if !vol.RegisterRPC.GetRetainOnDelete() {
		t.Error("the data volume is not retained on destroy")
	}

	att := f.one(t, typeAttachment)
	if got := str(att.Inputs, "deviceName"); got != "/dev/sdf" {
		t.Errorf("attached as %q, want /dev/sdf", got)
	}
	if got := str(att.Inputs, "volumeId"); got != outs["dataVolumeId"] {
		t.Errorf("attachment volume %q, want %q", got, outs["dataVolumeId"])
	}
	if got := str(att.Inputs, "instanceId"); got != outs["instanceId"] {
		t.Errorf("attachment instance %q, want %q", got, outs["instanceId"])
	}
	if !att.RegisterRPC.GetDeleteBeforeReplace() {
		t.Error("the attachment must be deleted before it is replaced: a volume has one attachment at a time")
	}
	if !att.Inputs["stopInstanceBeforeDetaching"].BoolValue() {
		t.Error("the old instance is not stopped before the volume is detached")
	}

	// Asked to, the volume goes with the stack.
	s := defaultStack(t)
	s.config["skykoi:keepDataOnDestroy"] = "false"
	f, _ = deployed(t, s)
	if f.one(t, typeVolume).RegisterRPC.GetRetainOnDelete() {
		t.Error("keepDataOnDestroy false still retains the data volume")
	}
}

func TestUserData(t *testing.T) {
	f, outs := deployed(t, defaultStack(t))
	in := f.one(t, typeInstance).Inputs
	if _, ok := in["userData"]; ok {
		t.Error("user-data sent as text; it may be gzipped, so it must go as userDataBase64")
	}
	ud := decodeUserData(t, str(in, "userDataBase64"))
	if !strings.HasPrefix(ud, "#cloud-config") {
		t.Fatalf("user-data is not a cloud-config document: %.80q", ud)
	}
	if strings.Contains(ud, testToken) {
		t.Fatal("the plaintext gateway token is in the user-data")
	}
	for _, want := range []string{
		configgen.HashSecret(testToken),
		outs["dataVolumeId"],
		outs["artifactKey"],
		"skykoi-dev-artifacts-a1b2c3d",
		testRegion,
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0",
	} {
		if !strings.Contains(ud, want) {
			t.Errorf("user-data lacks %q", want)
		}
	}
}

// TestTokenNowhere looks through every resource input and every invoke
// argument: the token itself goes nowhere, only its digest.
func TestTokenNowhere(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.resources {
		for _, s := range allStrings(resource.NewObjectProperty(r.Inputs)) {
			if strings.Contains(s, testToken) {
				t.Errorf("%s %s carries the plaintext token", r.TypeToken, r.Name)
			}
		}
	}
	for _, c := range f.calls {
		for _, s := range allStrings(resource.NewObjectProperty(c.Args)) {
			if strings.Contains(s, testToken) {
				t.Errorf("invoke %s carries the plaintext token", c.Token)
			}
		}
	}
}

func TestRolePolicyExact(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	pol := f.named(t, typeRolePolicy, "skykoi-dev")
	doc := str(pol.Inputs, "policy")
	golden(t, "role-policy.golden.json", []byte(doc))

	// The same facts, checked by meaning rather than bytes.
	var d policyDocument
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	want := []policyStatement{
		{Sid: "InvokeConfiguredModels", Effect: "Allow",
			Action: []string{"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"},
			Resource: []string{
				"arn:aws:bedrock:*::foundation-model/anthropic.claude-opus-4-6-v1",
				"arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
				"arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1",
				"arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
				"arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-pro-v1:0",
			}},
		{Sid: "ReadGatewayBinary", Effect: "Allow", Action: []string{"s3:GetObject"},
			Resource: []string{"arn:aws:s3:::skykoi-dev-artifacts-a1b2c3d/" + str(f.one(t, typeObject).Inputs, "key")}},
		{Sid: "ReadUpdateBinaries", Effect: "Allow", Action: []string{"s3:GetObject"},
			Resource: []string{"arn:aws:s3:::skykoi-dev-artifacts-a1b2c3d/bin/skykoi-*"}},
		{Sid: "StopItselfWhenIdle", Effect: "Allow", Action: []string{"ec2:StopInstances"},
			Resource:  []string{"arn:aws:ec2:us-west-2:123456789012:instance/*"},
			Condition: map[string]map[string]string{"StringEquals": {"aws:ResourceTag/skykoi:koi": "skykoi-dev"}}},
	}
	if !reflect.DeepEqual(d.Statement, want) {
		got, _ := json.MarshalIndent(d.Statement, "", "  ")
		t.Errorf("role policy statements:\n%s", got)
	}
	if got := str(pol.Inputs, "role"); got != "skykoi-dev-e5f6a7b" {
		t.Errorf("policy on role %q", got)
	}

	// The only managed policy is SSM's.
	att := f.one(t, typeAttachPol)
	if got := str(att.Inputs, "policyArn"); got != "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" {
		t.Errorf("attached %q", got)
	}
	role := f.named(t, typeRole, "skykoi-dev")
	var trust policyDocument
	if err := json.Unmarshal([]byte(str(role.Inputs, "assumeRolePolicy")), &trust); err != nil {
		t.Fatal(err)
	}
	if len(trust.Statement) != 1 || !reflect.DeepEqual(trust.Statement[0].Principal, map[string]any{"Service": "ec2.amazonaws.com"}) ||
		!reflect.DeepEqual(trust.Statement[0].Action, []string{"sts:AssumeRole"}) {
		t.Errorf("trust policy %+v, want EC2 alone", trust.Statement)
	}
	for _, k := range []string{"managedPolicyArns", "inlinePolicies"} {
		if v, ok := role.Inputs[resource.PropertyKey(k)]; ok && v.IsArray() && len(v.ArrayValue()) > 0 {
			t.Errorf("role has %s: %v", k, v)
		}
	}
}

func TestRolePolicyWithoutIdleStop(t *testing.T) {
	s := defaultStack(t)
	delete(s.config, "skykoi:idleStopMinutes")
	s.config["skykoi:fallbacks"] = "[]"
	f, _ := deployed(t, s)
	var d policyDocument
	if err := json.Unmarshal([]byte(str(f.named(t, typeRolePolicy, "skykoi-dev").Inputs, "policy")), &d); err != nil {
		t.Fatal(err)
	}
	for _, st := range d.Statement {
		if slices.Contains(st.Action, "ec2:StopInstances") {
			t.Error("ec2:StopInstances granted with idle stop off")
		}
	}
	want := []string{
		"arn:aws:bedrock:*::foundation-model/anthropic.claude-opus-4-6-v1",
		"arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1",
	}
	if got := d.Statement[0].Resource; !reflect.DeepEqual(got, want) {
		t.Errorf("the default model's resources are %v, want %v", got, want)
	}
}

func TestArtifactBucket(t *testing.T) {
	f, outs := deployed(t, defaultStack(t))
	pab := f.one(t, typePAB).Inputs
	for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
		if v := pab[resource.PropertyKey(k)]; !v.IsBool() || !v.BoolValue() {
			t.Errorf("public access block %s = %v", k, v)
		}
	}
	sse := f.one(t, typeSSE).Inputs["rules"].ArrayValue()
	if len(sse) != 1 || str(sse[0].ObjectValue(), "applyServerSideEncryptionByDefault", "sseAlgorithm") != "AES256" {
		t.Errorf("bucket encryption %v, want SSE-S3 (AES256)", sse)
	}
	obj := f.one(t, typeObject).Inputs
	key := str(obj, "key")
	bin := filepath.Join(defaultStack(t).root, "dist", "skykoi-linux-amd64")
	info, err := inspectBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	if want := "skykoi-linux-amd64/" + info.sha256; key != want || outs["artifactKey"] != want {
		t.Errorf("object key %q (output %q), want %q", key, outs["artifactKey"], want)
	}
	if got := str(obj, "bucket"); got != "skykoi-dev-artifacts-a1b2c3d" {
		t.Errorf("object in bucket %q", got)
	}
	var bp policyDocument
	if err := json.Unmarshal([]byte(str(f.one(t, typeBucketPol).Inputs, "policy")), &bp); err != nil {
		t.Fatal(err)
	}
	if len(bp.Statement) != 1 || bp.Statement[0].Effect != "Deny" ||
		bp.Statement[0].Condition["Bool"]["aws:SecureTransport"] != "false" {
		t.Errorf("bucket policy %+v, want a deny of plain HTTP", bp.Statement)
	}
}

func TestAMILookup(t *testing.T) {
	for _, tc := range []struct {
		instanceType string
		arch         Arch
		ec2Arch      string
	}{
		{"t3.small", AMD64, "x86_64"},
		{"t4g.small", ARM64, "arm64"},
		{"m7g.large", ARM64, "arm64"},
	} {
		t.Run(tc.instanceType, func(t *testing.T) {
			s := defaultStack(t)
			s.config["skykoi:instanceType"] = tc.instanceType
			f, outs := deployed(t, s)
			calls := f.callsTo(tokGetAmi)
			if len(calls) != 1 {
				t.Fatalf("%d AMI look-ups, want 1", len(calls))
			}
			a := calls[0].Args
			if got := strs(a["owners"]); !reflect.DeepEqual(got, []string{"099720109477"}) {
				t.Errorf("owners %v, want Canonical's", got)
			}
			if !a["mostRecent"].BoolValue() {
				t.Error("mostRecent is not set")
			}
			filters := map[string][]string{}
			for _, flt := range a["filters"].ArrayValue() {
				o := flt.ObjectValue()
				filters[o["name"].StringValue()] = strs(o["values"])
			}
			want := map[string][]string{
				"name":         {"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-" + string(tc.arch) + "-server-*"},
				"architecture": {tc.ec2Arch},
			}
			if !reflect.DeepEqual(filters, want) {
				t.Errorf("filters %v, want %v", filters, want)
			}
			if !strings.HasPrefix(outs["artifactKey"], "skykoi-linux-"+string(tc.arch)+"/") {
				t.Errorf("artifact key %q is not the %s binary", outs["artifactKey"], tc.arch)
			}
		})
	}
}

func TestOutputs(t *testing.T) {
	_, outs := deployed(t, defaultStack(t))
	names := []string{"instanceId", "publicIp", "publicDns", "url", "artifactKey", "dataVolumeId", "securityGroupId", "roleArn"}
	for _, n := range names {
		if outs[n] == "" {
			t.Errorf("output %s is missing or empty", n)
		}
	}
	if len(outs) != len(names) {
		t.Errorf("outputs %v, want exactly %v", outs, names)
	}
	if outs["url"] != "wss://203.0.113.10/" {
		t.Errorf("url = %q", outs["url"])
	}
	if !strings.HasPrefix(outs["dataVolumeId"], "vol-") || !strings.HasPrefix(outs["instanceId"], "i-") ||
		!strings.HasPrefix(outs["securityGroupId"], "sg-") || !strings.HasPrefix(outs["roleArn"], "arn:aws:iam::") {
		t.Errorf("outputs do not look like AWS ids: %v", outs)
	}
}

func TestElasticIP(t *testing.T) {
	s := defaultStack(t)
	s.config["skykoi:elasticIp"] = "true"
	f, outs := deployed(t, s)
	eip := f.one(t, typeEip)
	if got := str(eip.Inputs, "instance"); got != outs["instanceId"] {
		t.Errorf("EIP on %q, want %q", got, outs["instanceId"])
	}
	if outs["publicIp"] != "198.51.100.20" || outs["url"] != "wss://198.51.100.20/" {
		t.Errorf("outputs use the instance's address, not the EIP's: %v", outs)
	}
	f, _ = deployed(t, defaultStack(t))
	if n := len(f.ofType(typeEip)); n != 0 {
		t.Errorf("%d EIPs without elasticIp", n)
	}
}

func TestGivenSubnet(t *testing.T) {
	s := defaultStack(t)
	s.config["skykoi:subnetId"] = "subnet-0eeeeeeeeeeeeeee5"
	f, _ := deployed(t, s)
	if got := str(f.one(t, typeInstance).Inputs, "subnetId"); got != "subnet-0eeeeeeeeeeeeeee5" {
		t.Errorf("instance in %q", got)
	}
	if got := str(f.one(t, typeVolume).Inputs, "availabilityZone"); got != "us-west-2a" {
		t.Errorf("volume in %q, want the subnet's zone", got)
	}
	if got := str(f.one(t, typeSG).Inputs, "vpcId"); got != "vpc-0custom0000000002" {
		t.Errorf("security group in %q, want the subnet's VPC", got)
	}
	if n := len(f.callsTo(tokGetSubnets)); n != 0 {
		t.Errorf("%d default-subnet searches with a subnet given", n)
	}
}

func TestComponentParentsEverything(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	comp := f.one(t, KoiType)
	if comp.Custom {
		t.Error("the Koi is registered as a custom resource")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.resources {
		if r.TypeToken == KoiType {
			continue
		}
		if p := r.RegisterRPC.GetParent(); !strings.HasSuffix(p, "::skykoi-dev") || !strings.Contains(p, KoiType) {
			t.Errorf("%s %s has parent %q, want the Koi", r.TypeToken, r.Name, p)
		}
	}
}

func TestNewKoiChecksBinaryArch(t *testing.T) {
	root := projectDir(t)
	err := stack{}.run(newFakeAWS(), func(ctx *pulumi.Context) error {
		_, err := NewKoi(ctx, "skykoi-dev", KoiArgs{
			InstanceType:  "t4g.small",
			AllowedCidrs:  []string{"203.0.113.7/32"},
			TokenSha256:   configgen.HashSecret(testToken),
			GatewayBinary: filepath.Join(root, "dist", "skykoi-linux-amd64"),
		})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "built for amd64") {
		t.Errorf("err = %v, want the architecture mismatch", err)
	}
	fakeBinary(t, filepath.Join(root, "riscv"), elf.EM_RISCV)
	if _, err := inspectBinary(filepath.Join(root, "riscv")); err == nil {
		t.Error("a RISC-V binary was accepted")
	}
}

func TestProgramExports(t *testing.T) {
	if err := defaultStack(t).run(newFakeAWS(), Program); err != nil {
		t.Fatalf("Program: %v", err)
	}
	s := defaultStack(t)
	delete(s.config, "skykoi:allowedCidrs")
	err := s.run(newFakeAWS(), Program)
	if err == nil || !strings.Contains(err.Error(), "skykoi:allowedCidrs: required") {
		t.Errorf("Program without allowedCidrs: %v", err)
	}
}

// TestRealDistBinaries deploys what `make dist` built, when it has been
// run: real ELF headers for both architectures, and real-sized user-data.
func TestRealDistBinaries(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range []string{"t3.small", "t4g.small"} {
		t.Run(it, func(t *testing.T) {
			arch, _ := ArchOf(it)
			if _, err := os.Stat(filepath.Join(root, "dist", "skykoi-linux-"+string(arch))); err != nil {
				t.Skipf("%v (run make dist)", err)
			}
			s := stack{config: goodConfig(), secrets: tokenSecret, root: root}
			s.config["skykoi:instanceType"] = it
			f, outs := deployed(t, s)
			if !strings.HasPrefix(outs["artifactKey"], "skykoi-linux-"+string(arch)+"/") {
				t.Errorf("artifact key %q", outs["artifactKey"])
			}
			raw, err := base64.StdEncoding.DecodeString(str(f.one(t, typeInstance).Inputs, "userDataBase64"))
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) > cloudinit.MaxUserDataSize {
				t.Errorf("user-data is %d bytes, over EC2's %d", len(raw), cloudinit.MaxUserDataSize)
			}
			t.Logf("user-data: %d bytes before base64, gzipped: %v", len(raw), len(raw) > 1 && raw[0] == 0x1f && raw[1] == 0x8b)
		})
	}
}

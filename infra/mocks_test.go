package infra

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testToken is a gateway token no resource input may ever contain.
const testToken = "koi-test-token-Zq8vN3xW1rT5yU7iO9pA2sD4fG6hJ8kL"

// Facts the fake AWS answers with.
const (
	testAccount = "123456789012"
	testRegion  = "us-west-2"
	testAMI     = "ami-0123456789abcdef0"
)

// Resource type tokens the tests look for.
const (
	typeInstance   = "aws:ec2/instance:Instance"
	typeVolume     = "aws:ebs/volume:Volume"
	typeAttachment = "aws:ec2/volumeAttachment:VolumeAttachment"
	typeSG         = "aws:ec2/securityGroup:SecurityGroup"
	typeRole       = "aws:iam/role:Role"
	typeRolePolicy = "aws:iam/rolePolicy:RolePolicy"
	typeAttachPol  = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	typeProfile    = "aws:iam/instanceProfile:InstanceProfile"
	typeBucket     = "aws:s3/bucket:Bucket"
	typePAB        = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	typeSSE        = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
	typeBucketPol  = "aws:s3/bucketPolicy:BucketPolicy"
	typeObject     = "aws:s3/bucketObjectv2:BucketObjectv2"
	typeEip        = "aws:ec2/eip:Eip"

	tokGetAmi     = "aws:ec2/getAmi:getAmi"
	tokGetSubnet  = "aws:ec2/getSubnet:getSubnet"
	tokGetSubnets = "aws:ec2/getSubnets:getSubnets"
)

type fakeSubnet struct{ id, az, vpc string }

// fakeAWS is the mock resource monitor: it records every resource and
// invoke, and answers the look-ups like a small default VPC would.
type fakeAWS struct {
	subnets []fakeSubnet
	// offered are the zones that offer every instance type.
	offered []string

	mu        sync.Mutex
	resources []pulumi.MockResourceArgs
	calls     []pulumi.MockCallArgs
}

func newFakeAWS() *fakeAWS {
	return &fakeAWS{
		subnets: []fakeSubnet{
			{"subnet-0ccccccccccccccc3", "us-west-2c", "vpc-0default000000001"},
			{"subnet-0bbbbbbbbbbbbbbb2", "us-west-2b", "vpc-0default000000001"},
			{"subnet-0ddddddddddddddd4", "us-west-2d", "vpc-0default000000001"},
			{"subnet-0eeeeeeeeeeeeeee5", "us-west-2a", "vpc-0custom0000000002"},
		},
		offered: []string{"us-west-2b", "us-west-2c", "us-west-2d"},
	}
}

func (f *fakeAWS) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	f.mu.Lock()
	f.resources = append(f.resources, args)
	n := len(f.resources)
	f.mu.Unlock()

	outs := args.Inputs.Copy()
	set := func(k string, v any) { outs[resource.PropertyKey(k)] = resource.NewPropertyValue(v) }
	id := args.Name + "-id"
	switch args.TypeToken {
	case typeVolume:
		id = fmt.Sprintf("vol-%017x", n)
	case typeInstance:
		id = fmt.Sprintf("i-%017x", n)
		set("publicIp", "203.0.113.10")
		set("publicDns", "ec2-203-0-113-10.us-west-2.compute.amazonaws.com")
	case typeEip:
		id = fmt.Sprintf("eipalloc-%017x", n)
		set("publicIp", "198.51.100.20")
		set("publicDns", "ec2-198-51-100-20.us-west-2.compute.amazonaws.com")
	case typeSG:
		id = fmt.Sprintf("sg-%017x", n)
	case typeBucket:
		// What auto-naming would give: the logical name and a suffix.
		id = args.Name + "-a1b2c3d"
		set("bucket", id)
	case typeRole, typeProfile:
		id = args.Name + "-e5f6a7b"
		set("name", id)
		set("arn", "arn:aws:iam::"+testAccount+":role/"+id)
	}
	return id, outs, nil
}

func (f *fakeAWS) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	f.mu.Lock()
	f.calls = append(f.calls, args)
	f.mu.Unlock()

	m := func(v map[string]any) (resource.PropertyMap, error) { return resource.NewPropertyMapFromMap(v), nil }
	switch args.Token {
	case "aws:index/getPartition:getPartition":
		return m(map[string]any{"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"})
	case "aws:index/getRegion:getRegion":
		return m(map[string]any{"region": testRegion, "name": testRegion, "id": testRegion})
	case "aws:index/getCallerIdentity:getCallerIdentity":
		return m(map[string]any{"accountId": testAccount, "id": testAccount,
			"arn": "arn:aws:iam::" + testAccount + ":user/ada", "userId": "AIDAEXAMPLE"})
	case "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
		return m(map[string]any{"locations": anySlice(f.offered), "id": testRegion})
	case tokGetSubnets:
		var azs []string
		for _, flt := range args.Args["filters"].ArrayValue() {
			if flt.ObjectValue()["name"].StringValue() == "availability-zone" {
				for _, v := range flt.ObjectValue()["values"].ArrayValue() {
					azs = append(azs, v.StringValue())
				}
			}
		}
		var ids []string
		for _, s := range f.subnets {
			if strings.HasPrefix(s.vpc, "vpc-0default") && slices.Contains(azs, s.az) {
				ids = append(ids, s.id)
			}
		}
		return m(map[string]any{"ids": anySlice(ids), "id": testRegion})
	case tokGetSubnet:
		id := args.Args["id"].StringValue()
		for _, s := range f.subnets {
			if s.id == id {
				return m(map[string]any{"id": s.id, "availabilityZone": s.az, "vpcId": s.vpc})
			}
		}
		return nil, fmt.Errorf("no subnet %s", id)
	case tokGetAmi:
		arch := "x86_64"
		for _, flt := range args.Args["filters"].ArrayValue() {
			if flt.ObjectValue()["name"].StringValue() == "architecture" {
				arch = flt.ObjectValue()["values"].ArrayValue()[0].StringValue()
			}
		}
		return m(map[string]any{"id": testAMI, "imageId": testAMI, "architecture": arch, "ownerId": CanonicalOwnerID})
	}
	return nil, fmt.Errorf("fake AWS: unexpected invoke %s", args.Token)
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (f *fakeAWS) ofType(token string) []pulumi.MockResourceArgs {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pulumi.MockResourceArgs
	for _, r := range f.resources {
		if r.TypeToken == token {
			out = append(out, r)
		}
	}
	return out
}

// one returns the only resource of a type, failing otherwise.
func (f *fakeAWS) one(t *testing.T, token string) pulumi.MockResourceArgs {
	t.Helper()
	rs := f.ofType(token)
	if len(rs) != 1 {
		t.Fatalf("%d resources of type %s, want 1", len(rs), token)
	}
	return rs[0]
}

// named returns the only resource of a type with a logical name, for types
// the Koi has several of (roles, role policies), failing unless there is
// exactly one.
func (f *fakeAWS) named(t *testing.T, token, name string) pulumi.MockResourceArgs {
	t.Helper()
	var found []pulumi.MockResourceArgs
	for _, r := range f.ofType(token) {
		if r.Name == name {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d resources of type %s named %s, want 1", len(found), token, name)
	}
	return found[0]
}

// names lists the logical names of the resources of a type.
func (f *fakeAWS) names(token string) []string {
	var out []string
	for _, r := range f.ofType(token) {
		out = append(out, r.Name)
	}
	return out
}

func (f *fakeAWS) callsTo(token string) []pulumi.MockCallArgs {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pulumi.MockCallArgs
	for _, c := range f.calls {
		if c.Token == token {
			out = append(out, c)
		}
	}
	return out
}

// stack is one stack's config, as `pulumi config` would hand it over.
type stack struct {
	name    string
	config  map[string]string
	secrets []string
	root    string
}

// run runs body as a Pulumi program against f. The config arrives the way
// the engine passes it (PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS, which
// the SDK reads into RunInfo), without touching this process's environment.
func (s stack) run(f pulumi.MockResourceMonitor, body pulumi.RunFunc) error {
	name := s.name
	if name == "" {
		name = "dev"
	}
	return pulumi.RunErr(body, pulumi.WithMocks("skykoi", name, f), func(info *pulumi.RunInfo) {
		info.Config = s.config
		info.ConfigSecretKeys = s.secrets
		info.RootDirectory = s.root
	})
}

// fakeBinary writes a file that passes for a linux executable of machine:
// an ELF header and a little text, enough for the architecture check and
// the hash.
func fakeBinary(t *testing.T, path string, machine elf.Machine) string {
	t.Helper()
	var h elf.Header64
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h.Type = uint16(elf.ET_EXEC)
	h.Machine = uint16(machine)
	h.Version = uint32(elf.EV_CURRENT)
	h.Ehsize = 64
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("skykoi gateway stand-in\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// projectDir is a project directory with both dist binaries built.
func projectDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fakeBinary(t, filepath.Join(dir, "dist", "skykoi-linux-amd64"), elf.EM_X86_64)
	fakeBinary(t, filepath.Join(dir, "dist", "skykoi-linux-arm64"), elf.EM_AARCH64)
	return dir
}

// goodConfig is a complete, valid stack config.
func goodConfig() map[string]string {
	return map[string]string{
		"aws:region":             testRegion,
		"skykoi:allowedCidrs":    `["203.0.113.7/32","2001:db8:1234::/48"]`,
		"skykoi:gatewayToken":    testToken,
		"skykoi:fallbacks":       `["amazon-bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0","amazon-bedrock/amazon.nova-pro-v1:0"]`,
		"skykoi:idleStopMinutes": "120",
	}
}

var tokenSecret = []string{"skykoi:gatewayToken"}

// str reads a string input; nested keys walk objects.
func str(pm resource.PropertyMap, keys ...string) string {
	v := resource.NewObjectProperty(pm)
	for _, k := range keys {
		if !v.IsObject() {
			return ""
		}
		v = v.ObjectValue()[resource.PropertyKey(k)]
		if v.IsSecret() {
			v = v.SecretValue().Element
		}
	}
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

func strs(v resource.PropertyValue) []string {
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		out = append(out, e.StringValue())
	}
	sort.Strings(out)
	return out
}

// allStrings lists every string inside a value, secrets and assets
// included, for checks that a value appears nowhere.
func allStrings(v resource.PropertyValue) []string {
	switch {
	case v.IsString():
		return []string{v.StringValue()}
	case v.IsSecret():
		return allStrings(v.SecretValue().Element)
	case v.IsOutput():
		return allStrings(v.OutputValue().Element)
	case v.IsArray():
		var out []string
		for _, e := range v.ArrayValue() {
			out = append(out, allStrings(e)...)
		}
		return out
	case v.IsObject():
		var out []string
		for k, e := range v.ObjectValue() {
			out = append(out, string(k))
			out = append(out, allStrings(e)...)
		}
		return out
	case v.IsAsset():
		a := v.AssetValue()
		return []string{a.Path, a.Text, a.URI}
	}
	return nil
}

// decodeUserData undoes what NewKoi does to user-data: base64 for the API,
// and gzip when cloudinit chose it.
func decodeUserData(t *testing.T, b64 string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("userDataBase64 is not base64: %v", err)
	}
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return string(raw)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./infra -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./infra -update if intended):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

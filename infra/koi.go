package infra

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/wake"
	"github.com/skykoi/skykoi/internal/netbreadth"
)

// KoiType is the component's Pulumi type token.
const KoiType = "skykoi:index:Koi"

// Defaults of KoiArgs.
const (
	DefaultInstanceType  = "t3.small"
	DefaultDataVolumeGiB = 20
	DefaultRootVolumeGiB = 16
)

// DataDeviceName is where the data volume is attached. On Nitro instances
// it shows up as an NVMe device whatever the name; the bootstrap finds it
// by the volume id, not by this name.
const DataDeviceName = "/dev/sdf"

const (
	// minRootVolumeGiB is the size of Ubuntu's image snapshot: a root volume
	// cannot be smaller than the snapshot it is made from.
	minRootVolumeGiB = 8
	// maxVolumeGiB is gp3's largest size.
	maxVolumeGiB = 16384
	// maxIdleStopMinutes is a year: past that, 0 (never) says it better.
	maxIdleStopMinutes = 525600

	// imdsHopLimit is 1 because everything that needs the instance role's
	// credentials (the bootstrap, the gateway, its idle stop) runs on the
	// host itself. A container the agent starts behind a bridge is one hop
	// further and so cannot reach the metadata service and take the role;
	// 2 would be needed only for containers that should have it.
	imdsHopLimit = 1

	// ssmPolicy lets Session Manager reach the instance, so no SSH port or
	// key pair is needed to get a shell.
	ssmPolicy = "AmazonSSMManagedInstanceCore"
)

// koiNameRe keeps a name usable in every place it ends up: S3 bucket names
// (lowercase, no dots, at most 63 characters with the suffixes added),
// the hostname and tag values.
var koiNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

var subnetIDRe = regexp.MustCompile(`^subnet-[0-9a-f]{8}([0-9a-f]{9})?$`)

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

// KoiArgs are one Koi's settings. The zero value of every field is its
// default, so the safe choices hold unless asked otherwise.
type KoiArgs struct {
	// InstanceType defaults to DefaultInstanceType; its family decides the
	// architecture of the image and the gateway binary.
	InstanceType string
	// AllowedCidrs may reach HTTPS (443) and the HTTP redirect (80).
	// Required.
	AllowedCidrs []string
	// SSHCidrs may reach port 22. Empty (the default) opens no SSH port:
	// Session Manager gives a shell without one. A set reaching more than
	// one IPv4 /8 or one IPv6 /32 in all is refused (netbreadth).
	SSHCidrs []string
	// Model defaults to configgen.DefaultModel; Fallbacks are tried in
	// order. The role may invoke exactly these.
	Model     string
	Fallbacks []string
	// TokenSha256 is the gateway token's SHA-256, lowercase hex. The token
	// itself never reaches NewKoi.
	TokenSha256 string
	// GatewayBinary is the path of the linux binary to install; it defaults
	// to dist/skykoi-linux-<arch>, relative to the working directory.
	GatewayBinary string
	// DataVolumeGiB and RootVolumeGiB default to DefaultDataVolumeGiB and
	// DefaultRootVolumeGiB.
	DataVolumeGiB int
	RootVolumeGiB int
	// IdleStopMinutes > 0 lets the Koi stop its own instance when unused,
	// and only then grants the role ec2:StopInstances.
	IdleStopMinutes int
	// DeleteDataOnDestroy deletes the data volume with the stack. By
	// default it is retained: it holds the person's workspace and sessions.
	DeleteDataOnDestroy bool
	// ElasticIP gives the Koi an address that survives replacement.
	ElasticIP bool
	// SubnetID places the Koi; empty picks the default VPC's default subnet
	// in the first availability zone that offers InstanceType.
	SubnetID string

	// Backups, restore and adoption (backup.go).
	//
	// BackupRetentionDays is how many daily snapshots of the data volume
	// are kept; it defaults to DefaultBackupRetentionDays. DisableBackups
	// makes no snapshot policy and no role for it.
	BackupRetentionDays int
	DisableBackups      bool
	// DataVolumeSnapshotID makes the data volume from this snapshot; it
	// takes the snapshot's size unless DataVolumeGiB is set.
	DataVolumeSnapshotID string
	// DataVolumeID adopts this existing volume instead of making one: the
	// instance goes to its availability zone, and the stack never deletes
	// it. DataVolumeGiB must be 0 then.
	DataVolumeID string

	// Budget, when BudgetEmail is set, is an AWS Budgets alarm (budget.go).
	Budget BudgetArgs
	// Logs is the optional CloudWatch Logs group (logs.go).
	Logs LogsArgs
}

func defaultGatewayBinary(instanceType string) string {
	arch, err := ArchOf(instanceType)
	if err != nil {
		return ""
	}
	return "dist/skykoi-linux-" + string(arch)
}

func (a KoiArgs) withDefaults() KoiArgs {
	if a.InstanceType == "" {
		a.InstanceType = DefaultInstanceType
	}
	if a.Model == "" {
		a.Model = configgen.DefaultModel
	}
	if a.GatewayBinary == "" {
		a.GatewayBinary = defaultGatewayBinary(a.InstanceType)
	}
	if a.DataVolumeGiB == 0 && a.DataVolumeSnapshotID == "" && a.DataVolumeID == "" {
		a.DataVolumeGiB = DefaultDataVolumeGiB
	}
	if a.BackupRetentionDays == 0 {
		a.BackupRetentionDays = DefaultBackupRetentionDays
	}
	if a.Logs.On && a.Logs.RetentionDays == 0 {
		a.Logs.RetentionDays = DefaultLogRetentionDays
	}
	if a.RootVolumeGiB == 0 {
		a.RootVolumeGiB = DefaultRootVolumeGiB
	}
	return a
}

// models are the refs the role may invoke, primary first.
func (a KoiArgs) models() []string {
	return append([]string{a.Model}, a.Fallbacks...)
}

// problem is one invalid setting, keyed like the stack config.
type problem struct{ key, msg string }

// keyTokenSha256 names KoiArgs.TokenSha256, which has no config key of its
// own: the config holds the token.
const keyTokenSha256 = "tokenSha256"

// problems checks arguments that already have their defaults.
func (a KoiArgs) problems() []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	_, archErr := ArchOf(a.InstanceType)
	if archErr != nil {
		bad(KeyInstanceType, "%v", archErr)
	}
	if len(a.AllowedCidrs) == 0 {
		bad(KeyAllowedCidrs, "required: the networks that may reach the Koi on 443; set one with pulumi config set --path '%s:%s[0]' 203.0.113.7/32 (your address: curl https://checkip.amazonaws.com)",
			ConfigNamespace, KeyAllowedCidrs)
	} else if err := checkCidrs(a.AllowedCidrs, false); err != nil {
		bad(KeyAllowedCidrs, "%v", err)
	}
	if err := checkCidrs(a.SSHCidrs, true); err != nil {
		bad(KeySSHCidrs, "%v", err)
	}
	if _, err := parseModelRef(a.Model); err != nil {
		bad(KeyModel, "%v", err)
	}
	var errs []error
	for _, f := range a.Fallbacks {
		if _, err := parseModelRef(f); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		bad(KeyFallbacks, "%v", joinErrs(errs))
	}
	if !sha256Re.MatchString(a.TokenSha256) {
		bad(keyTokenSha256, "want the gateway token's SHA-256, 64 lowercase hex digits")
	}
	if a.GatewayBinary == "" && archErr == nil {
		bad(KeyGatewayBinary, "required: the path of the linux gateway binary (make dist)")
	}
	if a.DataVolumeGiB > maxVolumeGiB || a.DataVolumeGiB < 0 ||
		(a.DataVolumeGiB == 0 && a.DataVolumeSnapshotID == "" && a.DataVolumeID == "") {
		bad(KeyDataVolumeGiB, "want 1 to %d GiB, got %d", maxVolumeGiB, a.DataVolumeGiB)
	}
	if a.RootVolumeGiB < minRootVolumeGiB || a.RootVolumeGiB > maxVolumeGiB {
		bad(KeyRootVolumeGiB, "want %d to %d GiB, got %d", minRootVolumeGiB, maxVolumeGiB, a.RootVolumeGiB)
	}
	if a.IdleStopMinutes < 0 || a.IdleStopMinutes > maxIdleStopMinutes {
		bad(KeyIdleStopMinutes, "want 0 (never) to %d minutes, got %d", maxIdleStopMinutes, a.IdleStopMinutes)
	}
	if a.SubnetID != "" && !subnetIDRe.MatchString(a.SubnetID) {
		bad(KeySubnetID, "want a subnet id like subnet-0123456789abcdef0, got %q", a.SubnetID)
	}
	ps = append(ps, a.backupProblems()...)
	ps = append(ps, a.Budget.problems()...)
	ps = append(ps, a.Logs.problems()...)
	return ps
}

// Validate reports every invalid argument at once, defaults applied.
func (a KoiArgs) Validate() error {
	var errs []error
	for _, p := range a.withDefaults().problems() {
		errs = append(errs, fmt.Errorf("%s: %s", p.key, p.msg))
	}
	return errors.Join(errs...)
}

// joinErrs puts several errors about one value on one line.
func joinErrs(errs []error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// checkCidrs accepts network prefixes in canonical form, the form EC2
// stores, so the stack's config and AWS never disagree about a rule. For
// SSH it refuses a set that reaches too much of the internet taken
// together (netbreadth's rule), so a /0 split into halves fails like the
// /0 itself.
func checkCidrs(cidrs []string, ssh bool) error {
	var errs []error
	var ps []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err == nil {
			ps = append(ps, p)
		}
		switch {
		case err != nil:
			if addr, aerr := netip.ParseAddr(c); aerr == nil {
				errs = append(errs, fmt.Errorf("%q is an address, not a CIDR; for this address alone use %s/%d", c, c, addr.BitLen()))
			} else {
				errs = append(errs, fmt.Errorf("%q is not a CIDR like 203.0.113.7/32 or 2001:db8::/64", c))
			}
		case p.Masked() != p:
			errs = append(errs, fmt.Errorf("%q has bits set past its /%d; the network is %s", c, p.Bits(), p.Masked()))
		}
	}
	if ssh {
		if err := checkSSHBreadth(ps); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(joinErrs(errs))
}

// checkSSHBreadth refuses SSH from networks that together reach too much
// of the internet.
func checkSSHBreadth(ps []netip.Prefix) error {
	if err := netbreadth.Check(ps); err != nil {
		// A few names are enough to point at the entry; the list may be long.
		const shown = 4
		var names []string
		for _, p := range ps[:min(len(ps), shown)] {
			names = append(names, p.String())
		}
		if len(ps) > shown {
			names = append(names, fmt.Sprintf("and %d more", len(ps)-shown))
		}
		return fmt.Errorf("%s would open SSH to too much of the internet: %w; give your own network (like 203.0.113.7/32), or leave %s unset and use Session Manager (aws ssm start-session)",
			strings.Join(names, ", "), err, KeySSHCidrs)
	}
	return nil
}

// splitFamilies separates IPv4 and IPv6 prefixes, which security group
// rules take in different fields.
func splitFamilies(cidrs []string) (v4, v6 []string) {
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is6() {
			v6 = append(v6, c)
		} else {
			v4 = append(v4, c)
		}
	}
	return v4, v6
}

// Koi is one person's agent: an EC2 instance running the SkyKoi gateway
// behind nginx, its data volume, role, security group and artifact bucket.
type Koi struct {
	pulumi.ResourceState

	InstanceID      pulumi.StringOutput
	PublicIP        pulumi.StringOutput
	PublicDNS       pulumi.StringOutput
	URL             pulumi.StringOutput
	ArtifactKey     pulumi.StringOutput
	DataVolumeID    pulumi.StringOutput
	SecurityGroupID pulumi.StringOutput
	RoleArn         pulumi.StringOutput
}

// Outputs are the Koi's outputs by the names the stack exports.
func (k *Koi) Outputs() pulumi.Map {
	return pulumi.Map{
		"instanceId":      k.InstanceID,
		"publicIp":        k.PublicIP,
		"publicDns":       k.PublicDNS,
		"url":             k.URL,
		"artifactKey":     k.ArtifactKey,
		"dataVolumeId":    k.DataVolumeID,
		"securityGroupId": k.SecurityGroupID,
		"roleArn":         k.RoleArn,
	}
}

// koiBuilder carries what every step of NewKoi needs.
type koiBuilder struct {
	ctx    *pulumi.Context
	name   string
	args   KoiArgs
	arch   Arch
	bin    binaryInfo
	parent pulumi.ResourceOrInvokeOption

	partition, region, account string
}

// tags label a resource as this Koi's; role tells its pieces apart in the
// console.
func (b *koiBuilder) tags(role string) pulumi.StringMap {
	n := b.name
	if role != "" {
		n += "-" + role
	}
	return pulumi.StringMap{"Name": pulumi.String(n), KoiTagKey: pulumi.String(b.name)}
}

// NewKoi creates a Koi. name tags every resource (KoiTagKey) and scopes the
// role's ec2:StopInstances, so it must be unique among the Kois of an AWS
// account and region.
func NewKoi(ctx *pulumi.Context, name string, args KoiArgs, opts ...pulumi.ResourceOption) (*Koi, error) {
	if !koiNameRe.MatchString(name) {
		return nil, fmt.Errorf("koi name %q: want 1-40 of a-z, 0-9 and '-', not starting or ending with '-' (it names an S3 bucket)", name)
	}
	args = args.withDefaults()
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("koi %s: invalid arguments:\n%w", name, err)
	}
	arch, _ := ArchOf(args.InstanceType) // Validate checked it
	bin, err := inspectBinary(args.GatewayBinary)
	if err != nil {
		return nil, fmt.Errorf("koi %s: %w", name, err)
	}
	if bin.arch != arch {
		return nil, fmt.Errorf("koi %s: %w", name, archMismatch(args.GatewayBinary, bin.arch, args.InstanceType, arch))
	}

	k := &Koi{}
	if err := ctx.RegisterComponentResource(KoiType, name, k, opts...); err != nil {
		return nil, fmt.Errorf("koi %s: registering the component: %w", name, err)
	}
	b := &koiBuilder{ctx: ctx, name: name, args: args, arch: arch, bin: bin, parent: pulumi.Parent(k)}
	if err := b.build(k); err != nil {
		return nil, fmt.Errorf("koi %s: %w", name, err)
	}
	if err := ctx.RegisterResourceOutputs(k, k.Outputs()); err != nil {
		return nil, fmt.Errorf("koi %s: registering outputs: %w", name, err)
	}
	return k, nil
}

func (b *koiBuilder) build(k *Koi) error {
	if err := b.lookupAccount(); err != nil {
		return err
	}
	adopted, err := b.lookupAdopted()
	if err != nil {
		return err
	}
	net, err := b.lookupNetwork(adopted.az)
	if err != nil {
		return err
	}
	ami, err := b.lookupAMI()
	if err != nil {
		return err
	}
	art, err := b.artifact()
	if err != nil {
		return err
	}
	role, err := b.role(art)
	if err != nil {
		return err
	}
	sg, err := b.securityGroup(net.vpcID)
	if err != nil {
		return err
	}
	volID, err := b.dataVolume(net.az, adopted)
	if err != nil {
		return err
	}
	if err := b.backups(); err != nil {
		return err
	}
	if err := b.budget(); err != nil {
		return err
	}
	if err := b.logs(role); err != nil {
		return err
	}

	userData := pulumi.All(volID, art.bucket.Bucket).ApplyT(func(v []any) (string, error) {
		return b.userData(v[0].(string), v[1].(string), art.key)
	}).(pulumi.StringOutput)

	metadata := &ec2.InstanceMetadataOptionsArgs{
		HttpEndpoint:            pulumi.String("enabled"),
		HttpTokens:              pulumi.String("required"),
		HttpPutResponseHopLimit: pulumi.Int(imdsHopLimit),
	}
	instTags := b.tags("")
	if role.wake != nil {
		// The gateway reads the wake role's ARN from its own tags through
		// instance metadata: no API call, no extra permission.
		metadata.InstanceMetadataTags = pulumi.String("enabled")
		instTags[wake.RoleTag] = role.wake.Arn
	}
	inst, err := ec2.NewInstance(b.ctx, b.name, &ec2.InstanceArgs{
		Ami:                      pulumi.String(ami),
		InstanceType:             pulumi.String(b.args.InstanceType),
		SubnetId:                 pulumi.String(net.subnetID),
		VpcSecurityGroupIds:      pulumi.StringArray{sg.ID()},
		IamInstanceProfile:       role.profile.Name,
		AssociatePublicIpAddress: pulumi.Bool(true),
		MetadataOptions:          metadata,
		RootBlockDevice: &ec2.InstanceRootBlockDeviceArgs{
			VolumeType:          pulumi.String("gp3"),
			VolumeSize:          pulumi.Int(b.args.RootVolumeGiB),
			Encrypted:           pulumi.Bool(true),
			DeleteOnTermination: pulumi.Bool(true),
			Tags:                b.tags("root"),
		},
		UserDataBase64: userData,
		// cloud-init runs user-data on an instance's first boot only: a
		// changed user-data on the old instance would change nothing.
		UserDataReplaceOnChange: pulumi.Bool(true),
		Tags:                    instTags,
	}, b.parent, pulumi.DependsOn([]pulumi.Resource{art.object, role.policy, role.ssm}))
	if err != nil {
		return fmt.Errorf("creating the instance: %w", err)
	}
	if role.wake != nil {
		if err := b.wakePolicies(role, inst); err != nil {
			return err
		}
	}

	// Stopping the old instance before detaching lets it unmount the volume
	// cleanly; deleting the attachment before replacing it frees the volume
	// for the new instance, since an EBS volume has one attachment at a time.
	if _, err := ec2.NewVolumeAttachment(b.ctx, b.name+"-data", &ec2.VolumeAttachmentArgs{
		DeviceName:                  pulumi.String(DataDeviceName),
		InstanceId:                  inst.ID().ToStringOutput(),
		VolumeId:                    volID,
		StopInstanceBeforeDetaching: pulumi.Bool(true),
	}, b.parent, pulumi.DeleteBeforeReplace(true)); err != nil {
		return fmt.Errorf("attaching the data volume: %w", err)
	}

	k.PublicIP, k.PublicDNS = inst.PublicIp, inst.PublicDns
	if b.args.ElasticIP {
		eip, err := ec2.NewEip(b.ctx, b.name, &ec2.EipArgs{
			Domain:   pulumi.String("vpc"),
			Instance: inst.ID().ToStringOutput(),
			Tags:     b.tags(""),
		}, b.parent)
		if err != nil {
			return fmt.Errorf("creating the Elastic IP: %w", err)
		}
		k.PublicIP, k.PublicDNS = eip.PublicIp, eip.PublicDns
	}
	k.InstanceID = inst.ID().ToStringOutput()
	k.URL = pulumi.Sprintf("wss://%s/", k.PublicIP)
	k.ArtifactKey = pulumi.String(art.key).ToStringOutput()
	k.DataVolumeID = volID
	k.SecurityGroupID = sg.ID().ToStringOutput()
	k.RoleArn = role.role.Arn
	return nil
}

// userData renders the instance's user-data, base64 for the API because it
// may be gzipped. Only the token's digest is in it: anyone who may describe
// the instance can read user-data.
func (b *koiBuilder) userData(volumeID, bucket, key string) (string, error) {
	ud, err := cloudinit.Render(cloudinit.Options{
		ConfigOptions: configgen.Options{
			TokenSha256:     b.args.TokenSha256,
			Model:           b.args.Model,
			Fallbacks:       b.args.Fallbacks,
			IdleStopMinutes: b.args.IdleStopMinutes,
			Region:          b.region,
		},
		DataVolumeID: volumeID,
		Artifact:     cloudinit.Artifact{S3Bucket: bucket, S3Key: key, Region: b.region},
		BinarySHA256: b.bin.sha256,
		Hostname:     b.name,
		Logs:         b.logsUserData(),
	})
	if err != nil {
		return "", fmt.Errorf("rendering user-data: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ud), nil
}

// lookupAccount finds where the stack deploys: ARNs need the partition,
// region and account.
func (b *koiBuilder) lookupAccount() error {
	part, err := aws.GetPartition(b.ctx, &aws.GetPartitionArgs{}, b.parent)
	if err != nil {
		return fmt.Errorf("looking up the AWS partition: %w", err)
	}
	region, err := aws.GetRegion(b.ctx, &aws.GetRegionArgs{}, b.parent)
	if err != nil {
		return fmt.Errorf("looking up the AWS region (set it with pulumi config set aws:region us-east-1): %w", err)
	}
	caller, err := aws.GetCallerIdentity(b.ctx, &aws.GetCallerIdentityArgs{}, b.parent)
	if err != nil {
		return fmt.Errorf("looking up the AWS account (are AWS credentials set?): %w", err)
	}
	b.partition, b.region, b.account = part.Partition, region.Region, caller.AccountId
	return nil
}

// network is where the instance and its data volume go. They must share
// an availability zone, and the volume is made before the instance (its id
// is in the user-data), so the zone is decided here.
type network struct {
	subnetID, az, vpcID string
}

// lookupNetwork places the instance; volumeAZ, when set, is the zone of
// an adopted data volume, which the instance must share.
func (b *koiBuilder) lookupNetwork(volumeAZ string) (network, error) {
	if id := b.args.SubnetID; id != "" {
		s, err := ec2.LookupSubnet(b.ctx, &ec2.LookupSubnetArgs{Id: pulumi.StringRef(id)}, b.parent)
		if err != nil {
			return network{}, fmt.Errorf("looking up subnet %s: %w", id, err)
		}
		if volumeAZ != "" && s.AvailabilityZone != volumeAZ {
			return network{}, fmt.Errorf("%s:%s %s is in %s, but the volume to adopt (%s:%s %s) is in %s, and a volume attaches only in its own zone; give a subnet in %s, or leave %s unset",
				ConfigNamespace, KeySubnetID, id, s.AvailabilityZone, ConfigNamespace, KeyDataVolumeID, b.args.DataVolumeID, volumeAZ, volumeAZ, KeySubnetID)
		}
		return network{subnetID: s.Id, az: s.AvailabilityZone, vpcID: s.VpcId}, nil
	}
	// Not every zone offers every type (t3 is missing from some of
	// us-east-1's), and a launch in such a zone fails late.
	offers, err := ec2.GetInstanceTypeOfferings(b.ctx, &ec2.GetInstanceTypeOfferingsArgs{
		LocationType: pulumi.StringRef("availability-zone"),
		Filters: []ec2.GetInstanceTypeOfferingsFilter{
			{Name: "instance-type", Values: []string{b.args.InstanceType}},
		},
	}, b.parent)
	if err != nil {
		return network{}, fmt.Errorf("looking up the zones that offer %s: %w", b.args.InstanceType, err)
	}
	if len(offers.Locations) == 0 {
		return network{}, fmt.Errorf("no availability zone of %s offers %s; choose another skykoi:%s",
			b.region, b.args.InstanceType, KeyInstanceType)
	}
	if volumeAZ != "" {
		if !slices.Contains(offers.Locations, volumeAZ) {
			return network{}, fmt.Errorf("the volume to adopt (%s:%s %s) is in %s, which does not offer %s; choose another %s:%s",
				ConfigNamespace, KeyDataVolumeID, b.args.DataVolumeID, volumeAZ, b.args.InstanceType, ConfigNamespace, KeyInstanceType)
		}
		offers.Locations = []string{volumeAZ}
	}
	subnets, err := ec2.GetSubnets(b.ctx, &ec2.GetSubnetsArgs{Filters: []ec2.GetSubnetsFilter{
		{Name: "default-for-az", Values: []string{"true"}},
		{Name: "availability-zone", Values: offers.Locations},
	}}, b.parent)
	if err != nil {
		return network{}, fmt.Errorf("looking up the default VPC's subnets: %w", err)
	}
	if len(subnets.Ids) == 0 {
		return network{}, fmt.Errorf("the default VPC of %s has no subnet in a zone that offers %s (was it deleted?); set skykoi:%s",
			b.region, b.args.InstanceType, KeySubnetID)
	}
	// The first zone by name, so the choice stays put from one update to
	// the next: a move would replace the data volume.
	var best network
	for _, id := range subnets.Ids {
		s, err := ec2.LookupSubnet(b.ctx, &ec2.LookupSubnetArgs{Id: pulumi.StringRef(id)}, b.parent)
		if err != nil {
			return network{}, fmt.Errorf("looking up subnet %s: %w", id, err)
		}
		if best.az == "" || s.AvailabilityZone < best.az {
			best = network{subnetID: s.Id, az: s.AvailabilityZone, vpcID: s.VpcId}
		}
	}
	return best, nil
}

// lookupAMI finds the newest Ubuntu 24.04 image from Canonical for the
// instance's architecture.
func (b *koiBuilder) lookupAMI() (string, error) {
	ami, err := ec2.LookupAmi(b.ctx, &ec2.LookupAmiArgs{
		Owners:     []string{CanonicalOwnerID},
		MostRecent: pulumi.BoolRef(true),
		Filters: []ec2.GetAmiFilter{
			{Name: "name", Values: []string{AMINamePattern(b.arch)}},
			{Name: "architecture", Values: []string{b.arch.ec2Arch()}},
		},
	}, b.parent)
	if err != nil {
		return "", fmt.Errorf("looking up the Ubuntu 24.04 %s image: %w", b.arch, err)
	}
	if ami.OwnerId != "" && ami.OwnerId != CanonicalOwnerID {
		return "", fmt.Errorf("the Ubuntu image %s belongs to %s, not Canonical", ami.Id, ami.OwnerId)
	}
	return ami.Id, nil
}

// artifact is the gateway binary in its private bucket.
type artifact struct {
	bucket *s3.Bucket
	object *s3.BucketObjectv2
	key    string
}

func (b *koiBuilder) artifact() (artifact, error) {
	name := b.name + "-artifacts"
	bucket, err := s3.NewBucket(b.ctx, name, &s3.BucketArgs{
		// The bucket holds only a rebuildable binary; without this, destroy
		// would fail on a non-empty bucket.
		ForceDestroy: pulumi.Bool(true),
		Tags:         b.tags("artifacts"),
	}, b.parent)
	if err != nil {
		return artifact{}, fmt.Errorf("creating the artifact bucket: %w", err)
	}
	pab, err := s3.NewBucketPublicAccessBlock(b.ctx, name, &s3.BucketPublicAccessBlockArgs{
		Bucket:                bucket.Bucket,
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, b.parent)
	if err != nil {
		return artifact{}, fmt.Errorf("blocking public access to the artifact bucket: %w", err)
	}
	if _, err := s3.NewBucketOwnershipControls(b.ctx, name, &s3.BucketOwnershipControlsArgs{
		Bucket: bucket.Bucket,
		Rule:   &s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")},
	}, b.parent); err != nil {
		return artifact{}, fmt.Errorf("disabling ACLs on the artifact bucket: %w", err)
	}
	// SSE-S3 rather than KMS: a KMS key would cost a monthly fee and need
	// kms:Decrypt in the role for no gain on a public binary's copy.
	sse, err := s3.NewBucketServerSideEncryptionConfiguration(b.ctx, name, &s3.BucketServerSideEncryptionConfigurationArgs{
		Bucket: bucket.Bucket,
		Rules: s3.BucketServerSideEncryptionConfigurationRuleArray{
			&s3.BucketServerSideEncryptionConfigurationRuleArgs{
				ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs{
					SseAlgorithm: pulumi.String("AES256"),
				},
			},
		},
	}, b.parent)
	if err != nil {
		return artifact{}, fmt.Errorf("encrypting the artifact bucket: %w", err)
	}
	policy := bucket.Bucket.ApplyT(func(n string) (string, error) {
		return tlsOnlyBucketPolicy(b.partition, n)
	}).(pulumi.StringOutput)
	if _, err := s3.NewBucketPolicy(b.ctx, name, &s3.BucketPolicyArgs{
		Bucket: bucket.Bucket,
		Policy: policy,
	}, b.parent, pulumi.DependsOn([]pulumi.Resource{pab})); err != nil {
		return artifact{}, fmt.Errorf("setting the artifact bucket's policy: %w", err)
	}

	// Keyed by content: a new binary is a new object, hence new user-data
	// and a new instance, while an unchanged binary changes nothing.
	key := "skykoi-linux-" + string(b.arch) + "/" + b.bin.sha256
	obj, err := s3.NewBucketObjectv2(b.ctx, b.name+"-gateway", &s3.BucketObjectv2Args{
		Bucket:               bucket.Bucket,
		Key:                  pulumi.String(key),
		Source:               pulumi.NewFileAsset(b.args.GatewayBinary),
		ContentType:          pulumi.String("application/octet-stream"),
		ServerSideEncryption: pulumi.String("AES256"),
		Tags:                 b.tags("gateway"),
	}, b.parent, pulumi.DependsOn([]pulumi.Resource{sse, pab}))
	if err != nil {
		return artifact{}, fmt.Errorf("uploading the gateway binary: %w", err)
	}
	return artifact{bucket: bucket, object: obj, key: key}, nil
}

// koiRole is the instance's identity and what it may do.
type koiRole struct {
	role *iam.Role
	// wake is the role EventBridge Scheduler takes to start the instance
	// after an idle stop; nil with idle stop off.
	wake    *iam.Role
	policy  *iam.RolePolicy
	ssm     *iam.RolePolicyAttachment
	profile *iam.InstanceProfile
}

func (b *koiBuilder) role(art artifact) (koiRole, error) {
	trust, err := assumeRolePolicy()
	if err != nil {
		return koiRole{}, err
	}
	role, err := iam.NewRole(b.ctx, b.name, &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(trust),
		Description:      pulumi.String("SkyKoi " + b.name + ": Bedrock models, its gateway binary, stopping itself"),
		Tags:             b.tags(""),
	}, b.parent)
	if err != nil {
		return koiRole{}, fmt.Errorf("creating the instance role: %w", err)
	}
	doc := art.bucket.Bucket.ApplyT(func(bucket string) (string, error) {
		return rolePolicy(rolePolicyParams{
			Partition: b.partition, Region: b.region, Account: b.account,
			Koi:            b.name,
			ArtifactBucket: bucket, ArtifactKey: art.key,
			Models:   b.args.models(),
			IdleStop: b.args.IdleStopMinutes > 0,
		})
	}).(pulumi.StringOutput)
	policy, err := iam.NewRolePolicy(b.ctx, b.name, &iam.RolePolicyArgs{Role: role.Name, Policy: doc}, b.parent)
	if err != nil {
		return koiRole{}, fmt.Errorf("granting the instance role its permissions: %w", err)
	}
	ssm, err := iam.NewRolePolicyAttachment(b.ctx, b.name+"-ssm", &iam.RolePolicyAttachmentArgs{
		Role:      role.Name,
		PolicyArn: pulumi.String(fmt.Sprintf("arn:%s:iam::aws:policy/%s", b.partition, ssmPolicy)),
	}, b.parent)
	if err != nil {
		return koiRole{}, fmt.Errorf("attaching %s: %w", ssmPolicy, err)
	}
	profile, err := iam.NewInstanceProfile(b.ctx, b.name, &iam.InstanceProfileArgs{
		Role: role.Name,
		Tags: b.tags(""),
	}, b.parent)
	if err != nil {
		return koiRole{}, fmt.Errorf("creating the instance profile: %w", err)
	}
	kr := koiRole{role: role, policy: policy, ssm: ssm, profile: profile}
	if b.args.IdleStopMinutes > 0 {
		trust, err := schedulerTrustPolicy(b.account)
		if err != nil {
			return koiRole{}, err
		}
		// Its permission (StartInstances on the instance) needs the
		// instance's ID, so it is granted after the instance exists.
		kr.wake, err = iam.NewRole(b.ctx, b.name+"-wake", &iam.RoleArgs{
			AssumeRolePolicy: pulumi.String(trust),
			Description:      pulumi.String("SkyKoi " + b.name + ": EventBridge Scheduler starts this Koi for its next job"),
			Tags:             b.tags("wake"),
		}, b.parent)
		if err != nil {
			return koiRole{}, fmt.Errorf("creating the wake role: %w", err)
		}
	}
	return kr, nil
}

// wakePolicies grant the wake role StartInstances on this instance and the
// instance role its own schedule and PassRole of the wake role.
func (b *koiBuilder) wakePolicies(role koiRole, inst *ec2.Instance) error {
	start := inst.ID().ToStringOutput().ApplyT(func(id string) (string, error) {
		return wakeStartPolicy(b.partition, b.region, b.account, id)
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(b.ctx, b.name+"-wake", &iam.RolePolicyArgs{Role: role.wake.Name, Policy: start}, b.parent); err != nil {
		return fmt.Errorf("granting the wake role ec2:StartInstances: %w", err)
	}
	sched := pulumi.All(inst.ID().ToStringOutput(), role.wake.Arn).ApplyT(func(v []any) (string, error) {
		return wakeSchedulePolicy(b.partition, b.region, b.account, v[0].(string), v[1].(string))
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(b.ctx, b.name+"-schedule", &iam.RolePolicyArgs{Role: role.role.Name, Policy: sched}, b.parent); err != nil {
		return fmt.Errorf("granting the instance role its wake schedule: %w", err)
	}
	return nil
}

// securityGroup lets the allowed networks reach nginx, and SSH only when
// asked. Egress stays open: the agent's tools fetch packages, clone
// repositories and call APIs on the person's behalf.
func (b *koiBuilder) securityGroup(vpcID string) (*ec2.SecurityGroup, error) {
	web4, web6 := splitFamilies(b.args.AllowedCidrs)
	ingress := ec2.SecurityGroupIngressArray{
		ingressRule(443, "HTTPS to nginx and the gateway", web4, web6),
		ingressRule(80, "HTTP, redirected to HTTPS", web4, web6),
	}
	if len(b.args.SSHCidrs) > 0 {
		// Validate refused these already; this is the last line.
		var ps []netip.Prefix
		for _, c := range b.args.SSHCidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("refusing SSH from %q: %w", c, err)
			}
			ps = append(ps, p)
		}
		if err := checkSSHBreadth(ps); err != nil {
			return nil, fmt.Errorf("refusing SSH: %w", err)
		}
		ssh4, ssh6 := splitFamilies(b.args.SSHCidrs)
		ingress = append(ingress, ingressRule(22, "SSH", ssh4, ssh6))
	}
	sg, err := ec2.NewSecurityGroup(b.ctx, b.name, &ec2.SecurityGroupArgs{
		Description: pulumi.String("SkyKoi: HTTPS and its HTTP redirect from the allowed networks"),
		VpcId:       pulumi.String(vpcID),
		Ingress:     ingress,
		Egress: ec2.SecurityGroupEgressArray{&ec2.SecurityGroupEgressArgs{
			Protocol:       pulumi.String("-1"),
			FromPort:       pulumi.Int(0),
			ToPort:         pulumi.Int(0),
			CidrBlocks:     pulumi.ToStringArray([]string{"0.0.0.0/0"}),
			Ipv6CidrBlocks: pulumi.ToStringArray([]string{"::/0"}),
		}},
		Tags: b.tags(""),
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating the security group: %w", err)
	}
	return sg, nil
}

func ingressRule(port int, why string, v4, v6 []string) *ec2.SecurityGroupIngressArgs {
	r := &ec2.SecurityGroupIngressArgs{
		Description: pulumi.String(why),
		Protocol:    pulumi.String("tcp"),
		FromPort:    pulumi.Int(port),
		ToPort:      pulumi.Int(port),
	}
	if len(v4) > 0 {
		r.CidrBlocks = pulumi.ToStringArray(slices.Clone(v4))
	}
	if len(v6) > 0 {
		r.Ipv6CidrBlocks = pulumi.ToStringArray(slices.Clone(v6))
	}
	return r
}

package infra

import (
	"fmt"
	"regexp"

	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/dlm"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/ebs"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// BackupTagKey marks the volume a Koi's snapshot policy copies. Only the
// data volume carries it (the root volume has KoiTagKey too, and holds
// nothing that a new instance would not rebuild), and its value is the
// Koi's name, so two Kois' policies never target the same volume: DLM
// refuses overlapping target tags anyway.
const BackupTagKey = "skykoi:backup"

// dlmPolicyIDTag is the system tag DLM puts on every snapshot it makes.
// Keys starting with aws: cannot be set by anyone else, so a condition on
// it lets the policy's role delete the snapshots that policy made and no
// other snapshot in the account.
const dlmPolicyIDTag = "aws:dlm:lifecycle-policy-id"

const (
	// DefaultBackupRetentionDays is how many daily snapshots are kept.
	DefaultBackupRetentionDays = 7
	// maxBackupRetentionDays is DLM's largest count-based retention.
	maxBackupRetentionDays = 1000
	// backupTimeUTC is when DLM starts the daily snapshot; it finishes
	// within the hour after. Early morning in the Americas and Europe, when
	// a person's Koi is least likely to be mid-run; a snapshot is
	// crash-consistent, so a busy Koi is safe, only less tidy.
	backupTimeUTC = "05:00"
)

var (
	snapshotIDRe = regexp.MustCompile(`^snap-[0-9a-f]{8}([0-9a-f]{9})?$`)
	volumeIDRe   = regexp.MustCompile(`^vol-[0-9a-f]{8}([0-9a-f]{9})?$`)
)

// adoptedVolume is an existing volume the stack uses without owning it.
type adoptedVolume struct {
	id, az string
}

// lookupAdopted finds the volume given by dataVolumeId: the instance must
// go where it is, and an unencrypted one is refused rather than used,
// since EBS cannot encrypt a volume in place.
func (b *koiBuilder) lookupAdopted() (adoptedVolume, error) {
	id := b.args.DataVolumeID
	if id == "" {
		return adoptedVolume{}, nil
	}
	v, err := ebs.LookupVolume(b.ctx, &ebs.LookupVolumeArgs{
		Filters: []ebs.GetVolumeFilter{{Name: "volume-id", Values: []string{id}}},
	}, b.parent)
	if err != nil {
		return adoptedVolume{}, fmt.Errorf("looking up the volume to adopt, %s:%s %s (is it in region %s?): %w",
			ConfigNamespace, KeyDataVolumeID, id, b.region, err)
	}
	if !v.Encrypted {
		return adoptedVolume{}, fmt.Errorf("%s:%s %s is not encrypted, and EBS cannot encrypt a volume in place; snapshot it (aws ec2 create-snapshot --volume-id %s) and restore the snapshot with %s:%s instead, which makes an encrypted copy",
			ConfigNamespace, KeyDataVolumeID, id, id, ConfigNamespace, KeyDataVolumeSnapshotID)
	}
	if v.AvailabilityZone == "" {
		return adoptedVolume{}, fmt.Errorf("looking up the volume to adopt, %s: AWS gave no availability zone", id)
	}
	return adoptedVolume{id: id, az: v.AvailabilityZone}, nil
}

// dataVolume makes the data volume, empty or restored from a snapshot, or
// takes the adopted one, and tags it for the snapshot policy.
func (b *koiBuilder) dataVolume(az string, adopted adoptedVolume) (pulumi.StringOutput, error) {
	if adopted.id != "" {
		// Not imported: the stack never owns the volume, so no `pulumi
		// destroy`, replacement or keepDataOnDestroy can delete it. Only the
		// tag is the stack's, and destroy removes just that tag.
		if _, err := ec2.NewTag(b.ctx, b.name+"-data-backup", &ec2.TagArgs{
			ResourceId: pulumi.String(adopted.id),
			Key:        pulumi.String(BackupTagKey),
			Value:      pulumi.String(b.name),
		}, b.parent); err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("tagging the adopted volume %s for backups: %w", adopted.id, err)
		}
		return pulumi.String(adopted.id).ToStringOutput(), nil
	}
	tags := b.tags("data")
	tags[BackupTagKey] = pulumi.String(b.name)
	args := &ebs.VolumeArgs{
		AvailabilityZone: pulumi.String(az),
		Type:             pulumi.String("gp3"),
		Encrypted:        pulumi.Bool(true),
		Tags:             tags,
	}
	// The snapshot matters only when the volume is made: later changes to
	// the key (or the snapshot's deletion by its own retention) must not
	// replace a volume that has lived on since.
	opts := []pulumi.ResourceOption{b.parent, pulumi.RetainOnDelete(!b.args.DeleteDataOnDestroy),
		pulumi.IgnoreChanges([]string{"snapshotId"})}
	if b.args.DataVolumeSnapshotID != "" {
		args.SnapshotId = pulumi.String(b.args.DataVolumeSnapshotID)
	}
	// Restored without a size, the volume takes the snapshot's.
	if b.args.DataVolumeGiB > 0 {
		args.Size = pulumi.Int(b.args.DataVolumeGiB)
	}
	vol, err := ebs.NewVolume(b.ctx, b.name+"-data", args, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("creating the data volume: %w", err)
	}
	return vol.ID().ToStringOutput(), nil
}

// backups makes the daily snapshot policy and the role DLM runs it with.
func (b *koiBuilder) backups() error {
	if b.args.DisableBackups {
		return nil
	}
	trust, err := dlmAssumeRolePolicy()
	if err != nil {
		return err
	}
	role, err := iam.NewRole(b.ctx, b.name+"-backup", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(trust),
		Description:      pulumi.String("SkyKoi " + b.name + ": Data Lifecycle Manager's daily snapshots of its data volume"),
		Tags:             b.tags("backup"),
	}, b.parent)
	if err != nil {
		return fmt.Errorf("creating the backup role: %w", err)
	}
	policy, err := dlm.NewLifecyclePolicy(b.ctx, b.name+"-backup", &dlm.LifecyclePolicyArgs{
		Description:      pulumi.String("SkyKoi " + b.name + " daily data volume snapshots"),
		ExecutionRoleArn: role.Arn,
		State:            pulumi.String("ENABLED"),
		PolicyDetails: &dlm.LifecyclePolicyPolicyDetailsArgs{
			PolicyType:    pulumi.String("EBS_SNAPSHOT_MANAGEMENT"),
			ResourceTypes: pulumi.ToStringArray([]string{"VOLUME"}),
			TargetTags:    pulumi.StringMap{BackupTagKey: pulumi.String(b.name)},
			Schedules: dlm.LifecyclePolicyPolicyDetailsScheduleArray{&dlm.LifecyclePolicyPolicyDetailsScheduleArgs{
				Name: pulumi.String("daily"),
				CreateRule: &dlm.LifecyclePolicyPolicyDetailsScheduleCreateRuleArgs{
					Interval:     pulumi.Int(24),
					IntervalUnit: pulumi.String("HOURS"),
					Times:        pulumi.String(backupTimeUTC),
				},
				// By count, not age: should snapshots stop (the policy in
				// error, the volume gone), age would delete the last good
				// ones while count keeps them.
				RetainRule: &dlm.LifecyclePolicyPolicyDetailsScheduleRetainRuleArgs{
					Count: pulumi.Int(b.args.BackupRetentionDays),
				},
				// The volume's tags (skykoi:koi, Name) find the snapshots
				// again for a restore.
				CopyTags: pulumi.Bool(true),
			}},
		},
		Tags: b.tags("backup"),
	}, b.parent)
	if err != nil {
		return fmt.Errorf("creating the snapshot policy: %w", err)
	}
	// The permissions come after the policy, whose id scopes the deletes.
	// DLM first runs at the next backupTimeUTC, long after both exist.
	doc := policy.ID().ToStringOutput().ApplyT(func(id string) (string, error) {
		return backupRolePolicy(backupPolicyParams{
			Partition: b.partition, Region: b.region, Account: b.account,
			Koi: b.name, PolicyID: id,
		})
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(b.ctx, b.name+"-backup", &iam.RolePolicyArgs{Role: role.Name, Policy: doc}, b.parent); err != nil {
		return fmt.Errorf("granting the backup role its permissions: %w", err)
	}
	return nil
}

// backupPolicyParams are what the backup role's permissions depend on.
type backupPolicyParams struct {
	Partition, Region, Account string
	// Koi is the value of BackupTagKey on the data volume.
	Koi string
	// PolicyID is the DLM policy's id (policy-…), on every snapshot it made.
	PolicyID string
}

// backupRolePolicy is the DLM role's inline policy: the part of AWS's
// managed AWSDataLifecycleManagerServiceRole a daily volume snapshot
// policy uses, and narrower. Left out: fast snapshot restore, cross-region
// and cross-account copies, archiving, EventBridge rules and SSM scripts,
// and ec2:CreateSnapshots (multi-volume instance snapshots). Every write
// is in the Koi's region only.
func backupRolePolicy(p backupPolicyParams) (string, error) {
	if p.Koi == "" || p.PolicyID == "" {
		return "", fmt.Errorf("the backup role's permissions need the Koi's name and the policy id, got %q and %q", p.Koi, p.PolicyID)
	}
	snapshots := fmt.Sprintf("arn:%s:ec2:%s::snapshot/*", p.Partition, p.Region)
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{
		{
			// Describe calls have no resource-level permissions.
			Sid:      "FindVolumesAndSnapshots",
			Effect:   "Allow",
			Action:   []string{"ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:DescribeVolumes"},
			Resource: []string{"*"},
		},
		{
			// A snapshot is authorized on its volume and on the new snapshot:
			// the volume must be the one tagged for this Koi.
			Sid:       "SnapshotTheDataVolume",
			Effect:    "Allow",
			Action:    []string{"ec2:CreateSnapshot"},
			Resource:  []string{fmt.Sprintf("arn:%s:ec2:%s:%s:volume/*", p.Partition, p.Region, p.Account)},
			Condition: map[string]map[string]string{"StringEquals": {"aws:ResourceTag/" + BackupTagKey: p.Koi}},
		},
		{
			Sid:      "CreateAndTagSnapshots",
			Effect:   "Allow",
			Action:   []string{"ec2:CreateSnapshot", "ec2:CreateTags"},
			Resource: []string{snapshots},
		},
		{
			// Retention deletes only what this policy made.
			Sid:       "ExpireOwnSnapshots",
			Effect:    "Allow",
			Action:    []string{"ec2:DeleteSnapshot"},
			Resource:  []string{snapshots},
			Condition: map[string]map[string]string{"StringEquals": {"aws:ResourceTag/" + dlmPolicyIDTag: p.PolicyID}},
		},
	}}.render()
}

// dlmAssumeRolePolicy lets Data Lifecycle Manager, and nothing else, take
// the backup role.
func dlmAssumeRolePolicy() (string, error) {
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Effect:    "Allow",
		Principal: map[string]string{"Service": "dlm.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
	}}}.render()
}

// backupProblems checks the backup, restore and adoption settings.
func (a KoiArgs) backupProblems() []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	if !a.DisableBackups && (a.BackupRetentionDays < 1 || a.BackupRetentionDays > maxBackupRetentionDays) {
		bad(KeyBackupRetentionDays, "want 1 to %d daily snapshots (0 in the stack config turns backups off), got %d",
			maxBackupRetentionDays, a.BackupRetentionDays)
	}
	if id := a.DataVolumeSnapshotID; id != "" && !snapshotIDRe.MatchString(id) {
		bad(KeyDataVolumeSnapshotID, "want a snapshot id like snap-0123456789abcdef0, got %q (list this Koi's with aws ec2 describe-snapshots --owner-ids self --filters Name=tag:%s,Values=<koi>)",
			id, KoiTagKey)
	}
	if id := a.DataVolumeID; id != "" {
		switch {
		case !volumeIDRe.MatchString(id):
			bad(KeyDataVolumeID, "want a volume id like vol-0123456789abcdef0, got %q", id)
		case a.DataVolumeSnapshotID != "":
			bad(KeyDataVolumeID, "give either %s (adopt a volume) or %s (restore a snapshot into a new volume), not both",
				KeyDataVolumeID, KeyDataVolumeSnapshotID)
		}
		if a.DataVolumeGiB != 0 {
			bad(KeyDataVolumeGiB, "an adopted volume (%s) keeps its own size; unset %s, and grow the volume with aws ec2 modify-volume",
				KeyDataVolumeID, KeyDataVolumeGiB)
		}
		if a.DeleteDataOnDestroy {
			bad(KeyKeepDataOnDestroy, "the stack never deletes an adopted volume (%s); unset %s, or delete the volume yourself after destroy",
				KeyDataVolumeID, KeyKeepDataOnDestroy)
		}
	}
	return ps
}

package infra

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

const (
	typeDLMPolicy = "aws:dlm/lifecyclePolicy:LifecyclePolicy"
	typeTag       = "aws:ec2/tag:Tag"
	typeBudget    = "aws:budgets/budget:Budget"
	tokGetVolume  = "aws:ebs/getVolume:getVolume"
)

type fakeVolume struct {
	az        string
	encrypted bool
}

// volumeAWS is fakeAWS that also knows existing volumes, for adoption.
type volumeAWS struct {
	*fakeAWS
	volumes map[string]fakeVolume
}

func (v *volumeAWS) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	if args.Token != tokGetVolume {
		return v.fakeAWS.Call(args)
	}
	v.mu.Lock()
	v.calls = append(v.calls, args)
	v.mu.Unlock()
	var id string
	for _, flt := range args.Args["filters"].ArrayValue() {
		if o := flt.ObjectValue(); o["name"].StringValue() == "volume-id" {
			for _, val := range o["values"].ArrayValue() {
				id = val.StringValue()
			}
		}
	}
	vol, ok := v.volumes[id]
	if !ok {
		// What the provider says when DescribeVolumes finds nothing.
		return nil, errors.New("Your query returned no results. Please change your search criteria and try again.")
	}
	return resource.NewPropertyMapFromMap(map[string]any{
		"id": id, "volumeId": id, "availabilityZone": vol.az, "encrypted": vol.encrypted,
		"size": 20, "volumeType": "gp3", "arn": "arn:aws:ec2:" + testRegion + ":" + testAccount + ":volume/" + id,
	}), nil
}

func tagsOf(pm resource.PropertyMap) map[string]string {
	out := map[string]string{}
	v := pm["tags"]
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsObject() {
		return out
	}
	for k, e := range v.ObjectValue() {
		if e.IsString() {
			out[string(k)] = e.StringValue()
		}
	}
	return out
}

func TestBackupPolicy(t *testing.T) {
	f, outs := deployed(t, defaultStack(t))
	pol := f.one(t, typeDLMPolicy).Inputs
	if got := str(pol, "state"); got != "ENABLED" {
		t.Errorf("policy state %q, want ENABLED", got)
	}
	f.named(t, typeRole, "skykoi-dev-backup")
	if got := str(pol, "executionRoleArn"); got != "arn:aws:iam::"+testAccount+":role/skykoi-dev-backup-e5f6a7b" {
		t.Errorf("policy runs as %q, want the backup role", got)
	}
	d := pol["policyDetails"].ObjectValue()
	if got := strs(d["resourceTypes"]); !reflect.DeepEqual(got, []string{"VOLUME"}) {
		t.Errorf("resource types %v, want VOLUME", got)
	}
	if got := tagsOf(resource.PropertyMap{"tags": d["targetTags"]}); !reflect.DeepEqual(got, map[string]string{BackupTagKey: "skykoi-dev"}) {
		t.Errorf("target tags %v", got)
	}
	sched := d["schedules"].ArrayValue()
	if len(sched) != 1 {
		t.Fatalf("%d schedules, want 1", len(sched))
	}
	s := sched[0].ObjectValue()
	cr := s["createRule"].ObjectValue()
	if cr["interval"].NumberValue() != 24 || cr["intervalUnit"].StringValue() != "HOURS" || cr["times"].StringValue() != backupTimeUTC {
		t.Errorf("create rule %v, want every 24 hours at %s", cr, backupTimeUTC)
	}
	rr := s["retainRule"].ObjectValue()
	if rr["count"].NumberValue() != DefaultBackupRetentionDays {
		t.Errorf("retain rule %v, want the newest %d", rr, DefaultBackupRetentionDays)
	}
	if _, ok := rr["interval"]; ok {
		t.Errorf("retain rule by age %v; by count keeps the last snapshots when creation stops", rr)
	}
	if !s["copyTags"].BoolValue() {
		t.Error("snapshots do not carry the volume's tags")
	}

	// Only the data volume carries the target tag: not the instance, not
	// its root volume, not any other resource.
	vol := f.one(t, typeVolume)
	if got := tagsOf(vol.Inputs)[BackupTagKey]; got != "skykoi-dev" {
		t.Errorf("data volume tag %s = %q, want skykoi-dev", BackupTagKey, got)
	}
	if got := str(vol.Inputs, "tags", KoiTagKey); got != "skykoi-dev" {
		t.Errorf("data volume tag %s = %q", KoiTagKey, got)
	}
	f.mu.Lock()
	for _, r := range f.resources {
		if r.TypeToken == typeVolume {
			continue
		}
		for _, s := range allStrings(resource.NewObjectProperty(r.Inputs)) {
			if s == BackupTagKey && r.TypeToken != typeDLMPolicy {
				t.Errorf("%s %s mentions %s; only the data volume may carry it", r.TypeToken, r.Name, BackupTagKey)
			}
		}
	}
	f.mu.Unlock()
	root := f.one(t, typeInstance).Inputs["rootBlockDevice"].ObjectValue()
	if _, ok := tagsOf(root)[BackupTagKey]; ok {
		t.Error("the root volume is tagged for backups")
	}
	if outs["dataVolumeId"] == "" {
		t.Error("no data volume output")
	}
}

func TestBackupRolePolicy(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	pol := f.named(t, typeRolePolicy, "skykoi-dev-backup")
	if got := str(pol.Inputs, "role"); got != "skykoi-dev-backup-e5f6a7b" {
		t.Errorf("backup permissions on role %q", got)
	}
	doc := str(pol.Inputs, "policy")
	golden(t, "backup-role-policy.golden.json", []byte(doc))

	var d policyDocument
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	// AWS's managed AWSDataLifecycleManagerServiceRole grants these EC2
	// actions (and EventBridge and SSM ones for other policy kinds); the
	// Koi's role must grant a subset.
	managed := []string{
		"ec2:CreateSnapshot", "ec2:CreateSnapshots", "ec2:DeleteSnapshot", "ec2:DescribeInstances",
		"ec2:DescribeVolumes", "ec2:DescribeSnapshots", "ec2:EnableFastSnapshotRestores",
		"ec2:DescribeFastSnapshotRestores", "ec2:DisableFastSnapshotRestores", "ec2:CopySnapshot",
		"ec2:ModifySnapshotAttribute", "ec2:DescribeSnapshotAttribute", "ec2:ModifySnapshotTier",
		"ec2:DescribeSnapshotTierStatus", "ec2:DescribeAvailabilityZones", "ec2:CreateTags",
	}
	dlmID := f.one(t, typeDLMPolicy).Name + "-id" // the fake's id for it
	granted := map[string]bool{}
	for _, st := range d.Statement {
		if st.Effect != "Allow" {
			t.Errorf("statement %s: effect %s", st.Sid, st.Effect)
		}
		for _, a := range st.Action {
			granted[a] = true
			if !slices.Contains(managed, a) {
				t.Errorf("statement %s grants %s, which AWS's own DLM role does not have", st.Sid, a)
			}
			if strings.Contains(a, "*") {
				t.Errorf("statement %s grants a wildcard action %s", st.Sid, a)
			}
			// Writes never on "*" and never outside the Koi's region.
			if !strings.HasPrefix(a, "ec2:Describe") {
				for _, r := range st.Resource {
					if !strings.HasPrefix(r, "arn:aws:ec2:"+testRegion+":") {
						t.Errorf("statement %s: %s on %s, want the Koi's region only", st.Sid, a, r)
					}
				}
			}
		}
		switch {
		case slices.Contains(st.Action, "ec2:DeleteSnapshot"):
			if want := map[string]map[string]string{"StringEquals": {"aws:ResourceTag/aws:dlm:lifecycle-policy-id": dlmID}}; !reflect.DeepEqual(st.Condition, want) {
				t.Errorf("DeleteSnapshot condition %v, want only this policy's snapshots (%v)", st.Condition, want)
			}
		case slices.Contains(st.Action, "ec2:CreateSnapshot") && slices.ContainsFunc(st.Resource, func(r string) bool { return strings.Contains(r, ":volume/") }):
			if want := map[string]map[string]string{"StringEquals": {"aws:ResourceTag/" + BackupTagKey: "skykoi-dev"}}; !reflect.DeepEqual(st.Condition, want) {
				t.Errorf("CreateSnapshot on volumes with condition %v, want the data volume's tag %v", st.Condition, want)
			}
		}
	}
	for _, a := range []string{"ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:CreateTags", "ec2:DescribeVolumes", "ec2:DescribeSnapshots"} {
		if !granted[a] {
			t.Errorf("%s not granted; DLM needs it for a daily snapshot policy", a)
		}
	}
	for _, a := range []string{"ec2:CreateSnapshots", "ec2:CopySnapshot", "ec2:ModifySnapshotAttribute", "ec2:EnableFastSnapshotRestores"} {
		if granted[a] {
			t.Errorf("%s granted; a daily volume snapshot policy does not use it", a)
		}
	}

	role := f.named(t, typeRole, "skykoi-dev-backup")
	var trust policyDocument
	if err := json.Unmarshal([]byte(str(role.Inputs, "assumeRolePolicy")), &trust); err != nil {
		t.Fatal(err)
	}
	if len(trust.Statement) != 1 || !reflect.DeepEqual(trust.Statement[0].Principal, map[string]any{"Service": "dlm.amazonaws.com"}) ||
		!reflect.DeepEqual(trust.Statement[0].Action, []string{"sts:AssumeRole"}) || trust.Statement[0].Effect != "Allow" {
		t.Errorf("backup role trust %+v, want Data Lifecycle Manager alone", trust.Statement)
	}
	for _, att := range f.ofType(typeAttachPol) {
		if str(att.Inputs, "role") == "skykoi-dev-backup-e5f6a7b" {
			t.Errorf("a managed policy %s is attached to the backup role", str(att.Inputs, "policyArn"))
		}
	}
	// The instance's own role gains nothing from backups.
	inst := str(f.named(t, typeRolePolicy, "skykoi-dev").Inputs, "policy")
	for _, a := range []string{"ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:CreateTags", "dlm:"} {
		if strings.Contains(inst, a) {
			t.Errorf("the instance role has %s", a)
		}
	}
}

func TestBackupRolePolicyRefusesMissingScope(t *testing.T) {
	for _, p := range []backupPolicyParams{
		{Partition: "aws", Region: testRegion, Account: testAccount, Koi: "skykoi-dev"},
		{Partition: "aws", Region: testRegion, Account: testAccount, PolicyID: "policy-0123"},
	} {
		if doc, err := backupRolePolicy(p); err == nil {
			t.Errorf("%+v made a policy without its scope:\n%s", p, doc)
		}
	}
}

func TestBackupRetention(t *testing.T) {
	s := defaultStack(t)
	s.config["skykoi:backupRetentionDays"] = "30"
	f, _ := deployed(t, s)
	d := f.one(t, typeDLMPolicy).Inputs["policyDetails"].ObjectValue()
	if got := d["schedules"].ArrayValue()[0].ObjectValue()["retainRule"].ObjectValue()["count"].NumberValue(); got != 30 {
		t.Errorf("retains %v snapshots, want 30", got)
	}

	// 0 turns backups off: no policy, no role, no permissions.
	s = defaultStack(t)
	s.config["skykoi:backupRetentionDays"] = "0"
	f, _ = deployed(t, s)
	if n := len(f.ofType(typeDLMPolicy)); n != 0 {
		t.Errorf("%d snapshot policies with backups off", n)
	}
	for _, typ := range []string{typeRole, typeRolePolicy} {
		if slices.Contains(f.names(typ), "skykoi-dev-backup") {
			t.Errorf("a %s for backups with backups off (have %v)", typ, f.names(typ))
		}
	}
}

func TestRestoreFromSnapshot(t *testing.T) {
	s := defaultStack(t)
	s.config["skykoi:dataVolumeSnapshotId"] = "snap-0123456789abcdef0"
	f, outs := deployed(t, s)
	vol := f.one(t, typeVolume)
	if got := str(vol.Inputs, "snapshotId"); got != "snap-0123456789abcdef0" {
		t.Errorf("data volume from %q, want the snapshot", got)
	}
	if _, ok := vol.Inputs["size"]; ok {
		t.Errorf("size %v set; restored without dataVolumeGiB, the volume takes the snapshot's size", vol.Inputs["size"])
	}
	if !vol.Inputs["encrypted"].BoolValue() || str(vol.Inputs, "availabilityZone") != "us-west-2b" {
		t.Errorf("restored volume: encrypted %v, zone %q; want encrypted, in the instance's zone us-west-2b",
			vol.Inputs["encrypted"], str(vol.Inputs, "availabilityZone"))
	}
	if !slices.Contains(vol.RegisterRPC.GetIgnoreChanges(), "snapshotId") {
		t.Error("a later change of dataVolumeSnapshotId would replace the data volume")
	}
	if !vol.RegisterRPC.GetRetainOnDelete() {
		t.Error("the restored volume is not retained on destroy")
	}
	if tagsOf(vol.Inputs)[BackupTagKey] != "skykoi-dev" {
		t.Error("the restored volume is not tagged for the new stack's backups")
	}
	if got := str(f.one(t, typeAttachment).Inputs, "volumeId"); got != outs["dataVolumeId"] {
		t.Errorf("attached %q, want the restored %q", got, outs["dataVolumeId"])
	}
	if ud := decodeUserData(t, str(f.one(t, typeInstance).Inputs, "userDataBase64")); !strings.Contains(ud, outs["dataVolumeId"]) {
		t.Error("the user-data does not name the restored volume")
	}

	// Restored and grown at once.
	s.config["skykoi:dataVolumeGiB"] = "50"
	f, _ = deployed(t, s)
	if got := f.one(t, typeVolume).Inputs["size"]; !got.IsNumber() || got.NumberValue() != 50 {
		t.Errorf("size %v, want 50", got)
	}

	// Without the key, nothing of the restore path shows.
	f, _ = deployed(t, defaultStack(t))
	if v, ok := f.one(t, typeVolume).Inputs["snapshotId"]; ok {
		t.Errorf("a new stack's volume has snapshotId %v", v)
	}
}

func adoptStack(t *testing.T, id string) stack {
	s := defaultStack(t)
	s.config["skykoi:dataVolumeId"] = id
	return s
}

func newVolumeAWS() *volumeAWS {
	return &volumeAWS{fakeAWS: newFakeAWS(), volumes: map[string]fakeVolume{
		"vol-0aaaaaaaaaaaaaaa1": {az: "us-west-2c", encrypted: true},
		"vol-0aaaaaaaaaaaaaaa2": {az: "us-west-2c", encrypted: false},
		"vol-0aaaaaaaaaaaaaaa3": {az: "us-west-2a", encrypted: true}, // a zone without the type
	}}
}

func TestAdoptVolume(t *testing.T) {
	const id = "vol-0aaaaaaaaaaaaaaa1"
	f := newVolumeAWS()
	outs := deployedOn(t, adoptStack(t, id), f)
	// Referenced, never managed: nothing in the stack can delete it.
	if n := len(f.ofType(typeVolume)); n != 0 {
		t.Errorf("%d volumes created or imported; an adopted volume must not be the stack's", n)
	}
	if outs["dataVolumeId"] != id {
		t.Errorf("dataVolumeId output %q, want %s", outs["dataVolumeId"], id)
	}
	att := f.one(t, typeAttachment)
	if got := str(att.Inputs, "volumeId"); got != id {
		t.Errorf("attached %q, want %s", got, id)
	}
	if got := str(f.one(t, typeInstance).Inputs, "subnetId"); got != "subnet-0ccccccccccccccc3" {
		t.Errorf("instance in %q, want the default subnet of the volume's zone, us-west-2c", got)
	}
	tag := f.one(t, typeTag).Inputs
	if str(tag, "resourceId") != id || str(tag, "key") != BackupTagKey || str(tag, "value") != "skykoi-dev" {
		t.Errorf("tag %v, want %s=skykoi-dev on %s", tag, BackupTagKey, id)
	}
	if ud := decodeUserData(t, str(f.one(t, typeInstance).Inputs, "userDataBase64")); !strings.Contains(ud, id) {
		t.Error("the user-data does not name the adopted volume")
	}
	// The snapshot policy targets it through the tag.
	d := f.one(t, typeDLMPolicy).Inputs["policyDetails"].ObjectValue()
	if got := tagsOf(resource.PropertyMap{"tags": d["targetTags"]})[BackupTagKey]; got != str(tag, "value") {
		t.Errorf("policy targets %s=%q, the volume has %q", BackupTagKey, got, str(tag, "value"))
	}

	// A subnet in the volume's zone is fine.
	s := adoptStack(t, id)
	s.config["skykoi:subnetId"] = "subnet-0ccccccccccccccc3"
	deployedOn(t, s, newVolumeAWS())
}

func TestAdoptVolumeRefused(t *testing.T) {
	for _, tc := range []struct {
		name, id, subnet, want string
	}{
		{name: "unknown", id: "vol-0fffffffffffffff9", want: "looking up the volume to adopt, skykoi:dataVolumeId vol-0fffffffffffffff9 (is it in region us-west-2?)"},
		{name: "unencrypted", id: "vol-0aaaaaaaaaaaaaaa2", want: "is not encrypted, and EBS cannot encrypt a volume in place; snapshot it"},
		{name: "subnet in another zone", id: "vol-0aaaaaaaaaaaaaaa1", subnet: "subnet-0bbbbbbbbbbbbbbb2",
			want: "skykoi:subnetId subnet-0bbbbbbbbbbbbbbb2 is in us-west-2b, but the volume to adopt (skykoi:dataVolumeId vol-0aaaaaaaaaaaaaaa1) is in us-west-2c"},
		{name: "zone without the type", id: "vol-0aaaaaaaaaaaaaaa3", want: "is in us-west-2a, which does not offer t3.small"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := adoptStack(t, tc.id)
			if tc.subnet != "" {
				s.config["skykoi:subnetId"] = tc.subnet
			}
			f := newVolumeAWS()
			err := s.run(f, func(ctx *pulumi.Context) error { _, err := deploy(ctx); return err })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if n := len(f.ofType(typeInstance)) + len(f.ofType(typeAttachment)) + len(f.ofType(typeTag)); n != 0 {
				t.Errorf("%d instances, attachments or tags made before the refusal", n)
			}
		})
	}
}

func TestBackupConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     map[string]string
		wantErr []string
	}{
		{name: "retention negative", set: map[string]string{"skykoi:backupRetentionDays": "-1"}, wantErr: []string{
			`skykoi:backupRetentionDays: want a whole number of daily snapshots (0: no backups) from 0 to 1000, got "-1"`,
		}},
		{name: "retention too long", set: map[string]string{"skykoi:backupRetentionDays": "1001"}, wantErr: []string{
			`skykoi:backupRetentionDays: want a whole number of daily snapshots (0: no backups) from 0 to 1000, got "1001"`,
		}},
		{name: "retention not a number", set: map[string]string{"skykoi:backupRetentionDays": "a week"}, wantErr: []string{
			`skykoi:backupRetentionDays: want a whole number`,
		}},
		{name: "snapshot id", set: map[string]string{"skykoi:dataVolumeSnapshotId": "snapshot-1"}, wantErr: []string{
			`skykoi:dataVolumeSnapshotId: want a snapshot id like snap-0123456789abcdef0, got "snapshot-1"`,
		}},
		{name: "snapshot id upper case", set: map[string]string{"skykoi:dataVolumeSnapshotId": "snap-0123456789ABCDEF0"}, wantErr: []string{
			`skykoi:dataVolumeSnapshotId: want a snapshot id`,
		}},
		{name: "volume id", set: map[string]string{"skykoi:dataVolumeId": "vol-xyz"}, wantErr: []string{
			`skykoi:dataVolumeId: want a volume id like vol-0123456789abcdef0, got "vol-xyz"`,
		}},
		{name: "a volume id where the snapshot goes", set: map[string]string{"skykoi:dataVolumeSnapshotId": "vol-0123456789abcdef0"}, wantErr: []string{
			`skykoi:dataVolumeSnapshotId: want a snapshot id`,
		}},
		{name: "both", set: map[string]string{"skykoi:dataVolumeSnapshotId": "snap-0123456789abcdef0", "skykoi:dataVolumeId": "vol-0123456789abcdef0"}, wantErr: []string{
			`skykoi:dataVolumeId: give either dataVolumeId (adopt a volume) or dataVolumeSnapshotId (restore a snapshot into a new volume), not both`,
		}},
		{name: "adopted volume sized", set: map[string]string{"skykoi:dataVolumeId": "vol-0123456789abcdef0", "skykoi:dataVolumeGiB": "40"}, wantErr: []string{
			`skykoi:dataVolumeGiB: an adopted volume (dataVolumeId) keeps its own size; unset dataVolumeGiB`,
		}},
		{name: "adopted volume deleted on destroy", set: map[string]string{"skykoi:dataVolumeId": "vol-0123456789abcdef0", "skykoi:keepDataOnDestroy": "false"}, wantErr: []string{
			`skykoi:keepDataOnDestroy: the stack never deletes an adopted volume (dataVolumeId)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.set, tc.wantErr)
		})
	}
}

// checkConfigErrors loads goodConfig with set applied and wants exactly
// these problems, in order.
func checkConfigErrors(t *testing.T, set map[string]string, wantErr []string) {
	t.Helper()
	cfg := goodConfig()
	for k, v := range set {
		cfg[k] = v
	}
	_, err := load(t, stack{config: cfg, secrets: tokenSecret, root: projectDir(t)})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConfigError", err)
	}
	if len(ce.Problems) != len(wantErr) {
		t.Fatalf("%d problems, want %d:\n  %s", len(ce.Problems), len(wantErr), strings.Join(ce.Problems, "\n  "))
	}
	for i, want := range wantErr {
		if !strings.Contains(ce.Problems[i], want) {
			t.Errorf("problem %d:\n  %s\nwant it to contain\n  %s", i, ce.Problems[i], want)
		}
	}
}

func TestLoadConfigAdoption(t *testing.T) {
	cfg := goodConfig()
	cfg["skykoi:dataVolumeId"] = "vol-0123456789abcdef0"
	cfg["skykoi:backupRetentionDays"] = "0"
	a, err := load(t, stack{config: cfg, secrets: tokenSecret, root: projectDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if a.DataVolumeID != "vol-0123456789abcdef0" || a.DataVolumeGiB != 0 || a.DeleteDataOnDestroy || !a.DisableBackups {
		t.Errorf("LoadConfig = %+v, want the volume adopted at its own size, kept, with backups off", a)
	}
}

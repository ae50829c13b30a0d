package infra

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/skykoi/skykoi/cloudinit"
)

// DefaultLogRetentionDays is how long the log group keeps events.
const DefaultLogRetentionDays = 30

// logRetentionChoices are the retentions CloudWatch Logs accepts.
var logRetentionChoices = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// LogGroupName is the Koi's CloudWatch Logs group.
func LogGroupName(koi string) string { return "/skykoi/" + koi }

// LogsArgs are the optional CloudWatch Logs group for the Koi's journal.
// Off (the zero value), there is no group, no permission and no cost.
type LogsArgs struct {
	On bool
	// RetentionDays defaults to DefaultLogRetentionDays; it must be one of
	// CloudWatch's choices.
	RetentionDays int
}

func (a LogsArgs) problems() []problem {
	if a.On && !slices.Contains(logRetentionChoices, a.RetentionDays) {
		return []problem{{KeyLogRetentionDays, fmt.Sprintf("want one of CloudWatch Logs' retentions (%s days), got %d",
			joinInts(logRetentionChoices), a.RetentionDays)}}
	}
	return nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// logs makes the log group, and lets the instance role write into it and
// nowhere else. The group is the stack's, not the box's, so the role
// needs no logs:CreateLogGroup and the retention cannot drift.
func (b *koiBuilder) logs(role koiRole) error {
	a := b.args.Logs
	if !a.On {
		return nil
	}
	name := LogGroupName(b.name)
	if _, err := cloudwatch.NewLogGroup(b.ctx, b.name+"-journal", &cloudwatch.LogGroupArgs{
		Name:            pulumi.String(name),
		RetentionInDays: pulumi.Int(a.RetentionDays),
		Tags:            b.tags("journal"),
	}, b.parent); err != nil {
		return fmt.Errorf("creating the log group %s: %w", name, err)
	}
	doc, err := logsRolePolicy(b.partition, b.region, b.account, name)
	if err != nil {
		return err
	}
	if _, err := iam.NewRolePolicy(b.ctx, b.name+"-logs", &iam.RolePolicyArgs{
		Role: role.role.Name, Policy: pulumi.String(doc),
	}, b.parent); err != nil {
		return fmt.Errorf("granting the instance role its log group: %w", err)
	}
	return nil
}

// logsUserData tells the box to ship its journal into the group logs
// makes; off, the user-data holds no shipping unit.
func (b *koiBuilder) logsUserData() cloudinit.Logs {
	if !b.args.Logs.On {
		return cloudinit.Logs{}
	}
	return cloudinit.Logs{Group: LogGroupName(b.name), Region: b.region}
}

// logsRolePolicy lets the box make streams in its own group and put
// events into them.
func logsRolePolicy(partition, region, account, group string) (string, error) {
	arn := fmt.Sprintf("arn:%s:logs:%s:%s:log-group:%s", partition, region, account, group)
	return policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Sid:      "ShipJournalToOwnLogGroup",
		Effect:   "Allow",
		Action:   []string{"logs:CreateLogStream", "logs:PutLogEvents"},
		Resource: []string{arn, arn + ":log-stream:*"},
	}}}.render()
}

package infra

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/skykoi/skykoi/cloudinit"
)

const typeLogGroup = "aws:cloudwatch/logGroup:LogGroup"

// TestLogsOffByDefault: no group, no permission, nothing mentioning logs.
func TestLogsOffByDefault(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	if n := len(f.ofType(typeLogGroup)); n != 0 {
		t.Errorf("%d log groups with cloudwatchLogs off", n)
	}
	if ud := decodeUserData(t, str(f.one(t, typeInstance).Inputs, "userDataBase64")); strings.Contains(ud, cloudinit.LogsUnitName) ||
		strings.Contains(ud, "ship-logs") {
		t.Error("the user-data ships logs with cloudwatchLogs off")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.resources {
		for _, s := range allStrings(resource.NewObjectProperty(r.Inputs)) {
			if strings.Contains(s, "logs:") {
				t.Errorf("%s %s grants %q with cloudwatchLogs off", r.TypeToken, r.Name, s)
			}
		}
	}
}

func TestLogsOn(t *testing.T) {
	s := defaultStack(t)
	s.config["skykoi:cloudwatchLogs"] = "true"
	f, _ := deployed(t, s)
	g := f.one(t, typeLogGroup).Inputs
	if got := str(g, "name"); got != "/skykoi/skykoi-dev" {
		t.Errorf("log group %q", got)
	}
	if got := g["retentionInDays"]; !got.IsNumber() || got.NumberValue() != DefaultLogRetentionDays {
		t.Errorf("retention %v, want %d", got, DefaultLogRetentionDays)
	}
	pol := f.named(t, typeRolePolicy, "skykoi-dev-logs")
	if got := str(pol.Inputs, "role"); got != "skykoi-dev-e5f6a7b" {
		t.Errorf("log permissions on role %q, want the instance's", got)
	}
	var d policyDocument
	if err := json.Unmarshal([]byte(str(pol.Inputs, "policy")), &d); err != nil {
		t.Fatal(err)
	}
	const group = "arn:aws:logs:us-west-2:123456789012:log-group:/skykoi/skykoi-dev"
	want := []policyStatement{{Sid: "ShipJournalToOwnLogGroup", Effect: "Allow",
		Action:   []string{"logs:CreateLogStream", "logs:PutLogEvents"},
		Resource: []string{group, group + ":log-stream:*"}}}
	if !reflect.DeepEqual(d.Statement, want) {
		t.Errorf("log permissions %+v, want %+v", d.Statement, want)
	}

	ud := decodeUserData(t, str(f.one(t, typeInstance).Inputs, "userDataBase64"))
	for _, want := range []string{
		"path: /etc/systemd/system/" + cloudinit.LogsUnitName + "\n",
		"gateway ship-logs --group /skykoi/skykoi-dev --region us-west-2\n",
		"readonly LOGS_UNIT='" + cloudinit.LogsUnitName + "'\n",
	} {
		if !strings.Contains(ud, want) {
			t.Errorf("the user-data lacks %q with cloudwatchLogs on", want)
		}
	}

	s.config["skykoi:logRetentionDays"] = "7"
	f, _ = deployed(t, s)
	if got := f.one(t, typeLogGroup).Inputs["retentionInDays"].NumberValue(); got != 7 {
		t.Errorf("retention %v, want 7", got)
	}
}

func TestLogsConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     map[string]string
		wantErr []string
	}{
		{name: "not a boolean", set: map[string]string{"skykoi:cloudwatchLogs": "on"}, wantErr: []string{
			`skykoi:cloudwatchLogs: want true or false, got "on"`,
		}},
		{name: "retention CloudWatch does not offer", set: map[string]string{"skykoi:cloudwatchLogs": "true", "skykoi:logRetentionDays": "10"}, wantErr: []string{
			"skykoi:logRetentionDays: want one of CloudWatch Logs' retentions (1, 3, 5, 7, 14, 30,",
		}},
		{name: "retention without logs", set: map[string]string{"skykoi:logRetentionDays": "30"}, wantErr: []string{
			"skykoi:logRetentionDays: applies only with skykoi:cloudwatchLogs true",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.set, tc.wantErr)
		})
	}
}

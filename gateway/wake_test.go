package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/skykoi/skykoi/gateway/wake"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// TestIdleStopLeavesWakeSchedule: the gateway's idle stop, on "EC2" (the
// stand-in's IMDS, EC2 and Scheduler), writes the wake schedule before it
// stops, removes it when nothing is due, and does not stop with something
// due within the lead time.
func TestIdleStopLeavesWakeSchedule(t *testing.T) {
	const self = "i-0123456789abcdef0"
	const role = "arn:aws:iam::123456789012:role/skykoi-wake"
	tests := []struct {
		name     string
		dueIn    time.Duration // 0: nothing due
		existing bool          // an old wake schedule is there
		wantStop bool
		wantWake bool
	}{
		{"due in an hour", time.Hour, false, true, true},
		{"nothing due, old schedule deleted", 0, true, true, false},
		{"due within the lead", 2 * time.Minute, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imds := ec2test.NewIMDS(self, "us-east-1")
			defer imds.Close()
			imds.SetTag(wake.RoleTag, role)
			aws3 := ec2test.NewServer()
			defer aws3.Close()
			aws3.AddInstance(ec2test.Instance{ID: self, State: "running"})
			if tt.existing {
				sc := scheduler.New(scheduler.Options{Region: "us-east-1", BaseEndpoint: aws.String(aws3.URL()), Credentials: aws3.Credentials()})
				_, err := sc.CreateSchedule(context.Background(), &scheduler.CreateScheduleInput{
					Name: aws.String(wake.ScheduleName(self)), ScheduleExpression: aws.String("at(2030-01-01T00:00:00)"),
					FlexibleTimeWindow: &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
					Target:             &schedtypes.Target{Arn: aws.String(wake.StartInstancesTarget), RoleArn: aws.String(role), Input: aws.String(`{"InstanceIds":["` + self + `"]}`)},
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			due := time.Now().Add(tt.dueIn)
			clock := &manualClock{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
			ts := startServer(t, withConfig("gateway.idle.stopAfterMinutes", 30), withOptions(func(o *Options) {
				o.IMDSEndpoint, o.EC2Endpoint, o.SchedulerEndpoint = imds.URL(), aws3.URL(), aws3.URL()
				o.IdleClock, o.IdleCheckEvery = clock, time.Minute
				o.AWSCredentials = aws3.Credentials()
				o.NextWake = func() (time.Time, bool) { return due, tt.dueIn != 0 }
			}))
			waitFor(t, "the idle watcher to start", func() bool { return ts.idle.Load() != nil && clock.pending() > 0 })
			// 40 idle minutes: past the 30-minute period either way.
			for i := 0; i < 40 && len(aws3.CallsOf("StopInstances")) == 0; i++ {
				waitFor(t, "the next idle check", func() bool { return clock.pending() > 0 })
				clock.Advance(time.Minute)
			}
			waitFor(t, "the check after the period", func() bool { return clock.pending() > 0 || len(aws3.CallsOf("StopInstances")) > 0 })
			if tt.wantStop {
				waitFor(t, "StopInstances", func() bool { return len(aws3.CallsOf("StopInstances")) == 1 })
			} else if n := len(aws3.CallsOf("StopInstances")); n != 0 {
				t.Fatalf("stopped %d times with a job due within the lead", n)
			}
			scheds := aws3.Schedules()
			if !tt.wantWake {
				if len(scheds) != 0 {
					t.Fatalf("schedules left: %+v", scheds)
				}
				return
			}
			want := due.Add(-wake.DefaultLead).UTC().Truncate(time.Second)
			if len(scheds) != 1 || scheds[0].Name != wake.ScheduleName(self) || !scheds[0].At.Equal(want) ||
				scheds[0].RoleARN != role || scheds[0].TargetARN != ec2test.StartInstancesTarget ||
				scheds[0].Input != `{"InstanceIds":["`+self+`"]}` {
				t.Fatalf("schedules = %+v, want one at %s", scheds, want)
			}
			// The schedule was written before the stop, not after.
			var order []string
			for _, c := range aws3.Calls() {
				if c.Rejected == "" && c.Err == "" && (c.Action == "CreateSchedule" || c.Action == "StopInstances") {
					order = append(order, c.Action)
				}
			}
			if len(order) != 2 || order[0] != "CreateSchedule" {
				t.Errorf("order of calls %v, want the schedule first", order)
			}
		})
	}
}

package wake_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"

	"github.com/skykoi/skykoi/gateway/wake"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

const (
	self = "i-0123456789abcdef0"
	role = "arn:aws:iam::123456789012:role/skykoi-wake-koi"
)

var now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func client(srv *ec2test.Server) *scheduler.Client {
	return scheduler.New(scheduler.Options{Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL()), Credentials: srv.Credentials()})
}

func TestBeforeStop(t *testing.T) {
	// wantOps lists every Scheduler call made, refused ones included.
	type due struct {
		at time.Time
		ok bool
	}
	tests := []struct {
		name string
		// existing: a wake schedule is already there (from the last sleep).
		existing bool
		due      due
		lead     time.Duration
		roleARN  string
		failOp   string // a Scheduler operation that fails
		wantStop bool
		wantErr  bool
		// wantAt is the schedule's time; zero: no schedule afterwards.
		wantAt  time.Time
		wantOps string // Scheduler operations served, in order
	}{
		{name: "due in an hour", due: due{now.Add(time.Hour), true}, roleARN: role,
			wantStop: true, wantAt: now.Add(57 * time.Minute), wantOps: "UpdateSchedule CreateSchedule"},
		{name: "due in an hour, schedule exists", existing: true, due: due{now.Add(time.Hour), true}, roleARN: role,
			wantStop: true, wantAt: now.Add(57 * time.Minute), wantOps: "CreateSchedule UpdateSchedule"},
		{name: "longer lead", due: due{now.Add(time.Hour), true}, lead: 10 * time.Minute, roleARN: role,
			wantStop: true, wantAt: now.Add(50 * time.Minute), wantOps: "UpdateSchedule CreateSchedule"},
		{name: "sub-second due time rounds down", due: due{now.Add(time.Hour + 900*time.Millisecond), true}, roleARN: role,
			wantStop: true, wantAt: now.Add(57 * time.Minute), wantOps: "UpdateSchedule CreateSchedule"},
		{name: "nothing due, old schedule", existing: true, roleARN: role,
			wantStop: true, wantOps: "CreateSchedule DeleteSchedule"},
		{name: "nothing due, no schedule", roleARN: role,
			wantStop: true, wantOps: "DeleteSchedule"},
		{name: "due within the lead", due: due{now.Add(2 * time.Minute), true}, roleARN: role,
			wantStop: false, wantOps: ""},
		{name: "due exactly at the lead", due: due{now.Add(3 * time.Minute), true}, roleARN: role,
			wantStop: false, wantOps: ""},
		{name: "overdue", due: due{now.Add(-time.Minute), true}, roleARN: role,
			wantStop: false, wantOps: ""},
		{name: "schedule cannot be written", due: due{now.Add(time.Hour), true}, roleARN: role, failOp: "CreateSchedule",
			wantErr: true, wantOps: "UpdateSchedule CreateSchedule"},
		{name: "update refused", existing: true, due: due{now.Add(time.Hour), true}, roleARN: role, failOp: "UpdateSchedule",
			wantErr: true, wantAt: now.Add(5 * time.Hour), wantOps: "CreateSchedule UpdateSchedule"},
		{name: "delete fails: still stops", existing: true, roleARN: role, failOp: "DeleteSchedule",
			wantStop: true, wantAt: now.Add(5 * time.Hour), wantOps: "CreateSchedule DeleteSchedule"},
		{name: "no role, something due", due: due{now.Add(time.Hour), true},
			wantStop: false, wantOps: ""},
		{name: "no role, nothing due",
			wantStop: true, wantOps: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ec2test.NewServer()
			defer srv.Close()
			c := client(srv)
			ctx := context.Background()
			if tt.existing {
				old, _ := wake.New(wake.Options{Client: c, InstanceID: self, RoleARN: role, Now: func() time.Time { return now },
					NextDue: func() (time.Time, bool) { return now.Add(5*time.Hour + 3*time.Minute), true }})
				if stop, err := old.BeforeStop(ctx); !stop || err != nil {
					t.Fatalf("setting up the old schedule: %v %v", stop, err)
				}
				// Only the calls under test count from here.
			}
			before := len(srv.Calls())
			if tt.failOp != "" {
				srv.SetError(tt.failOp, "AccessDeniedException", "User is not authorized to perform: scheduler:"+tt.failOp)
			}
			p, err := wake.New(wake.Options{
				Client: c, InstanceID: self, RoleARN: tt.roleARN, Lead: tt.lead,
				NextDue: func() (time.Time, bool) { return tt.due.at, tt.due.ok },
				Now:     func() time.Time { return now },
			})
			if err != nil {
				t.Fatal(err)
			}
			stop, err := p.BeforeStop(ctx)
			if stop != tt.wantStop || (err != nil) != tt.wantErr {
				t.Fatalf("BeforeStop = %v, %v; want stop %v, error %v", stop, err, tt.wantStop, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "not stopping") {
				t.Errorf("the error does not say the instance stays up: %v", err)
			}
			var ops []string
			for _, call := range srv.Calls()[before:] {
				if call.Service == "scheduler" {
					ops = append(ops, call.Action)
				}
			}
			if tt.existing {
				ops = append([]string{"CreateSchedule"}, ops...)
			}
			if got := strings.Join(ops, " "); got != tt.wantOps {
				t.Errorf("Scheduler calls %q, want %q", got, tt.wantOps)
			}
			scheds := srv.Schedules()
			if tt.wantAt.IsZero() {
				if len(scheds) != 0 {
					t.Errorf("schedules left: %+v", scheds)
				}
				return
			}
			if len(scheds) != 1 {
				t.Fatalf("schedules = %+v, want one", scheds)
			}
			sc := scheds[0]
			if sc.Name != wake.ScheduleName(self) || !sc.At.Equal(tt.wantAt) || sc.TargetARN != ec2test.StartInstancesTarget ||
				sc.RoleARN != role || sc.Input != `{"InstanceIds":["`+self+`"]}` || sc.ActionAfterCompletion != "DELETE" ||
				sc.State != "ENABLED" || sc.FlexibleMode != "OFF" {
				t.Errorf("schedule = %+v, want at %s", sc, tt.wantAt)
			}
			// Next reads back what was written, as `skykoi koi status` does.
			at, ok, err := wake.Next(ctx, c, self)
			if err != nil || !ok || !at.Equal(tt.wantAt) {
				t.Errorf("Next = %v %v %v", at, ok, err)
			}
		})
	}
}

// TestScheduleWakesTheInstance: the written schedule, fired by the
// stand-in at its time, starts this instance with the registered role.
func TestScheduleWakesTheInstance(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: self, State: ec2test.Stopped})
	srv.AllowRole(role)
	p, _ := wake.New(wake.Options{Client: client(srv), InstanceID: self, RoleARN: role, Now: func() time.Time { return now },
		NextDue: func() (time.Time, bool) { return now.Add(time.Hour), true }})
	if stop, err := p.BeforeStop(context.Background()); !stop || err != nil {
		t.Fatal(stop, err)
	}
	if f := srv.FireDue(now.Add(56 * time.Minute)); len(f) != 0 {
		t.Fatalf("fired early: %+v", f)
	}
	f := srv.FireDue(now.Add(57 * time.Minute))
	if len(f) != 1 || f[0].Err != "" || srv.State(self) != ec2test.Pending || len(srv.Schedules()) != 0 {
		t.Fatalf("fired %+v; instance %s; schedules %+v", f, srv.State(self), srv.Schedules())
	}
	if _, ok, err := wake.Next(context.Background(), client(srv), self); ok || err != nil {
		t.Errorf("Next after firing = %v, %v", ok, err)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := wake.New(wake.Options{NextDue: func() (time.Time, bool) { return time.Time{}, false }}); err == nil {
		t.Error("no instance: accepted")
	}
	if _, err := wake.New(wake.Options{InstanceID: self}); err == nil {
		t.Error("no NextDue: accepted")
	}
	if _, err := wake.New(wake.Options{InstanceID: self, RoleARN: role, NextDue: func() (time.Time, bool) { return time.Time{}, false }}); err == nil {
		t.Error("a role without a client: accepted")
	}
}

// FuzzParseExpression: what parses prints back as the same expression
// (Expression of it, in UTC), and nothing panics.
func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{"at(2030-01-02T03:04:05)", "at(2030-01-02T03:04)", "at(2030-13-01T00:00:00)", "rate(5 minutes)", "at()", "at(2030-01-02T03:04:05Z)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		at, err := wake.ParseExpression(expr, "")
		if err != nil {
			return
		}
		if back := wake.Expression(at); back != expr {
			t.Fatalf("%q parsed to %v, printed as %q", expr, at, back)
		}
	})
}

func TestParseExpression(t *testing.T) {
	tests := []struct {
		expr, tz string
		want     time.Time
		err      bool
	}{
		{"at(2030-01-02T03:04:05)", "", time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), false},
		{"at(2030-01-02T03:04:05)", "Asia/Tokyo", time.Date(2030, 1, 1, 18, 4, 5, 0, time.UTC), false},
		{"at(2030-01-02T03:04:05)", "Nowhere/City", time.Time{}, true},
		{"rate(1 hour)", "", time.Time{}, true},
		{"at(2030-02-30T00:00:00)", "", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := wake.ParseExpression(tt.expr, tt.tz)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("ParseExpression(%q, %q) = %v, %v", tt.expr, tt.tz, got, err)
		}
	}
}

package ec2test_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/smithy-go"

	"github.com/skykoi/skykoi/internal/koi/ec2test"
	"github.com/skykoi/skykoi/internal/testwait"
)

const (
	testInstance = "i-0123456789abcdef0"
	testRole     = "arn:aws:iam::123456789012:role/skykoi-wake"
)

func s3Client(srv *ec2test.Server) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-west-2",
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  srv.Credentials(),
		UsePathStyle: true,
	})
}

func schedulerClient(srv *ec2test.Server) *scheduler.Client {
	return scheduler.New(scheduler.Options{
		Region:       "us-west-2",
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  srv.Credentials(),
	})
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestS3ThroughSDK: the real S3 client puts, heads and gets an object.
func TestS3ThroughSDK(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	c := s3Client(srv)
	ctx := context.Background()
	data := []byte("a new gateway binary")

	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("artifacts"), Key: aws.String("releases/v2/skykoi"),
		Body: bytes.NewReader(data), ContentType: aws.String("application/octet-stream"),
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got, ok := srv.Object("artifacts", "releases/v2/skykoi"); !ok || !bytes.Equal(got, data) {
		t.Fatalf("stored %q, %v", got, ok)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("releases/v2/skykoi")})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(data)) || aws.ToString(head.ETag) == "" || head.LastModified == nil {
		t.Errorf("HeadObject = length %d, etag %q, modified %v", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag), head.LastModified)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("releases/v2/skykoi")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(body, data) || aws.ToString(get.ETag) != aws.ToString(head.ETag) {
		t.Errorf("GetObject = %q etag %q", body, aws.ToString(get.ETag))
	}

	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"head missing", func() error {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("nope")})
			return err
		}, "NotFound"},
		{"get missing", func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("artifacts"), Key: aws.String("nope")})
			return err
		}, "NoSuchKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := errorCode(tt.call()); code != tt.code {
				t.Errorf("error code %q, want %q", code, tt.code)
			}
		})
	}
	var actions []string
	for _, call := range srv.Calls() {
		actions = append(actions, call.Action)
	}
	if got := strings.Join(actions, " "); got != "PutObject HeadObject GetObject HeadObject GetObject" {
		t.Errorf("calls = %s", got)
	}
}

func wakeInput(at string) *scheduler.CreateScheduleInput {
	return &scheduler.CreateScheduleInput{
		Name:                  aws.String("skykoi-wake-" + testInstance),
		ScheduleExpression:    aws.String("at(" + at + ")"),
		FlexibleTimeWindow:    &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
		ActionAfterCompletion: schedtypes.ActionAfterCompletionDelete,
		Target: &schedtypes.Target{
			Arn:     aws.String(ec2test.StartInstancesTarget),
			RoleArn: aws.String(testRole),
			Input:   aws.String(`{"InstanceIds":["` + testInstance + `"]}`),
		},
	}
}

// TestSchedulerThroughSDK: the real Scheduler client creates, reads,
// updates, lists and deletes a schedule, and gets AWS's errors for what
// AWS refuses.
func TestSchedulerThroughSDK(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	c := schedulerClient(srv)
	ctx := context.Background()
	name := "skykoi-wake-" + testInstance

	out, err := c.CreateSchedule(ctx, wakeInput("2030-01-02T03:04:05"))
	if err != nil {
		t.Fatalf("CreateSchedule: %v", err)
	}
	wantARN := "arn:aws:scheduler:us-west-2:123456789012:schedule/default/" + name
	if aws.ToString(out.ScheduleArn) != wantARN {
		t.Errorf("ARN %q, want %q", aws.ToString(out.ScheduleArn), wantARN)
	}
	got, err := c.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("GetSchedule: %v", err)
	}
	if aws.ToString(got.ScheduleExpression) != "at(2030-01-02T03:04:05)" || aws.ToString(got.Target.RoleArn) != testRole ||
		aws.ToString(got.Target.Arn) != ec2test.StartInstancesTarget || got.ActionAfterCompletion != schedtypes.ActionAfterCompletionDelete ||
		got.State != schedtypes.ScheduleStateEnabled || got.CreationDate == nil || aws.ToString(got.GroupName) != "default" {
		t.Errorf("GetSchedule = %+v", got)
	}

	upd := wakeInput("2030-02-03T04:05:06")
	if _, err := c.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{
		Name: upd.Name, ScheduleExpression: upd.ScheduleExpression, ScheduleExpressionTimezone: aws.String("Europe/Berlin"),
		FlexibleTimeWindow: upd.FlexibleTimeWindow, Target: upd.Target, ActionAfterCompletion: upd.ActionAfterCompletion,
	}); err != nil {
		t.Fatalf("UpdateSchedule: %v", err)
	}
	sc, ok := srv.ScheduleNamed(name)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if !ok || !sc.At.Equal(time.Date(2030, 2, 3, 4, 5, 6, 0, berlin)) || sc.Input != `{"InstanceIds":["`+testInstance+`"]}` {
		t.Errorf("after update: %+v", sc)
	}
	list, err := c.ListSchedules(ctx, &scheduler.ListSchedulesInput{NamePrefix: aws.String("skykoi-wake-")})
	if err != nil || len(list.Schedules) != 1 || aws.ToString(list.Schedules[0].Arn) != wantARN {
		t.Errorf("ListSchedules = %+v, %v", list, err)
	}

	bad := func(mod func(*scheduler.CreateScheduleInput)) func() error {
		return func() error {
			in := wakeInput("2030-01-02T03:04:05")
			in.Name = aws.String("other")
			mod(in)
			_, err := c.CreateSchedule(ctx, in)
			return err
		}
	}
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"create existing", func() error { _, err := c.CreateSchedule(ctx, wakeInput("2030-01-02T03:04:05")); return err }, "ConflictException"},
		{"at without seconds", bad(func(in *scheduler.CreateScheduleInput) { in.ScheduleExpression = aws.String("at(2030-01-02T03:04)") }), "ValidationException"},
		{"at with a zone suffix", bad(func(in *scheduler.CreateScheduleInput) {
			in.ScheduleExpression = aws.String("at(2030-01-02T03:04:05Z)")
		}), "ValidationException"},
		{"at on no day", bad(func(in *scheduler.CreateScheduleInput) { in.ScheduleExpression = aws.String("at(2030-02-30T03:04:05)") }), "ValidationException"},
		{"unknown time zone", bad(func(in *scheduler.CreateScheduleInput) { in.ScheduleExpressionTimezone = aws.String("Mars/Olympus") }), "ValidationException"},
		{"role not an IAM role", bad(func(in *scheduler.CreateScheduleInput) { in.Target.RoleArn = aws.String("arn:aws:iam::123:user/x") }), "ValidationException"},
		{"input not JSON", bad(func(in *scheduler.CreateScheduleInput) { in.Target.Input = aws.String("{InstanceIds") }), "ValidationException"},
		{"bad name", bad(func(in *scheduler.CreateScheduleInput) { in.Name = aws.String("no spaces") }), "ValidationException"},
		{"unknown group", bad(func(in *scheduler.CreateScheduleInput) { in.GroupName = aws.String("elsewhere") }), "ResourceNotFoundException"},
		{"update missing", func() error {
			in := wakeInput("2030-01-02T03:04:05")
			_, err := c.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{Name: aws.String("missing"), ScheduleExpression: in.ScheduleExpression,
				FlexibleTimeWindow: in.FlexibleTimeWindow, Target: in.Target})
			return err
		}, "ResourceNotFoundException"},
		{"get missing", func() error {
			_, err := c.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("missing")})
			return err
		}, "ResourceNotFoundException"},
		{"delete missing", func() error {
			_, err := c.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String("missing")})
			return err
		}, "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if code := errorCode(err); code != tt.code {
				t.Errorf("error %v (code %q), want %s", err, code, tt.code)
			}
		})
	}
	if n := len(srv.Schedules()); n != 1 {
		t.Errorf("%d schedules after the refused calls, want 1", n)
	}
	if _, err := c.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(name)}); err != nil {
		t.Fatalf("DeleteSchedule: %v", err)
	}
	if n := len(srv.Schedules()); n != 0 {
		t.Errorf("%d schedules after delete", n)
	}
}

// TestSchedulerRequiredParameters: what the SDK's own validation stops
// before sending is refused by the stand-in too, for raw callers.
func TestSchedulerRequiredParameters(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	target := `"Target":{"Arn":"` + ec2test.StartInstancesTarget + `","RoleArn":"` + testRole + `","Input":"{}"}`
	tests := []struct {
		name, method, body string
		status             int
		code               string
	}{
		{"no expression", http.MethodPost, `{"FlexibleTimeWindow":{"Mode":"OFF"},` + target + `}`, 400, "ValidationException"},
		{"no window", http.MethodPost, `{"ScheduleExpression":"at(2030-01-02T03:04:05)",` + target + `}`, 400, "ValidationException"},
		{"flexible without a maximum", http.MethodPost, `{"ScheduleExpression":"at(2030-01-02T03:04:05)","FlexibleTimeWindow":{"Mode":"FLEXIBLE"},` + target + `}`, 400, "ValidationException"},
		{"no target", http.MethodPost, `{"ScheduleExpression":"at(2030-01-02T03:04:05)","FlexibleTimeWindow":{"Mode":"OFF"}}`, 400, "ValidationException"},
		{"no role", http.MethodPost, `{"ScheduleExpression":"at(2030-01-02T03:04:05)","FlexibleTimeWindow":{"Mode":"OFF"},"Target":{"Arn":"` + ec2test.StartInstancesTarget + `"}}`, 400, "ValidationException"},
		{"update without target", http.MethodPut, `{"ScheduleExpression":"at(2030-01-02T03:04:05)","FlexibleTimeWindow":{"Mode":"OFF"}}`, 400, "ValidationException"},
		{"not JSON", http.MethodPost, `{"ScheduleExpression":`, 400, "SerializationException"},
		{"bad action after completion", http.MethodPost, `{"ScheduleExpression":"at(2030-01-02T03:04:05)","FlexibleTimeWindow":{"Mode":"OFF"},"ActionAfterCompletion":"KEEP",` + target + `}`, 400, "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL()+"/schedules/wake", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			sign(t, req, []byte(tt.body), ec2test.DefaultKey, "scheduler", "us-west-2", time.Now())
			status, h, body := do(t, req)
			if status != tt.status || h.Get("X-Amzn-ErrorType") != tt.code || !strings.Contains(body, `"Message"`) {
				t.Errorf("got %d %q %s, want %d %s", status, h.Get("X-Amzn-ErrorType"), body, tt.status, tt.code)
			}
		})
	}
	if n := len(srv.Schedules()); n != 0 {
		t.Errorf("%d schedules stored from bad input", n)
	}
}

// TestScheduleFires: a one-time schedule's time arrives and the stand-in
// starts the instance in its EC2 state, only for an allowed role, and
// deletes the schedule when asked to.
func TestScheduleFires(t *testing.T) {
	tests := []struct {
		name        string
		allowRole   bool
		after       schedtypes.ActionAfterCompletion
		wantState   string
		wantErr     bool
		wantDeleted bool
	}{
		{"allowed role, delete after", true, schedtypes.ActionAfterCompletionDelete, ec2test.Pending, false, true},
		{"allowed role, keep after", true, schedtypes.ActionAfterCompletionNone, ec2test.Pending, false, false},
		{"role not allowed", false, schedtypes.ActionAfterCompletionDelete, ec2test.Stopped, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ec2test.NewServer()
			defer srv.Close()
			srv.AddInstance(ec2test.Instance{ID: testInstance, State: ec2test.Stopped})
			if tt.allowRole {
				srv.AllowRole(testRole)
			}
			in := wakeInput("2030-01-02T03:04:05")
			in.ActionAfterCompletion = tt.after
			if _, err := schedulerClient(srv).CreateSchedule(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			if f := srv.FireDue(at.Add(-time.Second)); len(f) != 0 {
				t.Fatalf("fired early: %+v", f)
			}
			fired := srv.FireDue(at)
			if len(fired) != 1 || (fired[0].Err != "") != tt.wantErr {
				t.Fatalf("fired = %+v", fired)
			}
			if st := srv.State(testInstance); st != tt.wantState {
				t.Errorf("instance %s, want %s", st, tt.wantState)
			}
			if _, ok := srv.ScheduleNamed(*in.Name); ok == tt.wantDeleted {
				t.Errorf("schedule still there: %v, want deleted: %v", ok, tt.wantDeleted)
			}
			if f := srv.FireDue(at.Add(time.Hour)); len(f) != 0 {
				t.Errorf("fired twice: %+v", f)
			}
		})
	}
}

// TestScheduleFiresOnTime: with FireOnTime the stand-in fires by itself
// on the real clock.
func TestScheduleFiresOnTime(t *testing.T) {
	srv := ec2test.New(ec2test.Options{FireOnTime: true})
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: testInstance, State: ec2test.Stopped})
	srv.AllowRole(testRole)
	at := time.Now().UTC().Add(2 * time.Second).Format("2006-01-02T15:04:05")
	if _, err := schedulerClient(srv).CreateSchedule(context.Background(), wakeInput(at)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testwait.Patience(t))
	for srv.State(testInstance) != ec2test.Pending {
		if time.Now().After(deadline) {
			t.Fatalf("not started by its schedule; fired %+v", srv.Fired())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(srv.Schedules()) != 0 {
		t.Error("the schedule was not deleted after completion")
	}
}

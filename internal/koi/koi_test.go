package koi_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/skykoi/skykoi/internal/koi"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

const (
	testRegion = "eu-west-1"
	koiID      = "i-0123456789abcdef0"
	otherID    = "i-0fedcba9876543210"
)

func newFake(t *testing.T) *ec2test.Server {
	t.Helper()
	srv := ec2test.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, srv *ec2test.Server) *koi.Client {
	t.Helper()
	c, err := koi.New(context.Background(), koi.Options{
		Region:      testRegion,
		Endpoint:    srv.URL(),
		Credentials: srv.Credentials(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStatusRunning(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{
		ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7",
		PublicDNS: "ec2-203-0-113-7.eu-west-1.compute.amazonaws.com",
		Tags:      map[string]string{"Name": "koi-alice", "skykoi:owner": "alice"},
	})
	c := newClient(t, srv)
	st, err := c.Status(context.Background(), koiID)
	if err != nil {
		t.Fatal(err)
	}
	want := koi.Status{
		ID: koiID, State: "running", PublicIP: "203.0.113.7",
		PublicDNS:    "ec2-203-0-113-7.eu-west-1.compute.amazonaws.com",
		SystemStatus: "ok", InstanceStatus: "ok",
	}
	if st.ID != want.ID || st.State != want.State || st.PublicIP != want.PublicIP ||
		st.PublicDNS != want.PublicDNS || st.SystemStatus != want.SystemStatus || st.InstanceStatus != want.InstanceStatus {
		t.Errorf("Status = %+v, want %+v", st, want)
	}
	if got := strings.Join(koi.SortedTags(st.Tags), ","); got != "Name=koi-alice,skykoi:owner=alice" {
		t.Errorf("tags = %s", got)
	}

	calls := srv.Calls()
	if len(calls) != 2 || calls[0].Action != "DescribeInstances" || calls[1].Action != "DescribeInstanceStatus" {
		t.Fatalf("calls = %+v", calls)
	}
	for _, call := range calls {
		if call.Region != testRegion || len(call.InstanceIDs) != 1 || call.InstanceIDs[0] != koiID {
			t.Errorf("%s: region %q ids %v", call.Action, call.Region, call.InstanceIDs)
		}
	}
	if calls[1].Params.Get("IncludeAllInstances") != "true" {
		t.Errorf("DescribeInstanceStatus without IncludeAllInstances: %v", calls[1].Params)
	}
}

func TestStatusStopped(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Stopped, PublicIP: "203.0.113.7"})
	st, err := newClient(t, srv).Status(context.Background(), koiID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "stopped" || st.PublicIP != "" || st.Address() != "" ||
		st.SystemStatus != "not-applicable" || st.InstanceStatus != "not-applicable" {
		t.Errorf("Status = %+v", st)
	}
}

func TestStartStopTransitions(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Stopped, PublicIP: "203.0.113.7"})
	c := newClient(t, srv)
	ctx := context.Background()

	prev, cur, err := c.Start(ctx, koiID)
	if err != nil || prev != "stopped" || cur != "pending" {
		t.Fatalf("Start = %q, %q, %v; want stopped, pending", prev, cur, err)
	}
	// The fake shows a transition once, like a real look soon after the
	// call, then the final state; status checks initialise the same way.
	steps := []struct{ state, system, inst string }{
		{"pending", "not-applicable", "not-applicable"},
		{"running", "initializing", "initializing"},
		{"running", "ok", "ok"},
	}
	for i, want := range steps {
		st, err := c.Status(ctx, koiID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != want.state || st.SystemStatus != want.system || st.InstanceStatus != want.inst {
			t.Errorf("look %d: %s/%s/%s, want %+v", i, st.State, st.SystemStatus, st.InstanceStatus, want)
		}
	}
	if prev, cur, err := c.Start(ctx, koiID); err != nil || prev != "running" || cur != "running" {
		t.Errorf("Start of a running instance = %q, %q, %v", prev, cur, err)
	}

	prev, cur, err = c.Stop(ctx, koiID)
	if err != nil || prev != "running" || cur != "stopping" {
		t.Fatalf("Stop = %q, %q, %v; want running, stopping", prev, cur, err)
	}
	for _, want := range []string{"stopping", "stopped"} {
		st, err := c.Status(ctx, koiID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != want {
			t.Errorf("after Stop: %s, want %s", st.State, want)
		}
	}
	stops := srv.CallsOf("StopInstances")
	if len(stops) != 1 || stops[0].InstanceIDs[0] != koiID || stops[0].Params.Get("InstanceId.1") != koiID {
		t.Errorf("StopInstances calls = %+v", stops)
	}
}

func TestAdvanceHelper(t *testing.T) {
	srv := newFake(t)
	srv.SetAutoAdvance(0)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Stopped})
	c := newClient(t, srv)
	ctx := context.Background()
	if _, _, err := c.Start(ctx, koiID); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if st, _ := c.Status(ctx, koiID); st.State != "pending" {
			t.Fatalf("with auto advance off: %s, want pending", st.State)
		}
	}
	if got := srv.Advance(koiID); got != "running" {
		t.Fatalf("Advance = %s", got)
	}
	st, _ := c.Status(ctx, koiID)
	if st.State != "running" || st.SystemStatus != "initializing" {
		t.Errorf("after Advance: %+v", st)
	}
	srv.Advance(koiID)
	if st, _ := c.Status(ctx, koiID); st.SystemStatus != "ok" || st.InstanceStatus != "ok" {
		t.Errorf("after second Advance: %+v", st)
	}
}

func TestTerminatedCannotStart(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Terminated})
	_, _, err := newClient(t, srv).Start(context.Background(), koiID)
	if err == nil || !strings.Contains(err.Error(), "IncorrectInstanceState") {
		t.Fatalf("Start of a terminated instance: %v", err)
	}
}

func TestMissingInstance(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: otherID, State: ec2test.Running})
	c := newClient(t, srv)
	ctx := context.Background()
	for _, id := range []string{koiID, "i-nope"} {
		calls := map[string]func() error{
			"Status":        func() error { _, err := c.Status(ctx, id); return err },
			"Start":         func() error { _, _, err := c.Start(ctx, id); return err },
			"Stop":          func() error { _, _, err := c.Stop(ctx, id); return err },
			"ConsoleOutput": func() error { _, err := c.ConsoleOutput(ctx, id); return err },
			"Wait":          func() error { _, err := c.Wait(ctx, id, koi.WaitOptions{}); return err },
		}
		for name, call := range calls {
			err := call()
			var nf *koi.NotFoundError
			if !errors.As(err, &nf) {
				t.Errorf("%s(%s): %v, want a NotFoundError", name, id, err)
				continue
			}
			want := "no instance " + id + " in region " + testRegion + ": check --instance and --region"
			if err.Error() != want {
				t.Errorf("%s(%s): %q, want %q", name, id, err, want)
			}
		}
	}
	if srv.State(otherID) != "running" {
		t.Error("a failed call changed another instance")
	}
	if _, err := c.Status(ctx, ""); err == nil || !strings.Contains(err.Error(), "no instance ID") {
		t.Errorf("empty ID: %v", err)
	}
}

func TestCredentialsError(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: koiID})
	c, err := koi.New(context.Background(), koi.Options{
		Region:   testRegion,
		Endpoint: srv.URL(),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no EC2 IMDS role found")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background(), koiID)
	var ce *koi.CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("Status without credentials: %v", err)
	}
	for _, want := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "no EC2 IMDS role found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %s", err, want)
		}
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("%d requests reached EC2 without credentials", n)
	}
}

func TestNoRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	_, err := koi.New(context.Background(), koi.Options{
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
	})
	if !errors.Is(err, koi.ErrNoRegion) {
		t.Fatalf("New without a region: %v", err)
	}
}

func TestPermissionError(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running})
	srv.SetError("StopInstances", "UnauthorizedOperation", "You are not authorized to perform this operation.")
	_, _, err := newClient(t, srv).Stop(context.Background(), koiID)
	var pe *koi.PermissionError
	if !errors.As(err, &pe) || pe.Action != "StopInstances" || !strings.Contains(err.Error(), "ec2:StopInstances") {
		t.Fatalf("Stop when not allowed: %v", err)
	}
	if srv.State(koiID) != "running" {
		t.Error("a refused stop changed the state")
	}
}

func TestConsoleOutput(t *testing.T) {
	srv := newFake(t)
	text := "[    1.0] Linux version 6.8\r\nci-info: SKYKOI-TLS-SHA256 " + strings.Repeat("ab:", 31) + "ab\r\nSKYKOI-READY\r\n"
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running})
	c := newClient(t, srv)
	got, err := c.ConsoleOutput(context.Background(), koiID)
	if err != nil || got != "" {
		t.Fatalf("empty console = %q, %v", got, err)
	}
	srv.SetConsole(koiID, text)
	if got, err = c.ConsoleOutput(context.Background(), koiID); err != nil || got != text {
		t.Fatalf("console = %q, %v", got, err)
	}
	fp, ready, failed := koi.ParseConsole(got)
	if fp != strings.Repeat("AB:", 31)+"AB" || !ready || failed != "" {
		t.Errorf("ParseConsole = %q %v %q", fp, ready, failed)
	}
	calls := srv.CallsOf("GetConsoleOutput")
	if calls[0].Params.Get("Latest") != "true" || calls[0].Params.Get("InstanceId") != koiID {
		t.Errorf("GetConsoleOutput params = %v", calls[0].Params)
	}
}

func TestConsoleOutputWithoutLatest(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, NoLatest: true, Console: "SKYKOI-READY\n"})
	c := newClient(t, srv)
	for range 2 {
		got, err := c.ConsoleOutput(context.Background(), koiID)
		if err != nil || got != "SKYKOI-READY\n" {
			t.Fatalf("console = %q, %v", got, err)
		}
	}
	// One refused try with Latest, then the client remembers.
	var latest []string
	for _, call := range srv.CallsOf("GetConsoleOutput") {
		latest = append(latest, call.Params.Get("Latest"))
	}
	if strings.Join(latest, ",") != "true,," {
		t.Errorf("Latest per call = %q", latest)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/wake"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// These run `skykoi koi …` in process against the fake EC2, with the SDK's
// default credential chain reading the environment like on a laptop.

const (
	koiTestID     = "i-0123456789abcdef0"
	koiTestRegion = "eu-west-1"
)

func koiEnv(t *testing.T) *ec2test.Server {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDKOICLITEST",
		"AWS_SECRET_ACCESS_KEY":       "koi-cli-test-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  koiTestRegion,
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		// Nothing may fall through to a real metadata service.
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	// The CLI signs with the environment's key; the stand-in checks it.
	srv := ec2test.New(ec2test.Options{Keys: []ec2test.Key{{AccessKeyID: "AKIDKOICLITEST", SecretAccessKey: "koi-cli-test-secret"}}})
	t.Cleanup(srv.Close)
	return srv
}

func runKoi(t *testing.T, srv *ec2test.Server, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"koi"}, args...)
	if srv != nil {
		full = append(full, "--endpoint", srv.URL())
	}
	code = run(context.Background(), full, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// koiReadyz is a Koi's nginx stand-in: TLS with a self-signed certificate,
// serving /readyz. It returns the readyz URL and the certificate's
// fingerprint.
func koiReadyz(t *testing.T) (string, string) {
	t.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"ok":true,"status":"ready"}`)
	}))
	t.Cleanup(ts.Close)
	sum := sha256.Sum256(ts.Certificate().Raw)
	return ts.URL + "/readyz", client.FormatFingerprint(sum[:])
}

func koiConsole(fp string) string {
	return "[    0.000000] Linux version 6.8.0-1018-aws\r\n" +
		"cloud-init[812]: SKYKOI-TLS-SHA256 " + fp + "\r\n" +
		"cloud-init[812]: SKYKOI-READY\r\n"
}

func TestKoiStatus(t *testing.T) {
	srv := koiEnv(t)
	srv.AddInstance(ec2test.Instance{
		ID: koiTestID, State: ec2test.Running, PublicIP: "203.0.113.7",
		PublicDNS: "ec2-203-0-113-7.eu-west-1.compute.amazonaws.com",
		Tags:      map[string]string{"Name": "koi-alice", "skykoi:owner": "alice"},
	})
	code, out, errOut := runKoi(t, srv, "status", "--instance", koiTestID)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "instance    " + koiTestID + "\n" +
		"region      eu-west-1\n" +
		"state       running\n" +
		"checks      system ok, instance ok\n" +
		"public ip   203.0.113.7\n" +
		"public dns  ec2-203-0-113-7.eu-west-1.compute.amazonaws.com\n" +
		"tags        Name=koi-alice skykoi:owner=alice\n" +
		"next wake   none\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	for _, c := range srv.Calls() {
		if c.Region != koiTestRegion || c.Rejected != "" {
			t.Errorf("%s signed for %q (rejected: %s)", c.Action, c.Region, c.Rejected)
		}
	}

	// --region wins over AWS_REGION.
	if code, _, errOut := runKoi(t, srv, "status", "--instance", koiTestID, "--region", "us-west-2"); code != 0 {
		t.Fatalf("with --region: exit %d: %s", code, errOut)
	}
	calls := srv.Calls()
	if last := calls[len(calls)-1]; last.Region != "us-west-2" {
		t.Errorf("with --region us-west-2, signed for %q", last.Region)
	}
}

// TestKoiStatusNextWake: the wake schedule an idle stop left is read back
// through Scheduler (GetSchedule on the stand-in) and shown; a caller
// Scheduler refuses still gets the rest.
func TestKoiStatusNextWake(t *testing.T) {
	srv := koiEnv(t)
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Stopped})
	sc := scheduler.New(scheduler.Options{Region: koiTestRegion, BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDKOICLITEST", "koi-cli-test-secret", "")})
	_, err := sc.CreateSchedule(context.Background(), &scheduler.CreateScheduleInput{
		Name: aws.String(wake.ScheduleName(koiTestID)), ScheduleExpression: aws.String("at(2030-01-02T03:04:05)"),
		ScheduleExpressionTimezone: aws.String("UTC"),
		FlexibleTimeWindow:         &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
		Target: &schedtypes.Target{Arn: aws.String(wake.StartInstancesTarget), RoleArn: aws.String("arn:aws:iam::123456789012:role/wake"),
			Input: aws.String(`{"InstanceIds":["` + koiTestID + `"]}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, failWith, want string
	}{
		{"scheduled", "", "next wake   2030-01-02T03:04:05Z (EventBridge Scheduler " + wake.ScheduleName(koiTestID) + ")\n"},
		{"not allowed to read it", "AccessDeniedException", "next wake   unknown ("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetError("GetSchedule", tt.failWith, "User is not authorized to perform: scheduler:GetSchedule")
			code, out, errOut := runKoi(t, srv, "status", "--instance", koiTestID)
			if code != 0 || !strings.Contains(out, tt.want) || !strings.Contains(out, "state       stopped\n") {
				t.Errorf("exit %d\n%s%s\nwant %q", code, out, errOut, tt.want)
			}
		})
	}
	if n := len(srv.CallsOf("GetSchedule")); n != 2 {
		t.Errorf("%d GetSchedule calls, want 2", n)
	}
}

func TestKoiStartStop(t *testing.T) {
	srv := koiEnv(t)
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Stopped, PublicIP: "203.0.113.7"})

	code, out, errOut := runKoi(t, srv, "status", "--instance", koiTestID)
	if code != 0 || !strings.Contains(out, "state       stopped\n") || !strings.Contains(out, "public ip   -\n") {
		t.Fatalf("status of a stopped Koi: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runKoi(t, srv, "start", "--instance", koiTestID)
	if code != 0 || out != koiTestID+": stopped -> pending\n" {
		t.Fatalf("start: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "skykoi koi wait --instance "+koiTestID) {
		t.Errorf("start does not say how to wait: %q", errOut)
	}
	for _, want := range []string{"pending", "running"} {
		_, out, _ := runKoi(t, srv, "status", "--instance", koiTestID)
		if !strings.Contains(out, "state       "+want+"\n") {
			t.Errorf("after start, want %s:\n%s", want, out)
		}
	}
	if code, out, _ := runKoi(t, srv, "start", "--instance", koiTestID); code != 0 || out != koiTestID+": already running\n" {
		t.Errorf("start of a running Koi: exit %d, %q", code, out)
	}
	code, out, errOut = runKoi(t, srv, "stop", "--instance", koiTestID)
	if code != 0 || out != koiTestID+": running -> stopping\n" {
		t.Fatalf("stop: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got := srv.State(koiTestID); got != ec2test.Stopping {
		t.Errorf("after stop: %s", got)
	}
	if n := len(srv.CallsOf("StopInstances")); n != 1 {
		t.Errorf("%d StopInstances calls", n)
	}
}

func TestKoiWait(t *testing.T) {
	srv := koiEnv(t)
	readyz, fp := koiReadyz(t)
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Pending, PublicIP: "203.0.113.7", Console: koiConsole(fp)})
	code, out, errOut := runKoi(t, srv, "wait", "--instance", koiTestID,
		"--readyz-url", readyz, "--poll-interval", "10ms", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	base := strings.TrimSuffix(readyz, "readyz")
	if want := "url:         " + base + "\ntls-sha256:  " + fp + "\n"; out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	for _, want := range []string{
		"] instance: pending\n",
		"] instance: running (status checks: system initializing, instance initializing)\n",
		"] console: SKYKOI-READY, TLS fingerprint " + fp + "\n",
		"] ready: " + readyz + " ok\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.HasPrefix(errOut, "[ 0:00] instance: pending") {
		t.Errorf("progress lines are not timed: %q", errOut)
	}

	// Woken from a stop: the console has nothing, the known fingerprint
	// is enough.
	srv.SetConsole(koiTestID, "")
	code, out, errOut = runKoi(t, srv, "wait", "--instance", koiTestID, "--tls-sha256", fp,
		"--readyz-url", readyz, "--poll-interval", "10ms", "--timeout", "30s")
	if code != 0 || !strings.Contains(out, fp) {
		t.Fatalf("wait with --tls-sha256: exit %d\n%s%s", code, out, errOut)
	}
}

func TestKoiWaitWrongFingerprint(t *testing.T) {
	srv := koiEnv(t)
	readyz, fp := koiReadyz(t)
	other := strings.Repeat("AB:", 31) + "AB"
	if other == fp {
		t.Fatal("test certificate collides with the fixed fingerprint")
	}
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Running, PublicIP: "203.0.113.7", Console: koiConsole(other)})
	code, out, errOut := runKoi(t, srv, "wait", "--instance", koiTestID,
		"--readyz-url", readyz, "--poll-interval", "10ms", "--timeout", "30s")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"fingerprint did not match", "presented SHA-256 " + fp, "expected " + other, "do not connect"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestKoiWaitTimeout(t *testing.T) {
	srv := koiEnv(t)
	srv.SetAutoAdvance(0) // stuck pending
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Pending})
	code, out, errOut := runKoi(t, srv, "wait", "--instance", koiTestID, "--poll-interval", "20ms", "--timeout", "300ms")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	want := "skykoi: timed out after 300ms waiting for " + koiTestID + " to be running (last: it is pending)\n"
	hint := strings.Index(errOut, "hint: the instance did not reach running")
	if i := strings.Index(errOut, want); i < 0 || hint < i {
		t.Errorf("stderr:\n%s\nwant %q, then a hint", errOut, want)
	}
}

func TestKoiWaitConsoleTimeout(t *testing.T) {
	srv := koiEnv(t)
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Running, PublicIP: "203.0.113.7",
		Console: "[    0.000000] Linux version 6.8.0\r\n"})
	code, _, errOut := runKoi(t, srv, "wait", "--instance", koiTestID, "--poll-interval", "20ms", "--timeout", "200ms")
	if code != 1 || !strings.Contains(errOut, "to print SKYKOI-READY on its console (last: output but no SKYKOI-READY yet)") ||
		!strings.Contains(errOut, "--tls-sha256") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

func TestKoiWaitBootstrapFailed(t *testing.T) {
	srv := koiEnv(t)
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Running, PublicIP: "203.0.113.7",
		Console: "cloud-init[812]: SKYKOI-FAILED tls: openssl req exited with 1\r\n"})
	code, out, errOut := runKoi(t, srv, "wait", "--instance", koiTestID, "--poll-interval", "10ms", "--timeout", "30s")
	if code != 1 || out != "" || !strings.Contains(errOut, `failed at step "tls": openssl req exited with 1`) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

func TestKoiFingerprint(t *testing.T) {
	srv := koiEnv(t)
	fp := strings.Repeat("0F:", 31) + "0F"
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Running,
		Console: "ci-info: SKYKOI-TLS-SHA256 " + strings.ToLower(fp) + "\r\n"})
	code, out, errOut := runKoi(t, srv, "fingerprint", "--instance", koiTestID)
	if code != 0 || out != fp+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	srv.SetConsole(koiTestID, "SKYKOI-FAILED volume: no data volume\n")
	code, out, errOut = runKoi(t, srv, "fingerprint", "--instance", koiTestID)
	if code != 1 || out != "" || !strings.Contains(errOut, "shows no SKYKOI-TLS-SHA256 line") ||
		!strings.Contains(errOut, `failed at step "volume"`) {
		t.Errorf("no fingerprint: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

func TestKoiMissingInstance(t *testing.T) {
	srv := koiEnv(t)
	srv.AddInstance(ec2test.Instance{ID: "i-0fedcba9876543210", State: ec2test.Running})
	for _, cmd := range []string{"status", "start", "stop", "wait", "fingerprint"} {
		code, out, errOut := runKoi(t, srv, cmd, "--instance", koiTestID)
		want := "skykoi: no instance " + koiTestID + " in region eu-west-1: check --instance and --region\n"
		if code != 1 || out != "" || errOut != want {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", cmd, code, out, errOut, want)
		}
	}
}

func TestKoiUsage(t *testing.T) {
	srv := koiEnv(t)
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"status"},
		{"status", koiTestID},
		{"wait", "--instance", koiTestID, "--timeout", "0s"},
		{"wait", "--instance", koiTestID, "--timeout", "soon"},
		{"wait", "--instance", koiTestID, "--tls-sha256", "abc"},
		{"start", "--instance", koiTestID, "--no-such-flag"},
	} {
		code, out, errOut := runKoi(t, srv, args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "skykoi: ") {
			t.Errorf("koi %v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("usage mistakes reached EC2 %d times", n)
	}
}

func TestKoiNoCredentials(t *testing.T) {
	srv := koiEnv(t)
	srv.AddInstance(ec2test.Instance{ID: koiTestID, State: ec2test.Running})
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	code, _, errOut := runKoi(t, srv, "status", "--instance", koiTestID)
	if code != 1 || !strings.Contains(errOut, "no usable AWS credentials: set AWS_PROFILE") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("%d unsigned requests reached EC2", n)
	}
}

func TestKoiNoRegion(t *testing.T) {
	koiEnv(t)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	code, _, errOut := runKoi(t, nil, "status", "--instance", koiTestID)
	if code != 2 || !strings.Contains(errOut, "no AWS region: give --region or set AWS_REGION") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

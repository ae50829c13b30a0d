package koi_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/internal/koi"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// fakeTime is a clock for Wait whose Sleep moves time on at once, so a
// ten-minute wait runs in milliseconds.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	sleeps int
}

func newFakeTime() *fakeTime {
	return &fakeTime{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.sleeps++
	return nil
}

// readyzServer is a gateway behind TLS with a self-signed certificate, like
// a Koi's nginx; it returns the server and its certificate's fingerprint.
func readyzServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, string) {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"ok":true,"status":"ready"}`)
		}
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(srv.Certificate().Raw)
	return srv, client.FormatFingerprint(sum[:])
}

func bootConsole(fp string) string {
	return "[    0.000000] Linux version 6.8.0-1018-aws\r\n" +
		"cloud-init[812]: skykoi-bootstrap: making the TLS certificate\r\n" +
		"cloud-init[812]: SKYKOI-TLS-SHA256 " + fp + "\r\n" +
		"SKYKOI-TLS-SHA256 " + fp + "\r\n" +
		"cloud-init[812]: SKYKOI-READY\r\n"
}

func TestWaitFromStoppedToReady(t *testing.T) {
	srv := newFake(t)
	ts, fp := readyzServer(t, nil)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Stopped, PublicIP: "203.0.113.7"})
	c := newClient(t, srv)
	ctx := context.Background()
	if _, _, err := c.Start(ctx, koiID); err != nil {
		t.Fatal(err)
	}
	clock := newFakeTime()
	var progress []string
	consoleLooks := 0
	res, err := c.Wait(ctx, koiID, koi.WaitOptions{
		ReadyURL: ts.URL + "/readyz",
		Now:      clock.Now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			// The console fills in while Wait polls it.
			if len(srv.CallsOf("GetConsoleOutput")) > 0 {
				consoleLooks++
				switch consoleLooks {
				case 1:
					srv.SetConsole(koiID, "[    0.000000] Linux version 6.8.0\r\ncloud-init[812]: SKYKOI-TLS-SHA256 "+fp+"\r\n")
				case 2:
					srv.SetConsole(koiID, bootConsole(fp))
				}
			}
			return clock.Sleep(ctx, d)
		},
		Progress: func(p koi.Progress) { progress = append(progress, string(p.Stage)+": "+p.Message) },
	})
	if err != nil {
		t.Fatalf("Wait: %v\nprogress:\n%s", err, strings.Join(progress, "\n"))
	}
	if res.Fingerprint != fp || res.ReadyURL != ts.URL+"/readyz" || res.Status.State != "running" {
		t.Errorf("result = %+v", res)
	}
	wantProgress := []string{
		"instance: pending",
		"instance: running (status checks: system initializing, instance initializing)",
		"console: waiting for SKYKOI-READY",
		"console: TLS fingerprint " + fp + "; waiting for SKYKOI-READY",
		"console: SKYKOI-READY, TLS fingerprint " + fp,
		"readyz: checking " + ts.URL + "/readyz",
		"ready: " + ts.URL + "/readyz ok",
	}
	if strings.Join(progress, "\n") != strings.Join(wantProgress, "\n") {
		t.Errorf("progress:\n%s\nwant:\n%s", strings.Join(progress, "\n"), strings.Join(wantProgress, "\n"))
	}
}

func TestWaitDefaultURL(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{
		ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7", Console: bootConsole(fpA),
	})
	var gotURL, gotFP string
	res, err := newClient(t, srv).Wait(context.Background(), koiID, koi.WaitOptions{
		Now: newFakeTime().Now,
		CheckReady: func(_ context.Context, url, fp string) error {
			gotURL, gotFP = url, fp
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if gotURL != "https://203.0.113.7/readyz" || gotFP != fpA || res.URL != "https://203.0.113.7/" {
		t.Errorf("checked %s with %s; result %+v", gotURL, gotFP, res)
	}
}

func TestWaitTimeouts(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*ec2test.Server)
		check func(context.Context, string, string) error
		stage koi.Stage
		last  string
	}{
		{
			name: "stuck pending",
			setup: func(s *ec2test.Server) {
				s.SetAutoAdvance(0)
				s.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Pending})
			},
			stage: koi.StageInstance, last: "it is pending",
		},
		{
			name: "console without READY",
			setup: func(s *ec2test.Server) {
				s.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7",
					Console: "cloud-init[1]: SKYKOI-TLS-SHA256 " + fpA + "\n"})
			},
			stage: koi.StageConsole, last: "fingerprint " + fpA + " seen, no SKYKOI-READY yet",
		},
		{
			name: "empty console",
			setup: func(s *ec2test.Server) {
				s.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7"})
			},
			stage: koi.StageConsole, last: "no output yet",
		},
		{
			name: "readyz never ok",
			setup: func(s *ec2test.Server) {
				s.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7", Console: bootConsole(fpA)})
			},
			check: func(context.Context, string, string) error {
				return errors.New("readyz answered 503 Service Unavailable")
			},
			stage: koi.StageReadyz, last: "readyz answered 503 Service Unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFake(t)
			tt.setup(srv)
			clock := newFakeTime()
			start := clock.Now()
			_, err := newClient(t, srv).Wait(context.Background(), koiID, koi.WaitOptions{
				Timeout: 2 * time.Minute, PollInterval: 7 * time.Second,
				Now: clock.Now, Sleep: clock.Sleep, CheckReady: tt.check,
			})
			var te *koi.TimeoutError
			if !errors.As(err, &te) {
				t.Fatalf("Wait: %v, want a TimeoutError", err)
			}
			if te.Stage != tt.stage || te.Last != tt.last || te.After != 2*time.Minute {
				t.Errorf("TimeoutError = %+v", te)
			}
			if !strings.Contains(err.Error(), "timed out after 2m0s waiting for "+koiID) {
				t.Errorf("message %q", err)
			}
			// The last sleep is cut short to end at the deadline, not after.
			if got := clock.Now().Sub(start); got != 2*time.Minute {
				t.Errorf("gave up after %s of fake time", got)
			}
		})
	}
}

func TestWaitBootstrapFailed(t *testing.T) {
	srv := newFake(t)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7",
		Console: "SKYKOI-TLS-SHA256 " + fpA + "\r\ncloud-init[812]: SKYKOI-FAILED binary: sha256 of skykoi does not match the artifact\r\n"})
	clock := newFakeTime()
	_, err := newClient(t, srv).Wait(context.Background(), koiID, koi.WaitOptions{Now: clock.Now, Sleep: clock.Sleep})
	var be *koi.BootstrapError
	if !errors.As(err, &be) || be.Step != "binary" || be.Reason != "sha256 of skykoi does not match the artifact" {
		t.Fatalf("Wait: %v", err)
	}
	if !strings.Contains(err.Error(), `failed at step "binary"`) {
		t.Errorf("message %q does not name the step", err)
	}
	if clock.sleeps != 0 {
		t.Errorf("slept %d times before reporting the failure", clock.sleeps)
	}
}

func TestWaitWrongFingerprint(t *testing.T) {
	srv := newFake(t)
	ts, fp := readyzServer(t, nil)
	if fp == fpA {
		t.Fatal("test certificate collides with the fixed fingerprint")
	}
	// The console announces a certificate; something else answers.
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7", Console: bootConsole(fpA)})
	clock := newFakeTime()
	_, err := newClient(t, srv).Wait(context.Background(), koiID, koi.WaitOptions{
		ReadyURL: ts.URL + "/readyz", Now: clock.Now, Sleep: clock.Sleep,
	})
	var fe *client.FingerprintError
	if !errors.As(err, &fe) || fe.Want != fpA || fe.Got != fp {
		t.Fatalf("Wait: %v, want a FingerprintError", err)
	}
	if clock.sleeps != 0 {
		t.Errorf("a pin mismatch was retried (%d sleeps)", clock.sleeps)
	}
}

func TestWaitKnownFingerprintSkipsConsole(t *testing.T) {
	srv := newFake(t)
	ts, fp := readyzServer(t, nil)
	// A Koi woken from a stop: this boot's console has no announcements.
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7", Console: "[ 0.0] Linux\n"})
	res, err := newClient(t, srv).Wait(context.Background(), koiID, koi.WaitOptions{
		ReadyURL: ts.URL + "/readyz", Fingerprint: strings.ToLower(fp), Now: newFakeTime().Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fingerprint != fp {
		t.Errorf("fingerprint %q", res.Fingerprint)
	}
	if n := len(srv.CallsOf("GetConsoleOutput")); n != 0 {
		t.Errorf("read the console %d times", n)
	}
}

func TestWaitReadyzRetriesUntilOK(t *testing.T) {
	srv := newFake(t)
	var mu sync.Mutex
	answers := 0
	ts, fp := readyzServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		answers++
		n := answers
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"ok":false,"status":"starting"}`)
			return
		}
		fmt.Fprint(w, `{"ok":true,"status":"ready"}`)
	})
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Running, PublicIP: "203.0.113.7", Console: bootConsole(fp)})
	clock := newFakeTime()
	var progress []string
	_, err := newClient(t, srv).Wait(context.Background(), koiID, koi.WaitOptions{
		ReadyURL: ts.URL + "/readyz", Now: clock.Now, Sleep: clock.Sleep,
		Progress: func(p koi.Progress) { progress = append(progress, p.Message) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if clock.sleeps != 2 {
		t.Errorf("%d sleeps, want 2", clock.sleeps)
	}
	joined := strings.Join(progress, "\n")
	if !strings.Contains(joined, `not yet: readyz answered 503 Service Unavailable: {"ok":false,"status":"starting"}`) {
		t.Errorf("progress does not show the 503:\n%s", joined)
	}
}

func TestWaitStateErrors(t *testing.T) {
	for _, state := range []string{ec2test.Stopped, ec2test.Terminated} {
		t.Run(state, func(t *testing.T) {
			srv := newFake(t)
			srv.AddInstance(ec2test.Instance{ID: koiID, State: state})
			clock := newFakeTime()
			_, err := newClient(t, srv).Wait(context.Background(), koiID, koi.WaitOptions{Now: clock.Now, Sleep: clock.Sleep})
			var se *koi.StateError
			if !errors.As(err, &se) || se.State != state {
				t.Fatalf("Wait: %v", err)
			}
			// A stopped instance gets a few looks (EC2 reads lag a start);
			// a terminated one none.
			want := map[string]int{ec2test.Stopped: 2, ec2test.Terminated: 0}[state]
			if clock.sleeps != want {
				t.Errorf("%d sleeps, want %d", clock.sleeps, want)
			}
		})
	}
}

func TestWaitCancelled(t *testing.T) {
	srv := newFake(t)
	srv.SetAutoAdvance(0)
	srv.AddInstance(ec2test.Instance{ID: koiID, State: ec2test.Pending})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := newClient(t, srv).Wait(ctx, koiID, koi.WaitOptions{
		PollInterval: time.Millisecond,
		Sleep: func(ctx context.Context, d time.Duration) error {
			cancel()
			return ctx.Err()
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}
}

func TestCheckReadyz(t *testing.T) {
	ts, fp := readyzServer(t, nil)
	ctx := context.Background()
	if err := koi.CheckReadyz(ctx, ts.URL+"/readyz", fp); err != nil {
		t.Fatalf("pinned to the right certificate: %v", err)
	}
	err := koi.CheckReadyz(ctx, ts.URL+"/readyz", fpB)
	var fe *client.FingerprintError
	if !errors.As(err, &fe) {
		t.Fatalf("pinned to another certificate: %v", err)
	}
	if err := koi.CheckReadyz(ctx, ts.URL+"/readyz", "not-hex"); err == nil {
		t.Fatal("a malformed pin was accepted")
	}
	if err := koi.CheckReadyz(ctx, ts.URL+"/elsewhere", fp); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a 404 counted as ready: %v", err)
	}
	notOK, fp2 := readyzServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"ok":false}`) })
	if err := koi.CheckReadyz(ctx, notOK.URL+"/readyz", fp2); err == nil {
		t.Fatal(`200 {"ok":false} counted as ready`)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// fakeJournalctl puts a journalctl on PATH that records its arguments,
// prints lines, then either follows (waits to be killed, as -f does) or
// exits with status exit.
func fakeJournalctl(t *testing.T, lines []string, follow bool, exit int) (argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	var s strings.Builder
	s.WriteString("#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\n")
	for _, l := range lines {
		s.WriteString("printf '%s\\n' '" + l + "'\n")
	}
	if follow {
		// exec: the signal reaches sleep itself, as it would journalctl.
		s.WriteString("exec sleep 3600\n")
	} else {
		s.WriteString("exit " + string(rune('0'+exit)) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte(s.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return argsFile
}

func journalLine(us int64, unit, msg string) string {
	return `{"__REALTIME_TIMESTAMP":"` + itoa(us) + `","_SYSTEMD_UNIT":"` + unit + `","MESSAGE":"` + msg + `"}`
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func runShipLogs(ctx context.Context, logs *ec2test.Server, args ...string) (int, string) {
	var out, errb bytes.Buffer
	full := append([]string{"gateway", "ship-logs", "--endpoint", logs.URL(), "--region", koiTestRegion,
		"--stream", "koi-test/boot1", "--flush-every", "50ms"}, args...)
	code := run(ctx, full, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String() + errb.String()
}

// TestShipLogsFollowsUntilSIGTERM runs the real command against the
// CloudWatch Logs stand-in: entries a following journalctl prints arrive in
// the stream, and cancellation (what SIGTERM does in main) flushes, stops
// journalctl and exits 0.
func TestShipLogsFollowsUntilSIGTERM(t *testing.T) {
	logs := koiEnv(t)
	logs.AddLogGroup("/skykoi/koi-test")
	argsFile := fakeJournalctl(t, []string{
		journalLine(1_700_000_000_000_000, "skykoi-gateway.service", "gateway ready"),
		`not json`,
		journalLine(1_700_000_001_000_000, "nginx.service", "started"),
	}, true, 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		code, out := runShipLogs(ctx, logs, "--group", "/skykoi/koi-test")
		done <- result{code, out}
	}()
	deadline := time.Now().Add(patience(t))
	for len(logs.LogEvents("/skykoi/koi-test", "koi-test/boot1")) < 2 {
		select {
		case r := <-done:
			t.Fatalf("ship-logs ended before shipping: code %d\n%s", r.code, r.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("events never arrived: %+v", logs.LogEvents("/skykoi/koi-test", "koi-test/boot1"))
		}
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(patience(t)):
		t.Fatal("ship-logs did not stop after cancellation")
	}
	if r.code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "skipped 1 journal lines") {
		t.Errorf("the unparsable line is not reported:\n%s", r.out)
	}
	got := logs.LogEvents("/skykoi/koi-test", "koi-test/boot1")
	want := []ec2test.LogEvent{
		{Timestamp: 1_700_000_000_000, Message: "skykoi-gateway.service: gateway ready"},
		{Timestamp: 1_700_000_001_000, Message: "nginx.service: started"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("events = %+v, want %+v", got, want)
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := "-o\njson\n--follow\n--boot\n--no-tail\n--quiet\n" +
		"--unit\nskykoi-gateway.service\n--unit\nskykoi-update.service\n--unit\nskykoi-console.service\n--unit\nnginx.service\n"
	if string(args) != wantArgs {
		t.Errorf("journalctl args:\n%s\nwant:\n%s", args, wantArgs)
	}
}

// TestShipLogsFailures: what systemd must restart (or a person must fix)
// exits non-zero with a message saying what.
func TestShipLogsFailures(t *testing.T) {
	line := journalLine(1_700_000_000_000_000, "skykoi-gateway.service", "hello")
	for _, tc := range []struct {
		name    string
		group   string
		exit    int
		follow  bool
		want    string
		shipped int
	}{
		{"journalctl fails", "/skykoi/koi-test", 1, false, "can this user read the journal", 1},
		{"journalctl ends", "/skykoi/koi-test", 0, false, "stopped following the journal", 1},
		{"no such group", "/skykoi/other", 0, true, "is skykoi:cloudwatchLogs on", 0},
		{"bad group name", "skykoi koi", 0, true, "--group: want a CloudWatch Logs group name", 0},
		{"no journalctl", "/skykoi/koi-test", -1, true, "starting journalctl", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := koiEnv(t)
			logs.AddLogGroup("/skykoi/koi-test")
			if tc.exit < 0 {
				t.Setenv("PATH", t.TempDir())
			} else {
				fakeJournalctl(t, []string{line}, tc.follow, tc.exit)
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience(t))
			defer cancel()
			code, out := runShipLogs(ctx, logs, "--group", tc.group)
			if ctx.Err() != nil {
				t.Fatalf("ship-logs did not return by itself:\n%s", out)
			}
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant non-zero and %q", code, out, tc.want)
			}
			if n := len(logs.LogEvents("/skykoi/koi-test", "koi-test/boot1")); n != tc.shipped {
				t.Errorf("%d events shipped, want %d (what was read is flushed before exiting)", n, tc.shipped)
			}
		})
	}
}

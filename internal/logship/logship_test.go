package logship

import (
	"context"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
	"github.com/skykoi/skykoi/internal/testwait"
)

const group = "/skykoi/skykoi-dev"

// client is the real CloudWatch Logs client, signing with the key the AWS
// stand-in checks.
func client(srv *ec2test.Server) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       "us-west-2",
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  srv.Credentials(),
	})
}

func line(us int64, unit, msg string) string {
	return `{"__REALTIME_TIMESTAMP":"` + itoa(us) + `","_SYSTEMD_UNIT":"` + unit + `","MESSAGE":"` + msg + `"}` + "\n"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func utf8Valid(s string) bool { return utf8.ValidString(s) }

func TestShipToStandIn(t *testing.T) {
	logs := ec2test.NewServer()
	defer logs.Close()
	logs.AddLogGroup(group)
	in := line(1_700_000_000_000_000, "skykoi-gateway.service", "listening") +
		"not json\n" +
		line(1_700_000_001_000_000, "skykoi-gateway.service", "run started") +
		line(1_700_000_002_500_000, "nginx.service", "reload") +
		line(1_700_000_003_000_000, "skykoi-gateway.service", "run done")
	o := Options{Client: client(logs), Group: group, Stream: "i-0123456789abcdef0", MaxBatch: 2}
	skipped, err := Ship(context.Background(), o, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 1 {
		t.Errorf("skipped %d lines, want the 1 that is not JSON", skipped)
	}
	want := []ec2test.LogEvent{
		{Timestamp: 1_700_000_000_000, Message: "skykoi-gateway.service: listening"},
		{Timestamp: 1_700_000_001_000, Message: "skykoi-gateway.service: run started"},
		{Timestamp: 1_700_000_002_500, Message: "nginx.service: reload"},
		{Timestamp: 1_700_000_003_000, Message: "skykoi-gateway.service: run done"},
	}
	if got := logs.LogEvents(group, o.Stream); !reflect.DeepEqual(got, want) {
		t.Errorf("stream holds\n%+v\nwant\n%+v", got, want)
	}
	if n := logs.LogPuts(); n != 2 {
		t.Errorf("%d PutLogEvents calls, want 2 batches of 2", n)
	}

	// A restart ships into the stream that is already there.
	if _, err := Ship(context.Background(), o, strings.NewReader(line(1_700_000_004_000_000, "x.service", "again"))); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := len(logs.LogEvents(group, o.Stream)); got != 5 {
		t.Errorf("%d events after the restart, want 5", got)
	}
}

// TestShipClockStepBack: an entry older than the one before starts a new
// batch instead of failing CloudWatch's order check.
func TestShipClockStepBack(t *testing.T) {
	logs := ec2test.NewServer()
	defer logs.Close()
	logs.AddLogGroup(group)
	in := line(1_700_000_005_000_000, "a.service", "later") + line(1_700_000_001_000_000, "a.service", "stepped back")
	if _, err := Ship(context.Background(), Options{Client: client(logs), Group: group, Stream: "s"}, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if got := len(logs.LogEvents(group, "s")); got != 2 || logs.LogPuts() != 2 {
		t.Errorf("%d events in %d calls, want 2 in 2", got, logs.LogPuts())
	}
}

func TestShipUnknownGroup(t *testing.T) {
	logs := ec2test.NewServer()
	defer logs.Close()
	_, err := Ship(context.Background(), Options{Client: client(logs), Group: "/skykoi/nope", Stream: "s"}, strings.NewReader(""))
	if err == nil || !strings.Contains(err.Error(), "does the group exist") || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Errorf("err = %v, want the missing group explained", err)
	}
}

// TestShipFlushesWhileFollowing: with the journal still open, an event
// goes out within FlushEvery, and cancelling stops the shipper.
func TestShipFlushesWhileFollowing(t *testing.T) {
	logs := ec2test.NewServer()
	defer logs.Close()
	logs.AddLogGroup(group)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Ship(ctx, Options{Client: client(logs), Group: group, Stream: "s", FlushEvery: 20 * time.Millisecond}, pr)
		done <- err
	}()
	if _, err := io.WriteString(pw, line(1_700_000_000_000_000, "a.service", "hello")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testwait.Patience(t))
	for len(logs.LogEvents(group, "s")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not flushed while the journal stayed open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Ship after cancel: %v", err)
		}
	case <-time.After(testwait.Patience(t)):
		t.Fatal("Ship did not return after cancel")
	}
	pw.Close()
}

func TestParseJournalLine(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Event
		err      string
	}{
		{name: "text", in: `{"__REALTIME_TIMESTAMP":"1700000000123456","_SYSTEMD_UNIT":"skykoi-gateway.service","MESSAGE":"up"}`,
			want: Event{Time: time.UnixMicro(1700000000123456), Message: "skykoi-gateway.service: up"}},
		{name: "bytes", in: `{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"kernel","MESSAGE":[104,105,255]}`,
			want: Event{Time: time.UnixMicro(1), Message: "kernel: hi\uFFFD"}},
		{name: "no source", in: `{"__REALTIME_TIMESTAMP":"2","MESSAGE":"bare"}`, want: Event{Time: time.UnixMicro(2), Message: "bare"}},
		{name: "no message", in: `{"__REALTIME_TIMESTAMP":"2","MESSAGE":null}`, want: Event{Time: time.UnixMicro(2)}},
		{name: "no time", in: `{"MESSAGE":"x"}`, err: "__REALTIME_TIMESTAMP"},
		{name: "bad time", in: `{"__REALTIME_TIMESTAMP":"-5","MESSAGE":"x"}`, err: "__REALTIME_TIMESTAMP"},
		{name: "byte out of range", in: `{"__REALTIME_TIMESTAMP":"2","MESSAGE":[300]}`, err: "out of range"},
		{name: "message object", in: `{"__REALTIME_TIMESTAMP":"2","MESSAGE":{"a":1}}`, err: "neither text nor bytes"},
		{name: "not json", in: `MESSAGE=x`, err: "reading a journal entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseJournalLine([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !got.Time.Equal(tc.want.Time) || got.Message != tc.want.Message {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// FuzzParseJournalLine: an accepted entry has a positive time and a
// message CloudWatch takes: valid UTF-8 within the per-event limit.
func FuzzParseJournalLine(f *testing.F) {
	for _, s := range []string{
		`{"__REALTIME_TIMESTAMP":"1700000000123456","_SYSTEMD_UNIT":"a.service","MESSAGE":"up"}`,
		`{"__REALTIME_TIMESTAMP":"1","MESSAGE":[104,105,255]}`,
		`{"__REALTIME_TIMESTAMP":"2","MESSAGE":null}`, `{"MESSAGE":"x"}`, `[]`, `{"__REALTIME_TIMESTAMP":"9","MESSAGE":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseJournalLine(b)
		if err != nil {
			return
		}
		if ev.Time.UnixMicro() <= 0 || len(ev.Message) > maxMessageBytes || !utf8Valid(ev.Message) {
			t.Fatalf("accepted %q as %+v", b, ev)
		}
	})
}

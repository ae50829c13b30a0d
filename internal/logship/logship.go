// Package logship sends the systemd journal to CloudWatch Logs: it reads
// `journalctl -o json` lines and puts them, batched, into one stream of
// the Koi's log group. It is the box-side half of the stack's optional
// cloudwatchLogs key; the stack makes the group and grants only
// CreateLogStream and PutLogEvents on it.
package logship

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// PutLogEvents' limits: events per call, and bytes per call, each event
// counting its message plus 26.
const (
	maxBatchEvents = 10000
	maxBatchBytes  = 1_048_576
	eventOverhead  = 26
	// maxMessageBytes is CloudWatch's per-event limit, less the overhead.
	maxMessageBytes = 256*1024 - eventOverhead
	// maxLineBytes bounds one journal line; longer ones are skipped.
	maxLineBytes = 1 << 20
)

// Options configure a Shipper.
type Options struct {
	Client *cloudwatchlogs.Client
	// Group and Stream name where the events go; the stream is made when
	// missing.
	Group, Stream string
	// FlushEvery bounds how long an event waits for its batch; default 5s.
	FlushEvery time.Duration
	// MaxBatch caps events per PutLogEvents call; default and ceiling are
	// CloudWatch's 10,000.
	MaxBatch int
}

func (o Options) withDefaults() Options {
	if o.FlushEvery <= 0 {
		o.FlushEvery = 5 * time.Second
	}
	if o.MaxBatch <= 0 || o.MaxBatch > maxBatchEvents {
		o.MaxBatch = maxBatchEvents
	}
	return o
}

// Event is one journal entry as it is shipped.
type Event struct {
	Time    time.Time
	Message string
}

// ParseJournalLine reads one line of `journalctl -o json`. MESSAGE may be
// a string or, for non-UTF-8 text, an array of bytes; the unit (or the
// syslog identifier) prefixes the message so one stream stays readable.
func ParseJournalLine(line []byte) (Event, error) {
	var raw struct {
		Realtime   string          `json:"__REALTIME_TIMESTAMP"`
		Message    json.RawMessage `json:"MESSAGE"`
		Unit       string          `json:"_SYSTEMD_UNIT"`
		Identifier string          `json:"SYSLOG_IDENTIFIER"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return Event{}, fmt.Errorf("reading a journal entry: %w", err)
	}
	us, err := strconv.ParseInt(raw.Realtime, 10, 64)
	if err != nil || us <= 0 {
		return Event{}, fmt.Errorf("journal entry without a valid __REALTIME_TIMESTAMP (microseconds): %q", raw.Realtime)
	}
	var msg string
	if len(raw.Message) > 0 && raw.Message[0] == '[' {
		var bs []byte
		var ints []int
		if err := json.Unmarshal(raw.Message, &ints); err != nil {
			return Event{}, fmt.Errorf("journal MESSAGE is neither text nor bytes: %w", err)
		}
		for _, n := range ints {
			if n < 0 || n > 255 {
				return Event{}, fmt.Errorf("journal MESSAGE byte %d out of range", n)
			}
			bs = append(bs, byte(n))
		}
		msg = strings.ToValidUTF8(string(bs), "\uFFFD")
	} else if len(raw.Message) > 0 && string(raw.Message) != "null" {
		if err := json.Unmarshal(raw.Message, &msg); err != nil {
			return Event{}, fmt.Errorf("journal MESSAGE is neither text nor bytes: %w", err)
		}
	}
	if src := cmpOr(raw.Unit, raw.Identifier); src != "" {
		msg = src + ": " + msg
	}
	if len(msg) > maxMessageBytes {
		msg = strings.ToValidUTF8(msg[:maxMessageBytes], "")
	}
	return Event{Time: time.UnixMicro(us), Message: msg}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Ship reads journal lines from r until it ends or ctx is done, and puts
// them into the stream. Lines that do not parse are counted and skipped:
// one odd entry must not stop the shipping. What was read is flushed
// before Ship returns.
func Ship(ctx context.Context, o Options, r io.Reader) (skipped int, err error) {
	o = o.withDefaults()
	if o.Client == nil || o.Group == "" || o.Stream == "" {
		return 0, errors.New("logship: Client, Group and Stream are required")
	}
	if err := createStream(ctx, o); err != nil {
		return 0, err
	}
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), maxLineBytes)
		for sc.Scan() {
			select {
			case lines <- append([]byte(nil), sc.Bytes()...):
			case <-ctx.Done():
				readErr <- nil
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()

	var batch []types.InputLogEvent
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// A fresh context: the last flush after cancellation must still go.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, err := o.Client.PutLogEvents(fctx, &cloudwatchlogs.PutLogEventsInput{
			LogGroupName: aws.String(o.Group), LogStreamName: aws.String(o.Stream), LogEvents: batch,
		})
		batch, size = nil, 0
		if err != nil {
			return fmt.Errorf("putting journal events into %s/%s: %w", o.Group, o.Stream, err)
		}
		return nil
	}
	tick := time.NewTicker(o.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if err := flush(); err != nil {
					return skipped, err
				}
				if err := <-readErr; err != nil {
					return skipped, fmt.Errorf("reading the journal: %w", err)
				}
				return skipped, nil
			}
			ev, perr := ParseJournalLine(line)
			if perr != nil {
				skipped++
				continue
			}
			// CloudWatch wants each batch in time order; the journal is,
			// but a clock step back must not fail the batch.
			if n := len(batch); n > 0 && ev.Time.UnixMilli() < aws.ToInt64(batch[n-1].Timestamp) {
				if err := flush(); err != nil {
					return skipped, err
				}
			}
			evBytes := len(ev.Message) + eventOverhead
			if len(batch) >= o.MaxBatch || size+evBytes > maxBatchBytes {
				if err := flush(); err != nil {
					return skipped, err
				}
			}
			batch = append(batch, types.InputLogEvent{Timestamp: aws.Int64(ev.Time.UnixMilli()), Message: aws.String(ev.Message)})
			size += evBytes
		case <-tick.C:
			if err := flush(); err != nil {
				return skipped, err
			}
		case <-ctx.Done():
			return skipped, flush()
		}
	}
}

func createStream(ctx context.Context, o Options) error {
	_, err := o.Client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{
		LogGroupName: aws.String(o.Group), LogStreamName: aws.String(o.Stream),
	})
	var exists *types.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("creating log stream %s in %s (does the group exist? is skykoi:cloudwatchLogs on?): %w", o.Stream, o.Group, err)
	}
	return nil
}

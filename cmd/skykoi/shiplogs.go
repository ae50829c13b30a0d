package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/internal/logship"
	"github.com/spf13/cobra"
)

// shipLogsUnits are the units whose journal ships by default: the Koi's
// own services, not the whole journal. The rest of the journal holds the
// person's SSH logins, sudo command lines and whatever the agent's commands
// log, which need not leave the box for a health dashboard.
var shipLogsUnits = []string{
	cloudinit.UnitName, cloudinit.UpdateServiceName, cloudinit.ConsoleUnitName, "nginx.service",
}

// logGroupRe is CloudWatch Logs' group name alphabet.
var logGroupRe = regexp.MustCompile(`^[A-Za-z0-9_./#-]{1,512}$`)

// newGatewayShipLogsCmd is what skykoi-logs.service runs when the stack's
// cloudwatchLogs key is on (see internal/logship).
func newGatewayShipLogsCmd() *cobra.Command {
	var (
		group, stream, region, endpoint string
		units                           []string
		flushEvery                      time.Duration
	)
	c := &cobra.Command{
		Use:   "ship-logs",
		Short: "Ship the Koi's journal to its CloudWatch Logs group (run by skykoi-logs.service)",
		Long: "Follow the journal of the Koi's units (journalctl -o json -f, this boot) and put\n" +
			"it, batched, into one stream of the log group, with the instance role's\n" +
			"credentials (the default AWS credential chain). SIGTERM flushes and exits 0;\n" +
			"journalctl or CloudWatch failing exits non-zero, for systemd to restart it.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !logGroupRe.MatchString(group) {
				return usageError{fmt.Errorf("--group: want a CloudWatch Logs group name like /skykoi/<koi>, got %q", group)}
			}
			if stream == "" {
				var err error
				if stream, err = defaultLogStream(); err != nil {
					return err
				}
			}
			if strings.ContainsAny(stream, ":*") || len(stream) > 512 {
				return usageError{fmt.Errorf("--stream: a log stream name has no ':' or '*' and at most 512 characters, got %q", stream)}
			}
			cl, err := logsClient(c.Context(), region, endpoint)
			if err != nil {
				return err
			}
			return shipJournal(c.Context(), c, units, logship.Options{
				Client: cl, Group: group, Stream: stream, FlushEvery: flushEvery,
			})
		},
	}
	f := c.Flags()
	f.StringVar(&group, "group", "", "the CloudWatch Logs group, /skykoi/<koi> (the stack makes it)")
	f.StringVar(&stream, "stream", "", "the log stream (default <hostname>/<boot id>: one stream per boot)")
	f.StringVar(&region, "region", "", "AWS region of the group (default: the AWS configuration's)")
	f.StringSliceVar(&units, "unit", shipLogsUnits, "systemd units whose journal ships (repeat the flag)")
	f.DurationVar(&flushEvery, "flush-every", 5*time.Second, "longest an entry waits for its batch")
	f.StringVar(&endpoint, "endpoint", "", "CloudWatch Logs endpoint URL (for tests)")
	_ = f.MarkHidden("endpoint")
	return c
}

// defaultLogStream names the stream after the host and the boot, so each
// boot's journal reads on its own and a restart of the shipper within the
// boot keeps writing the same stream.
func defaultLogStream() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("naming the log stream after the hostname (or give --stream): %w", err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("naming the log stream after the boot (or give --stream): %w", err)
	}
	return host + "/" + strings.TrimSpace(string(boot)), nil
}

func logsClient(ctx context.Context, region, endpoint string) (*cloudwatchlogs.Client, error) {
	var load []func(*config.LoadOptions) error
	if region != "" {
		load = append(load, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration for CloudWatch Logs: %w", err)
	}
	if cfg.Region == "" {
		return nil, usageError{errors.New("no AWS region: give --region (the unit passes the stack's)")}
	}
	return cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// shipJournal runs journalctl and ships what it prints until ctx ends
// (SIGTERM: flush, stop journalctl, exit 0) or journalctl stops.
func shipJournal(ctx context.Context, c *cobra.Command, units []string, o logship.Options) error {
	// This boot, from its start: the gateway's first lines come before the
	// shipper runs. A restart of the shipper sends the boot again, which
	// duplicates rather than loses.
	args := []string{"-o", "json", "--follow", "--boot", "--no-tail", "--quiet"}
	for _, u := range units {
		args = append(args, "--unit", u)
	}
	jctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	cmd := exec.CommandContext(jctx, "journalctl", args...)
	cmd.Stderr = c.ErrOrStderr()
	// journalctl ends cleanly on SIGTERM; SIGKILL only if it will not.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("connecting to journalctl: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting journalctl (is systemd's journalctl on PATH?): %w", err)
	}
	skipped, shipErr := logship.Ship(ctx, o, out)
	if shipErr != nil || ctx.Err() != nil {
		stop()
	}
	// Else journalctl's output ended: it exited by itself, and its status
	// says why.
	waitErr := cmd.Wait()
	if skipped > 0 {
		fmt.Fprintf(c.ErrOrStderr(), "skipped %d journal lines that did not parse\n", skipped)
	}
	switch {
	case shipErr != nil:
		return shipErr
	case ctx.Err() != nil:
		// Stopped on purpose; journalctl's exit by our signal is no fault.
		return nil
	case waitErr != nil:
		return fmt.Errorf("journalctl stopped (can this user read the journal? it needs group systemd-journal): %w", waitErr)
	default:
		return errors.New("journalctl stopped following the journal; restart to resume")
	}
}

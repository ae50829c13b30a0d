package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/wake"
	"github.com/skykoi/skykoi/internal/koi"
	"github.com/spf13/cobra"
)

// koiFlags are shared by every `skykoi koi` command.
type koiFlags struct {
	instance, region, endpoint string
}

func newKoiCmd() *cobra.Command {
	var f koiFlags
	c := &cobra.Command{
		Use:   "koi",
		Short: "Look after a Koi's EC2 instance: status, start, stop, wait, fingerprint",
		Long: "Look after a Koi's EC2 instance: see its state, start it, stop it, wait until\n" +
			"its gateway is up, and read its TLS certificate's fingerprint from the console.\n\n" +
			"AWS credentials and the region come from the usual places (AWS_PROFILE,\n" +
			"~/.aws/config, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION);\n" +
			"--region overrides the region.\n\n" +
			"Exit status: 0 on success; 1 when AWS refuses or the Koi does not come up;\n" +
			"2 on a usage mistake.",
		Example: "  skykoi koi status --instance i-0123456789abcdef0\n" +
			"  skykoi koi start --instance i-0123456789abcdef0 && skykoi koi wait --instance i-0123456789abcdef0\n" +
			"  skykoi koi fingerprint --instance i-0123456789abcdef0 --region eu-west-1",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown koi command %q (see '%s --help')", args[0], c.CommandPath())}
			}
			return usageError{fmt.Errorf("koi needs a command: status, start, stop, wait, fingerprint or update (see '%s --help')", c.CommandPath())}
		},
	}
	pf := c.PersistentFlags()
	pf.StringVar(&f.instance, "instance", "", "the Koi's EC2 instance ID, like i-0123456789abcdef0 (required)")
	pf.StringVar(&f.region, "region", "", "AWS region of the instance (default: $AWS_REGION, else the profile's region)")
	pf.StringVar(&f.endpoint, "endpoint", "", "EC2 and Scheduler API endpoint URL (for tests)")
	_ = pf.MarkHidden("endpoint")
	c.AddCommand(newKoiStatusCmd(&f), newKoiStartCmd(&f), newKoiStopCmd(&f), newKoiWaitCmd(&f), newKoiFingerprintCmd(&f), newKoiUpdateCmd(&f))
	return c
}

// noArgs is cobra.NoArgs as a usage error (exit 2).
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q (give the instance with --instance; see '%s --help')",
			c.CommandPath(), strings.Join(args, " "), c.CommandPath())}
	}
	return nil
}

// client checks the flags and builds the EC2 client.
func (f *koiFlags) client(c *cobra.Command) (*koi.Client, error) {
	if strings.TrimSpace(f.instance) == "" {
		return nil, usageError{fmt.Errorf("--instance is required: the Koi's EC2 instance ID, like i-0123456789abcdef0 (see '%s --help')", c.CommandPath())}
	}
	kc, err := koi.New(c.Context(), koi.Options{
		Region:   f.region,
		Endpoint: f.endpoint,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if errors.Is(err, koi.ErrNoRegion) {
		return nil, usageError{err}
	}
	return kc, err
}

func newKoiStatusCmd(f *koiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the instance's state, status checks, address, tags and next wake",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			kc, err := f.client(c)
			if err != nil {
				return err
			}
			st, err := kc.Status(c.Context(), f.instance)
			if err != nil {
				return err
			}
			printStatus(c.OutOrStdout(), st, kc.Region())
			// The wake schedule is extra: a caller who may read EC2 but not
			// Scheduler still gets the rest.
			next := "none"
			at, ok, err := wake.Next(c.Context(), kc.Scheduler(f.endpoint), f.instance)
			switch {
			case err != nil:
				next = "unknown (" + err.Error() + ")"
			case ok:
				next = at.UTC().Format(time.RFC3339) + " (EventBridge Scheduler " + wake.ScheduleName(f.instance) + ")"
			}
			fmt.Fprintf(c.OutOrStdout(), "%-11s %s\n", "next wake", next)
			return nil
		},
	}
}

func printStatus(w io.Writer, st koi.Status, region string) {
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "%-11s %s\n", k, v)
	}
	row("instance", st.ID)
	row("region", region)
	row("state", st.State)
	checks := ""
	if st.SystemStatus != "" || st.InstanceStatus != "" {
		checks = fmt.Sprintf("system %s, instance %s", dash(st.SystemStatus), dash(st.InstanceStatus))
	}
	row("checks", checks)
	row("public ip", st.PublicIP)
	row("public dns", st.PublicDNS)
	row("tags", strings.Join(koi.SortedTags(st.Tags), " "))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newKoiStartCmd(f *koiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Start a stopped Koi (then `skykoi koi wait` until it is up)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			kc, err := f.client(c)
			if err != nil {
				return err
			}
			prev, cur, err := kc.Start(c.Context(), f.instance)
			if err != nil {
				return err
			}
			printChange(c.OutOrStdout(), f.instance, prev, cur)
			fmt.Fprintf(c.ErrOrStderr(), "wait until its gateway is up with: skykoi koi wait --instance %s%s\n", f.instance, regionArg(f))
			return nil
		},
	}
}

func newKoiStopCmd(f *koiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop a Koi (its volumes, sessions and workspace stay)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			kc, err := f.client(c)
			if err != nil {
				return err
			}
			prev, cur, err := kc.Stop(c.Context(), f.instance)
			if err != nil {
				return err
			}
			printChange(c.OutOrStdout(), f.instance, prev, cur)
			return nil
		},
	}
}

func printChange(w io.Writer, id, prev, cur string) {
	if prev == cur {
		fmt.Fprintf(w, "%s: already %s\n", id, cur)
		return
	}
	fmt.Fprintf(w, "%s: %s -> %s\n", id, prev, cur)
}

// regionArg repeats the region in a suggested command line when it did not
// come from the environment.
func regionArg(f *koiFlags) string {
	if f.region == "" {
		return ""
	}
	return " --region " + f.region
}

func newKoiWaitCmd(f *koiFlags) *cobra.Command {
	var (
		timeout, poll      time.Duration
		readyzURL, knownFP string
	)
	c := &cobra.Command{
		Use:   "wait",
		Short: "Wait until the Koi is up: running, SKYKOI-READY on its console, /readyz ok",
		Long: "Wait until the Koi is up: the instance is running, its console shows\n" +
			"SKYKOI-READY and the TLS fingerprint, and https://<its address>/readyz answers\n" +
			"ok over TLS pinned to that fingerprint. Progress goes to stderr; at the end the\n" +
			"URL and the fingerprint go to stdout.\n\n" +
			"A Koi started again after a stop may not print SKYKOI-READY again: give the\n" +
			"fingerprint you saw before with --tls-sha256 to skip the console.\n\n" +
			"Exit status: 0 when the Koi is up; 1 on a timeout, a bootstrap failure\n" +
			"(SKYKOI-FAILED on the console), a certificate that does not match, or an\n" +
			"instance that is stopped or gone; 2 on a usage mistake.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout must be positive, got %s", timeout)}
			}
			if poll <= 0 {
				return usageError{fmt.Errorf("--poll-interval must be positive, got %s", poll)}
			}
			if knownFP != "" {
				if _, err := client.ParseFingerprint(knownFP); err != nil {
					return usageError{fmt.Errorf("--tls-sha256: %w", err)}
				}
			}
			if readyzURL != "" && !strings.HasPrefix(readyzURL, "https://") {
				return usageError{fmt.Errorf("--readyz-url must start with https://, got %q", readyzURL)}
			}
			kc, err := f.client(c)
			if err != nil {
				return err
			}
			stderr := c.ErrOrStderr()
			res, err := kc.Wait(c.Context(), f.instance, koi.WaitOptions{
				PollInterval: poll,
				Timeout:      timeout,
				Fingerprint:  knownFP,
				ReadyURL:     readyzURL,
				Progress: func(p koi.Progress) {
					fmt.Fprintf(stderr, "[%s] %s: %s\n", clockOf(p.Elapsed), p.Stage, p.Message)
				},
			})
			if err != nil {
				return waitError(stderr, err)
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "url:         %s\n", res.URL)
			fmt.Fprintf(out, "tls-sha256:  %s\n", res.Fingerprint)
			return nil
		},
	}
	fl := c.Flags()
	fl.DurationVar(&timeout, "timeout", koi.DefaultWaitTimeout, "give up after this long (a first boot takes a few minutes)")
	fl.StringVar(&knownFP, "tls-sha256", "", "the certificate fingerprint, when known: skip waiting for the console")
	fl.DurationVar(&poll, "poll-interval", koi.DefaultPollInterval, "time between looks")
	fl.StringVar(&readyzURL, "readyz-url", "", "check this https URL instead of https://<instance address>/readyz (tests, tunnels)")
	_ = fl.MarkHidden("poll-interval")
	_ = fl.MarkHidden("readyz-url")
	return c
}

// clockOf formats elapsed time as m:ss, enough for a wait of minutes.
func clockOf(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%2d:%02d", s/60, s%60)
}

// waitError adds what to do next to the errors of Wait, after the error
// itself so that the two read in order.
func waitError(stderr io.Writer, err error) error {
	hint := ""
	var te *koi.TimeoutError
	var fe *client.FingerprintError
	switch {
	case errors.As(err, &te) && te.Stage == koi.StageInstance:
		hint = "the instance did not reach running; look at it in the EC2 console"
	case errors.As(err, &te) && te.Stage == koi.StageConsole:
		hint = "a first boot takes a few minutes (raise --timeout); a Koi started again after a stop " +
			"may not print SKYKOI-READY again: pass the fingerprint you saw before with --tls-sha256"
	case errors.As(err, &te) && te.Stage == koi.StageReadyz:
		hint = "nothing answered ok on port 443: check that the security group lets you in, " +
			"and the gateway's log on the instance (journalctl -u skykoi-gateway)"
	case errors.As(err, &fe):
		hint = "the server is not the Koi whose console announced the fingerprint " +
			"(a reused address, or someone in between); do not connect to it"
	}
	if hint == "" {
		return err
	}
	fmt.Fprintln(stderr, "skykoi:", err)
	fmt.Fprintln(stderr, "hint:", hint)
	return &exitError{code: 1, err: errors.New("")}
}

func newKoiFingerprintCmd(f *koiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint",
		Short: "Print the TLS certificate fingerprint the Koi announced on its console",
		Long: "Print the SHA-256 fingerprint of the Koi's TLS certificate, as its bootstrap\n" +
			"announced it on the console (SKYKOI-TLS-SHA256), for --tls-sha256 of\n" +
			"`skykoi call` and `skykoi koi wait`. Exit status 1 when the console does not\n" +
			"show one (yet).",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			kc, err := f.client(c)
			if err != nil {
				return err
			}
			text, err := kc.ConsoleOutput(c.Context(), f.instance)
			if err != nil {
				return err
			}
			fp, _, failed := koi.ParseConsole(text)
			if failed != "" {
				step, reason := koi.SplitFailure(failed)
				fmt.Fprintf(c.ErrOrStderr(), "warning: the bootstrap failed at step %q: %s\n", step, reason)
			}
			if fp == "" {
				return fmt.Errorf("the console of %s shows no %s line (yet): the bootstrap prints it a minute or two into the first boot",
					f.instance, koi.MarkFingerprint)
			}
			fmt.Fprintln(c.OutOrStdout(), fp)
			return nil
		},
	}
}

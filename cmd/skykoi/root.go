package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit statuses beyond 0 and 1.
const (
	// exitConfig is EX_CONFIG from sysexits.h; the systemd unit treats it as
	// "do not restart", since restarting cannot fix a bad config.
	exitConfig = 78
	exitUsage  = 2
)

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// exitError carries a specific exit status up to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run executes one command line and returns the process's exit status.
func run(ctx context.Context, args []string, io stdio) int {
	root := newRoot(io)
	root.SetArgs(args)
	root.SetIn(io.in)
	root.SetOut(io.out)
	root.SetErr(io.err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(io.err, "skykoi:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(io.err, "skykoi:", err)
	if isUsage(err) {
		return exitUsage
	}
	return 1
}

// usageError marks a mistake in how the command was called.
type usageError struct{ error }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

func newRoot(io stdio) *cobra.Command {
	root := &cobra.Command{
		Use:           "skykoi",
		Short:         "SkyKoi: your own AI agent on your own machine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(newVersionCmd(), newConfigCmd(), newGatewayCmd(), newCallCmd(), newChatCmd())
	root.AddCommand(newUserdataCmd())
	root.AddCommand(newLocalCmd(), newBenchCmd(), newDoctorCmd())
	root.AddCommand(newKoiCmd())
	root.AddCommand(newTokenCmd())
	return root
}

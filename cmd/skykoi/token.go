package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newTokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Make gateway tokens",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("token needs a command: new (see '%s --help')", c.CommandPath())}
		},
	}
	c.AddCommand(newTokenNewCmd())
	return c
}

func newTokenNewCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "new",
		Short: "Print a fresh random gateway token",
		Long: "Print a fresh gateway token: 256 random bits, base64url without padding\n" +
			"(43 characters, safe in a URL fragment and a shell word). Only the token goes\n" +
			"to stdout, so it can be captured or piped; the hint goes to stderr.\n\n" +
			"For a Koi made with Pulumi, store it in the stack, encrypted:\n" +
			"  pulumi config set --secret skykoi:gatewayToken \"$(skykoi token new)\"\n" +
			"and read it back for clients with:\n" +
			"  pulumi config get skykoi:gatewayToken",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("%s takes no arguments, got %q", c.CommandPath(), args[0])}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			token, err := newGatewayToken()
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(c.OutOrStdout(), token); err != nil {
				return fmt.Errorf("writing the token: %w", err)
			}
			// On stderr, so that "$(skykoi token new)" captures the token
			// alone while the person still sees what to do with it.
			fmt.Fprintln(c.ErrOrStderr(), "hint: keep it secret. For a Koi, store a token in the stack with"+
				" pulumi config set --secret skykoi:gatewayToken \"$(skykoi token new)\""+
				" and read it back with pulumi config get skykoi:gatewayToken")
			return nil
		},
	}
}

package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/spf13/cobra"
)

// newGatewaySuperviseUpdateCmd is what skykoi-update.service runs as root
// when the gateway has staged an update (see gateway/update).
func newGatewaySuperviseUpdateCmd() *cobra.Command {
	var o update.SuperviseOptions
	var unit string
	c := &cobra.Command{
		Use:   "supervise-update",
		Short: "Carry out a staged update: swap the binary, restart the gateway, roll back if it is not ready (root; run by skykoi-update.service)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Service = update.Systemd{Unit: unit}
			o.Log = slog.New(slog.NewTextHandler(c.ErrOrStderr(), nil))
			st, err := update.Supervise(c.Context(), o)
			if errors.Is(err, update.ErrNoRequest) {
				fmt.Fprintln(c.OutOrStdout(), "no update request; nothing to do")
				return nil
			}
			if st.State != "" {
				fmt.Fprintf(c.OutOrStdout(), "update %s: %s\n", st.State, st.Message)
			}
			if err == nil && st.State != update.StateDone {
				// A rollback is a success of the supervisor but not of the
				// update: the unit's status should show it.
				return &exitError{code: 1, err: errors.New("")}
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.Dir, "dir", cloudinit.UpdateDir, "the update dir the gateway writes its request into")
	f.StringVar(&o.BinaryPath, "binary", cloudinit.DefaultBinaryPath, "the gateway binary the unit runs")
	f.StringVar(&unit, "unit", cloudinit.UnitName, "the gateway's systemd unit")
	f.StringVar(&o.ReadyURL, "readyz-url", "http://127.0.0.1:18789/readyz", "the gateway's readiness URL on loopback")
	return c
}

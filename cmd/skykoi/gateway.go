package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway"
	"github.com/skykoi/skykoi/internal/sdnotify"
	"github.com/spf13/cobra"
)

func newGatewayCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "gateway",
		Short: "Run the gateway daemon",
	}
	c.AddCommand(newGatewayRunCmd())
	return c
}

func newGatewayRunCmd() *cobra.Command {
	var (
		configFlag string
		port       int
	)
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the gateway in the foreground (what the systemd unit starts)",
		Long: "Run the gateway in the foreground. It validates the config first and exits\n" +
			"with status 78 (EX_CONFIG), binding nothing, on any problem. SIGTERM or\n" +
			"Ctrl-C drains and exits 0; SIGHUP reloads the config.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			path, err := configgen.DefaultPath(configFlag, os.Getenv)
			if err != nil {
				return &exitError{code: exitConfig, err: fmt.Errorf("finding the config file: %w", err)}
			}
			cfg, err := configgen.Load(path)
			if err != nil {
				var ce *configgen.Error
				if errors.As(err, &ce) {
					return configLoadError(path, err, c.ErrOrStderr())
				}
				// An unreadable config will not fix itself by restarting.
				return &exitError{code: exitConfig, err: err}
			}
			if c.Flags().Changed("port") {
				if port < 1 || port > 65535 {
					return usageError{fmt.Errorf("--port must be from 1 to 65535, got %d", port)}
				}
				cfg.Gateway.Port = port
			}
			return runGateway(c.Context(), cfg, path)
		},
	}
	c.Flags().StringVar(&configFlag, "config", "", "config file (default $SKYKOI_CONFIG_PATH or ~/.skykoi/skykoi.json)")
	c.Flags().IntVar(&port, "port", 0, "override gateway.port")
	return c
}

// runGateway runs a gateway until ctx ends, reloading on SIGHUP.
func runGateway(ctx context.Context, cfg configgen.Config, path string) error {
	srv, err := gateway.New(gateway.Options{
		Config:     cfg,
		ConfigPath: path,
		Notifier:   sdnotify.FromEnv(os.Getenv, os.Getpid()),
	})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = srv.Reload() // logs every issue itself
			}
		}
	}()
	return srv.Run(ctx)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	c.AddCommand(newGatewayRunCmd(), newGatewaySuperviseUpdateCmd(), newGatewayShipLogsCmd())
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
			cfg, err := loadRunConfig(c, path, port)
			if err != nil {
				return err
			}
			return runGateway(c.Context(), cfg, path, nil)
		},
	}
	c.Flags().StringVar(&configFlag, "config", "", "config file (default $SKYKOI_CONFIG_PATH or ~/.skykoi/skykoi.json)")
	c.Flags().IntVar(&port, "port", 0, "override gateway.port")
	return c
}

// runGateway runs a gateway until ctx ends, reloading on SIGHUP. It serves
// l when given (and closes it), else listens on the config's address.
func runGateway(ctx context.Context, cfg configgen.Config, path string, l net.Listener) error {
	srv, err := gateway.New(gateway.Options{
		Config:     cfg,
		ConfigPath: path,
		Notifier:   sdnotify.FromEnv(os.Getenv, os.Getpid()),
		Listener:   l,
	})
	if err != nil {
		if l != nil {
			l.Close()
		}
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

// listenFor binds the gateway's address up front, so a command can fail
// on a taken port before it writes a config or shows a token.
func listenFor(g configgen.Gateway) (net.Listener, error) {
	addr := g.ListenAddr()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s, so nothing was written: %w; stop the program using port %d, or choose another port with --port", addr, err, g.Port)
	}
	return l, nil
}

// checkPortFlag refuses a --port outside 1–65535 when it was given.
func checkPortFlag(c *cobra.Command, port int) error {
	if c.Flags().Changed("port") && (port < 1 || port > 65535) {
		return usageError{fmt.Errorf("--port must be from 1 to 65535, got %d", port)}
	}
	return nil
}

// loadRunConfig loads the config a gateway is about to run with, as
// `gateway run` and `local` both do: every problem of an invalid file, exit
// 78 for any config that cannot be used (restarting will not fix it), and
// the --port override.
func loadRunConfig(c *cobra.Command, path string, port int) (configgen.Config, error) {
	if err := checkPortFlag(c, port); err != nil {
		return configgen.Config{}, err
	}
	cfg, err := configgen.Load(path)
	if err != nil {
		var ce *configgen.Error
		if errors.As(err, &ce) {
			return cfg, configLoadError(path, err, c.ErrOrStderr())
		}
		return cfg, &exitError{code: exitConfig, err: err}
	}
	if c.Flags().Changed("port") {
		cfg.Gateway.Port = port
	}
	return cfg, nil
}

package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/internal/atomicfile"
	"github.com/spf13/cobra"
)

func newLocalCmd() *cobra.Command {
	var (
		configFlag string
		port       int
		newToken   bool
	)
	c := &cobra.Command{
		Use:   "local",
		Short: "Run a Koi on this machine: create its config on first run, then run the gateway",
		Long: "Run a Koi on this machine. The first run creates ~/.skykoi/skykoi.json with a fresh\n" +
			"gateway token (stored only as its SHA-256), seeds the workspace ~/koi, and prints the\n" +
			"token once, inside the web chat URL. Later runs reuse the config. The gateway runs in\n" +
			"the foreground; Ctrl-C drains it like SIGTERM.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkPortFlag(c, port); err != nil {
				return err
			}
			path, err := configgen.DefaultPath(configFlag, os.Getenv)
			if err != nil {
				return &exitError{code: exitConfig, err: fmt.Errorf("finding the config file: %w", err)}
			}
			out := c.OutOrStdout()
			// Bind before anything is written or shown: a token printed
			// for a Koi that then fails to start is a token to throw away.
			var (
				cfg     configgen.Config
				token   string
				created []byte
			)
			switch _, err := os.Stat(path); {
			case errors.Is(err, fs.ErrNotExist):
				if err := checkPortFlag(c, port); err != nil {
					return err
				}
				if token, created, err = newLocalConfig(port); err != nil {
					return err
				}
				if cfg, err = configgen.Parse(created); err != nil {
					return fmt.Errorf("checking the new config: %w", err)
				}
			case err != nil:
				return fmt.Errorf("reading %s: %w", path, err)
			default:
				if cfg, err = loadRunConfig(c, path, port); err != nil {
					return err
				}
			}
			l, err := listenFor(cfg.Gateway)
			if err != nil {
				return err
			}
			if err := func() error {
				switch {
				case created != nil:
					return writeLocalConfig(path, created, out)
				case newToken:
					// The token's digest changed on disk: run with it.
					if token, err = rotateToken(path); err != nil {
						return err
					}
					cfg, err = loadRunConfig(c, path, port)
					return err
				}
				return nil
			}(); err != nil {
				l.Close()
				return err
			}
			ws, _ := configgen.ExpandHome(cfg.Agents.Defaults.Workspace)
			if err := seedWorkspace(ws); err != nil {
				l.Close()
				return err
			}
			url := fmt.Sprintf("http://127.0.0.1:%d/", cfg.Gateway.Port)
			if token != "" {
				// The only time the token is shown: it is not stored anywhere
				// in plaintext. The fragment never reaches a server log.
				fmt.Fprintf(out, "Your Koi's gateway token (shown once; keep it safe):\n  %s\n\n", token)
				fmt.Fprintf(out, "Open the web chat:\n  %s#token=%s\n\n", url, token)
			} else {
				fmt.Fprintf(out, "Open the web chat at %s with the token shown when this config was made\n", url)
				fmt.Fprintf(out, "(lost it? run `skykoi local --new-token`).\n\n")
			}
			fmt.Fprintf(out, "config: %s\nworkspace: %s\n", path, ws)
			if cfg.Tools.Exec.Security == "full" {
				fmt.Fprintln(out, "note: tools.exec.security is \"full\": the agent can run any command as you on this machine.")
			}
			return runGateway(c.Context(), cfg, path, l)
		},
	}
	c.Flags().StringVar(&configFlag, "config", "", "config file (default $SKYKOI_CONFIG_PATH or ~/.skykoi/skykoi.json)")
	c.Flags().IntVar(&port, "port", 18789, "gateway port (written into a new config; overrides an existing one for this run)")
	c.Flags().BoolVar(&newToken, "new-token", false, "replace the gateway token with a new one and print it")
	return c
}

// newToken returns a random 256-bit token, URL-safe so it fits a fragment.
func newGatewayToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// newLocalConfig makes a first config for this machine, in memory, and
// the plaintext token to show once.
func newLocalConfig(port int) (token string, data []byte, err error) {
	token, err = newGatewayToken()
	if err != nil {
		return "", nil, err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", nil, fmt.Errorf("finding the home directory: %w", err)
	}
	data, err = configgen.Generate(configgen.Options{
		TokenSha256:    configgen.HashSecret(token),
		Port:           port,
		Workspace:      filepath.Join(home, "koi"),
		TrustedProxies: []string{}, // no proxy in front of a local gateway
	})
	if err != nil {
		return "", nil, err
	}
	return token, data, nil
}

// writeLocalConfig writes the first config, creating its directory.
func writeLocalConfig(path string, data []byte, out io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "Created %s.\n", path)
	return nil
}

// rotateToken puts a new token's digest into an existing config. The file
// is rewritten as plain JSON, so comments in it are not kept.
func rotateToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading config: %w", err)
	}
	tree, err := configgen.DecodeRaw(data)
	if err != nil {
		return "", fmt.Errorf("%s is not valid JSON5; fix it first: %w", path, err)
	}
	token, err := newGatewayToken()
	if err != nil {
		return "", err
	}
	configgen.Set(tree, "gateway.auth.mode", "token")
	configgen.Delete(tree, "gateway.auth.token")
	configgen.Set(tree, "gateway.auth.tokenSha256", configgen.HashSecret(token))
	out, err := configgen.Marshal(tree)
	if err != nil {
		return "", err
	}
	if _, err := configgen.Parse(out); err != nil {
		return "", fmt.Errorf("the config would not be valid with a new token: %w", err)
	}
	st, _ := os.Stat(path)
	perm := os.FileMode(0o600)
	if st != nil {
		perm = st.Mode().Perm()
	}
	return token, atomicfile.Write(path, out, perm)
}

// seedWorkspace creates the workspace and its starter files, never
// overwriting a file the person already has.
func seedWorkspace(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the workspace %s: %w", dir, err)
	}
	for name, content := range cloudinit.DefaultSeedFiles() {
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("seeding %s: %w", p, err)
		}
		_, werr := f.WriteString(content)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("seeding %s: %w", p, werr)
		}
	}
	return nil
}

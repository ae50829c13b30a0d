package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/internal/atomicfile"
	"github.com/spf13/cobra"
)

func newConfigCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Validate, generate and describe skykoi.json",
	}
	c.AddCommand(newConfigValidateCmd(), newConfigGenerateCmd(), newConfigSchemaCmd(), newConfigMergeCmd())
	return c
}

func newConfigValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a config file exactly as the gateway does at start-up",
		Long: "Check a config file exactly as the gateway does at start-up.\n\n" +
			"Exit status: 0 when valid; 78 with every problem on stderr when not;\n" +
			"1 when the file cannot be read.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path, err := configFileArg(args)
			if err != nil {
				return err
			}
			if _, err := configgen.Load(path); err != nil {
				return configLoadError(path, err, c.ErrOrStderr())
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "%s: valid\n", path)
			return err
		},
	}
}

// configLoadError prints every issue of an invalid config and turns it into
// exit status 78; any other error (unreadable file) stays status 1.
func configLoadError(path string, err error, stderr io.Writer) error {
	var ce *configgen.Error
	if !errors.As(err, &ce) {
		return err
	}
	fmt.Fprintf(stderr, "%s: %d problem(s):\n", path, len(ce.Issues))
	for _, is := range ce.Issues {
		fmt.Fprintf(stderr, "  %s\n", is)
	}
	return &exitError{code: exitConfig, err: errors.New("")}
}

func newConfigSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema (draft 2020-12) of skykoi.json",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := c.OutOrStdout().Write(configgen.SchemaJSON())
			return err
		},
	}
}

func newConfigGenerateCmd() *cobra.Command {
	var (
		o           configgen.Options
		out         string
		tokenStdin  bool
		force       bool
		resetAtHour int
	)
	c := &cobra.Command{
		Use:   "generate",
		Short: "Write a Koi's skykoi.json (the token is stored only as its SHA-256)",
		Long: "Write a Koi's skykoi.json. The gateway token is read from stdin\n" +
			"(--token-stdin) or given as its digest (--token-sha256); only the SHA-256\n" +
			"is written, and the token is never printed. The file is written 0600,\n" +
			"atomically; an existing file is kept unless --force is given.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch {
			case tokenStdin && o.TokenSha256 != "":
				return usageError{errors.New("give --token-stdin or --token-sha256, not both")}
			case tokenStdin:
				tok, err := readSecret(c.InOrStdin())
				if err != nil {
					return fmt.Errorf("reading the token from stdin: %w", err)
				}
				o.TokenSha256 = configgen.HashSecret(tok)
			case o.TokenSha256 == "":
				return usageError{errors.New("a token is required: --token-stdin (reads it from stdin) or --token-sha256 HEX")}
			}
			if c.Flags().Changed("reset-at-hour") {
				o.ResetAtHour = &resetAtHour
			}
			data, err := configgen.Generate(o)
			if err != nil {
				var ce *configgen.Error
				if errors.As(err, &ce) {
					return configLoadError("generated config", ce, c.ErrOrStderr())
				}
				return err
			}
			if out == "-" {
				_, err := c.OutOrStdout().Write(data)
				return err
			}
			path, err := configgen.DefaultPath(out, os.Getenv)
			if err != nil {
				return fmt.Errorf("finding where to write the config: %w", err)
			}
			if !force {
				if _, err := os.Stat(path); err == nil {
					return fmt.Errorf("%s already exists; pass --force to replace it", path)
				}
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("creating the config directory: %w", err)
			}
			if err := atomicfile.Write(path, data, 0o600); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.ErrOrStderr(), "wrote %s\n", path)
			return err
		},
	}
	f := c.Flags()
	f.BoolVar(&tokenStdin, "token-stdin", false, "read the gateway token from stdin (first line)")
	f.StringVar(&o.TokenSha256, "token-sha256", "", "the gateway token's SHA-256, 64 lowercase hex")
	f.StringVarP(&out, "out", "o", "", "where to write (default $SKYKOI_CONFIG_PATH or ~/.skykoi/skykoi.json; - for stdout)")
	f.BoolVar(&force, "force", false, "replace an existing file")
	f.IntVar(&o.Port, "port", 18789, "gateway port")
	f.StringVar(&o.Workspace, "workspace", configgen.KoiWorkspace, "the agent's workspace directory")
	f.StringVar(&o.Model, "model", configgen.DefaultModel, "primary model, amazon-bedrock/<modelId>")
	f.StringSliceVar(&o.Fallbacks, "fallback", nil, "fallback model (repeatable)")
	f.StringSliceVar(&o.TrustedProxies, "trusted-proxy", []string{"127.0.0.1"}, "proxy whose X-Forwarded-For is trusted (repeatable)")
	f.StringSliceVar(&o.AllowedOrigins, "allowed-origin", nil, "extra browser origin allowed to connect (repeatable)")
	f.StringVar(&o.ExecSecurity, "exec-security", "full", "exec tool policy: deny, allowlist or full")
	f.StringSliceVar(&o.ExecAllowlist, "exec-allow", nil, "command allowed with --exec-security allowlist (repeatable)")
	f.StringVar(&o.ResetMode, "reset-mode", "daily", "session reset: daily, idle or off")
	f.IntVar(&resetAtHour, "reset-at-hour", 4, "hour (0-23, Koi's local time) of the daily reset")
	f.IntVar(&o.ResetIdleMinutes, "reset-idle-minutes", 0, "reset a session after this many idle minutes (0 = unset)")
	f.IntVar(&o.IdleStopMinutes, "idle-stop-minutes", 0, "stop the Koi's instance after this many unused minutes (0 = never)")
	f.StringVar(&o.Region, "region", "", "Bedrock region (default: environment, else us-east-1)")
	f.StringVar(&o.Endpoint, "endpoint", "", "Bedrock endpoint override (VPC endpoints, tests)")
	f.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	return c
}

// readSecret reads one line, trimmed. An empty secret is refused rather than
// hashed, because the digest of "" would look like a real setting.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("stdin was empty")
	}
	return line, nil
}

func newConfigMergeCmd() *cobra.Command {
	var from string
	c := &cobra.Command{
		Use:   "merge --from PROVISIONED [FILE]",
		Short: "Take the provisioner's keys from a newly provisioned config into an existing one",
		Long: "Take the keys the provisioner owns (" + strings.Join(configgen.ProvisionedPaths, ", ") + ")\n" +
			"from PROVISIONED into FILE, keeping every other key of FILE as it is. A new\n" +
			"instance runs this when its data volume already holds a config, so a new\n" +
			"token, model list or idle setting applies while the person's edits stay.\n\n" +
			"FILE is left byte for byte when nothing differs. Otherwise its previous\n" +
			"content is saved as FILE.before-merge and FILE is rewritten atomically with\n" +
			"its mode and owner kept. Exit status 78, FILE untouched, when the merged\n" +
			"config would be invalid.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if from == "" {
				return usageError{errors.New("--from PROVISIONED is required")}
			}
			path, err := configFileArg(args)
			if err != nil {
				return err
			}
			return mergeConfigFile(path, from, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	c.Flags().StringVar(&from, "from", "", "the newly provisioned config")
	return c
}

// configFileArg is the optional FILE argument, or the default config path.
func configFileArg(args []string) (string, error) {
	flag := ""
	if len(args) == 1 {
		flag = args[0]
	}
	path, err := configgen.DefaultPath(flag, os.Getenv)
	if err != nil {
		return "", fmt.Errorf("finding the config file: %w", err)
	}
	return path, nil
}

func mergeConfigFile(path, from string, stdout, stderr io.Writer) error {
	provisioned, err := configgen.ReadFile(from)
	if err != nil {
		return err
	}
	kept, err := configgen.ReadFile(path)
	if err != nil {
		return err
	}
	merged, changed, err := configgen.MergeProvisioned(kept, provisioned)
	if err != nil {
		var ce *configgen.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%s: not merged: %s\n", path, strings.TrimSuffix(strings.TrimSuffix(err.Error(), ce.Error()), ": "))
			return configLoadError(path, ce, stderr)
		}
		return fmt.Errorf("merging %s into %s: %w", from, path, err)
	}
	if len(changed) == 0 {
		_, err := fmt.Fprintf(stdout, "%s already has the provisioned values\n", path)
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading the mode of %s: %w", path, err)
	}
	backup := path + ".before-merge"
	if err := atomicfile.Write(backup, kept, 0o600); err != nil {
		return fmt.Errorf("saving %s before the merge: %w", path, err)
	}
	if err := keepOwner(backup, fi); err != nil {
		return err
	}
	if err := atomicfile.Write(path, merged, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("writing the merged %s: %w", path, err)
	}
	if err := keepOwner(path, fi); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: took %s from %s; the previous file is %s\n",
		path, strings.Join(changed, ", "), from, backup)
	return err
}

// keepOwner gives a rewritten file the owner the original had: the bootstrap
// merges as root into a file the gateway's user must keep owning.
func keepOwner(path string, orig os.FileInfo) error {
	st, ok := orig.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("keeping the owner of %s: %w", path, err)
	}
	return nil
}

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/internal/atomicfile"
	"github.com/spf13/cobra"
)

func newUserdataCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "userdata",
		Short: "Render a Koi's EC2 user-data",
	}
	c.AddCommand(newUserdataRenderCmd())
	return c
}

// userdataFlags holds what the flags fill in before they become
// cloudinit.Options; a few need checking or reading first.
type userdataFlags struct {
	o           cloudinit.Options
	tokenStdin  bool
	configFile  string
	binaryFile  string
	seeds       []string
	resetAtHour int
	out         string
}

func newUserdataRenderCmd() *cobra.Command {
	var f userdataFlags
	c := &cobra.Command{
		Use:   "render",
		Short: "Print the user-data the Pulumi program sends to a Koi",
		Long: "Print the user-data the Pulumi program sends to a Koi: a #cloud-config\n" +
			"document that writes skykoi.json, the nginx site, the systemd unit and the\n" +
			"bootstrap script, and runs the script. The gateway token is read from stdin\n" +
			"(--token-stdin) or given as its digest (--token-sha256); only the SHA-256\n" +
			"reaches the output. The output is gzipped with --gzip, and always when it\n" +
			"would exceed EC2's 16384-byte limit.\n\n" +
			"Exit status: 0 on success; 2 for missing or invalid flags; 1 otherwise.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q (see '%s --help')", args[0], c.CommandPath())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := f.options(c)
			if err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return usageError{fmt.Errorf("invalid user-data options:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))}
			}
			// Render fails only on what the flags asked for: an invalid config,
			// a plaintext secret in --config, seed files too large to send.
			data, err := cloudinit.Render(o)
			if err != nil {
				return usageError{err}
			}
			return f.write(c, data)
		},
	}
	fl := c.Flags()
	cfg := &f.o.ConfigOptions
	fl.BoolVar(&f.tokenStdin, "token-stdin", false, "read the gateway token from stdin (first line); only its SHA-256 is used")
	fl.StringVar(&cfg.TokenSha256, "token-sha256", "", "the gateway token's SHA-256, 64 lowercase hex")
	fl.StringVar(&f.configFile, "config", "", "use this skykoi.json instead of generating one (digests only, no plaintext secret)")
	fl.IntVar(&cfg.Port, "port", 18789, "gateway port")
	fl.StringVar(&cfg.Model, "model", configgen.DefaultModel, "primary model, amazon-bedrock/<modelId>")
	fl.StringSliceVar(&cfg.Fallbacks, "fallback", nil, "fallback model (repeatable)")
	fl.StringSliceVar(&cfg.TrustedProxies, "trusted-proxy", []string{"127.0.0.1"}, "proxy whose X-Forwarded-For is trusted (repeatable)")
	fl.StringSliceVar(&cfg.AllowedOrigins, "allowed-origin", nil, "extra browser origin allowed to connect (repeatable)")
	fl.StringVar(&cfg.ExecSecurity, "exec-security", "full", "exec tool policy: deny, allowlist or full")
	fl.StringSliceVar(&cfg.ExecAllowlist, "exec-allow", nil, "command allowed with --exec-security allowlist (repeatable)")
	fl.StringVar(&cfg.ResetMode, "reset-mode", "daily", "session reset: daily, idle or off")
	fl.IntVar(&f.resetAtHour, "reset-at-hour", 4, "hour (0-23, Koi's local time) of the daily reset")
	fl.IntVar(&cfg.ResetIdleMinutes, "reset-idle-minutes", 0, "reset a session after this many idle minutes (0 = unset)")
	fl.IntVar(&cfg.IdleStopMinutes, "idle-stop-minutes", 0, "stop the Koi's instance after this many unused minutes (0 = never)")
	fl.StringVar(&cfg.Region, "region", "", "Bedrock region, and the artifact bucket's unless --s3-region says otherwise")
	fl.StringVar(&cfg.Endpoint, "bedrock-endpoint", "", "Bedrock endpoint override (VPC endpoints, fakes)")
	fl.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")

	a := &f.o.Artifact
	fl.StringVar(&f.o.DataVolumeID, "data-volume-id", "", "EBS volume id of the data volume (required)")
	fl.StringVar(&a.S3Bucket, "s3-bucket", "", "bucket of the gateway binary")
	fl.StringVar(&a.S3Key, "s3-key", "", "key of the gateway binary")
	fl.StringVar(&a.Region, "s3-region", "", "the bucket's region (default --region)")
	fl.StringVar(&a.S3Endpoint, "s3-endpoint", "", "path-style S3 endpoint, scheme://host[:port] (fakes)")
	fl.StringVar(&a.URL, "artifact-url", "", "download the gateway binary from this URL instead of S3")
	fl.StringVar(&f.o.BinarySHA256, "binary-sha256", "", "the gateway binary's SHA-256, 64 lowercase hex")
	fl.StringVar(&f.binaryFile, "binary", "", "compute --binary-sha256 from this local file")
	fl.StringVar(&f.o.MetadataEndpoint, "metadata-endpoint", cloudinit.DefaultMetadataEndpoint, "instance metadata service")
	fl.StringVar(&f.o.Hostname, "hostname", "", "the instance's hostname (default: the image's)")
	fl.StringArrayVar(&f.seeds, "seed", nil, "workspace seed file NAME=FILE, replacing or adding to the defaults (repeatable)")
	fl.IntVar(&f.o.HTTPPort, "http-port", cloudinit.DefaultHTTPPort, "nginx's HTTP port (redirects to HTTPS)")
	fl.IntVar(&f.o.HTTPSPort, "https-port", cloudinit.DefaultHTTPSPort, "nginx's HTTPS port")
	fl.StringVar(&f.o.ListenAddress, "listen-address", "", "nginx's listen address (default: all)")
	fl.StringVar(&f.o.TLSDir, "tls-dir", cloudinit.DefaultTLSDir, "where nginx reads skykoi.crt and skykoi.key")
	fl.StringVar(&f.o.BinaryPath, "binary-path", cloudinit.DefaultBinaryPath, "where the gateway binary is installed")
	fl.BoolVar(&f.o.Gzip, "gzip", false, "gzip the user-data even when it fits uncompressed")
	fl.StringVarP(&f.out, "out", "o", "-", "write to this file instead of stdout")
	return c
}

// options turns the flags into render options: the token becomes its
// digest here, and files named by flags are read.
func (f *userdataFlags) options(c *cobra.Command) (cloudinit.Options, error) {
	o := f.o
	cfg := &o.ConfigOptions
	switch {
	case f.configFile != "" && (f.tokenStdin || cfg.TokenSha256 != ""):
		return o, usageError{errors.New("--config brings its own token digest; drop --token-stdin/--token-sha256")}
	case f.configFile != "":
		data, err := os.ReadFile(f.configFile)
		if err != nil {
			return o, fmt.Errorf("reading --config: %w", err)
		}
		o.Config = data
	case f.tokenStdin && cfg.TokenSha256 != "":
		return o, usageError{errors.New("give --token-stdin or --token-sha256, not both")}
	case f.tokenStdin:
		tok, err := readSecret(c.InOrStdin())
		if err != nil {
			return o, usageError{fmt.Errorf("reading the token from stdin: %w", err)}
		}
		cfg.TokenSha256 = configgen.HashSecret(tok)
	case cfg.TokenSha256 == "":
		return o, usageError{errors.New("a token is required: --token-stdin (reads it from stdin) or --token-sha256 HEX")}
	}
	if c.Flags().Changed("reset-at-hour") {
		h := f.resetAtHour
		cfg.ResetAtHour = &h
	}
	if o.DataVolumeID == "" {
		return o, usageError{errors.New("--data-volume-id is required")}
	}
	if o.Artifact.S3Bucket != "" && o.Artifact.Region == "" {
		o.Artifact.Region = cfg.Region
	}
	switch {
	case f.binaryFile != "" && o.BinarySHA256 != "":
		return o, usageError{errors.New("give --binary or --binary-sha256, not both")}
	case f.binaryFile != "":
		sum, err := fileSHA256(f.binaryFile)
		if err != nil {
			return o, err
		}
		o.BinarySHA256 = sum
	case o.BinarySHA256 == "":
		return o, usageError{errors.New("the gateway binary's digest is required: --binary-sha256 HEX or --binary FILE")}
	}
	if len(f.seeds) > 0 {
		o.SeedFiles = map[string]string{}
		for _, s := range f.seeds {
			name, file, ok := strings.Cut(s, "=")
			if !ok || name == "" || file == "" {
				return o, usageError{fmt.Errorf("--seed wants NAME=FILE, got %q", s)}
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return o, fmt.Errorf("reading seed file %s: %w", name, err)
			}
			o.SeedFiles[name] = string(data)
		}
	}
	return o, nil
}

func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading --binary: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("reading --binary: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (f *userdataFlags) write(c *cobra.Command, data []byte) error {
	gzipped := len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
	if gzipped {
		fmt.Fprintf(c.ErrOrStderr(), "user-data is gzipped: %d bytes\n", len(data))
	}
	if f.out == "-" {
		_, err := c.OutOrStdout().Write(data)
		return err
	}
	// User-data holds no secret, but it does describe the machine.
	if err := atomicfile.Write(f.out, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", f.out, err)
	}
	_, err := fmt.Fprintf(c.ErrOrStderr(), "wrote %s (%d bytes)\n", f.out, len(data))
	return err
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/skykoi/skykoi/internal/koi"
	"github.com/spf13/cobra"
)

func newKoiUpdateCmd(f *koiFlags) *cobra.Command {
	var (
		binary, bucket, url, tlsSHA256, tokenFile, s3Endpoint string
		readyTimeout, waitTimeout                             time.Duration
	)
	c := &cobra.Command{
		Use:   "update",
		Short: "Replace the Koi's gateway binary in place, rolling back by itself if the new one does not come up",
		Long: "Upload FILE to the stack's artifact bucket as bin/skykoi-<sha256>, then ask the\n" +
			"Koi's gateway (update.run, owner token) to install it: it downloads the object\n" +
			"with its instance role, checks the SHA-256, swaps it in keeping the previous\n" +
			"binary, and restarts. When the new binary is not ready within --ready-timeout\n" +
			"the Koi puts the previous one back by itself. No reboot, no new address;\n" +
			"sessions stay. This command waits for the outcome and prints it.\n\n" +
			"The bucket is the stack's artifact bucket (the one holding releases/...).\n" +
			"The URL defaults to wss://<the instance's public IP>/ and the fingerprint to\n" +
			"the one the console announced. The token comes from --token-file or\n" +
			"$SKYKOI_TOKEN.\n\n" +
			"Exit status: 0 when the new binary runs; 1 when it was rolled back, or\n" +
			"anything failed; 2 on a usage mistake.",
		Example: "  skykoi koi update --instance i-0123456789abcdef0 --bucket skykoi-dev-artifacts-a1b2c3d --binary ./skykoi-linux-amd64",
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch {
			case binary == "":
				return usageError{fmt.Errorf("--binary FILE is required (see '%s --help')", c.CommandPath())}
			case bucket == "":
				return usageError{fmt.Errorf("--bucket is required: the stack's artifact bucket (see '%s --help')", c.CommandPath())}
			case readyTimeout < update.MinReadyTimeout || readyTimeout > update.MaxReadyTimeout:
				return usageError{fmt.Errorf("--ready-timeout must be from %s to %s, got %s", update.MinReadyTimeout, update.MaxReadyTimeout, readyTimeout)}
			case url != "" && !strings.HasPrefix(url, "wss://") && !strings.HasPrefix(url, "ws://"):
				return usageError{fmt.Errorf("--url must start with wss:// or ws://, got %q", url)}
			}
			data, err := os.ReadFile(binary)
			if err != nil {
				return fmt.Errorf("reading the new binary: %w", err)
			}
			token := os.Getenv(configgen.EnvClientToken)
			if tokenFile != "" {
				if token, err = readSecretFile(tokenFile); err != nil {
					return fmt.Errorf("reading the token: %w", err)
				}
			}
			if token == "" {
				return usageError{errors.New("the gateway token is needed: give --token-file FILE or $SKYKOI_TOKEN")}
			}
			kc, err := f.client(c)
			if err != nil {
				return err
			}
			ctx := c.Context()
			if url == "" || tlsSHA256 == "" {
				if url == "" {
					st, err := kc.Status(ctx, f.instance)
					if err != nil {
						return err
					}
					if st.Address() == "" {
						return fmt.Errorf("%s has no public address (is it running?); give --url", f.instance)
					}
					url = "wss://" + st.Address() + "/"
				}
				if tlsSHA256 == "" && strings.HasPrefix(url, "wss://") {
					text, err := kc.ConsoleOutput(ctx, f.instance)
					if err != nil {
						return err
					}
					if tlsSHA256, _, _ = koi.ParseConsole(text); tlsSHA256 == "" {
						return fmt.Errorf("the console of %s shows no %s line; give --tls-sha256", f.instance, koi.MarkFingerprint)
					}
				}
			}
			sum := sha256.Sum256(data)
			sha := hex.EncodeToString(sum[:])
			key := update.Key(sha)
			out := c.ErrOrStderr()
			fmt.Fprintf(out, "uploading %s (%d MB, sha256 %s) to s3://%s/%s\n", binary, len(data)>>20, sha, bucket, key)
			if err := uploadBinary(ctx, kc.Region(), s3Endpoint, bucket, key, data, sum[:]); err != nil {
				return err
			}
			opts := client.Options{URL: url, Token: token, TLSFingerprintSHA256: tlsSHA256, Scopes: client.OwnerScopes()}
			if err := requestUpdate(ctx, opts, sha, readyTimeout); err != nil {
				return callError(out, err, time.Minute)
			}
			fmt.Fprintln(out, "the Koi verified it; it is restarting on the new binary")
			st, version, err := waitUpdate(ctx, opts, sha, waitTimeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "state:    %s\nversion:  %s\nsha256:   %s\nprevious: %s\nmessage:  %s\n",
				st.State, version, st.SHA256, dash(st.PreviousSHA256), st.Message)
			if st.State != update.StateDone {
				fmt.Fprintln(out, "hint: the Koi runs its previous binary; see journalctl -u skykoi-update -u skykoi-gateway on it")
				return &exitError{code: 1, err: errors.New("")}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&binary, "binary", "", "the new gateway binary (linux, the instance's architecture)")
	fl.StringVar(&bucket, "bucket", "", "the stack's artifact bucket")
	fl.StringVar(&url, "url", "", "the gateway's URL (default wss://<public IP>/)")
	fl.StringVar(&tlsSHA256, "tls-sha256", "", "the TLS certificate's fingerprint (default: as announced on the console)")
	fl.StringVar(&tokenFile, "token-file", "", "read the gateway token from this file (else $SKYKOI_TOKEN)")
	fl.DurationVar(&readyTimeout, "ready-timeout", update.DefaultReadyTimeout, "how long the new binary gets to become ready before the Koi rolls back")
	fl.DurationVar(&waitTimeout, "timeout", 15*time.Minute, "give up waiting for the outcome after this long")
	fl.StringVar(&s3Endpoint, "s3-endpoint", "", "S3 endpoint URL, path-style (for tests)")
	_ = fl.MarkHidden("s3-endpoint")
	return c
}

// uploadBinary puts the binary with its SHA-256 as S3's checksum, so S3
// refuses a corrupted upload.
func uploadBinary(ctx context.Context, region, endpoint, bucket, key string, data, sum []byte) error {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return fmt.Errorf("loading the AWS configuration: %w", err)
	}
	cl := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	})
	_, err = cl.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: &key, Body: bytes.NewReader(data),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
	})
	if err != nil {
		return fmt.Errorf("uploading to s3://%s/%s (check your AWS credentials and the bucket name): %w", bucket, key, err)
	}
	return nil
}

func requestUpdate(ctx context.Context, opts client.Options, sha string, readyTimeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Request(ctx, "update.run", map[string]any{"sha256": sha, "timeoutMs": readyTimeout.Milliseconds()}, nil)
}

// waitUpdate reconnects (the gateway restarts under it) until update.status
// shows this update's end.
func waitUpdate(ctx context.Context, opts client.Options, sha string, limit time.Duration) (update.Status, string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
		cl, err := client.Dial(dctx, opts)
		if err == nil {
			var res struct {
				Status  update.Status `json:"status"`
				Version string        `json:"version"`
			}
			err = cl.Request(dctx, "update.status", nil, &res)
			cl.Close()
			if err == nil && res.Status.SHA256 == sha && update.Final(res.Status.State) {
				dcancel()
				return res.Status, res.Version, nil
			}
		}
		dcancel()
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return update.Status{}, "", fmt.Errorf("the update's outcome did not show within %s (raise --timeout; last error: %v)", limit, last)
		case <-time.After(2 * time.Second):
		}
	}
}

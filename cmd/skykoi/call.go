package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/spf13/cobra"
)

const defaultGatewayURL = "ws://127.0.0.1:18789"

func newCallCmd() *cobra.Command {
	var (
		params, url, token, tokenFile, passwordFile, tlsSHA256 string
		timeout                                                time.Duration
		expectFinal                                            bool
	)
	c := &cobra.Command{
		Use:   "call METHOD",
		Short: "Send one request to a gateway and print the response's payload as JSON",
		Long: "Send one request to a gateway and print the response's payload as JSON.\n\n" +
			"The token comes from --token, --token-file or $SKYKOI_TOKEN (prefer the\n" +
			"last two: a --token is visible to other users in the process list).\n" +
			"For methods that answer twice (agent), --expect-final waits for the\n" +
			"final response and prints it.\n\n" +
			"Exit status: 0 on success; 1 when the gateway answers with an error\n" +
			"(CODE: message and details on stderr) or cannot be reached; 2 on a\n" +
			"usage mistake such as --params that is not a JSON object.",
		Example: "  skykoi call health\n" +
			"  skykoi call chat.history --params '{\"sessionKey\":\"main\",\"limit\":5}'\n" +
			"  skykoi call agent --expect-final --params '{\"message\":\"hello\"}' --timeout 5m",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("call needs exactly one METHOD, got %d arguments (see '%s --help')", len(args), c.CommandPath())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			method := args[0]
			var raw json.RawMessage
			if c.Flags().Changed("params") {
				var err error
				if raw, err = parseParams(params); err != nil {
					return usageError{err}
				}
			}
			if token != "" && tokenFile != "" {
				return usageError{errors.New("give --token or --token-file, not both")}
			}
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout must be positive, got %s", timeout)}
			}
			if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
				return usageError{fmt.Errorf("--url must start with ws:// or wss://, got %q", url)}
			}
			if tlsSHA256 != "" {
				if _, err := client.ParseFingerprint(tlsSHA256); err != nil {
					return usageError{fmt.Errorf("--tls-sha256: %w", err)}
				}
				if !strings.HasPrefix(url, "wss://") {
					return usageError{errors.New("--tls-sha256 needs a wss:// --url")}
				}
			}
			opts := client.Options{URL: url, Token: token, TLSFingerprintSHA256: tlsSHA256, Scopes: client.OwnerScopes()}
			var err error
			switch {
			case tokenFile != "":
				if opts.Token, err = readSecretFile(tokenFile); err != nil {
					return fmt.Errorf("reading the token: %w", err)
				}
			case token == "":
				opts.Token = os.Getenv(configgen.EnvClientToken)
			}
			if passwordFile != "" {
				if opts.Password, err = readSecretFile(passwordFile); err != nil {
					return fmt.Errorf("reading the password: %w", err)
				}
			}

			ctx, cancel := context.WithTimeout(c.Context(), timeout)
			defer cancel()
			cl, err := client.Dial(ctx, opts)
			if err != nil {
				return callError(c.ErrOrStderr(), err, timeout)
			}
			defer cl.Close()
			// A nil RawMessage in an interface would be sent as "params":null.
			var p any
			if raw != nil {
				p = raw
			}
			var out json.RawMessage
			if expectFinal {
				err = cl.RequestFinal(ctx, method, p, nil, &out)
			} else {
				err = cl.Request(ctx, method, p, &out)
			}
			// An error response can still carry a payload (agent's final
			// {runId, status:"error"}); scripts get it on stdout either way.
			if len(out) > 0 || err == nil {
				if perr := printJSON(c.OutOrStdout(), out); perr != nil {
					return perr
				}
			}
			if err != nil {
				return callError(c.ErrOrStderr(), err, timeout)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&params, "params", "", "request params as a JSON object")
	f.StringVar(&url, "url", defaultGatewayURL, "gateway WebSocket URL (ws:// or wss://)")
	f.StringVar(&token, "token", "", "gateway token (visible in the process list; prefer --token-file or $SKYKOI_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "read the gateway token from this file (first line)")
	f.StringVar(&passwordFile, "password-file", "", "read the gateway password from this file (first line)")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long (connect and response together)")
	f.StringVar(&tlsSHA256, "tls-sha256", "", "pin the server certificate's SHA-256 fingerprint (hex, colons allowed) instead of CA verification")
	f.BoolVar(&expectFinal, "expect-final", false, "the method answers twice (accepted, then final): wait for the final")
	return c
}

// parseParams checks --params is a JSON object before anything is sent, so
// a typo is a usage error rather than a round trip to the gateway.
func parseParams(s string) (json.RawMessage, error) {
	s = strings.TrimSpace(s)
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("--params is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New(`--params must be a JSON object, like '{"sessionKey":"main"}'`)
	}
	return json.RawMessage(s), nil
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("formatting the response: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// callError prints a gateway error as "CODE: message" plus its details and
// turns it into exit status 1; other errors get a hint where one helps.
func callError(stderr io.Writer, err error, timeout time.Duration) error {
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s (raise --timeout): %w", timeout, err)
		}
		return err
	}
	fmt.Fprintf(stderr, "%s: %s\n", perr.Code, perr.Message)
	if perr.Details != nil {
		if d, jerr := json.Marshal(perr.Details); jerr == nil {
			fmt.Fprintf(stderr, "details: %s\n", d)
		}
	}
	if perr.Retryable {
		fmt.Fprintf(stderr, "retryable (after %d ms)\n", perr.RetryAfterMs)
	}
	switch client.DetailsCode(err) {
	case protocol.AuthTokenMissing, protocol.AuthTokenMismatch:
		fmt.Fprintln(stderr, "hint: give the gateway token with --token-file FILE or $SKYKOI_TOKEN")
	case protocol.AuthPasswordMissing, protocol.AuthPasswordMismatch:
		fmt.Fprintln(stderr, "hint: give the gateway password with --password-file FILE")
	}
	return &exitError{code: 1, err: errors.New("")}
}

// readSecretFile reads the first line of a secret file, trimmed. An empty
// file is refused: sending "" would only come back as a confusing
// "token missing".
func readSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return line, nil
}

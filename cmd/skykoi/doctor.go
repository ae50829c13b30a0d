package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/spf13/cobra"
)

// A check's verdict.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
)

type checkResult struct {
	Name, Status, Detail, Fix string
}

func newDoctorCmd() *cobra.Command {
	var (
		configFlag string
		noModel    bool
		koiPaths   bool
	)
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine's Koi setup and say how to fix what is wrong",
		Long: "Check the config, the state directory's permissions, the gateway port, AWS\n" +
			"credentials and region, Bedrock access for every configured model (one tiny\n" +
			"request each, which costs a few tokens), the clock, and on a Koi the nginx site\n" +
			"and TLS certificate. Exit status 1 when any check fails.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			path, err := configgen.DefaultPath(configFlag, os.Getenv)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), 2*time.Minute)
			defer cancel()
			// The SDK's own warnings (through awslog) and the provider's
			// go to stderr as slog records, apart from the report.
			d := doctor{out: c.OutOrStdout(), log: slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
			cfg, ok, found := d.checkConfig(path)
			if found {
				// Without a config there is no state dir to speak of:
				// the path's directory may be anything, even /.
				d.checkStateDir(path, configgen.StateDir(path, os.Getenv))
			}
			if ok {
				d.checkPort(cfg)
				prov := d.checkAWS(ctx, cfg)
				if prov != nil && !noModel {
					for _, ref := range cfg.ModelRefs() {
						d.checkModel(ctx, prov, ref)
					}
				}
				d.checkClock(ctx, cfg)
				d.checkMCP(ctx, cfg)
			}
			if koiPaths || isKoi() {
				d.checkKoi()
			}
			return d.finish()
		},
	}
	c.Flags().StringVar(&configFlag, "config", "", "config file (default $SKYKOI_CONFIG_PATH or ~/.skykoi/skykoi.json)")
	c.Flags().BoolVar(&noModel, "no-model", false, "skip the one-token Bedrock requests")
	c.Flags().BoolVar(&koiPaths, "koi", false, "check nginx and the certificate even when this does not look like a Koi")
	return c
}

// isKoi: the provisioned unit file exists.
func isKoi() bool {
	_, err := os.Stat(filepath.Join("/etc/systemd/system", cloudinit.UnitName))
	return err == nil
}

type doctor struct {
	out     io.Writer
	log     *slog.Logger
	results []checkResult
}

func (d *doctor) add(name, status, detail, fix string) {
	d.results = append(d.results, checkResult{name, status, detail, fix})
	mark := map[string]string{checkOK: "ok  ", checkWarn: "WARN", checkFail: "FAIL"}[status]
	fmt.Fprintf(d.out, "[%s] %s: %s\n", mark, name, detail)
	if fix != "" && status != checkOK {
		fmt.Fprintf(d.out, "       fix: %s\n", fix)
	}
}

func (d *doctor) finish() error {
	fails, warns := 0, 0
	for _, r := range d.results {
		switch r.Status {
		case checkFail:
			fails++
		case checkWarn:
			warns++
		}
	}
	fmt.Fprintf(d.out, "\n%d checks: %d failed, %d warnings\n", len(d.results), fails, warns)
	if fails > 0 {
		return &exitError{code: 1, err: errors.New("")}
	}
	return nil
}

// checkConfig loads the config; found is false when there is no file.
func (d *doctor) checkConfig(path string) (cfg configgen.Config, ok, found bool) {
	cfg, err := configgen.Load(path)
	var ce *configgen.Error
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.add("config", checkFail, path+" does not exist", "run `skykoi local` to create one, or `skykoi config generate`")
		return cfg, false, false
	case errors.As(err, &ce):
		lines := make([]string, len(ce.Issues))
		for i, is := range ce.Issues {
			lines[i] = is.String()
		}
		d.add("config", checkFail, fmt.Sprintf("%s has %d problem(s): %s", path, len(lines), strings.Join(lines, "; ")),
			"edit the file; `skykoi config validate` re-checks it")
		return cfg, false, true
	case err != nil:
		d.add("config", checkFail, err.Error(), "check the file's permissions")
		return cfg, false, true
	}
	d.add("config", checkOK, path+" is valid", "")
	return cfg, true, true
}

// sharedDir reports whether dir belongs to more than the Koi: the root, a
// top-level directory such as /etc or /tmp, the home directory or the temp
// directory. Doctor never walks such a directory or suggests changing it.
func sharedDir(dir string) bool {
	dir = filepath.Clean(dir)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if dir == "/" || filepath.Dir(dir) == "/" || dir == filepath.Clean(os.TempDir()) {
		return true
	}
	home, err := os.UserHomeDir()
	return err == nil && dir == filepath.Clean(home)
}

// checkStateDir: secrets and transcripts are the person's alone. Its
// advice names only the Koi's own files: the state dir when it is a
// directory of its own, else the config file alone.
func (d *doctor) checkStateDir(configPath, dir string) {
	if sharedDir(dir) {
		st, err := os.Stat(configPath)
		if err != nil {
			return
		}
		if p := st.Mode().Perm(); p&0o077 != 0 {
			d.add("state dir permissions", checkWarn, fmt.Sprintf("%s is %o, readable by others; its directory %s is shared with other programs, so the Koi's state (tokens, transcripts) mixes with theirs", configPath, p, dir),
				fmt.Sprintf("chmod 600 %s, and give the Koi a directory of its own (move the config to ~/.skykoi/skykoi.json or set %s)", configPath, configgen.EnvStateDir))
			return
		}
		d.add("state dir permissions", checkWarn, fmt.Sprintf("%s is private, but its directory %s is shared with other programs", configPath, dir),
			fmt.Sprintf("give the Koi a directory of its own (move the config to ~/.skykoi/skykoi.json or set %s)", configgen.EnvStateDir))
		return
	}
	st, err := os.Stat(dir)
	if err != nil {
		d.add("state dir", checkWarn, err.Error(), "it is created on the gateway's first start")
		return
	}
	var loose []string
	if st.Mode().Perm()&0o077 != 0 {
		loose = append(loose, fmt.Sprintf("%s is %o", dir, st.Mode().Perm()))
	}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		if info.Mode().Perm()&0o077 != 0 {
			if len(loose) < 5 {
				loose = append(loose, fmt.Sprintf("%s is %o", p, info.Mode().Perm()))
			}
		}
		return nil
	})
	if len(loose) > 0 {
		d.add("state dir permissions", checkWarn, "readable by others: "+strings.Join(loose, ", "),
			fmt.Sprintf("chmod -R go-rwx %s (directories 0700, files 0600)", dir))
		return
	}
	d.add("state dir permissions", checkOK, dir+" is private (0700/0600)", "")
}

func (d *doctor) checkPort(cfg configgen.Config) {
	addr := cfg.Gateway.ListenAddr()
	host, _, _ := net.SplitHostPort(addr)
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
		d.add("port", checkOK, addr+" is free for the gateway", "")
		return
	}
	// Taken: fine if it is our gateway answering.
	resp, herr := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + net.JoinHostPort(loopbackFor(host), strconv.Itoa(cfg.Gateway.Port)) + "/healthz")
	if herr == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if strings.Contains(string(b), `"status":"live"`) {
			d.add("port", checkOK, addr+" is served by a running gateway", "")
			return
		}
	}
	d.add("port", checkFail, fmt.Sprintf("%s is taken by another program: %v", addr, err),
		"stop that program, or set gateway.port (or pass --port) to a free port")
}

func loopbackFor(host string) string {
	if host == "0.0.0.0" || host == "" {
		return "127.0.0.1"
	}
	return host
}

func (d *doctor) checkAWS(ctx context.Context, cfg configgen.Config) *bedrock.Provider {
	br := cfg.Models.Providers.AmazonBedrock
	p, err := bedrock.New(ctx, bedrock.Options{Region: br.Region, Endpoint: br.Endpoint, Logger: d.log})
	if err != nil {
		d.add("AWS configuration", checkFail, err.Error(), "")
		return nil
	}
	d.add("AWS region", checkOK, p.Region()+regionSource(br.Region), "")
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.CheckCredentials(cctx); err != nil {
		d.add("AWS credentials", checkFail, err.Error(), "")
		return nil
	}
	d.add("AWS credentials", checkOK, "found through the SDK's default chain", "")
	return p
}

func regionSource(configured string) string {
	switch {
	case configured != "":
		return " (models.providers.amazon-bedrock.region)"
	case os.Getenv("AWS_REGION") != "":
		return " (AWS_REGION)"
	case os.Getenv("AWS_DEFAULT_REGION") != "":
		return " (AWS_DEFAULT_REGION)"
	}
	return " (default; set models.providers.amazon-bedrock.region to choose)"
}

func (d *doctor) checkModel(ctx context.Context, p *bedrock.Provider, ref string) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Ping(cctx, ref); err != nil {
		d.add("model "+ref, checkFail, err.Error(), "")
		return
	}
	d.add("model "+ref, checkOK, "answered a one-token request", "")
}

// checkClock compares this machine's clock with the Date header of the
// Bedrock endpoint: SigV4 refuses requests more than 5 minutes off.
func (d *doctor) checkClock(ctx context.Context, cfg configgen.Config) {
	br := cfg.Models.Providers.AmazonBedrock
	url := br.Endpoint
	if url == "" {
		region := br.Region
		if region == "" {
			region = firstNonEmptyEnv("AWS_REGION", "AWS_DEFAULT_REGION")
		}
		if region == "" {
			region = "us-east-1"
		}
		url = "https://bedrock-runtime." + region + ".amazonaws.com/"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	before := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		// The clock is not the problem, and time sync would not fix it.
		d.add("clock", checkWarn, fmt.Sprintf("could not compare clocks: looking up %s failed, so DNS is not working: %v", dnsErr.Name, err),
			"fix name resolution first (resolvectl status, or /etc/resolv.conf); Bedrock needs it too")
		return
	case err != nil:
		d.add("clock", checkWarn, "could not reach "+url+" to compare clocks: "+err.Error(), "check the network path to AWS; if it works, make sure the machine syncs time (timedatectl status)")
		return
	}
	resp.Body.Close()
	server, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		d.add("clock", checkWarn, url+" sent no usable Date header", "")
		return
	}
	local := before.Add(time.Since(before) / 2)
	skew := local.Sub(server).Round(time.Second)
	switch {
	case skew > 4*time.Minute || skew < -4*time.Minute:
		d.add("clock", checkFail, fmt.Sprintf("this clock is %s off (AWS refuses signatures beyond 5 minutes)", skew),
			"enable time sync: sudo timedatectl set-ntp true")
	case skew > 30*time.Second || skew < -30*time.Second:
		d.add("clock", checkWarn, fmt.Sprintf("this clock is %s off", skew), "enable time sync: sudo timedatectl set-ntp true")
	default:
		d.add("clock", checkOK, fmt.Sprintf("within %s of AWS", absDuration(skew)+time.Second), "")
	}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func firstNonEmptyEnv(keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// checkKoi: nginx's config and the TLS certificate the bootstrap made.
func (d *doctor) checkKoi() {
	if out, err := exec.Command("nginx", "-t").CombinedOutput(); err != nil {
		d.add("nginx", checkFail, strings.TrimSpace(string(out)), "sudo nginx -t shows the problem; the site is /etc/nginx/sites-enabled/skykoi")
	} else {
		d.add("nginx", checkOK, "configuration is valid", "")
	}
	certPath := filepath.Join(cloudinit.DefaultTLSDir, "skykoi.crt")
	b, err := os.ReadFile(certPath)
	if err != nil {
		d.add("TLS certificate", checkFail, err.Error(), "rerun the bootstrap: sudo /usr/local/lib/skykoi/bootstrap")
		return
	}
	block, _ := pem.Decode(b)
	if block == nil {
		d.add("TLS certificate", checkFail, certPath+" is not PEM", "")
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		d.add("TLS certificate", checkFail, err.Error(), "")
		return
	}
	sum := sha256.Sum256(cert.Raw)
	if left := time.Until(cert.NotAfter); left < 30*24*time.Hour {
		d.add("TLS certificate", checkWarn, fmt.Sprintf("expires %s", cert.NotAfter.Format(time.DateOnly)),
			"delete it and rerun the bootstrap to make a new one (clients pinning the old fingerprint need the new one)")
		return
	}
	d.add("TLS certificate", checkOK, fmt.Sprintf("SHA-256 %s, names %v, valid until %s", client.FormatFingerprint(sum[:]),
		append(cert.DNSNames, ipStrings(cert.IPAddresses)...), cert.NotAfter.Format(time.DateOnly)), "")
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

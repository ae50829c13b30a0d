// Package cloudinit renders a Koi's EC2 user-data: one #cloud-config document
// that writes the gateway's config, the nginx site, the systemd unit, the
// workspace seed files and a bootstrap script, then runs the script. The
// script mounts the data volume, makes the TLS certificate, installs the
// gateway binary after checking its SHA-256, starts nginx and the gateway and
// reports SKYKOI-READY (or SKYKOI-FAILED <step>: <reason>) on the console.
// A second unit, skykoi-console.service, repeats the fingerprint and the
// readiness on the console at every later boot (a stop and start runs no
// cloud-init), and reports cloud-init's own verdict once it has finished.
//
// The output works with cloud-init 22.4 (Debian 12, where the VM test runs)
// and with current cloud-init (Ubuntu 24.04 LTS, the Koi's image).
package cloudinit

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/skykoi/skykoi/configgen"
)

// Defaults of the render options.
const (
	// MaxUserDataSize is EC2's limit on user-data, before base64.
	MaxUserDataSize = 16384
	// DefaultMetadataEndpoint is the EC2 instance metadata service.
	DefaultMetadataEndpoint = "http://169.254.169.254"
	DefaultBinaryPath       = "/usr/local/bin/skykoi"
	DefaultTLSDir           = "/etc/skykoi/tls"
	DefaultHTTPPort         = 80
	DefaultHTTPSPort        = 443
)

// Where things live on a Koi. The bootstrap script and the systemd unit
// assume these; they are not options.
const (
	KoiUser      = "ubuntu"
	ConfigPath   = "/home/ubuntu/.skykoi/skykoi.json"
	StateDir     = "/home/ubuntu/.skykoi"
	Workspace    = configgen.KoiWorkspace
	DataMount    = "/data"
	UnitName     = "skykoi-gateway.service"
	unitPath     = "/etc/systemd/system/" + UnitName
	sitePath     = "/etc/nginx/sites-available/skykoi"
	seedDir      = "/var/lib/skykoi/seed"
	bootstrapBin = "/usr/local/lib/skykoi/bootstrap"
)

// ConsoleUnitName is the unit that runs the bootstrap's announce mode at
// every boot.
const (
	ConsoleUnitName = "skykoi-console.service"
	consoleUnitPath = "/etc/systemd/system/" + ConsoleUnitName
)

// Artifact says where the gateway binary comes from: an S3 object, fetched
// with the instance role's credentials, or a URL. Its integrity comes from
// Options.BinarySHA256, not from the transport.
type Artifact struct {
	S3Bucket string
	S3Key    string
	Region   string
	// S3Endpoint replaces https://<bucket>.s3.<region>.amazonaws.com with a
	// path-style endpoint (scheme://host[:port]); for tests and fakes.
	S3Endpoint string
	// URL is used instead of S3 when set.
	URL string
}

// Options are everything one Koi's user-data depends on. The same options
// always give the same bytes.
type Options struct {
	// ConfigOptions generate skykoi.json when Config is empty. They carry the
	// token's SHA-256 only, never the token; the Bedrock region and endpoint
	// are set here too.
	ConfigOptions configgen.Options
	// Config is an already rendered skykoi.json, used as is after checking it
	// is valid and holds no plaintext secret.
	Config []byte

	// DataVolumeID is the EBS volume (vol-…) holding the workspace, state
	// and TLS certificate.
	DataVolumeID string
	Artifact     Artifact
	// BinarySHA256 is the gateway binary's SHA-256, lowercase hex.
	BinarySHA256 string
	// MetadataEndpoint defaults to DefaultMetadataEndpoint.
	MetadataEndpoint string
	// Hostname, when set, becomes the instance's hostname.
	Hostname string
	// SeedFiles replace or add workspace seed files by name; the defaults
	// are AGENTS.md, SOUL.md, USER.md, TOOLS.md and IDENTITY.md.
	SeedFiles map[string]string

	// HTTPPort and HTTPSPort are nginx's ports, and ListenAddress its
	// address (empty: all). Tests move them to a high loopback port.
	HTTPPort      int
	HTTPSPort     int
	ListenAddress string
	// TLSDir holds the certificate and key nginx serves.
	TLSDir string
	// BinaryPath is where the gateway binary is installed and what the unit
	// runs.
	BinaryPath string
	// Logs ships the journal to CloudWatch Logs when set; off by default.
	Logs Logs

	// Gzip compresses the user-data even when it fits uncompressed.
	Gzip bool
}

// Parts are the rendered pieces, for inspection and tests. CloudConfig holds
// all the others.
type Parts struct {
	// CloudConfig is the #cloud-config document, uncompressed.
	CloudConfig []byte
	Config      []byte
	NginxSite   []byte
	Unit        []byte
	ConsoleUnit []byte
	// UpdatePath and UpdateService are the in-place update's supervisor.
	UpdatePath    []byte
	UpdateService []byte
	// LogsUnit is skykoi-logs.service, nil unless Options.Logs is on.
	LogsUnit  []byte
	Bootstrap []byte
	// Seeds are the workspace seed files by name.
	Seeds map[string][]byte
}

var (
	volumeIDRe = regexp.MustCompile(`^vol-[0-9a-f]{8}([0-9a-f]{9})?$`)
	sha256Re   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	bucketRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	// S3 keys are limited to characters SigV4 signs as written, so curl and
	// S3 agree on the canonical path without any escaping.
	s3KeyRe   = regexp.MustCompile(`^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$`)
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	hostRe    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	seedRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	absPathRe = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
	// Endpoints end up in single-quoted shell and in curl URLs.
	urlCharsRe = regexp.MustCompile(`^[A-Za-z0-9._~:/?#@!$&()*+,;=%-]+$`)
)

func (o Options) withDefaults() Options {
	if o.MetadataEndpoint == "" {
		o.MetadataEndpoint = DefaultMetadataEndpoint
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = DefaultHTTPPort
	}
	if o.HTTPSPort == 0 {
		o.HTTPSPort = DefaultHTTPSPort
	}
	if o.TLSDir == "" {
		o.TLSDir = DefaultTLSDir
	}
	if o.BinaryPath == "" {
		o.BinaryPath = DefaultBinaryPath
	}
	return o
}

// Validate reports every problem with the options at once, each naming the
// option. The config itself is checked when it is rendered.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !volumeIDRe.MatchString(o.DataVolumeID) {
		bad("DataVolumeID: want an EBS volume id like vol-0123456789abcdef0, got %q", o.DataVolumeID)
	}
	if !sha256Re.MatchString(o.BinarySHA256) {
		bad("BinarySHA256: want 64 lowercase hex digits, got %q", o.BinarySHA256)
	}
	a := o.Artifact
	s3 := a.S3Bucket != "" || a.S3Key != "" || a.Region != "" || a.S3Endpoint != ""
	switch {
	case a.URL != "" && s3:
		bad("Artifact: give either URL or S3Bucket/S3Key/Region, not both")
	case a.URL != "":
		if err := checkEndpoint(a.URL, true); err != nil {
			bad("Artifact.URL: %w", err)
		}
	case !s3:
		bad("Artifact: the gateway binary needs a source: URL, or S3Bucket, S3Key and Region")
	default:
		if !bucketRe.MatchString(a.S3Bucket) {
			bad("Artifact.S3Bucket: want 3-63 of a-z, 0-9 and '-' (no dots), got %q", a.S3Bucket)
		}
		if !s3KeyRe.MatchString(a.S3Key) || hasDotSegment(a.S3Key) {
			bad("Artifact.S3Key: want /-separated segments of A-Z a-z 0-9 . _ ~ - (no . or .. segments), got %q", a.S3Key)
		}
		if !regionRe.MatchString(a.Region) {
			bad("Artifact.Region: want an AWS region like us-east-1, got %q", a.Region)
		}
		if a.S3Endpoint != "" {
			if err := checkEndpoint(a.S3Endpoint, false); err != nil {
				bad("Artifact.S3Endpoint: %w", err)
			}
		}
	}
	if err := checkEndpoint(o.MetadataEndpoint, false); err != nil {
		bad("MetadataEndpoint: %w", err)
	}
	if o.Hostname != "" && (len(o.Hostname) > 253 || !hostRe.MatchString(o.Hostname)) {
		bad("Hostname: want a lowercase DNS name, got %q", o.Hostname)
	}
	for _, name := range sortedKeys(o.SeedFiles) {
		if !seedRe.MatchString(name) {
			bad("SeedFiles: %q is not a plain file name", name)
		}
	}
	for _, p := range []struct {
		name string
		port int
	}{{"HTTPPort", o.HTTPPort}, {"HTTPSPort", o.HTTPSPort}} {
		if p.port < 1 || p.port > 65535 {
			bad("%s: want 1-65535, got %d", p.name, p.port)
		}
	}
	if o.HTTPPort == o.HTTPSPort {
		bad("HTTPPort and HTTPSPort are both %d", o.HTTPPort)
	}
	if o.ListenAddress != "" && net.ParseIP(o.ListenAddress) == nil {
		bad("ListenAddress: want an IP address, got %q", o.ListenAddress)
	}
	for _, p := range []struct{ name, path string }{{"TLSDir", o.TLSDir}, {"BinaryPath", o.BinaryPath}} {
		if !absPathRe.MatchString(p.path) || path.Clean(p.path) != p.path || hasDotSegment(p.path[1:]) {
			bad("%s: want a clean absolute path of A-Z a-z 0-9 . _ -, got %q", p.name, p.path)
		}
	}
	if len(o.Config) == 0 && o.ConfigOptions.Workspace != "" && o.ConfigOptions.Workspace != Workspace {
		bad("ConfigOptions.Workspace: a Koi's workspace is %s, got %q", Workspace, o.ConfigOptions.Workspace)
	}
	errs = append(errs, o.Logs.problems()...)
	return errors.Join(errs...)
}

func hasDotSegment(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// checkEndpoint accepts http(s)://host[:port], plus a path when withPath.
func checkEndpoint(s string, withPath bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("want an http or https URL, got %q", s)
	case u.Host == "" || u.User != nil:
		return fmt.Errorf("want scheme://host[:port] without credentials, got %q", s)
	case !urlCharsRe.MatchString(s) || strings.ContainsAny(s, "'\"`\\"):
		return fmt.Errorf("has characters that need escaping: %q", s)
	case !withPath && (u.Path != "" || u.RawQuery != "" || u.Fragment != ""):
		return fmt.Errorf("want scheme://host[:port] with no path, got %q", s)
	case withPath && (u.Path == "" || u.Path == "/"):
		return fmt.Errorf("want the binary's URL, got %q", s)
	}
	return nil
}

// Render returns the user-data to send: the #cloud-config document, gzipped
// when asked to or when it would not fit in MaxUserDataSize (cloud-init
// recognises gzip by its magic bytes).
func Render(o Options) ([]byte, error) {
	p, err := RenderParts(o)
	if err != nil {
		return nil, err
	}
	return Finish(p.CloudConfig, o.Gzip)
}

// Finish turns a cloud-config document into user-data: gzipped when forced
// or too large, and refused when even that exceeds MaxUserDataSize.
func Finish(doc []byte, forceGzip bool) ([]byte, error) {
	if !forceGzip && len(doc) <= MaxUserDataSize {
		return doc, nil
	}
	z, err := gzipBytes(doc)
	if err != nil {
		return nil, err
	}
	if len(z) > MaxUserDataSize {
		return nil, fmt.Errorf("user-data is %d bytes gzipped (%d plain), over EC2's %d-byte limit: shorten the seed files",
			len(z), len(doc), MaxUserDataSize)
	}
	return z, nil
}

// gzipBytes compresses without a name or time in the header, so the output
// depends on the input alone.
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("gzipping user-data: %w", err)
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzipping user-data: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzipping user-data: %w", err)
	}
	return buf.Bytes(), nil
}

// RenderParts renders every piece and the cloud-config document holding them.
func RenderParts(o Options) (Parts, error) {
	if err := o.Validate(); err != nil {
		return Parts{}, fmt.Errorf("cloudinit: invalid options: %w", err)
	}
	o = o.withDefaults()
	cfg, port, err := koiConfig(o)
	if err != nil {
		return Parts{}, err
	}
	p := Parts{Config: cfg, Seeds: seeds(o.SeedFiles)}
	if p.NginxSite, err = nginxSite(o, port); err != nil {
		return Parts{}, err
	}
	if p.Unit, err = systemdUnit(o); err != nil {
		return Parts{}, err
	}
	if p.ConsoleUnit, err = consoleUnit(); err != nil {
		return Parts{}, err
	}
	if p.UpdatePath, p.UpdateService, err = updateUnits(o, port); err != nil {
		return Parts{}, err
	}
	if p.LogsUnit, err = logsUnit(o); err != nil {
		return Parts{}, err
	}
	p.Bootstrap = bootstrapScript(o, port)
	if p.CloudConfig, err = cloudConfig(o, p); err != nil {
		return Parts{}, err
	}
	return p, nil
}

// koiConfig returns skykoi.json and the gateway port it sets. Whatever its
// source, the file must be valid, keep the Koi's workspace, and hold only
// digests: user-data is readable by anyone who can describe the instance.
func koiConfig(o Options) ([]byte, int, error) {
	data := o.Config
	if len(data) == 0 {
		var err error
		if data, err = configgen.Generate(o.ConfigOptions); err != nil {
			return nil, 0, fmt.Errorf("cloudinit: generating skykoi.json: %w", err)
		}
	}
	cfg, err := configgen.ParseEnv(data, func(string) string { return "" })
	if err != nil {
		return nil, 0, fmt.Errorf("cloudinit: skykoi.json: %w", err)
	}
	a := cfg.Gateway.Auth
	switch {
	case a.Token != "" || a.Password != "":
		return nil, 0, errors.New("cloudinit: skykoi.json holds a plaintext token or password; user-data must carry only tokenSha256/passwordSha256")
	case a.Mode == "none":
		return nil, 0, errors.New("cloudinit: skykoi.json has gateway.auth.mode none; nginx would expose the gateway to anyone")
	case cfg.Agents.Defaults.Workspace != Workspace && cfg.Agents.Defaults.Workspace != "~/koi":
		return nil, 0, fmt.Errorf("cloudinit: skykoi.json's workspace is %q; a Koi's is %s, which lives on the data volume",
			cfg.Agents.Defaults.Workspace, Workspace)
	}
	return data, cfg.Gateway.Port, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

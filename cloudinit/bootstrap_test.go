package cloudinit_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
)

// The bootstrap script runs here for real, in a temp dir standing in for /
// (SKYKOI_ROOT), with stubs first on PATH for every command that would touch
// the machine (systemctl, mount, mkfs.ext4, blkid, apt-get, chown, nginx…).
// curl and openssl are the real programs behind a logging wrapper: curl
// talks to a fake metadata service, S3 and gateway, and openssl makes the
// certificate the test then inspects. Every stub appends its argv to one
// log, so the order of the steps can be checked.

const (
	imdsToken   = "imds-session-token-AQAEAHJ"
	roleName    = "skykoi-koi-role"
	akid        = "ASIAKOITESTKEY000001"
	secretKey   = "kOiTeSt/SeCrEt+KeY0000000000000000000000"
	sessionTok  = "IQoJb3JpZ2luX2VjEKoi//////////testsessiontoken=="
	publicIPv4  = "203.0.113.7"
	localIPv4   = "10.0.1.23"
	publicDNS   = "ec2-203-0-113-7.us-west-2.compute.amazonaws.com"
	volumeUUID  = "5d2c6f3e-0a1b-4c2d-8e9f-0123456789ab"
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// fakeAWS is the instance metadata service, S3 and the gateway's /readyz.
type fakeAWS struct {
	t        *testing.T
	srv      *httptest.Server
	noPublic bool   // no public IPv4 or hostname (private subnet)
	binary   []byte // what S3 and the artifact URL serve
	// tokenFailures makes the first token requests fail with 503.
	tokenFailures int
	readyAfter    int // readyz says 503 this many times first
	neverReady    bool

	mu       sync.Mutex
	requests []string
	s3Errs   []string
}

func newFakeAWS(t *testing.T) *fakeAWS {
	f := &fakeAWS{t: t, binary: gatewayBinary}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAWS) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	p := r.URL.Path
	switch {
	case p == "/latest/api/token":
		f.mu.Lock()
		fail := f.tokenFailures > 0
		f.tokenFailures--
		f.mu.Unlock()
		switch {
		case r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "":
			http.Error(w, "IMDSv2 wants PUT with a TTL", http.StatusBadRequest)
		case fail:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, imdsToken)
		}
	case strings.HasPrefix(p, "/latest/meta-data/"):
		if r.Header.Get("X-aws-ec2-metadata-token") != imdsToken {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		f.metadata(w, strings.TrimPrefix(p, "/latest/meta-data/"))
	case p == "/skykoi-artifacts-123456789012/releases/v1.4.0/skykoi-linux-arm64":
		if err := verifySigV4(r); err != nil {
			f.mu.Lock()
			f.s3Errs = append(f.s3Errs, err.Error())
			f.mu.Unlock()
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		_, _ = w.Write(f.binary)
	case p == "/releases/skykoi-linux-arm64":
		_, _ = w.Write(f.binary)
	case p == "/readyz":
		f.mu.Lock()
		ready := !f.neverReady && f.readyAfter <= 0
		f.readyAfter--
		f.mu.Unlock()
		if !ready {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAWS) metadata(w http.ResponseWriter, key string) {
	switch {
	case key == "public-ipv4" && !f.noPublic:
		fmt.Fprint(w, publicIPv4)
	case key == "public-hostname" && !f.noPublic:
		fmt.Fprint(w, publicDNS)
	case key == "local-ipv4":
		fmt.Fprint(w, localIPv4)
	case key == "iam/security-credentials/":
		fmt.Fprint(w, roleName)
	case key == "iam/security-credentials/"+roleName:
		// Laid out as IMDS serves it: pretty-printed, " : " separators.
		fmt.Fprintf(w, "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-24T10:00:00Z\",\n"+
			"  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : %q,\n  \"SecretAccessKey\" : %q,\n"+
			"  \"Token\" : %q,\n  \"Expiration\" : \"2026-11-24T16:00:00Z\"\n}", akid, secretKey, sessionTok)
	default:
		http.NotFound(w, nil)
	}
}

// verifySigV4 checks the request's AWS Signature Version 4 the way S3 does,
// from the headers it names as signed, with the role's secret.
func verifySigV4(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("not SigV4: %q", auth)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] != akid || scope[2] != "us-west-2" || scope[3] != "s3" || scope[4] != "aws4_request" {
		return fmt.Errorf("credential scope %q", fields["Credential"])
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	for _, need := range []string{"host", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"} {
		if !slices.Contains(signed, need) {
			return fmt.Errorf("%s is not signed (%v)", need, signed)
		}
	}
	if got := r.Header.Get("X-Amz-Security-Token"); got != sessionTok {
		return fmt.Errorf("x-amz-security-token %q", got)
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload != emptySHA256 {
		return fmt.Errorf("x-amz-content-sha256 %q, want the empty body's hash", payload)
	}
	var canon strings.Builder
	fmt.Fprintf(&canon, "%s\n%s\n%s\n", r.Method, r.URL.EscapedPath(), r.URL.RawQuery)
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		fmt.Fprintf(&canon, "%s:%s\n", h, strings.TrimSpace(v))
	}
	fmt.Fprintf(&canon, "\n%s\n%s", fields["SignedHeaders"], payload)
	amzDate := r.Header.Get("X-Amz-Date")
	credScope := strings.Join(scope[1:], "/")
	sum := sha256.Sum256([]byte(canon.String()))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + credScope + "\n" + hex.EncodeToString(sum[:])
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	key := []byte("AWS4" + secretKey)
	for _, part := range scope[1:] {
		key = mac(key, part)
	}
	if want := hex.EncodeToString(mac(key, toSign)); !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return errors.New("signature mismatch")
	}
	return nil
}

// stubs are shell scripts; each logs its name and argv first.
var stubs = map[string]string{
	"systemctl": `if [[ $1 == restart && -e $STUB_STATE/fail-$2 ]]; then exit 1; fi
if [[ $1 == is-enabled ]]; then [[ -e $STUB_STATE/enabled-$3 ]]; exit; fi
if [[ $1 == enable ]]; then for u in "${@:2}"; do [[ $u == --* ]] || touch "$STUB_STATE/enabled-$u"; done; fi`,
	"apt-get": ``,
	"blkid": `if [[ -e $STUB_STATE/pttype ]]; then
  printf 'DEVNAME=%s\nPTUUID=9f2a\nPTTYPE=gpt\n' "${@: -1}"
elif [[ -e $STUB_STATE/formatted ]]; then
  printf 'DEVNAME=%s\nUUID=` + volumeUUID + `\nBLOCK_SIZE=4096\nTYPE=ext4\nLABEL=skykoi-data\n' "${@: -1}"
else
  exit 2
fi`,
	"mkfs.ext4":  `if [[ -e $STUB_STATE/fail-mkfs ]]; then exit 1; fi; touch "$STUB_STATE/formatted"`,
	"mount":      `touch "$STUB_STATE/mounted"`,
	"mountpoint": `[[ -e $STUB_STATE/mounted ]]`,
	"chown":      ``,
	"nginx":      `if [[ -e $STUB_STATE/fail-nginx ]]; then echo "nginx: [emerg] bad config" >&2; exit 1; fi`,
	"sleep":      ``,
	"udevadm":    ``,
	// cloud-init status --wait --long as 22.4 prints it: dots while it waits.
	"cloud-init": `if [[ -e $STUB_STATE/cloud-init-error ]]; then
  printf '..\nstatus: error\ntime: Tue, 24 Nov 2026 10:00:00 +0000\ndetail:\n(%s)\n' "'users-groups' failed"; exit 1
fi
printf '...\nstatus: done\ntime: Tue, 24 Nov 2026 10:00:00 +0000\ndetail:\nDataSourceEc2Local\n'`,
}

// bootRun is one run of the bootstrap script in its own root.
type bootRun struct {
	t              *testing.T
	root, state    string
	stubLog        string
	console        string
	aws            *fakeAWS
	opts           cloudinit.Options
	parts          cloudinit.Parts
	stdout, stderr string
	code           int
	// args are the script's arguments: none for the first boot, "announce"
	// for the console unit.
	args []string
}

// deviceLink names the by-id link the test attaches the volume under.
type deviceLink int

const (
	virtioFull deviceLink = iota
	virtio20
	nvme
	noDevice
)

// newBootRun prepares a root as cloud-init leaves it; change adjusts the
// render options, given the fakes' base URL.
func newBootRun(t *testing.T, link deviceLink, change func(o *cloudinit.Options, fakeURL string)) *bootRun {
	t.Helper()
	requireTool(t, "bash")
	b := &bootRun{t: t, root: t.TempDir(), state: t.TempDir(), aws: newFakeAWS(t)}
	b.stubLog = filepath.Join(b.state, "stub.log")
	b.console = filepath.Join(b.state, "console")
	writeTemp(t, b.state, "console", nil, 0o644)

	b.opts = realistic()
	b.opts.Artifact.S3Endpoint = b.aws.srv.URL
	b.opts.MetadataEndpoint = b.aws.srv.URL
	if change != nil {
		change(&b.opts, b.aws.srv.URL)
	}
	b.parts = renderParts(t, b.opts)

	// What cloud-init's write_files (deferred included) leaves behind.
	r := b.root
	writeTemp(t, r, "home/ubuntu/.skykoi/skykoi.json", b.parts.Config, 0o600)
	for name, c := range b.parts.Seeds {
		writeTemp(t, r, "var/lib/skykoi/seed/"+name, c, 0o644)
	}
	writeTemp(t, r, "usr/local/lib/skykoi/bootstrap", b.parts.Bootstrap, 0o755)
	writeTemp(t, r, "etc/fstab", []byte("# /etc/fstab: static file system information.\n/dev/vda1 / ext4 defaults 0 1\n"), 0o644)
	// An image with nginx, curl and openssl, and the packaged default site.
	for _, p := range []string{"usr/sbin/nginx", "usr/bin/curl", "usr/bin/openssl"} {
		writeTemp(t, r, p, []byte("#!/bin/sh\n"), 0o755)
	}
	if err := os.MkdirAll(filepath.Join(r, "etc/nginx/sites-enabled"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/nginx/sites-available/default", filepath.Join(r, "etc/nginx/sites-enabled/default")); err != nil {
		t.Fatal(err)
	}

	// The volume: a file of zeros, linked the way udev names it.
	writeTemp(t, r, "dev/nvme1n1", make([]byte, 64<<10), 0o600)
	id := b.opts.DataVolumeID
	names := map[deviceLink]string{
		virtioFull: "virtio-" + id,
		virtio20:   "virtio-" + id[:20],
		nvme:       "nvme-Amazon_Elastic_Block_Store_vol" + strings.TrimPrefix(id, "vol-"),
	}
	if name, ok := names[link]; ok {
		if err := os.MkdirAll(filepath.Join(r, "dev/disk/by-id"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../nvme1n1", filepath.Join(r, "dev/disk/by-id", name)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *bootRun) stubDir() string {
	t := b.t
	dir := filepath.Join(b.state, "bin")
	logLine := `printf '%s\n' "${0##*/} $*" >>"$STUB_LOG"` + "\n"
	for name, body := range stubs {
		writeTemp(t, dir, name, []byte("#!/bin/bash\n"+logLine+body+"\n"), 0o755)
	}
	for _, name := range []string{"curl", "openssl"} {
		real := requireTool(t, name)
		writeTemp(t, dir, name, []byte("#!/bin/bash\n"+logLine+`exec `+real+` "$@"`+"\n"), 0o755)
	}
	return dir
}

func (b *bootRun) run(env ...string) {
	t := b.t
	cmd := exec.Command(filepath.Join(b.root, "usr/local/lib/skykoi/bootstrap"), b.args...)
	cmd.Env = []string{
		"PATH=" + b.stubDir() + ":" + os.Getenv("PATH"),
		"HOME=" + b.state,
		"TMPDIR=" + t.TempDir(),
		"LC_ALL=C",
		"STUB_LOG=" + b.stubLog,
		"STUB_STATE=" + b.state,
		"SKYKOI_ROOT=" + b.root,
		"SKYKOI_READYZ_URL=" + b.aws.srv.URL + "/readyz",
		"SKYKOI_CONSOLE=" + b.console,
		"SKYKOI_RETRIES=4",
		"SKYKOI_DEVICE_ATTEMPTS=3",
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	b.code = 0 // a second run starts clean
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		b.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running the bootstrap: %v", err)
	}
	b.stdout, b.stderr = out.String(), errb.String()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s\nstub log:\n%s", b.code, b.stdout, b.stderr, strings.Join(b.calls(), "\n"))
		}
	})
}

func (b *bootRun) calls() []string {
	data, _ := os.ReadFile(b.stubLog)
	return strings.Split(strings.TrimSpace(strings.ReplaceAll(string(data), b.root, "$ROOT")), "\n")
}

func (b *bootRun) consoleText() string {
	data, err := os.ReadFile(b.console)
	if err != nil {
		b.t.Fatal(err)
	}
	return string(data)
}

// called reports whether any stub call starts with prefix.
func (b *bootRun) called(prefix string) bool {
	return slices.ContainsFunc(b.calls(), func(c string) bool { return strings.HasPrefix(c, prefix) })
}

// inOrder checks that calls matching each pattern (a prefix, then
// substrings separated by " … ") appear in this order.
func (b *bootRun) inOrder(patterns ...string) {
	b.t.Helper()
	calls := b.calls()
	i := 0
	for _, p := range patterns {
		parts := strings.Split(p, " … ")
		found := false
		for ; i < len(calls); i++ {
			c := calls[i]
			if strings.HasPrefix(c, parts[0]) && allIn(c, parts[1:]) {
				found = true
				i++
				break
			}
		}
		if !found {
			b.t.Fatalf("no call matching %q in order; calls:\n%s", p, strings.Join(calls, "\n"))
		}
	}
}

func allIn(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func (b *bootRun) succeeded() {
	b.t.Helper()
	if b.code != 0 {
		b.t.Fatalf("bootstrap exited %d; console:\n%s", b.code, b.consoleText())
	}
	lines := strings.Split(strings.TrimSpace(b.consoleText()), "\n")
	if lines[len(lines)-1] != "SKYKOI-READY" {
		b.t.Fatalf("the console does not end with SKYKOI-READY:\n%s", b.consoleText())
	}
	if !strings.Contains(b.stdout, "SKYKOI-READY") {
		b.t.Fatal("SKYKOI-READY is not on stdout (cloud-init's console log)")
	}
}

func (b *bootRun) failedAt(step, reason string) {
	b.t.Helper()
	if b.code == 0 {
		b.t.Fatal("the bootstrap succeeded; want a failure")
	}
	want := "SKYKOI-FAILED " + step + ": "
	c := b.consoleText()
	if !strings.Contains(c, want) || !strings.Contains(c, reason) {
		b.t.Fatalf("console does not say %q…%q:\n%s", want, reason, c)
	}
	if !strings.Contains(b.stdout, want) {
		b.t.Fatalf("stdout does not say %q", want)
	}
	if strings.Contains(c, "SKYKOI-READY") {
		b.t.Fatal("SKYKOI-READY after a failure")
	}
	// One report: a failure inside a command substitution must not be
	// reported again by the caller.
	if n := strings.Count(c, "SKYKOI-FAILED"); n != 1 {
		b.t.Fatalf("%d failure reports, want 1:\n%s", n, c)
	}
}

func (b *bootRun) path(rel string) string { return filepath.Join(b.root, rel) }

func (b *bootRun) read(rel string) []byte {
	b.t.Helper()
	data, err := os.ReadFile(b.path(rel))
	if err != nil {
		b.t.Fatal(err)
	}
	return data
}

func (b *bootRun) noSecretsLeaked() {
	b.t.Helper()
	all := b.stdout + b.stderr + b.consoleText() + strings.Join(b.calls(), "\n")
	for _, s := range []string{secretKey, sessionTok, testToken} {
		if strings.Contains(all, s) {
			b.t.Errorf("a secret (%.8s…) reached the logs or a command line", s)
		}
	}
}

// fingerprint is what `openssl x509 -noout -fingerprint -sha256` prints.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

func readCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBootstrapHappyPath(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, nil)
	b.run()
	b.succeeded()
	b.inOrder(
		"blkid -p -o export -- $ROOT/dev/nvme1n1",
		"mkfs.ext4 -q -L skykoi-data $ROOT/dev/nvme1n1",
		"mount -t ext4 -- $ROOT/dev/nvme1n1 $ROOT/data",
		"chown -R ubuntu:ubuntu $ROOT/data/koi $ROOT/data/skykoi",
		"curl … -X PUT … /latest/api/token",
		"curl … /latest/meta-data/public-ipv4",
		"openssl req -x509",
		"openssl x509 -noout -fingerprint -sha256",
		"curl … /latest/meta-data/iam/security-credentials/"+roleName,
		"curl … --aws-sigv4 aws:amz:us-west-2:s3 … /skykoi-artifacts-123456789012/releases/v1.4.0/skykoi-linux-arm64",
		"nginx -t",
		"systemctl daemon-reload",
		"systemctl enable --no-reload nginx.service skykoi-gateway.service skykoi-console.service",
		"systemctl restart nginx.service",
		"systemctl restart skykoi-gateway.service",
		"curl … /readyz",
		"systemctl start --no-block skykoi-console.service",
	)
	if b.called("apt-get") {
		t.Error("apt ran although nginx, curl and openssl are present")
	}
	if b.called("skykoi config merge") {
		t.Error("a first boot merged configs; there was nothing to merge into")
	}
	if len(b.aws.s3Errs) > 0 {
		t.Errorf("S3 rejected the request: %v", b.aws.s3Errs)
	}
	b.noSecretsLeaked()

	// The data volume holds the state; the home directory links to it.
	for link, target := range map[string]string{"home/ubuntu/koi": "data/koi", "home/ubuntu/.skykoi": "data/skykoi"} {
		got, err := os.Readlink(b.path(link))
		if err != nil || got != b.path(target) {
			t.Errorf("%s -> %q (%v), want %s", link, got, err, b.path(target))
		}
	}
	if got := b.read("data/skykoi/skykoi.json"); !bytes.Equal(got, b.parts.Config) {
		t.Error("the provisioned config did not reach the data volume")
	}
	if fi, err := os.Stat(b.path("data/skykoi/skykoi.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode: %v %v", fi.Mode(), err)
	}
	for name, c := range b.parts.Seeds {
		if got := b.read("data/koi/" + name); !bytes.Equal(got, c) {
			t.Errorf("seed %s not copied", name)
		}
	}
	fstab := string(b.read("etc/fstab"))
	if !strings.HasSuffix(fstab, "UUID="+volumeUUID+" /data ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2\n") {
		t.Errorf("fstab:\n%s", fstab)
	}

	// The binary is installed, executable, with the expected bytes.
	if got := b.read("usr/local/bin/skykoi"); !bytes.Equal(got, gatewayBinary) {
		t.Error("installed binary differs")
	}
	if fi, _ := os.Stat(b.path("usr/local/bin/skykoi")); fi.Mode().Perm() != 0o755 {
		t.Errorf("binary mode %v", fi.Mode())
	}

	// nginx: our site enabled, the default gone.
	if got, _ := os.Readlink(b.path("etc/nginx/sites-enabled/skykoi")); got != "/etc/nginx/sites-available/skykoi" {
		t.Errorf("site link -> %q", got)
	}
	if _, err := os.Lstat(b.path("etc/nginx/sites-enabled/default")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the default site is still enabled")
	}

	// The certificate: P-256, for the public address and name, the same
	// on the data volume and where nginx reads it, fingerprint reported.
	crtPEM := b.read("data/tls/skykoi.crt")
	if !bytes.Equal(crtPEM, b.read("etc/skykoi/tls/skykoi.crt")) || !bytes.Equal(b.read("data/tls/skykoi.key"), b.read("etc/skykoi/tls/skykoi.key")) {
		t.Error("nginx's copy of the certificate differs from the data volume's")
	}
	if fi, _ := os.Stat(b.path("etc/skykoi/tls/skykoi.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	crt := readCert(t, crtPEM)
	pub, ok := crt.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", crt.PublicKey)
	}
	if len(crt.IPAddresses) != 1 || crt.IPAddresses[0].String() != publicIPv4 ||
		!slices.Equal(crt.DNSNames, []string{publicDNS}) {
		t.Errorf("SANs: %v %v", crt.IPAddresses, crt.DNSNames)
	}
	if crt.IsCA || !slices.Contains(crt.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("want a server certificate: CA=%v EKU=%v", crt.IsCA, crt.ExtKeyUsage)
	}
	want := "SKYKOI-TLS-SHA256 " + fingerprint(crt.Raw)
	if !strings.Contains(b.consoleText(), want+"\n") || !strings.Contains(b.stdout, want) {
		t.Errorf("console lacks %q:\n%s", want, b.consoleText())
	}

	// Every metadata read used the IMDSv2 session (the fake refuses others),
	// and a token was fetched once.
	var tokens int
	for _, r := range b.aws.log() {
		if r == "PUT /latest/api/token" {
			tokens++
		}
	}
	if tokens != 1 {
		t.Errorf("%d token requests, want 1", tokens)
	}
}

func TestBootstrapChecksumMismatch(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, nil)
	b.aws.binary = []byte("#!/bin/sh\necho tampered\n")
	b.run()
	b.failedAt("binary", "SHA-256 mismatch")
	if _, err := os.Stat(b.path("usr/local/bin/skykoi")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a binary with the wrong SHA-256 was installed")
	}
	if b.called("systemctl") {
		t.Error("services were touched after the checksum failed")
	}
}

func TestBootstrapVolume(t *testing.T) {
	t.Parallel()
	t.Run("blank volume is formatted", func(t *testing.T) {
		t.Parallel()
		b := newBootRun(t, nvme, nil)
		b.run()
		b.succeeded()
		b.inOrder("blkid", "mkfs.ext4 -q -L skykoi-data $ROOT/dev/nvme1n1", "blkid", "mount")
	})
	t.Run("formatted volume is kept", func(t *testing.T) {
		t.Parallel()
		b := newBootRun(t, nvme, nil)
		writeTemp(t, b.state, "formatted", nil, 0o644)
		b.run()
		b.succeeded()
		if b.called("mkfs") {
			t.Fatal("mkfs ran on a volume that has a filesystem")
		}
		b.inOrder("blkid", "mount -t ext4 -- $ROOT/dev/nvme1n1 $ROOT/data")
	})
	t.Run("virtio serial cut to 20 characters", func(t *testing.T) {
		t.Parallel()
		b := newBootRun(t, virtio20, nil)
		b.run()
		b.succeeded()
	})
	t.Run("already mounted", func(t *testing.T) {
		t.Parallel()
		b := newBootRun(t, virtioFull, nil)
		writeTemp(t, b.state, "formatted", nil, 0o644)
		writeTemp(t, b.state, "mounted", nil, 0o644)
		b.run()
		b.succeeded()
		if b.called("mount ") {
			t.Error("mounted twice")
		}
	})
	t.Run("volume never attached", func(t *testing.T) {
		t.Parallel()
		b := newBootRun(t, noDevice, nil)
		b.run()
		b.failedAt("volume", "vol-0a1b2c3d4e5f60718 did not appear")
		if n := strings.Count(strings.Join(b.calls(), "\n"), "udevadm settle"); n != 3 {
			t.Errorf("%d waits for the device, want SKYKOI_DEVICE_ATTEMPTS=3", n)
		}
		if b.called("mkfs") || b.called("mount") {
			t.Error("formatted or mounted without a device")
		}
	})
}

func TestBootstrapKeepsDataVolumeState(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, nil)
	writeTemp(t, b.state, "formatted", nil, 0o644)
	edited := []byte("{gateway: {mode: \"local\"}} // the person's edits\n")
	writeTemp(t, b.root, "data/skykoi/skykoi.json", edited, 0o600)
	writeTemp(t, b.root, "data/skykoi/sessions/main.jsonl", []byte("{}\n"), 0o600)
	myAgents := []byte("# my own AGENTS.md\n")
	writeTemp(t, b.root, "data/koi/AGENTS.md", myAgents, 0o644)
	crtPEM, keyPEM := selfSigned(t)
	writeTemp(t, b.root, "data/tls/skykoi.crt", crtPEM, 0o644)
	writeTemp(t, b.root, "data/tls/skykoi.key", keyPEM, 0o600)

	b.run()
	b.succeeded()
	b.inOrder(
		"chown -R ubuntu:ubuntu",
		"curl … --aws-sigv4",
		"skykoi config merge --from $ROOT/data/skykoi/skykoi.json.provisioned $ROOT/data/skykoi/skykoi.json",
		"systemctl restart skykoi-gateway.service",
	)
	if got := b.read("data/skykoi/skykoi.json"); !bytes.Equal(got, edited) {
		t.Error("the config on the data volume was replaced")
	}
	if got := b.read("data/skykoi/skykoi.json.provisioned"); !bytes.Equal(got, b.parts.Config) {
		t.Error("the provisioned config was not kept beside it")
	}
	if got := b.read("home/ubuntu/.skykoi/sessions/main.jsonl"); string(got) != "{}\n" {
		t.Error("existing state is not reachable through the home directory")
	}
	if got := b.read("data/koi/AGENTS.md"); !bytes.Equal(got, myAgents) {
		t.Error("a seed file overwrote the person's own")
	}
	if got := b.read("data/koi/SOUL.md"); !bytes.Equal(got, b.parts.Seeds["SOUL.md"]) {
		t.Error("missing seed files were not added")
	}
	if got := b.read("data/tls/skykoi.crt"); !bytes.Equal(got, crtPEM) {
		t.Error("the certificate on the data volume was replaced")
	}
	if got := b.read("etc/skykoi/tls/skykoi.crt"); !bytes.Equal(got, crtPEM) {
		t.Error("nginx does not get the kept certificate")
	}
	if want := "SKYKOI-TLS-SHA256 " + fingerprint(readCert(t, crtPEM).Raw); !strings.Contains(b.consoleText(), want) {
		t.Errorf("console lacks the kept certificate's %q", want)
	}
	for _, r := range b.aws.log() {
		if strings.Contains(r, "public-ipv4") || strings.Contains(r, "public-hostname") {
			t.Errorf("asked for %s although the certificate exists", r)
		}
	}
	if b.called("mkfs") {
		t.Error("mkfs ran")
	}
}

// TestBootstrapMergesProvisionedConfig replaces an instance after `pulumi up`
// changed the token and the idle stop: the real binary merges them into the
// config kept on the data volume, and the person's edit survives.
func TestBootstrapMergesProvisionedConfig(t *testing.T) {
	t.Parallel()
	bin := buildSkykoi(t)
	real, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	earlier := realistic().ConfigOptions
	earlier.TokenSha256 = configgen.HashSecret("the token before rotation 0123456789abcdef")
	earlier.IdleStopMinutes = 0
	first, err := configgen.Generate(earlier)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(first, []byte(`"level": "info"`), []byte(`"level": "debug" // chatty, on purpose`), 1)
	invalid := bytes.Replace(first, []byte(`"level": "info"`), []byte(`"level": "loud"`), 1)

	for _, tc := range []struct {
		name string
		kept []byte
	}{{"merged", edited}, {"invalid kept config", invalid}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBootRun(t, virtioFull, func(o *cloudinit.Options, _ string) { o.BinarySHA256 = sha256Hex(real) })
			b.aws.binary = real
			writeTemp(t, b.state, "formatted", nil, 0o644)
			writeTemp(t, b.root, "data/skykoi/skykoi.json", tc.kept, 0o600)
			b.run()
			kept := b.path("data/skykoi/skykoi.json")
			if bytes.Equal(tc.kept, invalid) {
				b.failedAt("config", "the config on the data volume cannot take the provisioned values")
				if !strings.Contains(b.stderr, `logging.level: must be one of debug, info, warn, error; got "loud"`) {
					t.Errorf("the problem is not in the bootstrap's output:\n%s", b.stderr)
				}
				if b.called("systemctl restart skykoi-gateway") {
					t.Error("the gateway was started on the unmerged config")
				}
				if got := b.read("data/skykoi/skykoi.json"); !bytes.Equal(got, invalid) {
					t.Error("the kept config changed although the merge failed")
				}
				// The recovery deploy.md gives: fix the file, merge by
				// hand, run the bootstrap again to finish the boot.
				writeTemp(t, b.root, "data/skykoi/skykoi.json", edited, 0o600)
				if out, err := exec.Command(bin, "config", "merge", "--from", kept+".provisioned", kept).CombinedOutput(); err != nil {
					t.Fatalf("merging by hand: %v\n%s", err, out)
				}
				b.run()
				b.succeeded()
				if cfg, err := configgen.Load(kept); err != nil || cfg.Logging.Level != "debug" || cfg.Gateway.Idle.StopAfterMinutes != 120 {
					t.Errorf("after the recovery: %+v %v", cfg.Gateway.Idle, err)
				}
				return
			}
			b.succeeded()
			cfg, err := configgen.Load(kept)
			if err != nil {
				t.Fatalf("merged config: %v", err)
			}
			if want := realistic().ConfigOptions.TokenSha256; cfg.Gateway.Auth.TokenSha256 != want {
				t.Errorf("tokenSha256 %s, want the provisioned %s", cfg.Gateway.Auth.TokenSha256, want)
			}
			if cfg.Gateway.Idle.StopAfterMinutes != 120 {
				t.Errorf("idle stop %d, want the provisioned 120", cfg.Gateway.Idle.StopAfterMinutes)
			}
			if cfg.Logging.Level != "debug" {
				t.Errorf("logging.level %q: the person's edit was undone", cfg.Logging.Level)
			}
			if got := b.read("data/skykoi/skykoi.json.before-merge"); !bytes.Equal(got, edited) {
				t.Error("the file before the merge was not kept")
			}
			if !strings.Contains(b.stdout+b.stderr, "took gateway.auth.tokenSha256, gateway.idle.stopAfterMinutes from") {
				t.Errorf("the bootstrap's output does not say what the merge took:\n%s%s", b.stdout, b.stderr)
			}
		})
	}
}

func selfSigned(t *testing.T) (crtPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "an earlier instance"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("198.51.100.9")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestBootstrapEnablesOnlyWhatIsNot: the nginx package has enabled its unit;
// the bootstrap enables just its own.
func TestBootstrapEnablesOnlyWhatIsNot(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, nil)
	writeTemp(t, b.state, "enabled-nginx.service", nil, 0o644)
	b.run()
	b.succeeded()
	var enables []string
	for _, c := range b.calls() {
		if strings.HasPrefix(c, "systemctl enable") {
			enables = append(enables, c)
		}
	}
	if want := []string{"systemctl enable --no-reload skykoi-gateway.service skykoi-console.service skykoi-update.path"}; !slices.Equal(enables, want) {
		t.Errorf("enable calls %q, want %q", enables, want)
	}
}

func TestBootstrapPackages(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, nil)
	if err := os.Remove(b.path("usr/sbin/nginx")); err != nil {
		t.Fatal(err)
	}
	b.run()
	b.succeeded()
	b.inOrder(
		"apt-get -o DPkg::Lock::Timeout=300 -qq update",
		"apt-get -o DPkg::Lock::Timeout=300 -qq -y --no-install-recommends install nginx",
		"blkid",
	)
	for _, c := range b.calls() {
		if strings.HasPrefix(c, "apt-get") && (strings.Contains(c, "curl") || strings.Contains(c, "openssl")) {
			t.Errorf("installed a package that is present: %s", c)
		}
	}
}

func TestBootstrapPrivateSubnet(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, nil)
	b.aws.noPublic = true
	b.run()
	b.succeeded()
	crt := readCert(t, b.read("data/tls/skykoi.crt"))
	if len(crt.IPAddresses) != 1 || crt.IPAddresses[0].String() != localIPv4 || len(crt.DNSNames) != 0 {
		t.Errorf("SANs: %v %v, want only %s", crt.IPAddresses, crt.DNSNames, localIPv4)
	}
}

func TestBootstrapArtifactURL(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, func(o *cloudinit.Options, fakeURL string) {
		o.Artifact = cloudinit.Artifact{URL: fakeURL + "/releases/skykoi-linux-arm64"}
	})
	url := b.opts.Artifact.URL
	b.run()
	b.succeeded()
	b.inOrder("curl -fsSL … "+url, "systemctl restart skykoi-gateway.service")
	for _, r := range b.aws.log() {
		if strings.Contains(r, "security-credentials") {
			t.Error("fetched role credentials for a plain URL")
		}
	}
}

func TestBootstrapRetries(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, nil)
	b.aws.tokenFailures = 2
	b.aws.readyAfter = 2
	b.run()
	b.succeeded()
	// Two failed token requests: backoff 1 s then 2 s. The gateway not yet
	// ready twice: the same again.
	b.inOrder("curl … /latest/api/token", "sleep 1", "curl … /latest/api/token", "sleep 2", "curl … /latest/api/token",
		"curl … /readyz", "sleep 1", "curl … /readyz", "sleep 2", "curl … /readyz")
}

func TestBootstrapFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, step, reason string
		setup              func(*bootRun)
	}{
		{"gateway never ready", "ready", "did not become ready", func(b *bootRun) { b.aws.neverReady = true }},
		{"metadata down", "tls", "no metadata token", func(b *bootRun) { b.aws.tokenFailures = 100 }},
		{"gateway fails to start", "services", "the gateway did not start", func(b *bootRun) {
			writeTemp(b.t, b.state, "fail-skykoi-gateway.service", nil, 0o644)
		}},
		{"nginx config rejected", "services", "nginx rejected its configuration", func(b *bootRun) {
			writeTemp(b.t, b.state, "fail-nginx", nil, 0o644)
		}},
		{"config missing", "state", "no config", func(b *bootRun) {
			if err := os.Remove(b.path("home/ubuntu/.skykoi/skykoi.json")); err != nil {
				b.t.Fatal(err)
			}
		}},
		// A command with no failure message of its own still names the step.
		{"mkfs fails", "volume", "'mkfs.ext4 -q -L skykoi-data \"$DEVICE\"' exited with status 1", func(b *bootRun) {
			writeTemp(b.t, b.state, "fail-mkfs", nil, 0o644)
		}},
		{"partitioned volume", "volume", "refusing to format", func(b *bootRun) {
			writeTemp(b.t, b.state, "pttype", nil, 0o644)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBootRun(t, virtioFull, nil)
			tt.setup(b)
			b.run()
			b.failedAt(tt.step, tt.reason)
			if tt.step != "ready" && tt.step != "services" && b.called("systemctl") {
				t.Error("services were touched after an earlier step failed")
			}
			if strings.Contains(tt.reason, "refusing") && b.called("mkfs") {
				t.Error("formatted a volume it should have refused")
			}
		})
	}
}

// TestBootstrapAnnounce runs the console unit's mode: at a later boot it
// announces from what the first boot left, and touches nothing else.
func TestBootstrapAnnounce(t *testing.T) {
	t.Parallel()
	// A root as the first boot left it: the certificate where nginx reads it.
	announceRun := func(t *testing.T) (*bootRun, []byte) {
		b := newBootRun(t, virtioFull, nil)
		b.args = []string{"announce"}
		crtPEM, keyPEM := selfSigned(t)
		writeTemp(t, b.root, "etc/skykoi/tls/skykoi.crt", crtPEM, 0o644)
		writeTemp(t, b.root, "etc/skykoi/tls/skykoi.key", keyPEM, 0o600)
		return b, crtPEM
	}

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		b, crtPEM := announceRun(t)
		b.run()
		if b.code != 0 {
			t.Fatalf("announce exited %d; console:\n%s", b.code, b.consoleText())
		}
		want := []string{
			"SKYKOI-TLS-SHA256 " + fingerprint(readCert(t, crtPEM).Raw),
			"SKYKOI-READY",
			"SKYKOI-CLOUD-INIT status: done",
			"SKYKOI-CLOUD-INIT detail:",
			"SKYKOI-CLOUD-INIT DataSourceEc2Local",
			"SKYKOI-CLOUD-INIT exit 0",
		}
		lines := strings.Split(strings.TrimSpace(b.consoleText()), "\n")
		for _, w := range want {
			if !slices.Contains(lines, w) {
				t.Errorf("console lacks %q:\n%s", w, b.consoleText())
			}
		}
		if slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "...") }) >= 0 {
			t.Errorf("cloud-init's progress dots reached the console:\n%s", b.consoleText())
		}
		if i, j := slices.Index(lines, "SKYKOI-READY"), slices.Index(lines, "SKYKOI-CLOUD-INIT exit 0"); i > j {
			t.Error("cloud-init's status came before the readiness")
		}
		b.inOrder("openssl x509 -noout -fingerprint -sha256", "curl … /readyz", "cloud-init status --wait --long")
		for _, c := range []string{"mkfs", "mount", "blkid", "systemctl", "apt-get", "chown"} {
			if b.called(c) {
				t.Errorf("announce ran %s; it must only report", c)
			}
		}
		if got := b.aws.log(); slices.ContainsFunc(got, func(r string) bool { return strings.Contains(r, "/latest/") }) {
			t.Errorf("announce asked the metadata service: %v", got)
		}
	})

	t.Run("cloud-init failed", func(t *testing.T) {
		t.Parallel()
		b, _ := announceRun(t)
		writeTemp(t, b.state, "cloud-init-error", nil, 0o644)
		b.run()
		if b.code != 0 {
			t.Fatalf("announce exited %d; a cloud-init error is reported, not a failure of the Koi", b.code)
		}
		c := b.consoleText()
		for _, w := range []string{"SKYKOI-READY\n", "SKYKOI-CLOUD-INIT status: error\n", "SKYKOI-CLOUD-INIT exit 1\n"} {
			if !strings.Contains(c, w) {
				t.Errorf("console lacks %q:\n%s", w, c)
			}
		}
	})

	t.Run("gateway not ready", func(t *testing.T) {
		t.Parallel()
		b, _ := announceRun(t)
		b.aws.neverReady = true
		b.run()
		b.failedAt("ready", "did not become ready")
		if b.called("cloud-init") {
			t.Error("reported cloud-init after a failure")
		}
	})

	t.Run("no certificate", func(t *testing.T) {
		t.Parallel()
		b, _ := announceRun(t)
		if err := os.Remove(b.path("etc/skykoi/tls/skykoi.crt")); err != nil {
			t.Fatal(err)
		}
		b.run()
		b.failedAt("tls", "cannot read the TLS certificate")
	})

	t.Run("unknown mode", func(t *testing.T) {
		t.Parallel()
		b, _ := announceRun(t)
		b.args = []string{"announec"}
		b.run()
		if b.code != 2 || !strings.Contains(b.stderr, "usage") {
			t.Fatalf("exit %d, stderr %q; want usage and 2", b.code, b.stderr)
		}
		if b.consoleText() != "" {
			t.Errorf("a usage error reached the console: %q", b.consoleText())
		}
	})
}

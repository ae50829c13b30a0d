package vmtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/koi"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
	"github.com/skykoi/skykoi/internal/testwait"
)

// Addresses of the fakes as the guest sees them. The metadata service is
// where it is on EC2; S3 and Bedrock are render options, set to these.
const (
	s3GuestAddr      = "169.254.169.10:80"
	bedrockGuestAddr = "169.254.169.11:80"
)

// The Koi under test.
const (
	region   = "us-west-2"
	volumeID = "vol-0a1b2c3d4e5f60718" // 21 characters: virtio cuts the serial to 20
	hostname = "koi-vmtest"
	bucket   = "skykoi-artifacts-123456789012"
	artifact = "releases/vmtest/skykoi-linux-amd64"
	roleName = "skykoi-koi-vmtest"
	mainKey  = "main"
	dataSize = 1 << 30
	// TCG boots take 40-60 s on a quiet machine and nearly 4 minutes under
	// stress --cpu 4 on 2 cores; a hung one must still end.
	bootLimit = 10 * time.Minute
	stopLimit = 3 * time.Minute
	turnLimit = 5 * time.Minute
)

// Marks the test's own exec commands write on the serial console.
const (
	journalBegin = "SKYKOI-VMTEST-JOURNAL-BEGIN"
	journalEnd   = "SKYKOI-VMTEST-JOURNAL-END"
)

// harness is everything one run of the test shares: the image, the
// gateway binary, the fakes and the data volume that outlives instances.
type harness struct {
	t       *testing.T
	dir     string
	image   Image
	imds    *IMDS
	s3      *ec2test.Server
	bedrock *bedrocktest.Server
	creds   Credentials
	token   string
	opts    cloudinit.Options
	data    string

	mu   sync.Mutex
	cmds map[string]string // user message → the exec command the fake model runs
}

// bootedVM is one boot of one instance.
type bootedVM struct {
	*VM
	name string
	cfg  Config
	port int
}

// TestVMKoi is one Koi's life on real machinery: its first boot from the
// user-data the metadata service hands cloud-init, an agent turn whose exec
// runs in the guest, the person's config edit, a stop and start, the
// instance replaced by another on the same data volume, and a config the
// gateway refuses. Each step needs the ones before it.
func TestVMKoi(t *testing.T) {
	if os.Getenv("SKYKOI_VMTEST") == "" {
		t.Skip("boots real VMs for minutes: run `make vmtest` (or SKYKOI_VMTEST=1 go test ./vmtest)")
	}
	// The whole test follows its -timeout (make vmtest gives it 45 minutes),
	// so a loaded machine slows it down instead of failing it.
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Patience(t))
	defer cancel()
	h := newHarness(ctx, t)

	instA := h.instance(h.token, "i-0a1b2c3d4e5f60001", "0a:58:4b:01:00:01", "10.0.1.23", "203.0.113.10")
	// The replacement comes from a `pulumi up` that rotated the gateway
	// token: its user-data differs in the token's digest, which the
	// bootstrap must take into the config kept on the data volume.
	oldToken, newToken := h.token, randomHex(24)
	instB := h.instance(newToken, "i-0a1b2c3d4e5f60002", "0a:58:4b:01:00:02", "10.0.1.57", "203.0.113.20")
	rootA := filepath.Join(h.dir, "root-"+instA.ID+".qcow2")
	rootB := filepath.Join(h.dir, "root-"+instB.ID+".qcow2")
	var fingerprint string

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("first boot", func(t *testing.T) {
		h.imds.SetInstance(instA)
		if err := NewOverlay(ctx, h.image, rootA); err != nil {
			t.Fatal(err)
		}
		vm := h.boot(t, "a1", instA, rootA)
		fingerprint = h.waitReady(ctx, t, vm)
		h.bootstrapRan(t, vm, true)
		h.cloudInitDone(ctx, t, vm)
		h.checkUserDataFetched(t, instA.ID)

		c := h.dial(ctx, t, vm, fingerprint)
		out := h.turn(ctx, t, c, "vmtest: who runs the agent, and where?", "id -un; hostname")
		for _, want := range []string{"ubuntu", hostname} {
			if !strings.Contains(out, want) {
				t.Errorf("the exec tool's result %q lacks %q: the command did not run in the VM as ubuntu", out, want)
			}
		}
		if os.Getenv("SKYKOI_VMTEST_DIAG") != "" {
			// Where the boot's time went, as docs/PERFORMANCE.md reports it.
			out := h.turn(ctx, t, c, "vmtest: where did the boot's time go?",
				"systemd-analyze time; systemd-analyze critical-chain cloud-final.service; "+
					"sudo cloud-init analyze show; sudo cloud-init analyze blame | head -20")
			t.Logf("boot timing in the guest:\n%s", out)
		}
		h.editConfig(ctx, t, c)
		c.Close()
		h.checkArtifactFetches(t, 1)
		h.stop(t, vm)
	})

	step("stop and start", func(t *testing.T) {
		// The same root disk and instance: cloud-init runs nothing, so the
		// announcements come from the per-boot console unit alone.
		vm := h.boot(t, "a2", instA, rootA)
		if got := h.waitReady(ctx, t, vm); got != fingerprint {
			t.Errorf("fingerprint after a stop and start: %s, want %s", got, fingerprint)
		}
		h.bootstrapRan(t, vm, false)
		// cloud-init's verdict is checked on the two boots where it does
		// the work; here it would only add the half minute its stages take
		// under TCG after the Koi is ready.
		h.stop(t, vm)
	})

	var vmB *bootedVM
	step("replaced instance", func(t *testing.T) {
		// A new instance: new id, address and root disk; the same data
		// volume, whose config, sessions and certificate must win.
		h.imds.SetInstance(instB)
		if err := NewOverlay(ctx, h.image, rootB); err != nil {
			t.Fatal(err)
		}
		vmB = h.boot(t, "b1", instB, rootB)
		if got := h.waitReady(ctx, t, vmB); got != fingerprint {
			t.Fatalf("the replacement's fingerprint is %s, want the first instance's %s", got, fingerprint)
		}
		h.bootstrapRan(t, vmB, true)
		h.cloudInitDone(ctx, t, vmB)
		h.checkArtifactFetches(t, 2)
		h.checkUserDataFetched(t, instB.ID)

		// Pinned to the first instance's fingerprint; any other is refused.
		h.refusesOtherFingerprint(ctx, t, vmB, fingerprint)
		// The rotated token is the one the Koi takes now.
		h.refusesToken(ctx, t, vmB, fingerprint, oldToken)
		h.token = newToken
		c := h.dial(ctx, t, vmB, fingerprint)
		defer c.Close()
		h.checkHistory(ctx, t, c)
		h.checkConfigKept(ctx, t, c)
		out := h.turn(ctx, t, c, "vmtest: what is on the data volume?",
			"findmnt -n -o SOURCE /data; readlink -f ~/.skykoi ~/koi; ls ~/.skykoi; systemctl is-enabled skykoi-console.service")
		for _, want := range []string{"/dev/vdb", "/data/skykoi", "/data/koi", "skykoi.json.provisioned", "skykoi.json.before-merge", "sessions", "enabled"} {
			if !strings.Contains(out, want) {
				t.Errorf("the data volume check %q lacks %q", out, want)
			}
		}

		// The user-data as this instance received it passes the guest's own
		// schema check, and the guest reaches nothing but the forwards: not
		// the host behind qemu's gateway address (where the metadata fake
		// listens on loopback), not the internet.
		_, imdsPort, _ := strings.Cut(h.imds.Addr(), ":")
		out = h.turn(ctx, t, c, "vmtest: check the user-data and the network",
			"sudo cloud-init schema --system; "+
				"for u in http://"+guestHost+":"+imdsPort+"/latest/api/token http://1.1.1.1/; do "+
				`if curl -s -m 3 -o /dev/null "$u"; then echo "reached $u"; else echo "isolated from $u"; fi; done`)
		if !strings.Contains(out, "Valid cloud-config: system userdata") {
			t.Errorf("cloud-init schema --system in the guest: %q", out)
		}
		if strings.Contains(out, "reached") || strings.Count(out, "isolated from") != 2 {
			t.Errorf("the guest reached beyond the forwards: %q", out)
		}
	})

	step("invalid config", func(t *testing.T) {
		c := h.dial(ctx, t, vmB, fingerprint)
		defer c.Close()
		// The agent breaks its own config and has the unit restarted. The
		// restart runs in a transient unit of its own: the gateway's stop
		// would kill a command in its own cgroup. After it, the unit's state
		// and journal go to the serial console, since the gateway that could
		// report them is down.
		restart := "sleep 3; systemctl restart " + cloudinit.UnitName + "; sleep 12; " +
			"{ echo " + journalBegin + "; systemctl show -p ActiveState -p Result -p ExecMainStatus -p NRestarts " + cloudinit.UnitName + "; " +
			"journalctl -u " + cloudinit.UnitName + " -b --no-pager -n 40; echo " + journalEnd + "; } >/dev/ttyS0 2>&1"
		cmd := `sed -i 's/"level": "debug"/"level": "loud"/' ~/.skykoi/skykoi.json && grep -c '"loud"' ~/.skykoi/skykoi.json && ` +
			`sudo systemd-run --unit=skykoi-vmtest-restart --collect --no-block /bin/sh -c '` + restart + `' && echo restart scheduled`
		if out := h.turn(ctx, t, c, "vmtest: break the config", cmd); !strings.Contains(out, "restart scheduled") {
			t.Fatalf("the exec tool did not schedule the restart: %q", out)
		}
		// The transient unit reports after 3 + 12 s; the 12 s are four times
		// the unit's RestartSec, so a restart loop would show.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		var journal string
		err := vmB.WaitSerial(wctx, func(s string) (bool, error) {
			var ok bool
			journal, ok = between(s, journalBegin, journalEnd)
			return ok, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the unit after the restart, from the serial console:\n%s", journal)
		for _, want := range []string{
			"ActiveState=failed", "Result=exit-code", "ExecMainStatus=78", "NRestarts=0",
			"status=78/CONFIG", // systemd's line
			"logging.level",    // the gateway's own reason
		} {
			if !strings.Contains(journal, want) {
				t.Errorf("the journal on the serial console lacks %q", want)
			}
		}
		// No restart loop: one failed start after the restart, not several.
		if n := strings.Count(journal, "status=78/CONFIG"); n != 1 {
			t.Errorf("the gateway exited %d times with 78, want once", n)
		}
		h.stop(t, vmB)
	})
}

// between returns the lines between a line that is begin and the next
// one that is end. Whole lines only: the journal quotes the command that
// printed them.
func between(serial, begin, end string) (string, bool) {
	var out []string
	in := false
	for _, line := range strings.Split(serial, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == begin:
			in, out = true, nil
		case line == end && in:
			return strings.Join(out, "\n"), true
		case in:
			out = append(out, line)
		}
	}
	return "", false
}

func newHarness(ctx context.Context, t *testing.T) *harness {
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "socat", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Fatalf("%s is not installed: run `make deps`", tool)
			}
		}
	}
	h := &harness{t: t, dir: t.TempDir(), cmds: map[string]string{}}
	h.creds = Credentials{
		AccessKeyID:     "ASIAVMTEST" + strings.ToUpper(randomHex(5)),
		SecretAccessKey: base64.StdEncoding.EncodeToString(randomBytes(30)),
		Token:           base64.StdEncoding.EncodeToString(randomBytes(96)),
	}
	h.token = randomHex(24)

	// The image and the binary are independent and each takes a while.
	var wg sync.WaitGroup
	var imgErr, binErr error
	var binary []byte
	start := time.Now()
	wg.Add(2)
	go func() {
		defer wg.Done()
		h.image, imgErr = BuildImage(ctx, filepath.Join("..", "scripts", "vm", "build-image.sh"), os.Stderr)
	}()
	go func() {
		defer wg.Done()
		binary, binErr = buildGateway(ctx, h.dir)
	}()
	wg.Wait()
	if imgErr != nil || binErr != nil {
		t.Fatal(errors.Join(imgErr, binErr))
	}
	t.Logf("image %s and gateway binary (%d MB) ready in %s", h.image.Dir, len(binary)>>20, time.Since(start).Round(time.Second))

	h.imds = NewIMDS(Instance{})
	h.s3 = newS3(region, h.creds)
	h.bedrock = bedrocktest.NewServer()
	t.Cleanup(func() {
		// After every VM is gone (cleanups run last-registered first).
		h.imds.Close()
		h.s3.Close()
		h.bedrock.Close()
	})
	h.s3.Put(bucket, artifact, binary)
	h.bedrock.Handle(h.model)

	sum := sha256.Sum256(binary)
	h.opts = cloudinit.Options{
		ConfigOptions: configgen.Options{
			TokenSha256: configgen.HashSecret(h.token),
			Region:      region,
			Endpoint:    "http://" + strings.TrimSuffix(bedrockGuestAddr, ":80"),
		},
		DataVolumeID: volumeID,
		Artifact: cloudinit.Artifact{
			S3Bucket:   bucket,
			S3Key:      artifact,
			Region:     region,
			S3Endpoint: "http://" + strings.TrimSuffix(s3GuestAddr, ":80"),
		},
		BinarySHA256: hex.EncodeToString(sum[:]),
		Hostname:     hostname,
	}
	if p, err := cloudinit.RenderParts(h.opts); err == nil {
		ud, _ := cloudinit.Render(h.opts)
		t.Logf("user-data: %d bytes sent (%d as cloud-config; gzipped: %v)", len(ud), len(p.CloudConfig), len(ud) < len(p.CloudConfig))
	}
	h.data = filepath.Join(h.dir, volumeID+".img")
	if err := NewBlankDisk(h.data, dataSize); err != nil {
		t.Fatal(err)
	}
	return h
}

// buildGateway cross-compiles the binary a Koi runs.
func buildGateway(ctx context.Context, dir string) ([]byte, error) {
	out := filepath.Join(dir, "skykoi")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "github.com/skykoi/skykoi/cmd/skykoi")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the gateway: %w\n%s", err, b)
	}
	return os.ReadFile(out)
}

// instance renders the user-data for an instance, as the Pulumi program
// would: the same options but for the gateway token.
func (h *harness) instance(token, id, mac, localIP, publicIP string) Instance {
	o := h.opts
	o.ConfigOptions.TokenSha256 = configgen.HashSecret(token)
	ud, err := cloudinit.Render(o)
	if err != nil {
		h.t.Fatal(err)
	}
	return Instance{
		ID: id, Region: region, AvailabilityZone: region + "a", Type: "t3.medium",
		ImageID: "ami-0a1b2c3d4e5f60718", MAC: mac, LocalIPv4: localIP, PublicIPv4: publicIP,
		Role: roleName, Creds: h.creds, UserData: ud,
	}
}

// boot starts one boot of an instance with the data volume attached.
func (h *harness) boot(t *testing.T, name string, inst Instance, root string) *bootedVM {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Image:    h.image,
		Root:     root,
		Data:     h.data,
		VolumeID: volumeID,
		// The SMBIOS UUID EC2 gives an instance starts with "ec2"; the
		// instance id's digits make it this instance's.
		UUID:         "ec2" + inst.ID[len(inst.ID)-5:] + "-3d4e-5f60-7182-93a4b5c6d7e8",
		InstanceType: inst.Type,
		MAC:          inst.MAC,
		HostPort:     port,
		Forwards: []Forward{
			{Guest: MetadataAddr, Host: h.imds.Addr()},
			{Guest: s3GuestAddr, Host: h.s3.Addr()},
			{Guest: bedrockGuestAddr, Host: strings.TrimPrefix(h.bedrock.URL(), "http://")},
		},
		Serial: filepath.Join(h.dir, "serial-"+name+".log"),
		QMP:    filepath.Join(h.dir, "qmp-"+name+".sock"),
	}
	v, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootedVM{VM: v, name: name, cfg: cfg, port: port}
	t.Logf("booting %s (%s, qemu pid %d, https on 127.0.0.1:%d)", name, inst.ID, v.PID(), port)
	// On the whole test, not the step: a VM may outlive the step that
	// booted it. Registered first, so it runs after the kill below: the
	// disk is then quiet enough to read cloud-init's log from.
	h.t.Cleanup(func() {
		if h.t.Failed() {
			h.diagnose(b)
		}
		if dir := os.Getenv("SKYKOI_VMTEST_LOGS"); dir != "" {
			keepSerial(h.t, b, dir)
		}
	})
	h.t.Cleanup(v.Kill)
	return b
}

// waitReady waits for the console's announcements and returns the
// fingerprint.
func (h *harness) waitReady(ctx context.Context, t *testing.T, vm *bootedVM) string {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, bootLimit)
	defer cancel()
	var fp string
	err := vm.WaitSerial(ctx, func(s string) (bool, error) {
		f, ready, failed := koi.ParseConsole(s)
		if failed != "" {
			return false, fmt.Errorf("the Koi reported SKYKOI-FAILED %s", failed)
		}
		fp = f
		return ready && f != "", nil
	})
	if err != nil {
		t.Fatalf("%s: %v", vm.name, err)
	}
	t.Logf("%s: SKYKOI-READY %s after boot start; fingerprint %s", vm.name, time.Since(start).Round(time.Second), fp)
	return fp
}

// bootstrapRan checks whether this boot ran the first-boot script: once
// per instance, never on a stop and start.
func (h *harness) bootstrapRan(t *testing.T, vm *bootedVM, want bool) {
	if got := strings.Contains(vm.Serial(), "skykoi-bootstrap: step volume"); got != want {
		t.Errorf("%s: the bootstrap ran: %v, want %v", vm.name, got, want)
	}
}

// cloudInitDone waits for the console unit's report of `cloud-init status
// --long` and checks cloud-init finished without errors.
func (h *harness) cloudInitDone(ctx context.Context, t *testing.T, vm *bootedVM) {
	ctx, cancel := context.WithTimeout(ctx, bootLimit)
	defer cancel()
	exitRe := regexp.MustCompile(`SKYKOI-CLOUD-INIT exit (\d+)`)
	var exit string
	err := vm.WaitSerial(ctx, func(s string) (bool, error) {
		m := exitRe.FindStringSubmatch(s)
		if m == nil {
			return false, nil
		}
		exit = m[1]
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s: no cloud-init status on the console: %v", vm.name, err)
	}
	var status []string
	for _, line := range strings.Split(vm.Serial(), "\n") {
		if i := strings.Index(line, "SKYKOI-CLOUD-INIT "); i >= 0 {
			status = append(status, strings.TrimSpace(line[i+len("SKYKOI-CLOUD-INIT "):]))
		}
	}
	t.Logf("%s: cloud-init status --long:\n  %s", vm.name, strings.Join(status, "\n  "))
	if exit != "0" || !containsLine(status, "status: done") {
		t.Errorf("%s: cloud-init did not finish cleanly (exit %s)", vm.name, exit)
	}
	for _, line := range status {
		if strings.Contains(strings.ToLower(line), "error") && line != "errors: []" {
			t.Errorf("%s: cloud-init reports %q", vm.name, line)
		}
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// dial connects over wss:// through the host forward, trusting nothing
// but the pinned fingerprint.
func (h *harness) dial(ctx context.Context, t *testing.T, vm *bootedVM, fp string) *client.Client {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{
		URL:                  fmt.Sprintf("wss://127.0.0.1:%d/", vm.port),
		Token:                h.token,
		TLSFingerprintSHA256: fp,
		Scopes:               []string{protocol.ScopeAdmin},
		Caps:                 []string{protocol.CapToolEvents},
		Client:               protocol.Client{ID: "skykoi-vmtest"},
	})
	if err != nil {
		t.Fatalf("%s: connecting over wss with the pinned fingerprint: %v", vm.name, err)
	}
	return c
}

// model is the fake Bedrock's script: a user message the test sent gets
// one exec call of the command registered for it; the tool's result gets a
// short answer quoting it.
func (h *harness) model(req bedrocktest.Request) bedrocktest.Reply {
	if len(req.Messages) == 0 {
		return bedrocktest.Reply{bedrocktest.Text("no messages")}
	}
	last := req.Messages[len(req.Messages)-1]
	for _, b := range last.Content {
		if b.ToolResult != nil {
			return bedrocktest.Reply{bedrocktest.Text("Done: " + toolResultText(*b.ToolResult))}
		}
	}
	for _, b := range last.Content {
		if b.Text == nil {
			continue
		}
		// The gateway may wrap the person's text (a time stamp, say).
		h.mu.Lock()
		var cmd string
		for msg, c := range h.cmds {
			if strings.Contains(*b.Text, msg) {
				cmd = c
			}
		}
		h.mu.Unlock()
		if cmd != "" {
			input, _ := json.Marshal(map[string]any{"command": cmd, "timeoutSec": 60})
			return bedrocktest.Reply{
				bedrocktest.Text("Running it."),
				bedrocktest.ToolUse("tool-"+randomHex(4), "exec", string(input)),
				bedrocktest.Stop("tool_use"),
			}
		}
	}
	return bedrocktest.Reply{bedrocktest.Text("unscripted")}
}

func toolResultText(r bedrocktest.ToolResultBlock) string {
	var parts []string
	for _, c := range r.Content {
		switch {
		case c.Text != nil:
			parts = append(parts, *c.Text)
		case c.JSON != nil:
			parts = append(parts, string(c.JSON))
		}
	}
	return strings.Join(parts, "\n")
}

// turn runs one agent turn whose model calls exec with cmd, and returns
// the tool result the gateway sent back to the model.
func (h *harness) turn(ctx context.Context, t *testing.T, c *client.Client, message, cmd string) string {
	h.mu.Lock()
	h.cmds[message] = cmd
	h.mu.Unlock()
	before := len(h.bedrock.Requests())
	ctx, cancel := context.WithTimeout(ctx, turnLimit)
	defer cancel()
	var ack, final struct {
		RunID  string `json:"runId"`
		Status string `json:"status"`
	}
	err := c.RequestFinal(ctx, "agent", map[string]any{
		"message": message, "sessionKey": mainKey, "idempotencyKey": "vmtest-" + randomHex(8),
	}, &ack, &final)
	if err != nil || final.Status != "ok" {
		t.Fatalf("agent turn %q: %v (status %q)", message, err, final.Status)
	}
	// The model's second request carries what exec printed.
	reqs := h.bedrock.Requests()[before:]
	if len(reqs) != 2 {
		t.Fatalf("agent turn %q: %d model requests, want 2 (tool call, then its result)", message, len(reqs))
	}
	msgs := reqs[1].Messages
	for _, b := range msgs[len(msgs)-1].Content {
		if b.ToolResult != nil {
			out := toolResultText(*b.ToolResult)
			t.Logf("exec %q → %q", cmd, out)
			return out
		}
	}
	t.Fatalf("agent turn %q: the model's second request has no tool result", message)
	return ""
}

// refusesOtherFingerprint checks the pin is what admits the connection:
// the same gateway with any other fingerprint is refused at TLS.
func (h *harness) refusesOtherFingerprint(ctx context.Context, t *testing.T, vm *bootedVM, fp string) {
	b, err := client.ParseFingerprint(fp)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{
		URL:                  fmt.Sprintf("wss://127.0.0.1:%d/", vm.port),
		Token:                h.token,
		TLSFingerprintSHA256: client.FormatFingerprint(b),
	})
	var fe *client.FingerprintError
	if !errors.As(err, &fe) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("%s: a wrong fingerprint was not refused: %v", vm.name, err)
	}
}

// refusesToken checks the Koi turns a token away.
func (h *harness) refusesToken(ctx context.Context, t *testing.T, vm *bootedVM, fp, token string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{
		URL:                  fmt.Sprintf("wss://127.0.0.1:%d/", vm.port),
		Token:                token,
		TLSFingerprintSHA256: fp,
	})
	var pe *protocol.Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, "gateway token mismatch") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("%s: the token from before the rotation was not refused as unauthorized: %v", vm.name, err)
	}
}

// configGet returns the config file's hash and tree.
func configGet(ctx context.Context, t *testing.T, c *client.Client) (string, map[string]any) {
	var got struct {
		Hash   string         `json:"hash"`
		Config map[string]any `json:"config"`
		Valid  bool           `json:"valid"`
	}
	if err := c.Request(ctx, "config.get", nil, &got); err != nil || !got.Valid {
		t.Fatalf("config.get: %v (valid %v)", err, got.Valid)
	}
	return got.Hash, got.Config
}

func loggingLevel(cfg map[string]any) any {
	l, _ := cfg["logging"].(map[string]any)
	return l["level"]
}

// editConfig is the person's edit: logging at debug, through config.set.
func (h *harness) editConfig(ctx context.Context, t *testing.T, c *client.Client) {
	hash, cfg := configGet(ctx, t, c)
	if loggingLevel(cfg) != "info" {
		t.Fatalf("provisioned logging.level is %v, want info", loggingLevel(cfg))
	}
	cfg["logging"] = map[string]any{"level": "debug"}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		OK bool `json:"ok"`
	}
	if err := c.Request(ctx, "config.set", map[string]any{"raw": string(raw) + "\n", "baseHash": hash}, &res); err != nil || !res.OK {
		t.Fatalf("config.set: %v", err)
	}
	if _, cfg := configGet(ctx, t, c); loggingLevel(cfg) != "debug" {
		t.Fatalf("after config.set logging.level is %v", loggingLevel(cfg))
	}
}

func (h *harness) checkConfigKept(ctx context.Context, t *testing.T, c *client.Client) {
	if _, cfg := configGet(ctx, t, c); loggingLevel(cfg) != "debug" {
		t.Errorf("logging.level is %v after the replacement: the person's edit was undone", loggingLevel(cfg))
	}
}

// checkHistory finds the first instance's turn in the session.
func (h *harness) checkHistory(ctx context.Context, t *testing.T, c *client.Client) {
	var hist struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := c.Request(ctx, "chat.history", map[string]any{"sessionKey": mainKey}, &hist); err != nil {
		t.Fatalf("chat.history: %v", err)
	}
	all := string(mustJSON(hist.Messages))
	for _, want := range []string{"vmtest: who runs the agent, and where?", `"toolResult"`, "ubuntu", hostname} {
		if !strings.Contains(all, want) {
			t.Errorf("the session history after the replacement lacks %q (%d messages)", want, len(hist.Messages))
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// checkArtifactFetches checks the guest fetched the binary n times in all,
// each time with a signature the fake verified, and was never refused.
func (h *harness) checkArtifactFetches(t *testing.T, n int) {
	served := 0
	for _, r := range h.s3.Calls() {
		switch {
		case r.Rejected != "" || r.Err != "":
			t.Errorf("S3 refused the guest's %s %s: %s%s", r.Method, r.Path, r.Rejected, r.Err)
		case r.Status == 200 && r.Path == "/"+bucket+"/"+artifact:
			served++
		}
	}
	if served != n {
		t.Errorf("the artifact was served %d times, want %d", served, n)
	}
}

// checkUserDataFetched checks cloud-init read the user-data from the
// metadata service (not a seed) while it answered for instance id.
func (h *harness) checkUserDataFetched(t *testing.T, id string) {
	for _, r := range h.imds.Requests() {
		if r.Instance == id && r.Status == 200 && strings.HasSuffix(r.Path, "/user-data") {
			return
		}
	}
	t.Errorf("cloud-init never fetched the user-data of %s from the metadata service", id)
}

// stop powers the VM off the way EC2 stops an instance.
func (h *harness) stop(t *testing.T, vm *bootedVM) {
	start := time.Now()
	if err := vm.Stop(stopLimit); err != nil {
		t.Errorf("%s: %v (killed)", vm.name, err)
		return
	}
	t.Logf("%s: powered off in %s", vm.name, time.Since(start).Round(time.Second))
}

// diagnose prints what explains a failed boot: the end of the serial
// console, qemu's own output, cloud-init's log read from the root disk,
// and what the fakes saw.
func (h *harness) diagnose(vm *bootedVM) {
	t := h.t
	lines := strings.Split(strings.TrimRight(vm.Serial(), "\n"), "\n")
	t.Logf("%s: last %d lines of the serial console:\n%s", vm.name, min(100, len(lines)), strings.Join(lines[max(0, len(lines)-100):], "\n"))
	if q := strings.TrimSpace(vm.QemuLog()); q != "" {
		t.Logf("%s: qemu said:\n%s", vm.name, q)
	}
	for _, f := range []string{"/var/log/cloud-init.log", "/var/log/cloud-init-output.log"} {
		text, err := readGuestFile(vm.cfg.Root, f)
		if err != nil {
			t.Logf("%s: cannot read %s from the root disk: %v", vm.name, f, err)
			continue
		}
		l := strings.Split(strings.TrimRight(text, "\n"), "\n")
		t.Logf("%s: %s (last %d lines):\n%s", vm.name, f, min(200, len(l)), strings.Join(l[max(0, len(l)-200):], "\n"))
	}
	var imds []string
	for _, r := range h.imds.Requests() {
		imds = append(imds, fmt.Sprintf("%s %s %s → %d", r.Instance, r.Method, r.Path, r.Status))
	}
	t.Logf("metadata requests:\n%s", strings.Join(imds, "\n"))
	t.Logf("S3 requests: %+v", h.s3.Calls())
	t.Logf("Bedrock requests: %d", len(h.bedrock.Requests()))
}

// keepSerial copies a boot's serial console into dir, for reading after
// the test (SKYKOI_VMTEST_LOGS).
func keepSerial(t *testing.T, vm *bootedVM, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log(err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "serial-"+vm.name+".log"), []byte(vm.Serial()), 0o644); err != nil {
		t.Log(err)
	}
}

// readGuestFile reads a file from a stopped VM's root overlay: qemu-img
// flattens it to a raw image and debugfs reads the ext4 file system, so
// nothing is mounted.
func readGuestFile(overlay, path string) (string, error) {
	raw := overlay + ".raw"
	defer os.Remove(raw)
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", overlay, raw).CombinedOutput(); err != nil {
		return "", fmt.Errorf("qemu-img convert: %w: %s", err, out)
	}
	debugfs := "debugfs"
	if _, err := exec.LookPath(debugfs); err != nil {
		debugfs = "/usr/sbin/debugfs"
	}
	out, err := exec.Command(debugfs, "-R", "cat "+path, raw).Output()
	if err != nil {
		return "", fmt.Errorf("debugfs: %w", err)
	}
	return string(out), nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

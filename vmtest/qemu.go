package vmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The guest network. Everything lives in the link-local /24 around the
// metadata address, because a guest forward must lie inside the user-mode
// network; the guest gets 169.254.169.15 from qemu's DHCP.
const (
	guestNet       = "169.254.169.0/24"
	guestHost      = "169.254.169.2"
	guestDHCPStart = "169.254.169.15"
	// MetadataAddr is where the guest finds the metadata service, as on EC2.
	MetadataAddr = "169.254.169.254:80"
)

// Image is a built base image: its directory holds root.img, vmlinuz and
// initrd.img (scripts/vm/build-image.sh).
type Image struct{ Dir string }

func (i Image) root() string   { return filepath.Join(i.Dir, "root.img") }
func (i Image) kernel() string { return filepath.Join(i.Dir, "vmlinuz") }
func (i Image) initrd() string { return filepath.Join(i.Dir, "initrd.img") }

// BuildImage runs the image script, which builds the image once per recipe
// and prints its directory; a cached image costs nothing. Its progress goes
// to progress.
func BuildImage(ctx context.Context, script string, progress *os.File) (Image, error) {
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = progress
	out, err := cmd.Output()
	if err != nil {
		return Image{}, fmt.Errorf("building the VM image with %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	img := Image{Dir: lines[len(lines)-1]}
	for _, p := range []string{img.root(), img.kernel(), img.initrd()} {
		if _, err := os.Stat(p); err != nil {
			return Image{}, fmt.Errorf("the image script printed %q, which lacks %s: %w", img.Dir, filepath.Base(p), err)
		}
	}
	return img, nil
}

// NewOverlay makes a throwaway copy-on-write root disk over the image:
// the image itself is never written.
func NewOverlay(ctx context.Context, img Image, path string) error {
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2",
		"-b", img.root(), "-F", "raw", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create %s: %w: %s", path, err, out)
	}
	return nil
}

// NewBlankDisk makes a sparse raw disk of size bytes, blank like a new EBS
// volume.
func NewBlankDisk(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Forward connects a guest address to a host one: the guest's connections
// to Guest (ip:port) reach Host (127.0.0.1:port) through socat, one per
// connection. These are the only addresses the guest can reach.
type Forward struct{ Guest, Host string }

// Config describes one boot of one instance.
type Config struct {
	Image Image
	// Root is the root disk overlay (NewOverlay); reusing one is a stop
	// and start of the same instance.
	Root string
	// Data is the data volume's disk, and VolumeID its serial: the guest
	// finds the volume by it, under /dev/disk/by-id, as on EC2.
	Data     string
	VolumeID string
	// UUID is the SMBIOS system UUID and serial. Starting with "ec2" is
	// what makes cloud-init's ds-identify take the guest for EC2.
	UUID         string
	InstanceType string
	MAC          string
	// HostPort is where the guest's port 443 (nginx) appears on
	// 127.0.0.1.
	HostPort int
	Forwards []Forward
	// Serial is the file the serial console is written to.
	Serial string
	// QMP is the path of the control socket.
	QMP    string
	CPUs   int
	Memory int // MiB
}

// VM is a running qemu.
type VM struct {
	cfg  Config
	cmd  *exec.Cmd
	done chan struct{}
	err  error // qemu's exit, once done is closed

	killOnce sync.Once
}

// args is qemu's command line: TCG (KVM does not work here), the image's
// own kernel, a user-mode network restricted to the forwards, and EC2's
// SMBIOS strings.
func (c Config) args() []string {
	netdev := []string{
		"user", "id=n0", "restrict=on", "net=" + guestNet, "host=" + guestHost, "dhcpstart=" + guestDHCPStart,
		fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:443", c.HostPort),
	}
	for _, f := range c.Forwards {
		// -cmd starts one socat per connection; the tcp: form would connect
		// once, when qemu starts.
		netdev = append(netdev, fmt.Sprintf("guestfwd=tcp:%s-cmd:socat - TCP:%s", f.Guest, f.Host))
	}
	return []string{
		"-name", "skykoi-vmtest",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-accel", "tcg", "-smp", strconv.Itoa(c.CPUs), "-m", strconv.Itoa(c.Memory),
		// A guest that reboots or panics ends qemu, so a test waiting on it
		// learns at once.
		"-no-reboot",
		"-rtc", "base=utc",
		"-smbios", "type=1,manufacturer=Amazon EC2,product=" + c.InstanceType + ",serial=" + c.UUID + ",uuid=" + c.UUID,
		"-kernel", c.Image.kernel(), "-initrd", c.Image.initrd(),
		// No Spectre mitigations: the guest runs only the test's own code,
		// and under emulation they only cost time.
		"-append", "root=/dev/vda rw console=ttyS0 quiet mitigations=off",
		// Fixed PCI slots: the kernel names virtio disks in slot order, and
		// the image's fstab says the root is /dev/vda. The data volume's
		// name does not matter; the guest finds it by its serial.
		"-drive", "file=" + c.Root + ",format=qcow2,if=none,id=root,discard=unmap",
		"-device", "virtio-blk-pci,drive=root,addr=0x4",
		"-drive", "file=" + c.Data + ",format=raw,if=none,id=data,discard=unmap",
		"-device", "virtio-blk-pci,drive=data,addr=0x5,serial=" + c.VolumeID,
		"-netdev", strings.Join(netdev, ","),
		"-device", "virtio-net-pci,netdev=n0,addr=0x3,mac=" + c.MAC,
		"-serial", "file:" + c.Serial,
		"-qmp", "unix:" + c.QMP + ",server=on,wait=off",
	}
}

// Start boots a VM. It runs until it powers off, Stop or Kill, or the test
// process dies (the kernel kills it then).
func Start(cfg Config) (*VM, error) {
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.Memory == 0 {
		cfg.Memory = 2048
	}
	if cfg.InstanceType == "" {
		cfg.InstanceType = "t3.medium"
	}
	cmd := exec.Command("qemu-system-x86_64", cfg.args()...)
	log, err := os.Create(cfg.Serial + ".qemu")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so Kill reaches the socats qemu starts too;
	// and dying with the test, so a killed test leaves no VM behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	v := &VM{cfg: cfg, cmd: cmd, done: make(chan struct{})}
	go func() {
		v.err = cmd.Wait()
		log.Close()
		close(v.done)
	}()
	return v, nil
}

// PID is qemu's process id (and its process group's).
func (v *VM) PID() int { return v.cmd.Process.Pid }

// Done is closed when qemu has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// Exited reports whether qemu has exited, and how.
func (v *VM) Exited() (bool, error) {
	select {
	case <-v.done:
		return true, v.err
	default:
		return false, nil
	}
}

// Serial returns the serial console so far.
func (v *VM) Serial() string {
	b, _ := os.ReadFile(v.cfg.Serial)
	return string(b)
}

// QemuLog returns what qemu itself printed.
func (v *VM) QemuLog() string {
	b, _ := os.ReadFile(v.cfg.Serial + ".qemu")
	return string(b)
}

// WaitSerial polls the serial console until done says it holds what the
// caller waits for (nil), or that it never will (an error), or ctx ends,
// or qemu exits.
func (v *VM) WaitSerial(ctx context.Context, done func(serial string) (bool, error)) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := done(v.Serial())
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting on the serial console: %w", ctx.Err())
		case <-v.done:
			if ok, err := done(v.Serial()); err != nil || ok {
				return err
			}
			return fmt.Errorf("qemu exited while waiting on the serial console: %v", v.err)
		case <-tick.C:
		}
	}
}

// Stop shuts the guest down as EC2 stops an instance: the ACPI power
// button, which systemd turns into a clean shutdown. After timeout, or if
// the control socket fails, the VM is killed.
func (v *VM) Stop(timeout time.Duration) error {
	if exited, _ := v.Exited(); exited {
		return nil
	}
	err := v.powerButton()
	if err == nil {
		select {
		case <-v.done:
			// The socats end with qemu: their ends of its sockets close.
			return nil
		case <-time.After(timeout):
			err = fmt.Errorf("the guest did not power off within %s of the power button", timeout)
		}
	}
	v.Kill()
	return err
}

// Kill ends qemu and the socats it started at once. It does nothing once
// qemu has exited: its process group id may then belong to someone else.
func (v *VM) Kill() {
	v.killOnce.Do(func() {
		if exited, _ := v.Exited(); !exited {
			// The negative pid is qemu's process group: qemu and its socats.
			_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		}
		<-v.done
	})
}

// powerButton sends system_powerdown over QMP.
func (v *VM) powerButton() error {
	c, err := net.DialTimeout("unix", v.cfg.QMP, 5*time.Second)
	if err != nil {
		return fmt.Errorf("connecting to qemu's QMP socket: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	// The greeting, then capabilities negotiation, then the command.
	if _, err := r.ReadBytes('\n'); err != nil {
		return fmt.Errorf("reading the QMP greeting: %w", err)
	}
	for _, cmd := range []string{"qmp_capabilities", "system_powerdown"} {
		if _, err := fmt.Fprintf(c, "{\"execute\":%q}\n", cmd); err != nil {
			return fmt.Errorf("QMP %s: %w", cmd, err)
		}
		if err := qmpReply(r); err != nil {
			return fmt.Errorf("QMP %s: %w", cmd, err)
		}
	}
	return nil
}

// qmpReply reads up to the command's answer, skipping events.
func qmpReply(r *bufio.Reader) error {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return err
		}
		var m struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("unreadable QMP message %q: %w", line, err)
		}
		switch {
		case m.Error != nil:
			return errors.New(m.Error.Desc)
		case m.Return != nil:
			return nil
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// qemu's host forward (qemu takes a port number, not a listener).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

package infra

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Arch is a CPU architecture as Ubuntu and Go name it: the AMI name and the
// gateway binary (dist/skykoi-linux-<arch>) both use these spellings.
type Arch string

// The architectures a Koi runs on.
const (
	AMD64 Arch = "amd64"
	ARM64 Arch = "arm64"
)

// CanonicalOwnerID is the AWS account that publishes the official Ubuntu
// images. Filtering on it is what keeps a look-alike AMI from a stranger's
// account from being picked by name.
const CanonicalOwnerID = "099720109477"

// AMINamePattern is the name filter for the newest Ubuntu 24.04 LTS server
// image with gp3 root volumes for arch.
func AMINamePattern(arch Arch) string {
	return "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-" + string(arch) + "-server-*"
}

// ec2Arch is how EC2 reports an image's architecture.
func (a Arch) ec2Arch() string {
	if a == ARM64 {
		return "arm64"
	}
	return "x86_64"
}

// instanceTypeRe splits a type like m7gd.xlarge into family letters (m),
// generation (7), attributes (gd) and size. Options after a dash, as in
// m7i-flex or u7i-12tb, are not attributes.
var instanceTypeRe = regexp.MustCompile(`^([a-z]+)([0-9]+)([a-z]*)(-[a-z0-9]+)?\.([a-z0-9-]+)$`)

// familyArch holds the families the attribute rule in ArchOf gets wrong:
// the first Graviton generation predates the "g" attribute.
var familyArch = map[string]Arch{
	"a1": ARM64,
}

// ArchOf returns the CPU architecture of an EC2 instance type. AWS marks
// Graviton (arm64) families with a "g" among the attributes after the
// generation digit (t4g, m7g, c7gn, r8gd, x2gd, im4gn, is4gen, g5g), while
// the GPU families g4dn, g5 and g6 carry their "g" before it and are x86.
func ArchOf(instanceType string) (Arch, error) {
	family, _, _ := strings.Cut(instanceType, ".")
	if strings.HasPrefix(family, "mac") {
		return "", fmt.Errorf("instance type %q: Mac instances run macOS only; a Koi needs Ubuntu", instanceType)
	}
	if a, ok := familyArch[family]; ok {
		return a, nil
	}
	m := instanceTypeRe.FindStringSubmatch(instanceType)
	if m == nil {
		return "", fmt.Errorf("instance type %q: want a type like t3.small or t4g.small", instanceType)
	}
	if strings.Contains(m[3], "g") {
		return ARM64, nil
	}
	return AMD64, nil
}

// binaryInfo is what NewKoi needs to know about the gateway binary.
type binaryInfo struct {
	sha256 string
	arch   Arch
}

// inspectBinary hashes the gateway binary and reads its architecture from
// the ELF header. A binary for the wrong CPU would only fail on the box, at
// the end of a first boot, with "exec format error" in the journal.
func inspectBinary(path string) (binaryInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("opening the gateway binary: %w", err)
	}
	defer f.Close()
	arch, err := elfArch(path, f)
	if err != nil {
		return binaryInfo{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return binaryInfo{}, fmt.Errorf("reading %s: %w", path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return binaryInfo{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return binaryInfo{arch: arch, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

// binaryArch reads only the binary's ELF header: the config check needs
// the architecture, and NewKoi hashes the file once afterwards.
func binaryArch(path string) (Arch, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opening the gateway binary: %w", err)
	}
	defer f.Close()
	return elfArch(path, f)
}

func elfArch(path string, f io.ReaderAt) (Arch, error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", fmt.Errorf("%s is not a Linux executable: %w", path, err)
	}
	switch ef.Machine {
	case elf.EM_X86_64:
		return AMD64, nil
	case elf.EM_AARCH64:
		return ARM64, nil
	}
	return "", fmt.Errorf("%s is built for %s; a Koi runs amd64 or arm64", path, ef.Machine)
}

// archMismatch says a binary cannot run on the instance type.
func archMismatch(path string, got Arch, instanceType string, want Arch) error {
	return fmt.Errorf("%s is built for %s, but %s is %s; use dist/skykoi-linux-%s", path, got, instanceType, want, want)
}

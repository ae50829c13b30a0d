package cloudinit

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// writeFile is one write_files entry.
type writeFile struct {
	path, owner, perm string
	// deferred files are written in cloud-init's final stage, after the
	// users module has created their owner.
	deferred bool
	content  []byte
}

// cloudConfig writes the document by hand rather than through a YAML
// library: its shape is fixed, so the key order (and the bytes) stay the
// same, and every scalar is one of a few kinds quoted here on purpose.
func cloudConfig(o Options, p Parts) ([]byte, error) {
	files := []writeFile{
		{path: sitePath, perm: "0644", content: p.NginxSite},
		{path: unitPath, perm: "0644", content: p.Unit},
		{path: consoleUnitPath, perm: "0644", content: p.ConsoleUnit},
		{path: updatePathPath, perm: "0644", content: p.UpdatePath},
		{path: updateServicePath, perm: "0644", content: p.UpdateService},
		{path: bootstrapBin, perm: "0755", content: p.Bootstrap},
	}
	if p.LogsUnit != nil {
		files = append(files, writeFile{path: logsUnitPath, perm: "0644", content: p.LogsUnit})
	}
	for _, name := range sortedKeys(p.Seeds) {
		files = append(files, writeFile{path: seedDir + "/" + name, perm: "0644", content: p.Seeds[name]})
	}
	files = append(files, writeFile{
		path: ConfigPath, owner: KoiUser + ":" + KoiUser, perm: "0600", deferred: true, content: p.Config,
	})

	var b bytes.Buffer
	b.WriteString("#cloud-config\n")
	b.WriteString("# SkyKoi: one Koi's first boot, rendered by github.com/skykoi/skykoi/cloudinit.\n")
	// The Koi runs as ubuntu on every image. Overriding the distro's default
	// user (rather than adding one) makes ubuntu the user that gets the
	// instance's SSH key, on Debian (default user "debian") as on Ubuntu.
	// sudo is a string: cloud-init 22.4's schema rejects a list here.
	b.WriteString("user:\n")
	b.WriteString("  name: " + KoiUser + "\n")
	b.WriteString("  gecos: SkyKoi\n")
	b.WriteString("  shell: /bin/bash\n")
	b.WriteString("  lock_passwd: true\n")
	b.WriteString("  sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n")
	if o.Hostname != "" {
		b.WriteString("hostname: " + o.Hostname + "\n")
		// sudo resolves the hostname; without an /etc/hosts entry every call
		// waits on DNS.
		b.WriteString("manage_etc_hosts: localhost\n")
	}
	// No packages key: the bootstrap installs nginx only where it is missing,
	// so an image that has it never runs apt (and 22.4 rejects an empty list).
	b.WriteString("write_files:\n")
	for _, f := range files {
		if err := writeFileEntry(&b, f); err != nil {
			return nil, err
		}
	}
	b.WriteString("runcmd:\n")
	b.WriteString("  - [" + bootstrapBin + "]\n")
	return b.Bytes(), nil
}

func writeFileEntry(b *bytes.Buffer, f writeFile) error {
	if !absPathRe.MatchString(f.path) {
		return fmt.Errorf("cloudinit: write_files path %q needs quoting", f.path)
	}
	b.WriteString("  - path: " + f.path + "\n")
	if f.owner != "" {
		b.WriteString("    owner: " + f.owner + "\n")
	}
	b.WriteString("    permissions: '" + f.perm + "'\n")
	if f.deferred {
		b.WriteString("    defer: true\n")
	}
	switch {
	case len(f.content) == 0:
		b.WriteString("    content: ''\n")
	case literalSafe(f.content):
		writeLiteral(b, "    content: ", "      ", f.content)
	default:
		// Anything a literal block cannot carry exactly (a leading space,
		// CR, control or YAML line-break characters) goes as base64.
		b.WriteString("    encoding: b64\n")
		b.WriteString("    content: " + base64.StdEncoding.EncodeToString(f.content) + "\n")
	}
	return nil
}

// writeLiteral writes a literal block scalar. The chomping indicator keeps
// the content's trailing newlines exactly: "|-" none, "|" one, "|+" more.
func writeLiteral(b *bytes.Buffer, key, indent string, content []byte) {
	s := string(content)
	body := strings.TrimRight(s, "\n")
	switch trailing := len(s) - len(body); {
	case trailing == 0:
		b.WriteString(key + "|-\n")
	case trailing == 1:
		b.WriteString(key + "|\n")
	default:
		b.WriteString(key + "|+\n")
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" {
			b.WriteByte('\n')
			continue
		}
		b.WriteString(indent + line + "\n")
	}
	for i := len(body) + 1; i < len(s); i++ {
		b.WriteByte('\n')
	}
}

// literalSafe reports whether content survives a YAML literal block
// unchanged: printable UTF-8 and tabs, no first line starting with a space
// (that would need an indentation indicator), no whitespace-only lines
// (YAML treats them as blank), and none of the characters YAML 1.1 (which
// cloud-init's PyYAML speaks) counts as line breaks.
func literalSafe(content []byte) bool {
	if !utf8.Valid(content) || content[0] == ' ' || content[0] == '\t' || content[0] == '\n' {
		return false
	}
	for _, r := range string(content) {
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			return false
		case r == 0x2028 || r == 0x2029 || r == 0xfeff:
			return false
		}
	}
	for _, line := range strings.Split(string(content), "\n") {
		if line != "" && strings.TrimSpace(line) == "" {
			return false
		}
	}
	return true
}

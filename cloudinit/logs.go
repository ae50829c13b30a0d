package cloudinit

import (
	"bytes"
	"fmt"
	"regexp"
	"text/template"
)

// The optional journal shipping (the stack's cloudwatchLogs key): a unit
// that runs `skykoi gateway ship-logs` into the Koi's log group.
const (
	LogsUnitName = "skykoi-logs.service"
	logsUnitPath = "/etc/systemd/system/" + LogsUnitName
)

// Logs turns on shipping the Koi's journal to CloudWatch Logs. The zero
// value is off: no unit is written and nothing is enabled.
type Logs struct {
	// Group is the log group the stack made, /skykoi/<koi>.
	Group string
	// Region is the group's region.
	Region string
}

// On reports whether the journal ships.
func (l Logs) On() bool { return l != Logs{} }

// logGroupRe is CloudWatch's group alphabet less '#', which would need
// quoting on the unit's command line.
var logGroupRe = regexp.MustCompile(`^[A-Za-z0-9_./-]{1,512}$`)

func (l Logs) problems() []error {
	if !l.On() {
		return nil
	}
	var errs []error
	if !logGroupRe.MatchString(l.Group) {
		errs = append(errs, fmt.Errorf("Logs.Group: want a CloudWatch Logs group name like /skykoi/<koi>, got %q", l.Group))
	}
	if !regionRe.MatchString(l.Region) {
		errs = append(errs, fmt.Errorf("Logs.Region: want an AWS region like us-east-1, got %q", l.Region))
	}
	return errs
}

var logsUnitTmpl = template.Must(template.New("logs").Parse(`# SkyKoi journal shipping to CloudWatch Logs. Written at first boot by
# cloud-init (github.com/skykoi/skykoi/cloudinit) because the stack's
# cloudwatchLogs key is on; the bootstrap enables it.
#
# It ships the journal of the Koi's own units (the gateway, the update
# supervisor, the console announcer and nginx), this boot, into one stream
# per boot, with the instance role, which may only create streams in and
# put events into {{.Group}}.
#
# It runs as a user of its own made at start (DynamicUser), not as the
# gateway's user, who has sudo: its only right beyond nobody's is the group
# systemd-journal, which reading the system journal takes. It reads nothing
# else, writes nothing, and reaches only CloudWatch and the metadata service.
[Unit]
Description=SkyKoi journal shipping to CloudWatch Logs ({{.Group}})
Documentation=https://github.com/skykoi/skykoi
After=network-online.target {{.Gateway}}
Wants=network-online.target
# Five failed starts in ten minutes is a fault restarting will not fix
# (the group deleted, the role without its policy).
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=exec
ExecStart={{.Binary}} gateway ship-logs --group {{.Group}} --region {{.Region}}
Restart=on-failure
RestartSec=10
# SIGTERM flushes what was read; a PutLogEvents call gets up to 30 s.
TimeoutStopSec=45
DynamicUser=yes
SupplementaryGroups=systemd-journal
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service

[Install]
WantedBy=multi-user.target
`))

// logsUnit is nil when shipping is off.
func logsUnit(o Options) ([]byte, error) {
	if !o.Logs.On() {
		return nil, nil
	}
	var b bytes.Buffer
	err := logsUnitTmpl.Execute(&b, map[string]string{
		"Group":   o.Logs.Group,
		"Region":  o.Logs.Region,
		"Binary":  o.BinaryPath,
		"Gateway": UnitName,
	})
	if err != nil {
		return nil, fmt.Errorf("cloudinit: rendering the log shipping unit: %w", err)
	}
	return b.Bytes(), nil
}

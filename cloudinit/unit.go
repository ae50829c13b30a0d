package cloudinit

import (
	"bytes"
	"fmt"
	"text/template"
)

var unitTmpl = template.Must(template.New("unit").Parse(`# SkyKoi gateway. Written at first boot by cloud-init
# (github.com/skykoi/skykoi/cloudinit); the bootstrap enables it.
[Unit]
Description=SkyKoi gateway
Documentation=https://github.com/skykoi/skykoi
After=network-online.target
Wants=network-online.target
# The workspace and state are links into the data volume: without it there
# is nothing to run on.
RequiresMountsFor={{.DataMount}}
# Five failed starts in five minutes is a fault restarting will not fix.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
User={{.User}}
Group={{.User}}
WorkingDirectory={{.Workspace}}
Environment=SKYKOI_STATE_DIR={{.StateDir}}
{{- if .Bucket}}
# Where update.run finds new binaries (bin/skykoi-<sha256>), read with the
# instance role.
Environment=SKYKOI_UPDATE_BUCKET={{.Bucket}} SKYKOI_UPDATE_REGION={{.Region}}
{{- if .Endpoint}} SKYKOI_UPDATE_S3_ENDPOINT={{.Endpoint}}{{end}}
{{- end}}
ExecStart={{.Binary}} gateway run --config {{.Config}}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=3
# 78 is EX_CONFIG: the config is invalid and a restart cannot fix it.
RestartPreventExitStatus=78
WatchdogSec=30
# A drain takes up to 20 s plus 5 s; SIGKILL comes only after 45 s.
TimeoutStopSec=45
# SIGTERM goes to the gateway alone, so a drain can let the agent's running
# commands finish; whatever is left gets SIGKILL at the timeout.
KillMode=mixed
# A command of the agent's killed for memory must not stop the gateway.
OOMPolicy=continue
LimitNOFILE=65536
# No sandboxing, on purpose: the agent runs commands on its person's own
# machine, sudo included (tools.exec.security "full"). NoNewPrivileges would
# break sudo, and so would every option that implies it for a non-root user
# (SystemCallFilter, RestrictSUIDSGID, ProtectKernel*, LockPersonality...);
# ProtectSystem/ProtectHome/PrivateTmp would hide or freeze paths the agent's
# commands and the person's SSH sessions must share. The protection is the
# unprivileged user, loopback-only listening and token auth behind nginx.
NoNewPrivileges=false

[Install]
WantedBy=multi-user.target
`))

func systemdUnit(o Options) ([]byte, error) {
	var b bytes.Buffer
	err := unitTmpl.Execute(&b, map[string]string{
		"DataMount": DataMount,
		"User":      KoiUser,
		"Workspace": Workspace,
		"StateDir":  StateDir,
		"Binary":    o.BinaryPath,
		"Config":    ConfigPath,
		"Bucket":    o.Artifact.S3Bucket,
		"Region":    o.Artifact.Region,
		"Endpoint":  o.Artifact.S3Endpoint,
	})
	if err != nil {
		return nil, fmt.Errorf("cloudinit: rendering the systemd unit: %w", err)
	}
	return b.Bytes(), nil
}

var consoleUnitTmpl = template.Must(template.New("console").Parse(`# SkyKoi console announcements. Written at first boot by cloud-init
# (github.com/skykoi/skykoi/cloudinit); the bootstrap enables it.
#
# The bootstrap announces the TLS fingerprint and SKYKOI-READY on the first
# boot only: after a stop and start cloud-init runs nothing, so this unit
# repeats them at every boot for "skykoi koi wait". It also puts
# cloud-init's verdict on the console once cloud-init has finished.
[Unit]
Description=SkyKoi console announcements (TLS fingerprint, readiness)
Documentation=https://github.com/skykoi/skykoi
After={{.Gateway}} nginx.service

[Service]
# exec, not oneshot: the announcer waits for cloud-init, which on Debian and
# Ubuntu runs its last stage after multi-user.target; a oneshot would hold
# that target back and wait for itself.
Type=exec
ExecStart={{.Bootstrap}} announce
# Waits are bounded inside the script; this only stops a hung one.
RuntimeMaxSec=900
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=read-only
ProtectSystem=full

[Install]
WantedBy=multi-user.target
`))

func consoleUnit() ([]byte, error) {
	var b bytes.Buffer
	err := consoleUnitTmpl.Execute(&b, map[string]string{
		"Gateway":   UnitName,
		"Bootstrap": bootstrapBin,
	})
	if err != nil {
		return nil, fmt.Errorf("cloudinit: rendering the console unit: %w", err)
	}
	return b.Bytes(), nil
}

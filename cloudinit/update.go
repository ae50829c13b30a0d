package cloudinit

import (
	"bytes"
	"fmt"
	"path"
	"text/template"
)

// The in-place update's root supervisor (see gateway/update): the gateway
// drops a request into its own state dir, this path unit sees it and starts
// the service, which swaps the binary, restarts the gateway and rolls back
// when the new one is not ready in time.
const (
	UpdatePathName    = "skykoi-update.path"
	UpdateServiceName = "skykoi-update.service"
	updatePathPath    = "/etc/systemd/system/" + UpdatePathName
	updateServicePath = "/etc/systemd/system/" + UpdateServiceName
	// UpdateDir is the gateway's <state dir>/update as root sees it: the
	// real path on the data volume, not the home directory's link into it.
	UpdateDir = DataMount + "/skykoi/update"
)

var updatePathTmpl = template.Must(template.New("path").Parse(`# SkyKoi in-place updates. Written at first boot by cloud-init
# (github.com/skykoi/skykoi/cloudinit); the bootstrap enables it.
#
# update.run (the gateway, unprivileged) writes request.json into its own
# state dir once the new binary is downloaded and its SHA-256 checked; this
# unit then starts the root supervisor. The gateway needs no sudo and no
# right over units or /usr/local/bin: asking is all it can do, and what is
# done is decided by the supervisor, which runs from the installed binary.
[Unit]
Description=SkyKoi update requests from the gateway
Documentation=https://github.com/skykoi/skykoi
RequiresMountsFor={{.DataMount}}

[Path]
PathExists={{.Request}}
Unit={{.Service}}

[Install]
WantedBy=paths.target
`))

var updateServiceTmpl = template.Must(template.New("service").Parse(`# SkyKoi in-place update supervisor. Written at first boot by cloud-init
# (github.com/skykoi/skykoi/cloudinit); started by {{.Path}}.
#
# Root, because it replaces {{.Binary}} and restarts {{.Gateway}}.
# It runs the binary installed when it starts, never the untried one, and
# outlives the gateway it restarts (another cgroup): a new binary that
# crashes at once or never gets ready is rolled back all the same. It
# removes the request at the end, so the path unit does not fire again,
# and leaves status.json for update.status.
[Unit]
Description=SkyKoi in-place update (swap the gateway binary, restart, roll back)
Documentation=https://github.com/skykoi/skykoi
RequiresMountsFor={{.DataMount}}

[Service]
Type=oneshot
ExecStart={{.Binary}} gateway supervise-update --dir {{.Dir}} --binary {{.Binary}} --unit {{.Gateway}} --readyz-url http://127.0.0.1:{{.Port}}/readyz
# A readiness deadline is at most 10 minutes, twice with a rollback.
TimeoutStartSec=30min
# It writes only the binary's directory and the update dir, and reads no
# home directory; systemctl reaches PID 1 over its socket all the same.
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=yes
ProtectSystem=strict
ReadWritePaths={{.BinaryDir}} {{.Dir}}
`))

func updateUnits(o Options, port int) (pathUnit, service []byte, err error) {
	vars := map[string]any{
		"DataMount": DataMount,
		"Request":   UpdateDir + "/request.json",
		"Service":   UpdateServiceName,
		"Path":      UpdatePathName,
		"Binary":    o.BinaryPath,
		"BinaryDir": path.Dir(o.BinaryPath),
		"Gateway":   UnitName,
		"Dir":       UpdateDir,
		"Port":      port,
	}
	var p, s bytes.Buffer
	if err := updatePathTmpl.Execute(&p, vars); err != nil {
		return nil, nil, fmt.Errorf("cloudinit: rendering the update path unit: %w", err)
	}
	if err := updateServiceTmpl.Execute(&s, vars); err != nil {
		return nil, nil, fmt.Errorf("cloudinit: rendering the update service: %w", err)
	}
	return p.Bytes(), s.Bytes(), nil
}

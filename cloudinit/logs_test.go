package cloudinit_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/cloudinit"
)

func withLogs(o cloudinit.Options) cloudinit.Options {
	o.Logs = cloudinit.Logs{Group: "/skykoi/koi-ada", Region: "us-west-2"}
	return o
}

func TestLogsGolden(t *testing.T) {
	golden(t, "skykoi-logs.golden.service", renderParts(t, withLogs(realistic())).LogsUnit)
}

// TestLogsUnitOnlyWhenOn: off (the default), the user-data holds no unit
// and the bootstrap enables none; on, both do, and the unit ships into the
// group given.
func TestLogsUnitOnlyWhenOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    cloudinit.Options
		on   bool
	}{
		{"off", realistic(), false},
		{"on", withLogs(realistic()), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := renderParts(t, tc.o)
			if got := p.LogsUnit != nil; got != tc.on {
				t.Fatalf("LogsUnit rendered = %v, want %v", got, tc.on)
			}
			inDoc := bytes.Contains(p.CloudConfig, []byte("path: /etc/systemd/system/"+cloudinit.LogsUnitName+"\n"))
			if inDoc != tc.on {
				t.Errorf("user-data writes %s = %v, want %v", cloudinit.LogsUnitName, inDoc, tc.on)
			}
			wantSetting := "readonly LOGS_UNIT=''\n"
			if tc.on {
				wantSetting = "readonly LOGS_UNIT='" + cloudinit.LogsUnitName + "'\n"
			}
			if !bytes.Contains(p.Bootstrap, []byte(wantSetting)) {
				t.Errorf("bootstrap lacks %q", wantSetting)
			}
			if tc.on && !bytes.Contains(p.LogsUnit, []byte("ExecStart="+cloudinit.DefaultBinaryPath+
				" gateway ship-logs --group /skykoi/koi-ada --region us-west-2\n")) {
				t.Errorf("the unit does not ship into the group:\n%s", p.LogsUnit)
			}
		})
	}
}

// TestBootstrapEnablesLogsUnit runs the bootstrap with shipping on: the
// unit is enabled with the others and started after the gateway.
func TestBootstrapEnablesLogsUnit(t *testing.T) {
	t.Parallel()
	b := newBootRun(t, virtioFull, func(o *cloudinit.Options, _ string) { *o = withLogs(*o) })
	b.run()
	b.succeeded()
	calls := b.calls()
	enable := slices.IndexFunc(calls, func(c string) bool {
		return strings.HasPrefix(c, "systemctl enable") && strings.HasSuffix(c, " skykoi-update.path "+cloudinit.LogsUnitName)
	})
	gateway := slices.Index(calls, "systemctl restart skykoi-gateway.service")
	logs := slices.Index(calls, "systemctl restart "+cloudinit.LogsUnitName)
	if enable < 0 || gateway < 0 || logs < gateway {
		t.Fatalf("want %s enabled, then started after the gateway; calls:\n%s", cloudinit.LogsUnitName, strings.Join(calls, "\n"))
	}
}

func TestSystemdAnalyzeVerifyLogsUnit(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	verify := func(o cloudinit.Options) []string {
		path := writeTemp(t, t.TempDir(), cloudinit.LogsUnitName, renderParts(t, o).LogsUnit, 0o644)
		out, _ := exec.Command(analyze, "verify", path).CombinedOutput()
		var mine []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, cloudinit.LogsUnitName) {
				mine = append(mine, line)
			}
		}
		return mine
	}
	o := withLogs(realistic())
	o.BinaryPath = "/bin/true" // verify checks that ExecStart exists
	if lines := verify(o); len(lines) > 0 {
		t.Fatalf("systemd-analyze verify complains about the log shipping unit:\n%s", strings.Join(lines, "\n"))
	}
	if _, err := os.Stat(cloudinit.DefaultBinaryPath); errors.Is(err, os.ErrNotExist) {
		if lines := verify(withLogs(realistic())); len(lines) == 0 {
			t.Fatal("systemd-analyze verify did not report a missing ExecStart binary")
		}
	}
}

package cloudinit_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/cloudinit"
	"github.com/skykoi/skykoi/internal/testwait"
)

// These tests hand the rendered files to the real tools that will read them
// on a Koi: cloud-init's schema check, nginx, systemd and shellcheck.

func TestCloudInitSchema(t *testing.T) {
	cloudInit := requireTool(t, "cloud-init")
	plain := realistic()
	plain.Hostname = ""
	b64 := realistic()
	b64.SeedFiles = map[string]string{"CRLF.md": "a\r\nb\r\n", "EMPTY.md": ""}
	for name, o := range map[string]cloudinit.Options{"realistic": realistic(), "no hostname": plain, "b64 and empty files": b64, "logs on": withLogs(realistic())} {
		t.Run(name, func(t *testing.T) {
			p := renderParts(t, o)
			path := writeTemp(t, t.TempDir(), "user-data.yaml", p.CloudConfig, 0o644)
			out, err := exec.Command(cloudInit, "schema", "--config-file", path).CombinedOutput()
			// Newer cloud-init reports deprecations and warnings with a
			// "degraded" status (exit 2); on 22.4 they are extra lines. Either
			// counts as a failure: the only acceptable output is the verdict.
			if err != nil || strings.TrimSpace(string(out)) != "Valid cloud-config: "+path {
				t.Fatalf("cloud-init schema: %v\n%s", err, out)
			}
		})
	}
}

func TestShellcheck(t *testing.T) {
	shellcheck := requireTool(t, "shellcheck")
	for name, o := range map[string]cloudinit.Options{
		"s3": realistic(),
		"url": func() cloudinit.Options {
			o := realistic()
			o.Artifact = cloudinit.Artifact{URL: "https://releases.skykoi.dev/v1/skykoi-linux-arm64"}
			return o
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, t.TempDir(), "bootstrap", renderParts(t, o).Bootstrap, 0o755)
			if out, err := exec.Command(shellcheck, "--shell=bash", "--severity=style", path).CombinedOutput(); err != nil {
				t.Fatalf("shellcheck: %v\n%s", err, out)
			}
		})
	}
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	verify := func(o cloudinit.Options) []string {
		dir := t.TempDir()
		path := writeTemp(t, dir, cloudinit.UnitName, renderParts(t, o).Unit, 0o644)
		out, _ := exec.Command(analyze, "verify", path).CombinedOutput()
		// The host's own units may draw warnings; only lines about this unit
		// count, and its exit status depends on the host too.
		var mine []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, cloudinit.UnitName) {
				mine = append(mine, line)
			}
		}
		return mine
	}

	o := realistic()
	o.BinaryPath = "/bin/true" // verify checks that ExecStart exists
	if lines := verify(o); len(lines) > 0 {
		t.Fatalf("systemd-analyze verify complains about the unit:\n%s", strings.Join(lines, "\n"))
	}

	// The same filter must catch a real problem, or the check above proves
	// nothing: the default binary path does not exist on this machine.
	if _, err := os.Stat(cloudinit.DefaultBinaryPath); errors.Is(err, os.ErrNotExist) {
		if lines := verify(realistic()); len(lines) == 0 {
			t.Fatal("systemd-analyze verify did not report a missing ExecStart binary")
		}
	}
}

func TestSystemdAnalyzeVerifyConsoleUnit(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	const script = "/usr/local/lib/skykoi/bootstrap"
	verify := func(unit []byte) []string {
		path := writeTemp(t, t.TempDir(), cloudinit.ConsoleUnitName, unit, 0o644)
		out, _ := exec.Command(analyze, "verify", path).CombinedOutput()
		var mine []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, cloudinit.ConsoleUnitName) {
				mine = append(mine, line)
			}
		}
		return mine
	}
	unit := renderParts(t, realistic()).ConsoleUnit
	if !bytes.Contains(unit, []byte("ExecStart="+script+" announce\n")) {
		t.Fatalf("the console unit does not run the bootstrap's announce mode:\n%s", unit)
	}
	// verify checks that ExecStart exists: point it at one that does.
	if lines := verify(bytes.ReplaceAll(unit, []byte(script), []byte("/bin/true"))); len(lines) > 0 {
		t.Fatalf("systemd-analyze verify complains about the console unit:\n%s", strings.Join(lines, "\n"))
	}
	if _, err := os.Stat(script); errors.Is(err, os.ErrNotExist) {
		if lines := verify(unit); len(lines) == 0 {
			t.Fatal("systemd-analyze verify did not report a missing ExecStart script")
		}
	}
}

// nginxEnv is a throwaway nginx prefix: config, certificate, pid and logs
// in a temp dir, the rendered site included from it.
type nginxEnv struct {
	dir, conf string
}

func newNginxEnv(t *testing.T, o cloudinit.Options) nginxEnv {
	t.Helper()
	openssl := requireTool(t, "openssl")
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if err := os.Mkdir(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	gen := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
		"-keyout", filepath.Join(tlsDir, "skykoi.key"), "-out", filepath.Join(tlsDir, "skykoi.crt"))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	o.TLSDir = tlsDir
	site := writeTemp(t, dir, "site.conf", renderParts(t, o).NginxSite, 0o644)
	// One process in the foreground: stopping it stops everything, and no
	// orphaned worker can outlive a failed test.
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, site)
	return nginxEnv{dir: dir, conf: writeTemp(t, dir, "nginx.conf", []byte(conf), 0o644)}
}

func (e nginxEnv) args(extra ...string) []string {
	return append([]string{"-p", e.dir, "-e", filepath.Join(e.dir, "error.log"), "-c", e.conf}, extra...)
}

func TestNginxConfigTest(t *testing.T) {
	nginx := requireTool(t, "nginx")
	o := realistic()
	o.ListenAddress, o.HTTPPort, o.HTTPSPort = "127.0.0.1", 18080, 18443
	e := newNginxEnv(t, o)
	if out, err := exec.Command(nginx, e.args("-t", "-q")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestNginxProxy runs the site in a real nginx on high loopback ports in
// front of a stand-in gateway, and checks what the gateway relies on.
func TestNginxProxy(t *testing.T) {
	nginx := requireTool(t, "nginx")

	seen := make(chan http.Header, 10)
	upgrader := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	})
	upstream := httptest.NewServer(mux)
	defer upstream.Close()
	upstreamPort := upstream.Listener.Addr().(*net.TCPAddr).Port

	o := realistic()
	o.ConfigOptions.Port = upstreamPort
	o.ListenAddress, o.HTTPPort, o.HTTPSPort = "127.0.0.1", freePort(t), freePort(t)
	e := newNginxEnv(t, o)
	startProcess(t, exec.Command(nginx, e.args()...))
	httpsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.HTTPSPort))
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.HTTPPort))
	waitListening(t, httpsAddr, filepath.Join(e.dir, "error.log"))

	client := func(minV, maxV uint16) *http.Client {
		return &http.Client{
			Transport: &http.Transport{TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // a self-signed cert, pinned in production
				MinVersion:         minV, MaxVersion: maxV,
			}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       testwait.Patience(t),
		}
	}

	t.Run("http redirects to https", func(t *testing.T) {
		resp, err := client(0, 0).Get("http://" + httpAddr + "/chat?session=main")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "https://127.0.0.1:" + strconv.Itoa(o.HTTPSPort) + "/chat?session=main"
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Fatalf("got %d Location %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})

	t.Run("forwarded headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "https://"+httpsAddr+"/headers", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.66") // a client trying to pass as someone else
		resp, err := client(0, 0).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := <-seen
		if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want the client's address only", got)
		}
		if got := h.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto = %q", got)
		}
		if got := h.Get("Host"); got != httpsAddr {
			t.Errorf("Host = %q, want %q (with the port, for the origin check)", got, httpsAddr)
		}
	})

	t.Run("tls versions", func(t *testing.T) {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			resp, err := client(v, v).Get("https://" + httpsAddr + "/headers")
			if err != nil {
				t.Fatalf("TLS %x refused: %v", v, err)
			}
			resp.Body.Close()
			<-seen
		}
		if resp, err := client(tls.VersionTLS10, tls.VersionTLS11).Get("https://" + httpsAddr + "/headers"); err == nil {
			resp.Body.Close()
			t.Fatal("TLS 1.1 was accepted")
		}
	})

	t.Run("websocket", func(t *testing.T) {
		d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: testwait.Patience(t)}
		c, resp, err := d.Dial("wss://"+httpsAddr+"/ws", http.Header{"Origin": {"https://" + httpsAddr}})
		if err != nil {
			t.Fatalf("websocket through nginx: %v (%v)", err, resp)
		}
		defer c.Close()
		for _, msg := range []string{"hello", "koi"} {
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(testwait.Patience(t)))
			_, got, err := c.ReadMessage()
			if err != nil || string(got) != "echo:"+msg {
				t.Fatalf("got %q, %v", got, err)
			}
		}
	})

	t.Run("streams without buffering", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "first\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		resp, err := client(0, 0).Get("https://" + httpsAddr + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line := make(chan string, 1)
		go func() {
			s, _ := bufio.NewReader(resp.Body).ReadString('\n')
			line <- s
		}()
		select {
		case s := <-line:
			if s != "first\n" {
				t.Fatalf("got %q", s)
			}
		case <-time.After(testwait.Patience(t)):
			t.Fatal("the first chunk was held back while the response was open")
		}
	})
}

// TestSystemdAnalyzeVerifyUpdateUnits checks the update supervisor's path
// unit and service as systemd reads them, together, since one names the
// other.
func TestSystemdAnalyzeVerifyUpdateUnits(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	verify := func(o cloudinit.Options) []string {
		p := renderParts(t, o)
		dir := t.TempDir()
		pathUnit := writeTemp(t, dir, cloudinit.UpdatePathName, p.UpdatePath, 0o644)
		service := writeTemp(t, dir, cloudinit.UpdateServiceName, p.UpdateService, 0o644)
		out, _ := exec.Command(analyze, "verify", pathUnit, service).CombinedOutput()
		var mine []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "skykoi-update") {
				mine = append(mine, line)
			}
		}
		return mine
	}
	o := realistic()
	o.BinaryPath = "/bin/true" // verify checks that ExecStart exists
	if lines := verify(o); len(lines) > 0 {
		t.Fatalf("systemd-analyze verify complains about the update units:\n%s", strings.Join(lines, "\n"))
	}
	if _, err := os.Stat(cloudinit.DefaultBinaryPath); errors.Is(err, os.ErrNotExist) {
		if lines := verify(realistic()); len(lines) == 0 {
			t.Fatal("systemd-analyze verify did not report a missing ExecStart binary")
		}
	}
}

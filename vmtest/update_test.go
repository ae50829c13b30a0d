package vmtest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/skykoi/skykoi/internal/testwait"
)

// TestVMUpdate is an in-place update on a real Koi: binary A (the one the
// Koi booted with) to B (the same source, another version stamp) through
// update.run and the root supervisor, then a broken C (exits 1 at once)
// that must roll back to B. Same instance and boot throughout, and the
// session survives. The downtime is what /readyz through nginx shows.
// Select it alone with -run TestVMUpdate.
func TestVMUpdate(t *testing.T) {
	if os.Getenv("SKYKOI_VMTEST") == "" {
		t.Skip("boots a real VM for minutes: run `make vmtest` (or SKYKOI_VMTEST=1 go test -run TestVMUpdate ./vmtest)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Patience(t))
	defer cancel()
	h := newHarness(ctx, t)
	binB, err := buildGatewayVersion(ctx, t.TempDir(), "vmtest-b")
	if err != nil {
		t.Fatal(err)
	}
	binC := []byte("#!/bin/sh\necho 'skykoi vmtest: a broken build' >&2\nexit 1\n")

	inst := h.instance(h.token, "i-0a1b2c3d4e5f60009", "0a:58:4b:01:00:09", "10.0.1.99", "203.0.113.99")
	root := filepath.Join(h.dir, "root-"+inst.ID+".qcow2")
	h.imds.SetInstance(inst)
	if err := NewOverlay(ctx, h.image, root); err != nil {
		t.Fatal(err)
	}
	vm := h.boot(t, "u1", inst, root)
	fp := h.waitReady(ctx, t, vm)

	c := h.dial(ctx, t, vm, fp)
	if err := c.Request(ctx, "chat.inject", map[string]any{"sessionKey": mainKey, "message": "vmtest: before the update"}, nil); err != nil {
		t.Fatalf("chat.inject: %v", err)
	}
	c.Close()

	step := func(name string, bin []byte, wantState, wantVersion string) {
		t.Run(name, func(t *testing.T) {
			sum := sha256.Sum256(bin)
			sha := hex.EncodeToString(sum[:])
			h.s3.Put(bucket, update.Key(sha), bin)
			probe := startReadyProbe(vm.port)
			c := h.dial(ctx, t, vm, fp)
			var st update.Status
			err := c.Request(ctx, "update.run", map[string]any{"sha256": sha, "timeoutMs": 240000}, &st)
			c.Close()
			if err != nil || st.State != update.StateRequested {
				t.Fatalf("update.run: %v (%+v)", err, st)
			}
			final, version := h.waitUpdate(ctx, t, vm, fp, sha)
			down := probe.stop()
			t.Logf("%s: %s in %s of /readyz not answering ok (longest gap; %d probes); supervisor: %q, downtimeMs %d",
				name, final.State, down.Round(time.Millisecond), probe.count(), final.Message, final.DowntimeMs)
			if final.State != wantState {
				t.Errorf("update ended %q (%s), want %q", final.State, final.Message, wantState)
			}
			if version != wantVersion {
				t.Errorf("the gateway runs version %q, want %q", version, wantVersion)
			}
			c = h.dial(ctx, t, vm, fp)
			defer c.Close()
			var hist struct {
				Messages []json.RawMessage `json:"messages"`
			}
			if err := c.Request(ctx, "chat.history", map[string]any{"sessionKey": mainKey}, &hist); err != nil {
				t.Fatalf("chat.history: %v", err)
			}
			if b, _ := json.Marshal(hist.Messages); !strings.Contains(string(b), "vmtest: before the update") {
				t.Errorf("the session lost its history across the update: %s", b)
			}
		})
	}
	step("A to B", binB, update.StateDone, "vmtest-b")
	step("broken C rolls back to B", binC, update.StateRolledBack, "vmtest-b")
	h.stop(t, vm)
}

// buildGatewayVersion builds the Koi's binary stamped with version.
func buildGatewayVersion(ctx context.Context, dir, version string) ([]byte, error) {
	out := filepath.Join(dir, "skykoi-"+version)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags",
		"-X github.com/skykoi/skykoi/internal/version.Version="+version, "-o", out, "github.com/skykoi/skykoi/cmd/skykoi")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the gateway %s: %w\n%s", version, err, b)
	}
	return os.ReadFile(out)
}

// waitUpdate reconnects until update.status shows the update of sha ended,
// and returns it with the running gateway's version.
func (h *harness) waitUpdate(ctx context.Context, t *testing.T, vm *bootedVM, fp, sha string) (update.Status, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var last error
	for {
		dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := client.Dial(dctx, client.Options{
			URL: fmt.Sprintf("wss://127.0.0.1:%d/", vm.port), Token: h.token,
			TLSFingerprintSHA256: fp, Scopes: client.OwnerScopes(),
		})
		if err == nil {
			var res struct {
				Status  update.Status `json:"status"`
				Version string        `json:"version"`
			}
			err = c.Request(dctx, "update.status", nil, &res)
			c.Close()
			if err == nil && res.Status.SHA256 == sha && update.Final(res.Status.State) {
				dcancel()
				return res.Status, res.Version
			}
		}
		dcancel()
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: the update of %s did not end: %v", vm.name, sha[:12], last)
		case <-time.After(time.Second):
		}
	}
}

// readyProbe polls /readyz through nginx and keeps the longest stretch
// without a 200.
type readyProbe struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	n        int
	downFrom time.Time
	longest  time.Duration
}

func startReadyProbe(port int) *readyProbe {
	p := &readyProbe{done: make(chan struct{})}
	// Only timing is measured here; the pinned fingerprint is checked by
	// every wss dial of the test.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", port)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			at := time.Now()
			ok := false
			if resp, err := hc.Get(url); err == nil {
				ok = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
			p.mu.Lock()
			p.n++
			switch {
			case !ok && p.downFrom.IsZero():
				p.downFrom = at
			case ok && !p.downFrom.IsZero():
				p.longest = max(p.longest, at.Sub(p.downFrom))
				p.downFrom = time.Time{}
			}
			p.mu.Unlock()
			select {
			case <-p.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *readyProbe) stop() time.Duration {
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.downFrom.IsZero() {
		p.longest = max(p.longest, time.Since(p.downFrom))
	}
	return p.longest
}

func (p *readyProbe) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

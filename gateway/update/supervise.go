package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skykoi/skykoi/internal/atomicfile"
)

// Unit is what the supervisor sees of the gateway's service.
type Unit struct {
	ActiveState, SubState string
	MainPID               int
	NRestarts             int
}

// Service starts and inspects the gateway's service. On a Koi it is
// Systemd; tests run real processes.
type Service interface {
	// Restart asks for a restart and returns without waiting for it.
	Restart(ctx context.Context) error
	// ResetFailed clears a failed state and the start limit, so a rollback
	// can start a unit the broken binary drove into it.
	ResetFailed(ctx context.Context) error
	Show(ctx context.Context) (Unit, error)
}

// Systemd is a Service through systemctl.
type Systemd struct{ Unit string }

func (s Systemd) run(ctx context.Context, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Restart does not block: a binary that never becomes ready would hold a
// blocking restart for the unit's whole start timeout.
func (s Systemd) Restart(ctx context.Context) error {
	_, err := s.run(ctx, "restart", "--no-block", s.Unit)
	return err
}

func (s Systemd) ResetFailed(ctx context.Context) error {
	_, err := s.run(ctx, "reset-failed", s.Unit)
	return err
}

func (s Systemd) Show(ctx context.Context) (Unit, error) {
	out, err := s.run(ctx, "show", "-p", "ActiveState", "-p", "SubState", "-p", "MainPID", "-p", "NRestarts", s.Unit)
	if err != nil {
		return Unit{}, err
	}
	return ParseShow(string(out)), nil
}

// ParseShow reads `systemctl show -p ...` output (KEY=value lines).
func ParseShow(out string) Unit {
	var u Unit
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "ActiveState":
			u.ActiveState = v
		case "SubState":
			u.SubState = v
		case "MainPID":
			u.MainPID, _ = strconv.Atoi(v)
		case "NRestarts":
			u.NRestarts, _ = strconv.Atoi(v)
		}
	}
	return u
}

// SuperviseOptions configure Supervise.
type SuperviseOptions struct {
	// Dir is the update dir the gateway writes into.
	Dir string
	// BinaryPath is the gateway binary the unit runs; the previous one is
	// kept beside it as BinaryPath+".prev".
	BinaryPath string
	Service    Service
	// ReadyURL is the gateway's /readyz on loopback.
	ReadyURL string
	// Poll is the time between looks (default 500 ms); Settle how long a
	// ready gateway must stay up, same process, before it counts (default
	// 5 s): a binary that crashes right after its first READY=1 is broken.
	Poll, Settle time.Duration
	// MaxRestarts is how many automatic restarts of the new binary prove it
	// broken before the deadline (default 3).
	MaxRestarts int
	Log         *slog.Logger
	Now         func() time.Time
	HTTPClient  *http.Client
}

func (o *SuperviseOptions) defaults() {
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = 3
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 3 * time.Second}
	}
}

// ErrNoRequest is Supervise's answer when there is nothing to do.
var ErrNoRequest = errors.New("no update request")

// Supervise carries out the update the gateway requested: it installs the
// staged binary (keeping the one it replaces), restarts the gateway, and
// waits for the new process to be ready and stay so. When it is not by the
// request's deadline, it puts the previous binary back, restarts again and
// reports rolled-back. It runs as root from skykoi-update.service, from the
// binary installed when it starts, which is never the untried one. The
// request file is removed at the end whatever happened, so systemd's path
// unit does not start it again; status.json says how it went.
func Supervise(ctx context.Context, o SuperviseOptions) (Status, error) {
	o.defaults()
	reqPath := filepath.Join(o.Dir, RequestFile)
	fi, err := os.Lstat(reqPath)
	if errors.Is(err, os.ErrNotExist) {
		return Status{}, ErrNoRequest
	}
	if err != nil {
		return Status{}, fmt.Errorf("reading the update request: %w", err)
	}
	defer os.Remove(reqPath)
	st := Status{State: StateFailed, UpdatedAt: o.Now().UnixMilli()}
	req, err := readRequest(reqPath, fi)
	if err != nil {
		st.Message = err.Error()
		return st, o.write(st, err)
	}
	st.SHA256, st.RequestedAt = req.SHA256, req.RequestedAt
	deadline := time.Duration(req.TimeoutSec) * time.Second
	log := o.Log.With("sha256", req.SHA256)

	cur, err := fileSHA256(o.BinaryPath)
	if err != nil {
		st.Message = fmt.Sprintf("reading the installed binary: %v", err)
		return st, o.write(st, err)
	}
	if cur != req.SHA256 {
		st.PreviousSHA256 = cur
		o.progress(&st, StateInstalling, "installing")
		if err := o.install(req.SHA256); err != nil {
			st.State, st.Message = StateFailed, fmt.Sprintf("installing the new binary (the old one still runs): %v", err)
			log.Error("update: install failed", "err", err)
			return st, o.write(st, err)
		}
	} else if prev, err := fileSHA256(o.BinaryPath + ".prev"); err == nil {
		// Already installed: a supervisor cut short (a reboot) runs again.
		st.PreviousSHA256 = prev
	}
	log.Info("update: installed; restarting the gateway", "previous", st.PreviousSHA256, "timeout", deadline)

	o.progress(&st, StateRestarting, "restarting the gateway on the new binary")
	start := o.Now()
	why, err := o.restartAndWait(ctx, deadline)
	if err != nil {
		st.Message = err.Error()
		return st, o.write(st, err)
	}
	if why == "" {
		st.State, st.DowntimeMs = StateDone, o.Now().Sub(start).Milliseconds()-o.Settle.Milliseconds()
		st.Message = "the new binary is running and ready"
		log.Info("update: done", "downtimeMs", st.DowntimeMs)
		o.cleanup()
		return st, o.write(st, nil)
	}

	log.Error("update: the new binary did not become ready; rolling back", "reason", why)
	if st.PreviousSHA256 == "" {
		st.Message = "the new binary " + why + ", and there is no previous binary to roll back to; see journalctl -u skykoi-gateway"
		return st, o.write(st, errors.New(st.Message))
	}
	o.progress(&st, StateRollingBack, "the new binary "+why+"; rolling back")
	if err := o.rollback(); err != nil {
		st.State = StateFailed
		st.Message = fmt.Sprintf("the new binary %s, and putting the previous one back failed: %v", why, err)
		return st, o.write(st, err)
	}
	if err := o.Service.ResetFailed(ctx); err != nil {
		log.Warn("update: reset-failed", "err", err)
	}
	why2, err := o.restartAndWait(ctx, max(deadline, MinReadyTimeout))
	switch {
	case err != nil:
		st.State, st.Message = StateFailed, fmt.Sprintf("the new binary %s; rolled back, but restarting failed: %v", why, err)
	case why2 != "":
		st.State, st.Message = StateFailed, fmt.Sprintf("the new binary %s; rolled back, but the previous binary %s too; see journalctl -u skykoi-gateway", why, why2)
	default:
		st.State, st.Message = StateRolledBack, fmt.Sprintf("the new binary %s; rolled back to %s, which is running and ready", why, st.PreviousSHA256)
	}
	log.Warn("update: "+st.State, "message", st.Message)
	o.cleanup()
	return st, o.write(st, nil)
}

// readRequest reads request.json, refusing anything but a regular file: the
// update dir belongs to the gateway's user, and root must not follow its
// links.
func readRequest(path string, fi os.FileInfo) (requestFile, error) {
	var r requestFile
	if !fi.Mode().IsRegular() {
		return r, fmt.Errorf("%s is not a regular file; refusing it", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("reading the update request: %w", err)
	}
	if len(b) > 64<<10 {
		return r, errors.New("the update request is over 64 KiB")
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("the update request is not valid JSON: %w", err)
	}
	t := time.Duration(r.TimeoutSec) * time.Second
	switch {
	case !sha256Re.MatchString(r.SHA256):
		return r, fmt.Errorf("the update request's sha256 %q is not 64 lowercase hex digits", r.SHA256)
	case t < MinReadyTimeout || t > MaxReadyTimeout:
		return r, fmt.Errorf("the update request's timeoutSec %d is outside %s-%s", r.TimeoutSec, MinReadyTimeout, MaxReadyTimeout)
	}
	return r, nil
}

// install copies the staged binary next to the installed one, checks its
// SHA-256 there (the copy root made, not the file the gateway's user can
// still change), keeps the installed one as .prev and renames the copy over
// it. Each rename is atomic: the unit finds one whole binary or the other.
func (o *SuperviseOptions) install(sha string) error {
	staged := filepath.Join(o.Dir, StagedFile)
	fi, err := os.Lstat(staged)
	if err != nil {
		return fmt.Errorf("the staged binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file; refusing it", staged)
	}
	dir := filepath.Dir(o.BinaryPath)
	src, err := os.Open(staged)
	if err != nil {
		return fmt.Errorf("opening the staged binary: %w", err)
	}
	defer src.Close()
	// 0700 until verified: whatever the source was, nobody runs or reads
	// the copy before its digest is known to be the requested one.
	dst, err := os.CreateTemp(dir, "."+filepath.Base(o.BinaryPath)+".new-*")
	if err != nil {
		return fmt.Errorf("copying the staged binary: %w", err)
	}
	tmp := dst.Name()
	defer func() {
		dst.Close()
		os.Remove(tmp)
	}()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(src, MaxBinarySize+1)); err != nil {
		return fmt.Errorf("copying the staged binary: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("the staged binary's SHA-256 is %s, not the requested %s", got, sha)
	}
	if err := dst.Chmod(0o755); err != nil {
		return fmt.Errorf("copying the staged binary: %w", err)
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("copying the staged binary: %w", err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("copying the staged binary: %w", err)
	}
	if err := relink(o.BinaryPath, o.BinaryPath+".prev"); err != nil {
		return fmt.Errorf("keeping the previous binary: %w", err)
	}
	if err := os.Rename(tmp, o.BinaryPath); err != nil {
		return fmt.Errorf("swapping the binary in: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// rollback puts .prev back; .prev stays, so a second look finds it.
func (o *SuperviseOptions) rollback() error {
	if err := relink(o.BinaryPath+".prev", o.BinaryPath); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(o.BinaryPath))
}

// relink makes dst a hard link to src's file, replacing dst atomically
// (link to a temp name, then rename).
func relink(src, dst string) error {
	tmp := fmt.Sprintf("%s.tmp-%d", dst, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// restartAndWait restarts the unit and waits up to limit for a new process
// that is active, answers /readyz and is still the same process Settle
// later. It returns why not ("" when ready), or an error when the restart
// could not even be asked for.
func (o *SuperviseOptions) restartAndWait(ctx context.Context, limit time.Duration) (string, error) {
	before, err := o.Service.Show(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the gateway unit: %w", err)
	}
	if err := o.Service.Restart(ctx); err != nil {
		return "", fmt.Errorf("restarting the gateway: %w", err)
	}
	end := o.Now().Add(limit)
	readyPID, readySince := 0, time.Time{}
	last := "did not start"
	for {
		u, err := o.Service.Show(ctx)
		if err != nil {
			return "", fmt.Errorf("reading the gateway unit: %w", err)
		}
		switch {
		case u.NRestarts-before.NRestarts >= o.MaxRestarts:
			return fmt.Sprintf("crashed %d times (the unit restarted it automatically)", u.NRestarts-before.NRestarts), nil
		case u.ActiveState == "failed":
			return fmt.Sprintf("failed (the unit is %s/%s)", u.ActiveState, u.SubState), nil
		case u.ActiveState == "active" && u.MainPID != 0 && u.MainPID != before.MainPID && o.ready(ctx):
			if u.MainPID != readyPID {
				readyPID, readySince = u.MainPID, o.Now()
			}
			if o.Now().Sub(readySince) >= o.Settle {
				return "", nil
			}
		default:
			readyPID = 0
			last = fmt.Sprintf("was not ready within %s (the unit is %s/%s)", limit.Round(time.Second), u.ActiveState, u.SubState)
		}
		if o.Now().After(end) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

func (o *SuperviseOptions) ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.ReadyURL, nil)
	if err != nil {
		return false
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK
}

func (o *SuperviseOptions) progress(st *Status, state, msg string) {
	st.State, st.Message, st.UpdatedAt = state, msg, o.Now().UnixMilli()
	if err := writeJSON(filepath.Join(o.Dir, StatusFile), st); err != nil {
		o.Log.Warn("update: writing the status", "err", err)
	}
}

func (o *SuperviseOptions) write(st Status, err error) error {
	st.UpdatedAt = o.Now().UnixMilli()
	if werr := writeJSON(filepath.Join(o.Dir, StatusFile), st); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

func (o *SuperviseOptions) cleanup() {
	_ = os.Remove(filepath.Join(o.Dir, StagedFile))
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

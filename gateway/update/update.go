// Package update is the gateway's half of an in-place update: update.run
// downloads a new binary from the stack's bucket with the instance role,
// checks its SHA-256 and stages it with a request file in the state dir;
// update.status reads what the supervisor made of it.
//
// The swap, the restart and the rollback are not done here. A binary that
// crashes at once, or never gets ready, cannot be trusted to roll itself
// back, and the gateway's user cannot write the binary's directory or
// restart units without sudo. So the request file is picked up by a root
// supervisor that does not depend on either binary: skykoi-update.path
// starts skykoi-update.service (cloudinit renders both), a script that swaps
// the binary in, restarts the gateway, waits for readiness against the
// request's deadline, rolls back by itself when that fails, and writes
// status.json. The gateway needs no privilege beyond its own state dir.
package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/skykoi/skykoi/internal/atomicfile"
	"github.com/skykoi/skykoi/internal/awslog"
)

// Files in the update dir (<state dir>/update). The supervisor script reads
// and writes the same names.
const (
	DirName     = "update"
	RequestFile = "request.json"
	StatusFile  = "status.json"
	StagedFile  = "skykoi.staged"
)

// The environment the gateway unit sets: where the stack's binaries are.
const (
	EnvBucket   = "SKYKOI_UPDATE_BUCKET"
	EnvRegion   = "SKYKOI_UPDATE_REGION"
	EnvEndpoint = "SKYKOI_UPDATE_S3_ENDPOINT"
)

// KeyPrefix is where `skykoi koi update` puts binaries; the instance role
// may read only that prefix (and the provisioned binary).
const KeyPrefix = "bin/skykoi-"

// Key is the object key of a binary with this SHA-256.
func Key(sha string) string { return KeyPrefix + sha }

// Readiness deadline bounds: a deadline shorter than a start under load
// would roll back a good binary; a longer one than ten minutes leaves a
// broken Koi down for too long.
const (
	DefaultReadyTimeout = 90 * time.Second
	MinReadyTimeout     = 10 * time.Second
	MaxReadyTimeout     = 10 * time.Minute
	// MaxBinarySize bounds the download: the gateway is tens of MB.
	MaxBinarySize = 512 << 20
)

// States in status.json. The gateway writes "requested"; the supervisor
// the others, ending in done, rolled-back or failed.
const (
	StateRequested   = "requested"
	StateInstalling  = "installing"
	StateRestarting  = "restarting"
	StateRollingBack = "rolling-back"
	StateDone        = "done"
	StateRolledBack  = "rolled-back"
	StateFailed      = "failed"
)

// Final reports whether a state is an end state.
func Final(state string) bool {
	return state == StateDone || state == StateRolledBack || state == StateFailed
}

// Options configure an Updater.
type Options struct {
	// StateDir is the gateway's state dir; the update dir is inside it.
	StateDir string
	// Bucket, Region and Endpoint locate the stack's bucket (Endpoint, for
	// tests, is a path-style base URL). An empty Bucket turns updates off.
	Bucket, Region, Endpoint string
	// Credentials replace the SDK's default chain (the instance role).
	Credentials aws.CredentialsProvider
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger gets the SDK's own log lines (nil discards).
	Logger *slog.Logger
}

// Updater serves update.run and update.status.
type Updater struct {
	opts Options
	dir  string
	// mu makes one update.run at a time; the request file makes one
	// update at a time across restarts.
	mu sync.Mutex
}

// New returns an Updater; nothing is touched until Run.
func New(o Options) *Updater {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Updater{opts: o, dir: filepath.Join(o.StateDir, DirName)}
}

// Dir is the update dir.
func (u *Updater) Dir() string { return u.dir }

// Request is update.run's params; the same fields go to request.json.
type Request struct {
	SHA256 string `json:"sha256"`
	Key    string `json:"key"`
	// TimeoutMs is how long the new binary gets to become ready.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// Status is status.json, and update.status's payload.
type Status struct {
	State  string `json:"state"`
	SHA256 string `json:"sha256,omitempty"`
	// PreviousSHA256 is the binary that was running (and is kept).
	PreviousSHA256 string `json:"previousSha256,omitempty"`
	Message        string `json:"message,omitempty"`
	RequestedAt    int64  `json:"requestedAt,omitempty"`
	UpdatedAt      int64  `json:"updatedAt,omitempty"`
	// DowntimeMs is from the old gateway's stop to the new one's readiness,
	// as the supervisor saw it.
	DowntimeMs int64 `json:"downtimeMs,omitempty"`
}

// requestFile is request.json: what the supervisor acts on.
type requestFile struct {
	SHA256      string `json:"sha256"`
	Key         string `json:"key"`
	TimeoutSec  int64  `json:"timeoutSec"`
	RequestedAt int64  `json:"requestedAt"`
	FromVersion string `json:"fromVersion,omitempty"`
}

// Error is a refusal with what to do; Code says which kind.
type Error struct {
	Code    string // "invalid", "unavailable", "busy", "download", "mismatch"
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

var (
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
	keyRe    = regexp.MustCompile(`^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$`)
)

// Check validates a request and fills in its defaults.
func (r *Request) Check() error {
	switch {
	case !sha256Re.MatchString(r.SHA256):
		return &Error{Code: "invalid", Message: fmt.Sprintf("sha256 must be 64 lowercase hex digits, got %q", r.SHA256)}
	case r.Key == "":
		r.Key = Key(r.SHA256)
	case !keyRe.MatchString(r.Key) || strings.Contains("/"+r.Key+"/", "/../") || strings.Contains("/"+r.Key+"/", "/./"):
		return &Error{Code: "invalid", Message: fmt.Sprintf("key must be an S3 key of A-Z a-z 0-9 . _ ~ - segments, got %q", r.Key)}
	}
	if !strings.HasPrefix(r.Key, KeyPrefix) {
		return &Error{Code: "invalid", Message: fmt.Sprintf("key must start with %q (the instance role reads only that prefix), got %q; upload with `skykoi koi update`", KeyPrefix, r.Key)}
	}
	t := time.Duration(r.TimeoutMs) * time.Millisecond
	switch {
	case r.TimeoutMs == 0:
		r.TimeoutMs = DefaultReadyTimeout.Milliseconds()
	case t < MinReadyTimeout || t > MaxReadyTimeout:
		return &Error{Code: "invalid", Message: fmt.Sprintf("timeoutMs must be from %d to %d, got %d",
			MinReadyTimeout.Milliseconds(), MaxReadyTimeout.Milliseconds(), r.TimeoutMs)}
	}
	return nil
}

// Run downloads the binary, verifies it and hands it to the supervisor.
// When it returns nil the gateway is about to be restarted.
func (u *Updater) Run(ctx context.Context, r Request, fromVersion string) (Status, error) {
	if err := r.Check(); err != nil {
		return Status{}, err
	}
	if u.opts.Bucket == "" {
		return Status{}, &Error{Code: "unavailable", Message: "updates are off: the gateway unit sets no " + EnvBucket +
			" (this Koi's binary did not come from the stack's bucket); replace the instance instead"}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return Status{}, fmt.Errorf("creating the update dir: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(u.dir, RequestFile)); err == nil {
		return Status{}, &Error{Code: "busy", Message: "an update is already in progress; wait for update.status to show its end"}
	}
	if err := u.download(ctx, r); err != nil {
		return Status{}, err
	}
	now := u.opts.Now().UnixMilli()
	st := Status{State: StateRequested, SHA256: r.SHA256, RequestedAt: now, UpdatedAt: now,
		Message: "verified; waiting for the supervisor to swap it in"}
	if err := writeJSON(filepath.Join(u.dir, StatusFile), st); err != nil {
		return Status{}, err
	}
	// The request comes last: its appearance is what starts the supervisor.
	req := requestFile{SHA256: r.SHA256, Key: r.Key, TimeoutSec: (r.TimeoutMs + 999) / 1000,
		RequestedAt: now, FromVersion: fromVersion}
	if err := writeJSON(filepath.Join(u.dir, RequestFile), req); err != nil {
		return Status{}, err
	}
	return st, nil
}

// download fetches the object into the staged file, which exists only when
// its SHA-256 is the requested one.
func (u *Updater) download(ctx context.Context, r Request) error {
	cl, err := u.client(ctx)
	if err != nil {
		return err
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &u.opts.Bucket, Key: &r.Key})
	if err != nil {
		return &Error{Code: "download", Message: fmt.Sprintf("downloading s3://%s/%s with the instance role (upload it with `skykoi koi update --binary FILE`)", u.opts.Bucket, r.Key), Err: err}
	}
	defer out.Body.Close()
	staged := filepath.Join(u.dir, StagedFile)
	// A stale staged file from an earlier attempt must not survive a failed
	// one: the supervisor would find a binary nobody asked for.
	if err := os.Remove(staged); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the old staged binary: %w", err)
	}
	f, err := os.CreateTemp(u.dir, "."+StagedFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("staging the new binary: %w", err)
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		os.Remove(tmp) // gone already after the rename
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(out.Body, MaxBinarySize+1))
	if err != nil {
		return &Error{Code: "download", Message: fmt.Sprintf("reading s3://%s/%s", u.opts.Bucket, r.Key), Err: err}
	}
	if n > MaxBinarySize {
		return &Error{Code: "invalid", Message: fmt.Sprintf("s3://%s/%s is over %d MB; that is not a gateway binary", u.opts.Bucket, r.Key, MaxBinarySize>>20)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
		return &Error{Code: "mismatch", Message: fmt.Sprintf("s3://%s/%s has SHA-256 %s, not the requested %s; nothing was installed", u.opts.Bucket, r.Key, got, r.SHA256)}
	}
	if err := f.Chmod(0o755); err != nil {
		return fmt.Errorf("staging the new binary: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("staging the new binary: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("staging the new binary: %w", err)
	}
	if err := os.Rename(tmp, staged); err != nil {
		return fmt.Errorf("staging the new binary: %w", err)
	}
	return atomicfile.SyncDir(u.dir)
}

// client builds the S3 client: the SDK's default chain (the instance role
// on a Koi) unless the options give credentials.
func (u *Updater) client(ctx context.Context) (*s3.Client, error) {
	load := []func(*config.LoadOptions) error{
		config.WithRegion(u.opts.Region),
		// Without a logger the SDK prints plain text into the gateway's
		// JSON log.
		config.WithLogger(awslog.New(u.opts.Logger)),
	}
	if u.opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(u.opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration for S3: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		// The digest that matters is the requested SHA-256, checked below;
		// S3's own checksums are only there when the uploader asked.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		if u.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(u.opts.Endpoint)
			o.UsePathStyle = true
		}
	}), nil
}

// ReadStatus returns the last update's status; State is "" when there has
// been none. A request the supervisor has not picked up yet shows as
// requested.
func (u *Updater) ReadStatus() (Status, error) {
	var st Status
	b, err := os.ReadFile(filepath.Join(u.dir, StatusFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return Status{}, nil
	case err != nil:
		return Status{}, fmt.Errorf("reading the update status: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("reading the update status %s: %w", filepath.Join(u.dir, StatusFile), err)
	}
	return st, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

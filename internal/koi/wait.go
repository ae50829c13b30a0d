package koi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/skykoi/skykoi/gateway/client"
)

// Defaults of WaitOptions.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultWaitTimeout  = 10 * time.Minute
	// callTimeout bounds one EC2 call or readyz probe, so a hung
	// connection cannot outlast the wait's own timeout by much.
	callTimeout = 15 * time.Second
	// stoppedPolls is how many answers in a row must say stopped before
	// Wait gives up: right after StartInstances, EC2's eventually
	// consistent reads may still show the old state for a moment.
	stoppedPolls = 3
)

// Stage is where Wait is.
type Stage string

// The stages of Wait, in order.
const (
	StageInstance Stage = "instance" // waiting for the state to be running
	StageConsole  Stage = "console"  // waiting for SKYKOI-READY on the console
	StageReadyz   Stage = "readyz"   // waiting for /readyz over pinned TLS
	StageReady    Stage = "ready"    // done
)

// Progress is one step of Wait worth showing to a person. Wait reports
// when something changes, not on every poll.
type Progress struct {
	Stage   Stage
	Message string
	Elapsed time.Duration
	// Status is the instance as last described.
	Status Status
}

// WaitOptions tune Wait. Zero values get the defaults.
type WaitOptions struct {
	// PollInterval between looks; default DefaultPollInterval.
	PollInterval time.Duration
	// Timeout for the whole wait; default DefaultWaitTimeout.
	Timeout time.Duration
	// Fingerprint, when known (from an earlier wait or `fingerprint`),
	// skips the console stage. A Koi started again after a stop may not
	// print its announcements again, so waking it needs this.
	Fingerprint string
	// ReadyURL replaces https://<address>/readyz, for tests and for
	// reaching a Koi through a tunnel.
	ReadyURL string
	// Progress, if set, is called from Wait's goroutine.
	Progress func(Progress)
	// CheckReady probes the readyz URL pinned to the fingerprint; default
	// CheckReadyz.
	CheckReady func(ctx context.Context, url, fingerprint string) error
	// Now and Sleep replace the clock, for tests. Sleep must return early
	// with ctx's error when ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// WaitResult is a Koi that is up.
type WaitResult struct {
	Status Status
	// URL is the Koi's base URL (https://address/).
	URL string
	// ReadyURL is the URL that answered ready.
	ReadyURL string
	// Fingerprint is the pinned certificate's SHA-256, formatted like
	// openssl prints it.
	Fingerprint string
}

// TimeoutError is Wait running out of time; Stage says what it was still
// waiting for and Last what it saw last.
type TimeoutError struct {
	ID    string
	Stage Stage
	After time.Duration
	Last  string
}

func (e *TimeoutError) Error() string {
	what := map[Stage]string{
		StageInstance: "to be running",
		StageConsole:  "to print " + MarkReady + " on its console",
		StageReadyz:   "to answer /readyz",
	}[e.Stage]
	msg := fmt.Sprintf("timed out after %s waiting for %s %s", e.After, e.ID, what)
	if e.Last != "" {
		msg += " (last: " + e.Last + ")"
	}
	return msg
}

// BootstrapError is a SKYKOI-FAILED line on the console.
type BootstrapError struct {
	ID, Step, Reason string
}

func (e *BootstrapError) Error() string {
	if e.Step == "" {
		return fmt.Sprintf("the bootstrap of %s failed: %s (the console has the details)", e.ID, e.Reason)
	}
	return fmt.Sprintf("the bootstrap of %s failed at step %q: %s (the console has the details)", e.ID, e.Step, e.Reason)
}

// StateError is an instance in a state Wait cannot wait out.
type StateError struct {
	ID, State string
}

func (e *StateError) Error() string {
	switch e.State {
	case StateStopped, StateStopping:
		return fmt.Sprintf("%s is %s: start it first (skykoi koi start --instance %s)", e.ID, e.State, e.ID)
	default:
		return fmt.Sprintf("%s is %s and cannot be started again", e.ID, e.State)
	}
}

// Wait polls until the instance is running, its console says SKYKOI-READY
// (with the TLS fingerprint), and https://<address>/readyz answers ok
// over TLS pinned to that fingerprint. It fails at once on a
// SKYKOI-FAILED line, a terminated instance, a certificate that does not
// match the pin, or an instance that stays stopped; otherwise it keeps
// polling until the timeout.
func (c *Client) Wait(ctx context.Context, id string, o WaitOptions) (WaitResult, error) {
	w := newWaiter(c, id, o)
	st, err := w.running(ctx)
	if err != nil {
		return WaitResult{Status: st}, err
	}
	fp := ""
	if o.Fingerprint != "" {
		b, err := client.ParseFingerprint(o.Fingerprint)
		if err != nil {
			return WaitResult{Status: st}, err
		}
		fp = client.FormatFingerprint(b)
		w.report(StageConsole, "skipped: using the given fingerprint "+fp, st)
	} else if fp, err = w.console(ctx, st); err != nil {
		return WaitResult{Status: st}, err
	}
	return w.readyz(ctx, st, fp)
}

type waiter struct {
	c        *Client
	id       string
	o        WaitOptions
	start    time.Time
	deadline time.Time
	lastMsg  string
}

func newWaiter(c *Client, id string, o WaitOptions) *waiter {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultWaitTimeout
	}
	if o.CheckReady == nil {
		o.CheckReady = CheckReadyz
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	w := &waiter{c: c, id: id, o: o, start: o.Now()}
	w.deadline = w.start.Add(o.Timeout)
	return w
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (w *waiter) report(stage Stage, msg string, st Status) {
	line := string(stage) + ": " + msg
	if w.o.Progress == nil || line == w.lastMsg {
		return
	}
	w.lastMsg = line
	w.o.Progress(Progress{Stage: stage, Message: msg, Elapsed: w.o.Now().Sub(w.start), Status: st})
}

// pause sleeps one poll interval, or less when the deadline is nearer;
// past the deadline it returns the TimeoutError for stage.
func (w *waiter) pause(ctx context.Context, stage Stage, last string) error {
	left := w.deadline.Sub(w.o.Now())
	if left <= 0 {
		return &TimeoutError{ID: w.id, Stage: stage, After: w.o.Timeout, Last: last}
	}
	if err := w.o.Sleep(ctx, min(w.o.PollInterval, left)); err != nil {
		return fmt.Errorf("waiting for %s (%s): %w", w.id, stage, err)
	}
	return nil
}

// bounded gives one call a context that ends with the wait's deadline (as
// far as the real clock goes) or after callTimeout, whichever is first.
func (w *waiter) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	d := min(callTimeout, w.deadline.Sub(w.o.Now()))
	if d < time.Second {
		// Give the last try a fair chance instead of failing it at once.
		d = time.Second
	}
	return context.WithTimeout(ctx, d)
}

func (w *waiter) running(ctx context.Context) (Status, error) {
	stopped := 0
	for {
		cctx, cancel := w.bounded(ctx)
		st, err := w.c.Status(cctx, w.id)
		cancel()
		if err != nil {
			return st, err
		}
		msg := st.State
		switch st.State {
		case StateRunning:
			w.report(StageInstance, checksLine(st), st)
			return st, nil
		case StateTerminated, StateShuttingDown:
			return st, &StateError{ID: w.id, State: st.State}
		case StateStopped, StateStopping:
			stopped++
			if stopped >= stoppedPolls {
				return st, &StateError{ID: w.id, State: st.State}
			}
		default:
			stopped = 0
		}
		w.report(StageInstance, msg, st)
		if err := w.pause(ctx, StageInstance, "it is "+st.State); err != nil {
			return st, err
		}
	}
}

func checksLine(st Status) string {
	if st.SystemStatus == "" && st.InstanceStatus == "" {
		return st.State
	}
	return fmt.Sprintf("%s (status checks: system %s, instance %s)", st.State, orDash(st.SystemStatus), orDash(st.InstanceStatus))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (w *waiter) console(ctx context.Context, st Status) (string, error) {
	w.report(StageConsole, "waiting for "+MarkReady, st)
	for {
		cctx, cancel := w.bounded(ctx)
		text, err := w.c.ConsoleOutput(cctx, w.id)
		cancel()
		if err != nil {
			return "", err
		}
		fp, ready, failed := ParseConsole(text)
		if failed != "" {
			step, reason := SplitFailure(failed)
			return "", &BootstrapError{ID: w.id, Step: step, Reason: reason}
		}
		last := "no output yet"
		switch {
		case ready && fp != "":
			w.report(StageConsole, MarkReady+", TLS fingerprint "+fp, st)
			return fp, nil
		case ready:
			// The 64 KiB console window can lose the early fingerprint line
			// on a chatty boot; waiting longer will not bring it back.
			return "", fmt.Errorf("the console of %s says %s but no longer shows its %s line: "+
				"read the fingerprint of nginx's certificate on the instance (openssl x509 -noout -fingerprint -sha256 -in CERT) and pass it",
				w.id, MarkReady, MarkFingerprint)
		case fp != "":
			last = "fingerprint " + fp + " seen, no " + MarkReady + " yet"
			w.report(StageConsole, "TLS fingerprint "+fp+"; waiting for "+MarkReady, st)
		case text != "":
			last = "output but no " + MarkReady + " yet"
		}
		if err := w.pause(ctx, StageConsole, last); err != nil {
			return "", err
		}
	}
}

func (w *waiter) readyz(ctx context.Context, st Status, fp string) (WaitResult, error) {
	res := WaitResult{Status: st, Fingerprint: fp, ReadyURL: w.o.ReadyURL}
	if res.ReadyURL == "" {
		if st.Address() == "" {
			// The address can lag the running state by a moment.
			cctx, cancel := w.bounded(ctx)
			fresh, err := w.c.Status(cctx, w.id)
			cancel()
			if err != nil {
				return res, err
			}
			st, res.Status = fresh, fresh
		}
		if st.Address() == "" {
			return res, fmt.Errorf("%s has no public IP address or DNS name to reach its gateway at", w.id)
		}
		res.URL = (&url.URL{Scheme: "https", Host: st.Address(), Path: "/"}).String()
		res.ReadyURL = res.URL + "readyz"
	} else {
		u, err := url.Parse(res.ReadyURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return res, fmt.Errorf("ready URL %q: want https://host[:port]/path", res.ReadyURL)
		}
		res.URL = (&url.URL{Scheme: "https", Host: u.Host, Path: "/"}).String()
	}
	w.report(StageReadyz, "checking "+res.ReadyURL, st)
	for {
		cctx, cancel := w.bounded(ctx)
		err := w.o.CheckReady(cctx, res.ReadyURL, fp)
		cancel()
		if err == nil {
			w.report(StageReady, res.ReadyURL+" ok", st)
			return res, nil
		}
		if permanent(err) {
			return res, fmt.Errorf("checking %s: %w", res.ReadyURL, err)
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("waiting for %s (%s): %w", w.id, StageReadyz, ctx.Err())
		}
		w.report(StageReadyz, "not yet: "+err.Error(), st)
		if err := w.pause(ctx, StageReadyz, err.Error()); err != nil {
			return res, err
		}
	}
}

// permanent reports errors that another try cannot fix: a certificate
// that is not the pinned one means the wrong machine or an interception,
// and must never be retried into success.
func permanent(err error) bool {
	var fe *client.FingerprintError
	var pe *pinError
	return errors.As(err, &fe) || errors.As(err, &pe)
}

type pinError struct{ err error }

func (e *pinError) Error() string { return e.err.Error() }
func (e *pinError) Unwrap() error { return e.err }

// CheckReadyz GETs url over TLS that is verified only by the pin: the
// SHA-256 of the leaf certificate's DER must equal fingerprint. A Koi's
// nginx has a self-signed certificate, so there is no CA chain to check;
// the pin is checked on every handshake, and a mismatch is a
// *client.FingerprintError. The gateway's /readyz answers 200
// {"ok":true,...} when it accepts work.
func CheckReadyz(ctx context.Context, url, fingerprint string) error {
	cfg, err := client.PinnedTLSConfig(fingerprint)
	if err != nil {
		return &pinError{err}
	}
	hc := &http.Client{
		Transport: &http.Transport{
			Proxy:             http.ProxyFromEnvironment,
			TLSClientConfig:   cfg,
			DisableKeepAlives: true,
			ForceAttemptHTTP2: true,
		},
		// A redirect could lead to a host the pin was not meant for.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &pinError{fmt.Errorf("readyz URL %q: %w", url, err)}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var r struct {
		OK bool `json:"ok"`
	}
	if err := json.Unmarshal(body, &r); err != nil || !r.OK {
		return fmt.Errorf("readyz answered 200 but not {\"ok\":true}: %s", strings.TrimSpace(string(body)))
	}
	return nil
}

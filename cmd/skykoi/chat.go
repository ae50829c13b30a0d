package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway"
	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
	"github.com/skykoi/skykoi/internal/chatui"
	"github.com/spf13/cobra"
)

const (
	defaultChatURL = "ws://127.0.0.1:18789/"
	chatClientID   = "skykoi-chat"
	// chatClientMode is the protocol's mode for an interactive UI: a person
	// chatting is presence, unlike the one-shot "cli" calls.
	chatClientMode = "ui"
	// chatEventBuffer is how many events wait while the loop is inside a
	// request; the gateway coalesces deltas, so this covers minutes of a run.
	chatEventBuffer = 4096
	// historyShown is what /history prints.
	historyShown = 20
	// waitSliceMs is one agent.wait; the wait is repeated while the run is
	// still going, so a long run does not need a long request.
	waitSliceMs = 30000
	// maxLineBytes bounds one input line: the gateway refuses messages over
	// 1 MiB anyway.
	maxLineBytes = 1 << 20
	// abortTimeout bounds a chat.abort sent on Ctrl-C.
	abortTimeout = 10 * time.Second
	// chatBackoffMax caps the reconnect delay lower than the client's
	// default: someone is looking at the terminal waiting for the Koi.
	chatBackoffMax = 5 * time.Second
)

var (
	// errQuit is a request to leave (a second Ctrl-C during a run); the
	// command then exits cleanly.
	errQuit = errors.New("quit")
	// errInterrupted: Ctrl-C ended a request before its answer came.
	errInterrupted = errors.New("interrupted")
	// errRunFailed: the run ended in error or was stopped; the Turn already
	// printed why.
	errRunFailed = errors.New("the run did not complete")
)

// chatOptions is a chat's configuration, set from flags by newChatCmd and
// directly by tests.
type chatOptions struct {
	url, token, tlsSHA256 string
	sessionKey            string // canonical
	// message, when oneShot, is sent alone; the answer is printed and the
	// command exits.
	message string
	oneShot bool
	// tty shows a prompt: only a person at a terminal needs one, a script
	// piping lines in would get it mixed into the answers.
	tty bool
	// interrupts delivers Ctrl-C.
	interrupts <-chan os.Signal
	backoff    client.Backoff
	now        func() time.Time
}

func newChatCmd() *cobra.Command {
	var url, tokenFile, sessionKey, tlsSHA256, message string
	c := &cobra.Command{
		Use:   "chat",
		Short: "Talk with your Koi in the terminal",
		Long: "Talk with your Koi in the terminal: each line you type is sent to the\n" +
			"session, the answer streams back, tool calls show as one-line summaries.\n\n" +
			"The token comes from --token-file or $SKYKOI_TOKEN (there is no --token\n" +
			"flag: it would be visible in the process list and the shell history).\n" +
			"For a Koi behind nginx with a self-signed certificate, pin it with\n" +
			"--tls-sha256 (see `openssl x509 -noout -fingerprint -sha256 -in CERT`)\n" +
			"instead of turning verification off.\n\n" +
			"Type /help inside the chat for the commands (/new, /stop, /sessions, …).\n" +
			"When the connection drops, chat reconnects and picks up the answer.\n\n" +
			"Exit status: 0 when you leave (Ctrl-D, /quit, Ctrl-C while idle); with\n" +
			"--message, 1 when the run fails or is stopped; 1 when the gateway cannot\n" +
			"be reached; 2 on a usage mistake such as no token.",
		Example: "  SKYKOI_TOKEN=... skykoi chat\n" +
			"  skykoi chat --url wss://koi.example.net/ --token-file ~/.skykoi/token --tls-sha256 AB:CD:…\n" +
			"  skykoi chat --session work --message 'what is on my list today?'",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageError{fmt.Errorf("chat takes no arguments, got %q (use --message to send one; see '%s --help')", args, c.CommandPath())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
				return usageError{fmt.Errorf("--url must start with ws:// or wss://, got %q", url)}
			}
			if tlsSHA256 != "" {
				if _, err := client.ParseFingerprint(tlsSHA256); err != nil {
					return usageError{fmt.Errorf("--tls-sha256: %w", err)}
				}
				if !strings.HasPrefix(url, "wss://") {
					return usageError{errors.New("--tls-sha256 needs a wss:// --url")}
				}
			}
			key, err := session.NormalizeKey(sessionKey)
			if err != nil {
				return usageError{fmt.Errorf("--session: %w", err)}
			}
			oneShot := c.Flags().Changed("message")
			if oneShot && strings.TrimSpace(message) == "" {
				return usageError{errors.New("--message is empty")}
			}
			token, err := gatewayToken(tokenFile)
			if err != nil {
				return err
			}
			// Ctrl-C is ours while chatting: during an answer it stops the
			// answer instead of ending the program.
			ints := make(chan os.Signal, 1)
			signal.Notify(ints, os.Interrupt)
			defer signal.Stop(ints)
			ctx, cancel := chatLife(c.Context())
			defer cancel()
			o := chatOptions{url: url, token: token, tlsSHA256: tlsSHA256, sessionKey: key,
				message: message, oneShot: oneShot, tty: isTTY(c.InOrStdin()), interrupts: ints}
			return runChat(ctx, o, stdio{in: c.InOrStdin(), out: c.OutOrStdout(), err: c.ErrOrStderr()})
		},
	}
	f := c.Flags()
	f.StringVar(&url, "url", defaultChatURL, "gateway WebSocket URL (ws:// or wss://)")
	f.StringVar(&tokenFile, "token-file", "", "read the gateway token from this file (first line); default $SKYKOI_TOKEN")
	f.StringVar(&sessionKey, "session", "main", "session to talk in")
	f.StringVar(&tlsSHA256, "tls-sha256", "", "pin the server certificate's SHA-256 fingerprint (hex, colons allowed) instead of CA verification")
	f.StringVar(&message, "message", "", "send this one message, print the answer and exit")
	return c
}

// gatewayToken reads the token from the file, else from $SKYKOI_TOKEN. Neither
// is a usage error: every gateway reachable from elsewhere needs one, and a
// refused handshake would only say "token missing" after a round trip.
func gatewayToken(tokenFile string) (string, error) {
	if tokenFile != "" {
		t, err := readSecretFile(tokenFile)
		if err != nil {
			return "", usageError{fmt.Errorf("reading the token: %w", err)}
		}
		return t, nil
	}
	if t := strings.TrimSpace(os.Getenv(configgen.EnvClientToken)); t != "" {
		return t, nil
	}
	return "", usageError{errors.New("no gateway token: give --token-file FILE or set $SKYKOI_TOKEN")}
}

// chatLife is the chat's lifetime: it ends with the parent, except when the
// parent ended because of Ctrl-C. main cancels its context on the first
// SIGINT, but in a chat Ctrl-C means "stop this answer", and the chat sees
// it on its own signal channel. signal.NotifyContext reports the signal as
// the context's cause, with this exact text.
func chatLife(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		cause := context.Cause(parent)
		if cause != nil && cause.Error() == os.Interrupt.String()+" signal received" {
			return
		}
		cancel(cause)
	})
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// isTTY reports whether r is a terminal.
func isTTY(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runChat connects and runs the chat until the person leaves.
func runChat(ctx context.Context, o chatOptions, io stdio) error {
	if o.now == nil {
		o.now = time.Now
	}
	if o.backoff.Max == 0 {
		o.backoff.Max = chatBackoffMax
	}
	cl, err := client.Dial(ctx, client.Options{
		URL:                  o.url,
		Token:                o.token,
		TLSFingerprintSHA256: o.tlsSHA256,
		Client:               protocol.Client{ID: chatClientID, Mode: chatClientMode},
		Scopes:               client.OwnerScopes(),
		Caps:                 []string{protocol.CapToolEvents},
		Reconnect:            true,
		Backoff:              o.backoff,
	})
	if err != nil {
		chatDialHint(io.err, err)
		return fmt.Errorf("connecting to %s: %w", o.url, err)
	}
	defer cl.Close()
	events, unsubscribe := cl.Subscribe(chatEventBuffer)
	defer unsubscribe()
	c := &chat{cl: cl, events: events, ints: o.interrupts, out: io.out, errw: io.err,
		sessionKey: o.sessionKey, tty: o.tty, now: o.now}
	// Said on arrival: otherwise a Koi without model credentials looks fine
	// until the first message fails.
	c.modelHealth(cl.Hello().Snapshot.Health, nil)
	if o.oneShot {
		return c.oneShot(ctx, o.message)
	}
	return c.interactive(ctx, io.in)
}

// chatDialHint explains the usual reasons a first connect fails.
func chatDialHint(w io.Writer, err error) {
	switch client.DetailsCode(err) {
	case protocol.AuthTokenMissing, protocol.AuthTokenMismatch:
		fmt.Fprintln(w, "hint: the gateway refused the token; check --token-file or $SKYKOI_TOKEN")
		return
	}
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &verify) {
		fmt.Fprintln(w, "hint: for a self-signed certificate, pin it with --tls-sha256 (openssl x509 -noout -fingerprint -sha256 -in CERT)")
	}
}

// chat is one chat's state. Only the goroutine running interactive or
// oneShot touches it; helpers that run requests in the background hand
// their results back over channels.
type chat struct {
	cl         *client.Client
	events     <-chan client.EventFrame
	ints       <-chan os.Signal
	out, errw  io.Writer
	sessionKey string
	tty        bool
	now        func() time.Time

	// prompted: a prompt is on screen, so a notice must start a new line
	// and the prompt must be shown again after it.
	prompted bool
	// lastRun is this chat's newest run: its final event, should it arrive
	// after the turn ended (a reconnect, agent.wait), is not printed again.
	lastRun string
	// modelWarning is the model-unreachable sentence last shown, so a
	// health event repeating it stays quiet.
	modelWarning string
}

// modelHealth shows what health (hello-ok's snapshot or a health event)
// says about the model, when that changed: the gateway's one sentence when
// runs cannot work, a line when they can again.
func (c *chat) modelHealth(health any, t *chatui.Turn) {
	var h struct {
		Model *gateway.HealthModel `json:"model"`
	}
	// A RawMessage marshals to itself, so one path serves the event's
	// payload and hello-ok's decoded snapshot.
	raw, err := json.Marshal(health)
	if err != nil || json.Unmarshal(raw, &h) != nil {
		return
	}
	if h.Model == nil || h.Model.Reachable == nil {
		return
	}
	switch {
	case !*h.Model.Reachable:
		msg := h.Model.Error
		if msg == "" {
			msg = "The model is unreachable; `skykoi call health` and the gateway's log say why."
		}
		if msg != c.modelWarning {
			c.modelWarning = msg
			c.notice("warning: "+msg, t)
		}
	case c.modelWarning != "":
		c.modelWarning = ""
		c.notice("[the model is reachable again]", t)
	}
}

// inputLine is one line of stdin, or the error that ended reading.
type inputLine struct {
	text string
	err  error
}

// readLines reads stdin on its own goroutine so the chat can wait for a
// line, an event and Ctrl-C at once. The channel closes at the end of input.
func readLines(r io.Reader, done <-chan struct{}) <-chan inputLine {
	ch := make(chan inputLine)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), maxLineBytes)
		for sc.Scan() {
			select {
			case ch <- inputLine{text: strings.TrimRight(sc.Text(), "\r")}:
			case <-done:
				return
			}
		}
		if err := sc.Err(); err != nil {
			select {
			case ch <- inputLine{err: err}:
			case <-done:
			}
		}
	}()
	return ch
}

func (c *chat) interactive(ctx context.Context, in io.Reader) error {
	done := make(chan struct{})
	defer close(done)
	lines := readLines(in, done)
	if c.tty {
		fmt.Fprintf(c.out, "session %s; /help lists the commands\n", chatui.ShortKey(c.sessionKey))
	}
	for {
		if c.tty && !c.prompted {
			fmt.Fprint(c.out, "you> ")
			c.prompted = true
		}
		select {
		case l, ok := <-lines:
			c.prompted = false
			if !ok {
				if c.tty {
					fmt.Fprintln(c.out)
				}
				return nil
			}
			if l.err != nil {
				return fmt.Errorf("reading input: %w", l.err)
			}
			quit, err := c.handle(ctx, l.text)
			if quit || errors.Is(err, errQuit) {
				return nil
			}
			switch {
			case err == nil, errors.Is(err, errRunFailed):
			case c.ended() != nil:
				return c.ended()
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, errInterrupted):
				fmt.Fprintln(c.errw, "[cancelled]")
			default:
				fmt.Fprintf(c.errw, "error: %v\n", err)
			}
		case ev, ok := <-c.events:
			if !ok {
				if ended := c.ended(); ended != nil {
					return ended
				}
				return errors.New("the event stream ended")
			}
			c.idleEvent(ev)
		case <-c.ints:
			// Ctrl-C with nothing running leaves, as in a shell.
			if c.tty {
				fmt.Fprintln(c.out)
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// oneShot sends one message (or runs one command) and reports the outcome
// in the exit status.
func (c *chat) oneShot(ctx context.Context, message string) error {
	_, err := c.handle(ctx, message)
	if err == nil {
		return nil
	}
	if ended := c.ended(); ended != nil {
		return ended
	}
	switch {
	case errors.Is(err, errRunFailed), errors.Is(err, errQuit):
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(c.errw, "[cancelled]")
	default:
		fmt.Fprintf(c.errw, "error: %v\n", err)
	}
	// The reason is already on stderr.
	return &exitError{code: 1, err: errors.New("")}
}

// ended returns why the client stopped for good (a reconnect the gateway
// refused, for instance after a token change), or nil while it lives.
func (c *chat) ended() error {
	select {
	case <-c.cl.Done():
		return fmt.Errorf("connection to the gateway ended: %w", c.cl.Err())
	default:
		return nil
	}
}

// idleEvent shows what matters between turns: the connection's state and
// whether the model can answer.
func (c *chat) idleEvent(ev client.EventFrame) {
	if ev.Event == protocol.EventHealth {
		c.modelHealth(ev.Payload, nil)
		return
	}
	if ev.Event == protocol.EventChat {
		c.otherAnswer(ev.Payload)
		return
	}
	if n := connNotice(ev); n != "" {
		c.notice(n, nil)
	}
	if ev.Event == client.EventReconnected {
		c.modelHealth(c.cl.Hello().Snapshot.Health, nil)
	}
}

// otherAnswer prints a final answer that reached this chat's session from
// a run it did not start: a scheduled job's or the heartbeat's
// announcement, or a turn another client (the web page) asked for. Deltas
// are not shown: the final message is whole.
func (c *chat) otherAnswer(payload json.RawMessage) {
	var e chatui.ChatEvent
	if json.Unmarshal(payload, &e) != nil || e.State != chatui.StateFinal || e.SessionKey != c.sessionKey ||
		e.Message == nil || e.RunID == c.lastRun {
		return
	}
	text := strings.TrimSpace(e.Message.Text())
	if text == "" {
		return
	}
	if c.prompted {
		fmt.Fprintln(c.out)
		c.prompted = false
	}
	fmt.Fprintln(c.out, text)
}

// notice writes a bracketed status line to stderr, starting a new line on
// stdout first when a prompt or an answer is in the middle of one.
func (c *chat) notice(text string, t *chatui.Turn) {
	if t != nil {
		fmt.Fprint(c.out, t.Break())
	}
	if c.prompted {
		fmt.Fprintln(c.out)
		c.prompted = false
	}
	fmt.Fprintln(c.errw, text)
}

// connNotice is the line shown for a client notice, or "".
func connNotice(ev client.EventFrame) string {
	switch ev.Event {
	case client.EventDisconnected:
		var p struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(ev.Payload, &p)
		return "[disconnected: " + chatui.OneLine(p.Error) + "; reconnecting]"
	case client.EventReconnected:
		return "[reconnected]"
	}
	return ""
}

// handle runs one line: a command or a message. quit is set for /quit.
func (c *chat) handle(ctx context.Context, line string) (quit bool, err error) {
	text := strings.TrimSpace(line)
	if text == "" {
		return false, nil
	}
	cmd, ok := chatui.ParseCommand(text)
	if !ok {
		return false, c.turn(ctx, text)
	}
	switch cmd.Name {
	case "quit", "exit":
		return true, nil
	case "help", "?":
		fmt.Fprint(c.out, chatui.Help)
		return false, nil
	case "new", "reset":
		return false, c.reset(ctx, "/"+cmd.Name)
	case "stop":
		return false, c.stop(ctx)
	case "sessions":
		return false, c.sessions(ctx)
	case "session":
		return false, c.switchSession(cmd.Arg)
	case "history":
		return false, c.history(ctx)
	}
	return false, fmt.Errorf("unknown command /%s (type /help for the list)", cmd.Name)
}

// call sends one request, giving up when Ctrl-C comes first (a request can
// wait long while the client reconnects).
func (c *chat) call(ctx context.Context, method string, params, out any) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- c.cl.Request(ctx, method, params, out) }()
	select {
	case err := <-res:
		return err
	case <-c.ints:
		cancel()
		<-res
		return fmt.Errorf("%s: %w", method, errInterrupted)
	}
}

func (c *chat) reset(ctx context.Context, command string) error {
	var res struct {
		SessionID     string   `json:"sessionId"`
		AbortedRunIDs []string `json:"abortedRunIds"`
	}
	params := map[string]any{"sessionKey": c.sessionKey, "message": command, "idempotencyKey": newIdempotencyKey()}
	if err := c.call(ctx, "chat.send", params, &res); err != nil {
		return err
	}
	msg := "started a new session"
	if n := len(res.AbortedRunIDs); n > 0 {
		msg += fmt.Sprintf(" (stopped %d run(s))", n)
	}
	fmt.Fprintln(c.out, msg)
	return nil
}

func (c *chat) stop(ctx context.Context) error {
	var res struct {
		RunIDs []string `json:"runIds"`
	}
	if err := c.call(ctx, "chat.abort", map[string]any{"sessionKey": c.sessionKey}, &res); err != nil {
		return err
	}
	if len(res.RunIDs) == 0 {
		fmt.Fprintln(c.out, "nothing to stop")
		return nil
	}
	fmt.Fprintf(c.out, "stopped %d run(s)\n", len(res.RunIDs))
	return nil
}

func (c *chat) sessions(ctx context.Context) error {
	var res struct {
		Sessions []chatui.SessionRow `json:"sessions"`
	}
	if err := c.call(ctx, "sessions.list", map[string]any{"limit": 50}, &res); err != nil {
		return err
	}
	fmt.Fprint(c.out, chatui.FormatSessions(res.Sessions, c.sessionKey, c.now()))
	return nil
}

func (c *chat) switchSession(arg string) error {
	if arg == "" {
		fmt.Fprintf(c.out, "session %s (give /session KEY to switch)\n", chatui.ShortKey(c.sessionKey))
		return nil
	}
	key, err := session.NormalizeKey(arg)
	if err != nil {
		return err
	}
	c.sessionKey = key
	fmt.Fprintf(c.out, "session %s\n", chatui.ShortKey(key))
	return nil
}

func (c *chat) history(ctx context.Context) error {
	var res struct {
		Messages []chatui.Message `json:"messages"`
	}
	if err := c.call(ctx, "chat.history", map[string]any{"sessionKey": c.sessionKey, "limit": historyShown}, &res); err != nil {
		return err
	}
	fmt.Fprint(c.out, chatui.FormatHistory(res.Messages))
	return nil
}

// turn sends one message and shows the run until it ends. It returns
// errRunFailed when the run failed or was stopped, errQuit on a second
// Ctrl-C.
func (c *chat) turn(ctx context.Context, message string) error {
	// The run id is the idempotency key, known before the send, so events
	// that overtake chat.send's response are recognised.
	runID := newIdempotencyKey()
	t := chatui.NewTurn(runID)
	params := map[string]any{"sessionKey": c.sessionKey, "message": message, "idempotencyKey": runID}
	var ack struct {
		RunID  string `json:"runId"`
		Status string `json:"status"`
	}
	missed := false
	for attempt := 0; ; attempt++ {
		err := c.call(ctx, "chat.send", params, &ack)
		if err == nil {
			break
		}
		// The key makes a resend safe: a run the first attempt started is
		// found again, not started twice. Its early events may be gone.
		if errors.Is(err, client.ErrConnectionLost) && attempt < 3 {
			missed = true
			continue
		}
		if errors.Is(err, errInterrupted) {
			// The send may have reached the gateway before Ctrl-C; make
			// sure no run is left going that nobody watches.
			actx, cancel := context.WithTimeout(ctx, abortTimeout)
			_ = c.cl.Request(actx, "chat.abort", map[string]any{"sessionKey": c.sessionKey, "runId": runID}, nil)
			cancel()
		}
		return err
	}
	if ack.RunID != "" {
		t.RunID, runID = ack.RunID, ack.RunID
	}
	c.lastRun = runID
	waitCtx, stopWaits := context.WithCancel(ctx)
	defer stopWaits()
	var waits chan waitResult
	startWait := func() {
		if waits == nil {
			waits = make(chan waitResult, 1)
			go func(ch chan<- waitResult, key string) { ch <- c.waitRun(waitCtx, key, runID) }(waits, c.sessionKey)
		}
	}
	if missed || (ack.Status != "started" && ack.Status != "in_flight") {
		// The run may have ended before this connection saw it.
		startWait()
	}
	var aborts chan error
	interrupted := false
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				fmt.Fprint(c.out, t.Break())
				if ended := c.ended(); ended != nil {
					return ended
				}
				return errors.New("the event stream ended")
			}
			if out, handled := c.runEvent(t, ev); handled {
				c.print(out)
				if out.Done {
					return turnResult(out.State)
				}
				continue
			}
			if ev.Event == protocol.EventHealth {
				c.modelHealth(ev.Payload, t)
				continue
			}
			if n := connNotice(ev); n != "" {
				c.notice(n, t)
				if ev.Event == client.EventReconnected {
					// The run outlives the connection; if it ended while
					// the socket was down, its final event is lost and
					// agent.wait plus chat.history tell the outcome.
					startWait()
					c.modelHealth(c.cl.Hello().Snapshot.Health, t)
				}
			}
		case r := <-waits:
			waits = nil
			if r.err != nil {
				fmt.Fprint(c.out, t.Break())
				return fmt.Errorf("could not learn how the run ended: %w", r.err)
			}
			out := t.Recovered(r.state, r.text, r.errMsg)
			c.print(out)
			return turnResult(out.State)
		case <-c.ints:
			if interrupted {
				fmt.Fprint(c.out, t.Break())
				return errQuit
			}
			interrupted = true
			c.notice("[stopping; Ctrl-C again to quit]", t)
			aborts = make(chan error, 1)
			go func(ch chan<- error, key string) {
				actx, cancel := context.WithTimeout(ctx, abortTimeout)
				defer cancel()
				ch <- c.cl.Request(actx, "chat.abort", map[string]any{"sessionKey": key, "runId": runID}, nil)
			}(aborts, c.sessionKey)
		case err := <-aborts:
			aborts = nil
			if err != nil {
				c.notice("error: stopping the run: "+err.Error(), t)
			}
		case <-ctx.Done():
			fmt.Fprint(c.out, t.Break())
			return ctx.Err()
		}
	}
}

// turnResult maps a run's terminal state to turn's error.
func turnResult(state string) error {
	if state == chatui.StateFinal {
		return nil
	}
	return errRunFailed
}

// runEvent renders an event of the turn's run; handled is false for any
// other event.
func (c *chat) runEvent(t *chatui.Turn, ev client.EventFrame) (chatui.Output, bool) {
	switch ev.Event {
	case protocol.EventChat:
		var e chatui.ChatEvent
		if json.Unmarshal(ev.Payload, &e) != nil || e.RunID != t.RunID {
			return chatui.Output{}, false
		}
		return t.Chat(e), true
	case protocol.EventAgent:
		var e chatui.AgentEvent
		if json.Unmarshal(ev.Payload, &e) != nil || e.RunID != t.RunID || e.Stream != "tool" {
			return chatui.Output{}, false
		}
		var te chatui.ToolEvent
		if json.Unmarshal(e.Data, &te) != nil {
			return chatui.Output{}, false
		}
		return t.Tool(te), true
	}
	return chatui.Output{}, false
}

func (c *chat) print(out chatui.Output) {
	if out.Stdout != "" {
		fmt.Fprint(c.out, out.Stdout)
	}
	if out.Stderr != "" {
		fmt.Fprint(c.errw, out.Stderr)
	}
}

// waitResult is a run's outcome as agent.wait and chat.history tell it.
type waitResult struct {
	state, text, errMsg string
	err                 error
}

// waitRun waits for the run to end and reads its answer from the
// transcript. A connection lost meanwhile is waited out: the client sends
// the next request once it has reconnected.
func (c *chat) waitRun(ctx context.Context, sessionKey, runID string) waitResult {
	var w struct {
		Status  string `json:"status"`
		Aborted bool   `json:"aborted"`
		Error   string `json:"error"`
	}
	for {
		err := c.cl.Request(ctx, "agent.wait", map[string]any{"runId": runID, "timeoutMs": waitSliceMs}, &w)
		if errors.Is(err, client.ErrConnectionLost) || (err == nil && w.Status == "timeout") {
			continue
		}
		var perr *protocol.Error
		if errors.As(err, &perr) && perr.Code == protocol.CodeNotFound {
			return waitResult{err: errors.New("the gateway no longer knows this run (it restarted?); /history shows what was recorded")}
		}
		if err != nil {
			return waitResult{err: err}
		}
		break
	}
	r := waitResult{state: chatui.StateFinal}
	switch {
	case w.Status != "ok":
		r.state, r.errMsg = chatui.StateError, w.Error
	case w.Aborted:
		r.state = chatui.StateAborted
	}
	var h struct {
		Messages []chatui.Message `json:"messages"`
	}
	for {
		err := c.cl.Request(ctx, "chat.history", map[string]any{"sessionKey": sessionKey, "limit": 200}, &h)
		if errors.Is(err, client.ErrConnectionLost) {
			continue
		}
		if err != nil {
			return waitResult{err: fmt.Errorf("reading the answer: %w", err)}
		}
		break
	}
	r.text = chatui.RunText(h.Messages, runID)
	return r
}

// newIdempotencyKey is a random (version 4) UUID.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

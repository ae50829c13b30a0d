// Package client is the Go client of the gateway's WebSocket protocol
// (docs/PROTOCOL.md). It does the handshake (challenge, connect, hello-ok,
// optional device proof), matches responses to requests, fans events out to
// subscribers and, when asked, reconnects. `skykoi chat`, `skykoi call`, the
// benchmarks and the gateway's end-to-end tests all talk through it.
//
// Each connection has one read goroutine and one write goroutine (gorilla
// allows one concurrent writer); a supervisor goroutine owns the
// connection's life and reconnects.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/protocol"
)

const (
	// writeWait bounds one frame write; a frame can be up to 25 MiB, so it is
	// generous, but a peer that takes nothing for this long is gone.
	writeWait = 30 * time.Second
	// closeWait is how long Close waits for the gateway to answer the close
	// frame before dropping the socket anyway.
	closeWait = 2 * time.Second
	// outQueue is the number of outbound frames queued for the writer; a
	// sender past it waits (bounded by its context), which is backpressure.
	outQueue = 64
)

var (
	// ErrClosed is Err() after Close, and the error of requests that were
	// outstanding or sent after it.
	ErrClosed = errors.New("client closed")
	// ErrConnectionLost fails requests outstanding when the socket drops. The
	// gateway may or may not have acted on them: retry methods that are
	// idempotent, or that carry an idempotencyKey (agent, chat.send).
	ErrConnectionLost = errors.New("connection to the gateway lost before the response")
)

// CloseError is how the connection ended when the gateway (or the network)
// closed it: 1012 for a gateway restart, 1008 for a policy violation such as
// slow consumer, 1006 for a connection dropped without a close frame.
type CloseError struct {
	Code int
	Text string
}

func (e *CloseError) Error() string {
	s := "connection closed with " + strconv.Itoa(e.Code)
	name := closeCodeName(e.Code)
	if name != "" {
		s += " (" + name + ")"
	}
	if e.Text != "" && e.Text != name {
		s += ": " + e.Text
	}
	return s
}

func closeCodeName(code int) string {
	switch code {
	case websocket.CloseNormalClosure:
		return "normal closure"
	case websocket.CloseGoingAway:
		return "going away"
	case websocket.CloseProtocolError:
		return "protocol error"
	case websocket.CloseUnsupportedData:
		return "unsupported data"
	case websocket.CloseAbnormalClosure:
		return "abnormal closure"
	case websocket.ClosePolicyViolation:
		return "policy violation"
	case websocket.CloseMessageTooBig:
		return "message too big"
	case websocket.CloseInternalServerErr:
		return "internal error"
	case websocket.CloseServiceRestart:
		return "service restart"
	case websocket.CloseTryAgainLater:
		return "try again later"
	}
	return ""
}

// IsRetryable reports whether err is worth retrying: a connection lost
// under a request, or a gateway error marked retryable or UNAVAILABLE.
func IsRetryable(err error) bool {
	if errors.Is(err, ErrConnectionLost) {
		return true
	}
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return perr.Retryable || perr.Code == protocol.CodeUnavailable
	}
	return false
}

// DetailsCode returns details.code of a gateway error in err's chain (such
// as AUTH_TOKEN_MISMATCH), or "" when there is none.
func DetailsCode(err error) string {
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		return ""
	}
	switch d := perr.Details.(type) {
	case map[string]any:
		s, _ := d["code"].(string)
		return s
	case json.RawMessage:
		var v struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(d, &v)
		return v.Code
	}
	return ""
}

// inFrame decodes any inbound frame. Payloads stay raw so each caller
// decodes into its own type.
type inFrame struct {
	Type         string                 `json:"type"`
	ID           string                 `json:"id"`
	OK           bool                   `json:"ok"`
	Payload      json.RawMessage        `json:"payload"`
	Error        *protocol.Error        `json:"error"`
	Event        string                 `json:"event"`
	Seq          *uint64                `json:"seq"`
	StateVersion *protocol.StateVersion `json:"stateVersion"`
}

// Client is a connection to a gateway, kept up across drops when
// Options.Reconnect is set. All methods are safe for concurrent use.
type Client struct {
	opts   Options
	log    *slog.Logger
	dialer *websocket.Dialer
	nextID atomic.Uint64

	// life ends with Close; it cancels reconnect waits and dials.
	life     context.Context
	shutdown context.CancelFunc
	done     chan struct{}

	mu    sync.Mutex
	cur   *session      // nil while reconnecting or after the end
	ready chan struct{} // closed when cur is set; replaced when it drops
	hello protocol.HelloOK
	err   error

	subsMu     sync.Mutex
	subs       map[*subscriber]struct{}
	subsClosed bool

	dropped, seqGaps, missed, reconnects atomic.Uint64
}

// session is one WebSocket connection.
type session struct {
	conn *websocket.Conn
	out  chan []byte
	// dead is closed (once, by fail) when the connection stops working; err
	// says why and is written before.
	dead     chan struct{}
	deadOnce sync.Once
	err      error
	// retired is closed once the supervisor has failed the pending requests
	// and no longer offers this session to new requests.
	retired chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	pending map[string]*pending // nil once failed

	lastSeq uint64 // read goroutine only
}

type pending struct {
	twoPhase bool
	acked    bool          // guarded by session.mu
	ack      chan *inFrame // buffer 1: at most one ack is delivered
	final    chan outcome  // buffer 1: exactly one outcome is delivered
}

type outcome struct {
	f   *inFrame
	err error
}

// Dial connects to the gateway and returns after hello-ok. ctx bounds the
// connect only; the client then lives until Close (or, without Reconnect,
// until the connection ends). A refused connect is a *protocol.Error in the
// chain (errors.As), carrying the code, message and details such as
// details.code AUTH_TOKEN_MISMATCH.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("client options: %w", err)
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("client options: %w", err)
	}
	c := &Client{
		opts: o,
		log:  o.Logger,
		dialer: &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: o.HandshakeTimeout,
			TLSClientConfig:  tlsCfg,
			NetDialContext:   o.NetDialContext,
		},
		done:  make(chan struct{}),
		ready: make(chan struct{}),
		subs:  make(map[*subscriber]struct{}),
	}
	c.life, c.shutdown = context.WithCancel(context.Background())
	s, hello, err := c.connect(ctx)
	if err != nil {
		c.shutdown()
		return nil, err
	}
	c.install(s, hello)
	go c.supervise(s)
	return c, nil
}

// Hello returns the hello-ok of the current (or last) connection.
func (c *Client) Hello() protocol.HelloOK {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// Done is closed when the client has ended: after Close, or when the
// connection ended and Reconnect is off or reconnecting became pointless
// (the gateway refused the handshake, for instance a changed token).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil while the client is up, and afterwards why it ended: ErrClosed
// after Close, a *CloseError with the gateway's close code and text (1012
// service restart, 1008 slow consumer), a read or write error, or the
// handshake error that stopped reconnecting.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Dropped:      c.dropped.Load(),
		SeqGaps:      c.seqGaps.Load(),
		MissedEvents: c.missed.Load(),
		Reconnects:   c.reconnects.Load(),
	}
}

// Close sends a normal close frame, waits (briefly) for the gateway's answer
// and for every goroutine to end. Outstanding requests fail with ErrClosed.
// It is safe to call more than once.
func (c *Client) Close() error {
	c.shutdown()
	<-c.done
	return nil
}

// Request sends method with params (any JSON-encodable value, nil for none)
// and decodes the response's payload into out (nil to discard). A response
// with ok:false is returned as a *protocol.Error; its payload, if any, is
// still decoded into out. If ctx ends first, Request returns its error and
// forgets the request, so a late response is dropped. While the client is
// reconnecting, Request waits for the new connection (bounded by ctx).
func (c *Client) Request(ctx context.Context, method string, params, out any) error {
	return c.do(ctx, method, params, nil, out, false)
}

// RequestFinal is Request for methods that answer twice on the same id, like
// agent: first an acknowledgement with status "accepted" (decoded into ack),
// then the final response (decoded into out). It returns after the final.
// A first response that is not an acceptance is taken as the final.
func (c *Client) RequestFinal(ctx context.Context, method string, params, ack, out any) error {
	return c.do(ctx, method, params, ack, out, true)
}

func (c *Client) do(ctx context.Context, method string, params, ack, out any, twoPhase bool) error {
	req := protocol.Request{Type: protocol.TypeRequest, ID: c.newID(), Method: method}
	if params != nil {
		raw, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("encoding %s params: %w", method, err)
		}
		req.Params = raw
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", method, err)
	}
	p := &pending{twoPhase: twoPhase, ack: make(chan *inFrame, 1), final: make(chan outcome, 1)}
	var s *session
	for {
		if s, err = c.session(ctx); err != nil {
			return fmt.Errorf("sending %s: %w", method, err)
		}
		if s.register(req.ID, p) {
			break
		}
		// The connection died between the lookup and the registration; the
		// request was never sent, so it waits for the next connection.
	}
	select {
	case s.out <- data:
	case <-s.dead:
		// The supervisor fails p; the wait below picks that up.
	case <-ctx.Done():
		s.forget(req.ID)
		return fmt.Errorf("sending %s: %w", method, ctx.Err())
	}
	for {
		select {
		case f := <-p.ack:
			if err := decodePayload(f.Payload, ack); err != nil {
				s.forget(req.ID)
				return fmt.Errorf("decoding the %s acknowledgement: %w", method, err)
			}
		case o := <-p.final:
			// The read loop hands over the ack before the final, but select
			// picks among ready cases at random: take a waiting ack first.
			select {
			case f := <-p.ack:
				if err := decodePayload(f.Payload, ack); err != nil {
					return fmt.Errorf("decoding the %s acknowledgement: %w", method, err)
				}
			default:
			}
			return finalResult(method, o, out)
		case <-ctx.Done():
			s.forget(req.ID)
			return fmt.Errorf("waiting for the %s response: %w", method, ctx.Err())
		}
	}
}

func finalResult(method string, o outcome, out any) error {
	if o.err != nil {
		return fmt.Errorf("%s: %w", method, o.err)
	}
	f := o.f
	if !f.OK {
		// An error response may carry a payload worth having (agent's
		// {runId, status:"error", summary}); decoding it is best effort.
		_ = decodePayload(f.Payload, out)
		if f.Error == nil {
			return fmt.Errorf("%s: the gateway answered ok:false without an error", method)
		}
		return f.Error
	}
	if err := decodePayload(f.Payload, out); err != nil {
		return fmt.Errorf("decoding the %s response: %w", method, err)
	}
	return nil
}

func decodePayload(raw json.RawMessage, out any) error {
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func (c *Client) newID() string {
	return strconv.FormatUint(c.nextID.Add(1), 10)
}

// session returns the live connection, waiting for one while reconnecting.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ready, err := c.cur, c.ready, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		wait := ready
		if s != nil {
			select {
			case <-s.dead:
				wait = s.retired
			default:
				return s, nil
			}
		}
		select {
		case <-wait:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *session) register(id string, p *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return false
	}
	s.pending[id] = p
	return true
}

func (s *session) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, id)
}

// resolve hands a response to its request. The sends never block: each
// channel has room for the one value it can ever receive, since an ack is
// taken once and a final removes the request.
func (s *session) resolve(f *inFrame) bool {
	s.mu.Lock()
	p, ok := s.pending[f.ID]
	if !ok {
		s.mu.Unlock()
		return false
	}
	if p.twoPhase && !p.acked && f.OK && isAcceptance(f.Payload) {
		p.acked = true
		s.mu.Unlock()
		p.ack <- f
		return true
	}
	delete(s.pending, f.ID)
	s.mu.Unlock()
	p.final <- outcome{f: f}
	return true
}

func isAcceptance(raw json.RawMessage) bool {
	var v struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(raw, &v) == nil && v.Status == "accepted"
}

// failAll ends every outstanding request with err and refuses new ones.
func (s *session) failAll(err error) {
	s.mu.Lock()
	ps := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, p := range ps {
		p.final <- outcome{err: err}
	}
}

func (s *session) fail(err error) {
	s.deadOnce.Do(func() {
		s.err = err
		close(s.dead)
	})
}

// install makes s the current connection and starts its goroutines.
func (c *Client) install(s *session, hello protocol.HelloOK) {
	if c.opts.PingInterval > 0 {
		s.conn.SetPongHandler(func(string) error {
			return s.conn.SetReadDeadline(time.Now().Add(c.opts.PongTimeout))
		})
	}
	s.wg.Add(2)
	go c.readLoop(s)
	go c.writeLoop(s)
	c.mu.Lock()
	c.cur = s
	c.hello = hello
	close(c.ready)
	c.mu.Unlock()
}

// supervise owns the connection's life: when a session ends it fails the
// outstanding requests, then reconnects or ends the client.
func (c *Client) supervise(s *session) {
	for {
		<-s.dead
		// Unblock whichever goroutine is still inside a read or write.
		_ = s.conn.Close()
		s.wg.Wait()
		c.mu.Lock()
		c.cur = nil
		c.ready = make(chan struct{})
		c.mu.Unlock()

		if c.life.Err() != nil {
			s.failAll(ErrClosed)
			close(s.retired)
			c.finish(ErrClosed)
			return
		}
		reason := s.err
		s.failAll(fmt.Errorf("%w: %w", ErrConnectionLost, reason))
		close(s.retired)
		if !c.opts.Reconnect {
			c.finish(reason)
			return
		}
		c.log.Warn("gateway connection lost; reconnecting", "err", reason)
		code := 0
		var ce *CloseError
		if errors.As(reason, &ce) {
			code = ce.Code
		}
		c.notify(EventDisconnected, map[string]any{"error": reason.Error(), "code": code})
		next, err := c.redial()
		if err != nil {
			c.finish(err)
			return
		}
		s = next
	}
}

// redial reconnects with jittered exponential backoff until it succeeds,
// Close is called, or the gateway refuses the handshake for a reason that
// retrying cannot fix (wrong token, no common protocol).
func (c *Client) redial() (*session, error) {
	var retryAfter time.Duration
	for attempt := 0; ; attempt++ {
		d := max(c.opts.Backoff.delay(attempt), retryAfter)
		t := time.NewTimer(d)
		select {
		case <-c.life.Done():
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		s, hello, err := c.connect(c.life)
		if err == nil {
			c.reconnects.Add(1)
			// Subscribers hear about the new connection before any of its
			// events: the read loop starts after the notice.
			c.mu.Lock()
			c.hello = hello
			c.mu.Unlock()
			c.notify(EventReconnected, hello)
			c.install(s, hello)
			c.log.Info("reconnected to the gateway", "attempt", attempt+1, "connId", hello.Server.ConnID)
			return s, nil
		}
		if c.life.Err() != nil {
			return nil, ErrClosed
		}
		retryAfter = 0
		var perr *protocol.Error
		if errors.As(err, &perr) {
			if !IsRetryable(perr) {
				return nil, err
			}
			retryAfter = time.Duration(perr.RetryAfterMs) * time.Millisecond
		}
		c.log.Warn("reconnecting to the gateway failed", "attempt", attempt+1, "err", err)
	}
}

// finish ends the client: Err becomes err, subscriptions close, Done closes.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	c.shutdown()
	c.closeSubscribers()
	close(c.done)
}

func (c *Client) readLoop(s *session) {
	defer s.wg.Done()
	c.extendReadDeadline(s)
	for {
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Only the keepalive deadline is set here, so a timeout
				// means pings went unanswered: a dead host or network.
				err = fmt.Errorf("the gateway sent nothing for %s, not even a pong: %w", c.opts.PongTimeout, err)
			} else {
				err = readError(err)
			}
			s.fail(err)
			return
		}
		c.extendReadDeadline(s)
		if typ != websocket.TextMessage {
			c.log.Warn("ignoring a non-text frame from the gateway", "type", typ)
			continue
		}
		var f inFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.log.Warn("ignoring an undecodable frame from the gateway", "err", err)
			continue
		}
		switch f.Type {
		case protocol.TypeResponse:
			if !s.resolve(&f) {
				c.log.Debug("dropping a response to a forgotten request", "id", f.ID)
			}
		case protocol.TypeEvent:
			c.onEvent(s, &f)
		default:
			c.log.Warn("ignoring a frame of unknown type from the gateway", "type", f.Type)
		}
	}
}

func (c *Client) extendReadDeadline(s *session) {
	if c.opts.PingInterval > 0 {
		_ = s.conn.SetReadDeadline(time.Now().Add(c.opts.PongTimeout))
	}
}

func readError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: ce.Code, Text: ce.Text}
	}
	return fmt.Errorf("reading from the gateway: %w", err)
}

func (c *Client) writeLoop(s *session) {
	defer s.wg.Done()
	var ping <-chan time.Time
	if c.opts.PingInterval > 0 {
		t := time.NewTicker(c.opts.PingInterval)
		defer t.Stop()
		ping = t.C
	}
	for {
		select {
		case data := <-s.out:
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := s.conn.WriteMessage(websocket.TextMessage, data); err != nil {
				s.fail(fmt.Errorf("writing to the gateway: %w", err))
				return
			}
		case <-ping:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				s.fail(fmt.Errorf("pinging the gateway: %w", err))
				return
			}
		case <-s.dead:
			return
		case <-c.life.Done():
			// A close frame tells the gateway this was deliberate, not a
			// network drop; its answer ends the read loop.
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			_ = s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
			t := time.NewTimer(closeWait)
			select {
			case <-s.dead:
			case <-t.C:
			}
			t.Stop()
			s.fail(ErrClosed)
			return
		}
	}
}

// connect opens a socket and does the handshake. On success the socket is
// ready for the read and write loops.
func (c *Client) connect(ctx context.Context) (*session, protocol.HelloOK, error) {
	var hello protocol.HelloOK
	ctx, cancel := context.WithTimeoutCause(ctx, c.opts.HandshakeTimeout,
		fmt.Errorf("the gateway handshake did not finish within %s: %w", c.opts.HandshakeTimeout, context.DeadlineExceeded))
	defer cancel()
	conn, resp, err := c.dialer.DialContext(ctx, c.opts.URL, c.opts.Header)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, hello, fmt.Errorf("opening a WebSocket to %s: %w", c.opts.URL, err)
	}
	// gorilla reads know nothing of contexts; closing the socket is how
	// cancellation and the handshake timeout reach a blocked read or write.
	// (Socket deadlines would race the context's timer and turn a timeout
	// into a bare i/o error.)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	conn.SetReadLimit(protocol.MaxPayload)
	hello, err = c.handshake(conn)
	if !stop() && err == nil {
		// The context ended as the handshake finished, and the socket is
		// closed or about to be.
		err = context.Cause(ctx)
	}
	if err != nil {
		_ = conn.Close()
		// A read failing because the context closed the socket says "use of
		// closed network connection"; the cause says what happened. The
		// gateway's own refusal is kept whatever the context did.
		var perr *protocol.Error
		if ctx.Err() != nil && !errors.As(err, &perr) {
			err = context.Cause(ctx)
		}
		return nil, hello, fmt.Errorf("connecting to %s: %w", c.opts.URL, err)
	}
	s := &session{
		conn:    conn,
		out:     make(chan []byte, outQueue),
		dead:    make(chan struct{}),
		retired: make(chan struct{}),
		pending: make(map[string]*pending),
	}
	return s, hello, nil
}

func (c *Client) handshake(conn *websocket.Conn) (protocol.HelloOK, error) {
	var hello protocol.HelloOK
	_, data, err := conn.ReadMessage()
	if err != nil {
		return hello, fmt.Errorf("waiting for connect.challenge: %w", readError(err))
	}
	var f inFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return hello, fmt.Errorf("decoding the first frame: %w", err)
	}
	if f.Type != protocol.TypeEvent || f.Event != protocol.EventConnectChallenge {
		return hello, fmt.Errorf("expected connect.challenge as the first frame, got type %q event %q", f.Type, f.Event)
	}
	var ch protocol.Challenge
	if err := json.Unmarshal(f.Payload, &ch); err != nil {
		return hello, fmt.Errorf("decoding connect.challenge: %w", err)
	}
	if ch.Nonce == "" && c.opts.DeviceKey != nil {
		return hello, errors.New("connect.challenge carried no nonce to sign for the device proof")
	}
	params, err := json.Marshal(c.connectParams(ch.Nonce))
	if err != nil {
		return hello, fmt.Errorf("encoding connect params: %w", err)
	}
	req := protocol.Request{Type: protocol.TypeRequest, ID: "connect-" + c.newID(), Method: "connect", Params: params}
	data, err = json.Marshal(req)
	if err != nil {
		return hello, fmt.Errorf("encoding connect: %w", err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, data); err != nil {
		return hello, fmt.Errorf("sending connect: %w", err)
	}
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return hello, fmt.Errorf("waiting for the connect response: %w", readError(err))
		}
		var f inFrame
		if err := json.Unmarshal(data, &f); err != nil {
			return hello, fmt.Errorf("decoding the connect response: %w", err)
		}
		if f.Type != protocol.TypeResponse || f.ID != req.ID {
			// The gateway does not send events before hello-ok; anything
			// else here belongs to nobody.
			c.log.Debug("ignoring a frame before hello-ok", "type", f.Type, "event", f.Event)
			continue
		}
		if !f.OK {
			if f.Error == nil {
				return hello, errors.New("the gateway refused connect without saying why")
			}
			return hello, f.Error
		}
		if err := json.Unmarshal(f.Payload, &hello); err != nil {
			return hello, fmt.Errorf("decoding hello-ok: %w", err)
		}
		if hello.Protocol < c.opts.MinProtocol || hello.Protocol > c.opts.MaxProtocol {
			return hello, fmt.Errorf("the gateway chose protocol %d, outside the %d..%d asked for", hello.Protocol, c.opts.MinProtocol, c.opts.MaxProtocol)
		}
		return hello, nil
	}
}

func (c *Client) connectParams(nonce string) protocol.ConnectParams {
	o := c.opts
	p := protocol.ConnectParams{
		MinProtocol: o.MinProtocol,
		MaxProtocol: o.MaxProtocol,
		Client:      o.Client,
		Role:        o.Role,
		Scopes:      o.Scopes,
		Caps:        o.Caps,
	}
	if o.Token != "" || o.Password != "" {
		p.Auth = &protocol.ConnectAuth{Token: o.Token, Password: o.Password}
	}
	if o.DeviceKey != nil {
		d := protocol.NewDeviceProof(o.DeviceKey, protocol.SignatureV3, protocol.SignatureFields{
			ClientID:     o.Client.ID,
			ClientMode:   o.Client.Mode,
			Role:         o.Role,
			Scopes:       o.Scopes,
			SignedAtMs:   time.Now().UnixMilli(),
			Token:        o.Token,
			Nonce:        nonce,
			Platform:     o.Client.Platform,
			DeviceFamily: o.Client.DeviceFamily,
		})
		p.Device = &d
	}
	return p
}

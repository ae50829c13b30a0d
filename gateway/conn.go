package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/skykoi/skykoi/gateway/protocol"
)

// Per-connection flow control.
const (
	// DefaultWriteWait bounds one frame write; a peer that cannot take a
	// frame in this long is gone or hopelessly slow (Options.WriteWait).
	DefaultWriteWait = 10 * time.Second
	// maxConcurrentRequests bounds handler goroutines per connection; past it
	// the reader stops reading, which pushes back on the client through TCP.
	maxConcurrentRequests = 32
)

// conn is one WebSocket client. The reader goroutine (run) owns reads and the
// handshake; one writer goroutine owns every write, fed by a byte-bounded
// queue, so no sender ever blocks on the network.
type conn struct {
	s         *Server
	ws        *websocket.Conn
	id        string
	ip        string
	browser   bool // sent an Origin header
	userAgent string
	nonce     string
	opened    time.Time

	// Set once by the handshake, read-only afterwards.
	authed   bool
	protocol int
	params   protocol.ConnectParams
	role     string
	scopes   map[string]bool
	caps     map[string]bool
	deviceID string
	method   string
	entry    *protocol.PresenceEntry // how it shows in presence, from register; shared, never changed

	qmu      sync.Mutex
	queue    []outFrame
	queued   int
	seq      uint64
	closing  bool // no more frames accepted
	closeMsg []byte
	flush    bool // send the queue before the close frame
	wake     chan struct{}
	done     chan struct{} // closed when the writer has finished

	reqSem chan struct{}
}

func newConn(s *Server, ws *websocket.Conn, ip string, browser bool, ua string) *conn {
	return &conn{
		s: s, ws: ws, ip: ip, browser: browser, userAgent: ua,
		id:     newID(),
		nonce:  newID(),
		opened: s.opts.Now(),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		reqSem: make(chan struct{}, maxConcurrentRequests),
	}
}

func (c *conn) run() {
	writerDone := make(chan struct{})
	go func() { c.writer(); close(writerDone) }()
	defer func() {
		c.s.unregister(c)
		<-writerDone
		_ = c.ws.Close()
	}()

	c.ws.SetReadLimit(protocol.MaxPreHandshakePayload)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.opts.HandshakeTimeout))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.s.opts.PongWait))
	})
	c.sendChallenge()

	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return
		}
		if !c.authed {
			if !c.handshake(typ, data) {
				return
			}
			c.ws.SetReadLimit(protocol.MaxPayload)
			_ = c.ws.SetReadDeadline(time.Now().Add(c.s.opts.PongWait))
			continue
		}
		if typ != websocket.TextMessage {
			c.sendError(protocol.InvalidID, protocol.Errorf(protocol.CodeInvalidRequest,
				"binary frames are not supported; send each frame as JSON text"))
			continue
		}
		req, id, perr := protocol.DecodeRequest(data)
		if perr != nil {
			c.sendError(id, perr)
			continue
		}
		c.dispatch(req)
	}
}

// readFailed closes the connection after a read error with the right code.
func (c *conn) readFailed(err error) {
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has already sent 1009; make sure nothing else goes out.
		c.closeWith(protocol.CloseMessageTooBig, "message too big", false)
	case !c.authed && errors.As(err, &ne) && ne.Timeout():
		c.closeWith(protocol.ClosePolicyViolation, "handshake timeout", false)
	default:
		c.closeWith(protocol.CloseNormal, "", false)
	}
	if c.authed {
		c.s.log.Debug("connection closed", "conn", c.id, "ip", c.ip, "err", err)
	}
}

func (c *conn) sendChallenge() {
	ev := protocol.Event{Type: protocol.TypeEvent, Event: protocol.EventConnectChallenge,
		Payload: protocol.Challenge{Nonce: c.nonce, TS: c.s.opts.Now().UnixMilli()}}
	b, _ := json.Marshal(ev)
	c.enqueue(b)
}

// sendRes queues a response frame.
func (c *conn) sendRes(id string, payload any) {
	b, err := json.Marshal(protocol.Response{Type: protocol.TypeResponse, ID: id, OK: true, Payload: payload})
	if err != nil {
		c.s.log.Error("encoding response", "conn", c.id, "err", err)
		c.sendError(id, protocol.Errorf(protocol.CodeUnavailable, "internal error encoding the response"))
		return
	}
	if len(b) > protocol.MaxPayload {
		// Methods bound what they build from stored data; this is the net
		// under them. A frame past the advertised maxPayload would be
		// refused by the client's read limit (and could close this
		// connection as a slow consumer), so the request fails instead.
		c.s.log.Error("response larger than maxPayload; answering with an error", "conn", c.id, "bytes", len(b))
		c.sendError(id, protocol.Errorf(protocol.CodeUnavailable, fmt.Sprintf(
			"the response is %d bytes, more than the %d-byte frame limit; ask for less (a smaller limit)", len(b), protocol.MaxPayload)))
		return
	}
	c.enqueueOrClose(b)
}

func (c *conn) sendError(id string, e *protocol.Error) {
	b, _ := json.Marshal(protocol.Response{Type: protocol.TypeResponse, ID: id, OK: false, Error: e})
	c.enqueueOrClose(b)
}

// sendResWithPayload queues a failed response that also carries a payload
// (agent's final error answer does).
func (c *conn) sendErrorPayload(id string, payload any, e *protocol.Error) {
	b, _ := json.Marshal(protocol.Response{Type: protocol.TypeResponse, ID: id, OK: false, Payload: payload, Error: e})
	c.enqueueOrClose(b)
}

func (c *conn) enqueueOrClose(b []byte) {
	if !c.enqueue(b) {
		c.s.log.Warn("slow consumer: closing", "conn", c.id, "ip", c.ip, "frame", "res")
		c.s.metrics.SlowConsumerClosed()
		c.closeWith(protocol.ClosePolicyViolation, "slow consumer", false)
	}
}

// sendEvent queues an event with this connection's next seq. payload is the
// already-encoded payload, shared by every recipient of a broadcast.
// droppable events (tick) are skipped when the queue is full; anything else
// that does not fit closes the connection as a slow consumer.
func (c *conn) sendEvent(name string, payload json.RawMessage, sv *protocol.StateVersion, droppable bool) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	frame := eventFrame(name, payload, c.seq+1, sv)
	if c.queued+frame.size() > c.s.opts.MaxBufferedBytes {
		c.qmu.Unlock()
		if droppable {
			return
		}
		c.s.log.Warn("slow consumer: closing", "conn", c.id, "ip", c.ip, "event", name)
		c.s.metrics.SlowConsumerClosed()
		c.closeWith(protocol.ClosePolicyViolation, "slow consumer", false)
		return
	}
	// seq is taken only once the frame is certain to be queued, so a dropped
	// tick leaves no gap.
	c.seq++
	c.queue = append(c.queue, frame)
	c.queued += frame.size()
	c.qmu.Unlock()
	c.signal()
}

// outFrame is one text frame written as head+body+tail. A broadcast shares
// one encoded body among all recipients, so fanning a large event (presence
// with many clients) out to N connections costs N small heads, not N copies.
// Each connection still counts the full size against its own bound.
type outFrame struct {
	head, body, tail []byte
}

func (f outFrame) size() int { return len(f.head) + len(f.body) + len(f.tail) }

func eventFrame(name string, payload json.RawMessage, seq uint64, sv *protocol.StateVersion) outFrame {
	head := make([]byte, 0, 48+len(name))
	head = append(head, `{"type":"event","event":`...)
	head = strconv.AppendQuote(head, name)
	if len(payload) > 0 {
		head = append(head, `,"payload":`...)
	}
	tail := make([]byte, 0, 80)
	tail = append(tail, `,"seq":`...)
	tail = strconv.AppendUint(tail, seq, 10)
	if sv != nil {
		tail = append(tail, `,"stateVersion":{"presence":`...)
		tail = strconv.AppendUint(tail, sv.Presence, 10)
		tail = append(tail, `,"health":`...)
		tail = strconv.AppendUint(tail, sv.Health, 10)
		tail = append(tail, '}')
	}
	tail = append(tail, '}')
	return outFrame{head: head, body: payload, tail: tail}
}

// enqueue adds a frame unless the queue is closing or full.
func (c *conn) enqueue(b []byte) bool {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return true // the connection is going away; nothing to report
	}
	if c.queued+len(b) > c.s.opts.MaxBufferedBytes {
		c.qmu.Unlock()
		return false
	}
	c.queue = append(c.queue, outFrame{body: b})
	c.queued += len(b)
	c.qmu.Unlock()
	c.signal()
	return true
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeWith asks the writer to send a close frame and stop. With flush, the
// frames already queued (a final response, the shutdown event) go first.
// The first call wins.
func (c *conn) closeWith(code int, text string, flush bool) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	c.closing = true
	c.flush = flush
	c.closeMsg = websocket.FormatCloseMessage(code, text)
	if !flush {
		c.queue, c.queued = nil, 0
	}
	c.qmu.Unlock()
	c.signal()
}

// writer is the only goroutine that writes data frames. It also pings, so a
// dead peer stops answering pongs and the read deadline reaps it.
func (c *conn) writer() {
	defer close(c.done)
	ping := time.NewTicker(c.s.opts.PongWait * 9 / 10)
	defer ping.Stop()
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.opts.WriteWait)); err != nil {
				c.abort()
				return
			}
			continue
		}
		for {
			c.qmu.Lock()
			// Frames leave the queue here but stay counted in queued until
			// written, so maxBufferedBytes bounds everything not yet sent.
			batch := c.queue
			c.queue = nil
			closing, closeMsg := c.closing, c.closeMsg
			if closing && !c.flush {
				batch = nil
			}
			c.qmu.Unlock()
			for _, f := range batch {
				_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.opts.WriteWait))
				if err := c.write(f); err != nil {
					c.abort()
					return
				}
				c.qmu.Lock()
				c.queued -= f.size()
				c.qmu.Unlock()
			}
			if closing {
				_ = c.ws.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(c.s.opts.WriteWait))
				// Let the peer answer the close; the reader sees it (or the
				// deadline) and returns, which ends the connection.
				_ = c.ws.SetReadDeadline(time.Now().Add(2 * time.Second))
				return
			}
			if len(batch) == 0 {
				break
			}
		}
	}
}

func (c *conn) write(f outFrame) error {
	w, err := c.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	for _, part := range [][]byte{f.head, f.body, f.tail} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	return w.Close()
}

// abort tears the socket down after a write failure; the reader then fails
// and the connection unregisters.
func (c *conn) abort() {
	c.qmu.Lock()
	c.closing = true
	c.queue, c.queued = nil, 0
	c.qmu.Unlock()
	_ = c.ws.NetConn().Close()
}

// dispatch runs one request in its own goroutine so a slow method does not
// hold up the others; the semaphore bounds how many run at once.
func (c *conn) dispatch(req *protocol.Request) {
	m, ok := c.s.methods[req.Method]
	if !ok {
		if req.Method == "connect" {
			c.sendError(req.ID, protocol.Errorf(protocol.CodeInvalidRequest, "connect is only valid as the first request"))
			return
		}
		c.sendError(req.ID, protocol.Errorf(protocol.CodeInvalidRequest, "unknown method: "+req.Method))
		return
	}
	if m.scope != "" && !c.scopes[m.scope] {
		c.sendError(req.ID, protocol.Errorf(protocol.CodeForbidden, "missing scope: "+m.scope).
			WithDetails(map[string]any{"missingScope": m.scope}))
		return
	}
	if c.s.draining.Load() {
		c.sendError(req.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "gateway is shutting down", Retryable: true})
		return
	}
	c.reqSem <- struct{}{}
	c.s.inflight.Add(1)
	go func() {
		defer func() {
			<-c.reqSem
			c.s.inflight.Done()
		}()
		defer func() {
			if r := recover(); r != nil {
				c.s.log.Error("method panicked", "method", req.Method, "conn", c.id, "panic", r)
				c.sendError(req.ID, protocol.Errorf(protocol.CodeUnavailable, "internal error in "+req.Method))
			}
		}()
		call := &call{s: c.s, c: c, req: req}
		payload, perr := m.handler(call)
		switch {
		case call.answered:
		case perr != nil:
			c.s.metrics.Error("request", perr.Code)
			c.sendError(req.ID, perr)
		default:
			c.sendRes(req.ID, payload)
		}
	}()
}

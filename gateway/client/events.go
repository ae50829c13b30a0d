package client

import (
	"encoding/json"

	"github.com/skykoi/skykoi/gateway/protocol"
)

// Notices the client itself sends to subscribers. Their names start with
// "client." so they can never collide with a gateway event, and their Seq is 0.
const (
	// EventDisconnected: the socket dropped and the client is reconnecting
	// (only with Options.Reconnect). Payload: {"error": text, "code": close
	// code or 0}.
	EventDisconnected = "client.disconnected"
	// EventReconnected: a new connection is up. Payload: the new hello-ok
	// (protocol.HelloOK). Events between the two connections are lost; seq
	// starts again from 1, and a caller that cares about a run reads its
	// outcome with agent.wait or chat.history.
	EventReconnected = "client.reconnected"
	// EventSeqGap: the gateway's per-connection seq skipped, so events were
	// lost. Payload: {"expected": N, "received": M}.
	EventSeqGap = "client.seq-gap"
)

// DefaultSubscriberBuffer is the buffer of a subscription asked for with a
// buffer below 1.
const DefaultSubscriberBuffer = 256

// EventFrame is one event as a subscriber sees it.
type EventFrame struct {
	Event string
	// Payload is shared by every subscriber: read it, do not modify it.
	Payload json.RawMessage
	// Seq is the gateway's per-connection counter; 0 for client.* notices.
	Seq          uint64
	StateVersion *protocol.StateVersion
	// Dropped counts the events this subscriber missed just before this
	// one because its buffer was full.
	Dropped uint64
}

// Stats are counters over the client's life (all connections).
type Stats struct {
	// Dropped counts events not delivered to a subscriber because its
	// buffer was full.
	Dropped uint64
	// SeqGaps counts the times the gateway's seq skipped; MissedEvents sums
	// how many seq numbers were skipped.
	SeqGaps      uint64
	MissedEvents uint64
	// Reconnects counts successful reconnects.
	Reconnects uint64
}

type subscriber struct {
	ch      chan EventFrame
	dropped uint64 // guarded by Client.subsMu
}

// Subscribe returns a channel of every event from now on, and a function
// that ends the subscription and closes the channel. The channel is also
// closed when the client is done.
//
// The read loop never waits for a subscriber: when the buffer is full, the
// event is dropped for that subscriber, counted in Stats().Dropped and in
// the next delivered frame's Dropped. A client.* notice always gets in: to
// make room for it, the oldest buffered frame (with a buffer of 1, possibly
// an earlier notice) is dropped instead and counted the same way. A buffer
// below 1 means DefaultSubscriberBuffer.
func (c *Client) Subscribe(buffer int) (<-chan EventFrame, func()) {
	if buffer < 1 {
		buffer = DefaultSubscriberBuffer
	}
	sub := &subscriber{ch: make(chan EventFrame, buffer)}
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if c.subsClosed {
		close(sub.ch)
		return sub.ch, func() {}
	}
	c.subs[sub] = struct{}{}
	return sub.ch, func() {
		c.subsMu.Lock()
		defer c.subsMu.Unlock()
		if _, ok := c.subs[sub]; ok {
			delete(c.subs, sub)
			close(sub.ch)
		}
	}
}

// deliver hands ev to every subscriber without blocking. It runs under
// subsMu, which makes it the only sender at any moment; that is what lets
// the eviction below guarantee room for a notice.
func (c *Client) deliver(ev EventFrame, notice bool) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	for sub := range c.subs {
		ev.Dropped = sub.dropped
		select {
		case sub.ch <- ev:
			sub.dropped = 0
			continue
		default:
		}
		if notice {
			select {
			case <-sub.ch:
				sub.dropped++
				c.dropped.Add(1)
			default: // the subscriber took one meanwhile
			}
			ev.Dropped = sub.dropped
			sub.ch <- ev // cannot block: we are the only sender and made room
			sub.dropped = 0
			continue
		}
		sub.dropped++
		c.dropped.Add(1)
	}
}

// notify sends a client.* notice.
func (c *Client) notify(event string, payload any) {
	raw, err := json.Marshal(payload)
	if err != nil {
		c.log.Error("encoding a client notice", "event", event, "err", err)
		return
	}
	c.deliver(EventFrame{Event: event, Payload: raw}, true)
}

// closeSubscribers ends every subscription when the client is done, so
// range loops over the channels finish.
func (c *Client) closeSubscribers() {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	c.subsClosed = true
	for sub := range c.subs {
		close(sub.ch)
		delete(c.subs, sub)
	}
}

// onEvent tracks seq and delivers one gateway event. It runs on the
// session's read goroutine only, which owns s.lastSeq.
func (c *Client) onEvent(s *session, f *inFrame) {
	var seq uint64
	if f.Seq != nil {
		seq = *f.Seq
		want := s.lastSeq + 1
		switch {
		case seq > want:
			c.seqGaps.Add(1)
			c.missed.Add(seq - want)
			c.log.Warn("gateway event seq skipped; events were lost", "expected", want, "received", seq)
			c.notify(EventSeqGap, map[string]uint64{"expected": want, "received": seq})
			s.lastSeq = seq
		case seq < want:
			// Delivered anyway: dropping it would hide data, and the seq
			// counter stays at the highest seen.
			c.log.Warn("gateway event seq went backwards", "expected", want, "received", seq)
		default:
			s.lastSeq = seq
		}
	}
	c.deliver(EventFrame{Event: f.Event, Payload: f.Payload, Seq: seq, StateVersion: f.StateVersion}, false)
}

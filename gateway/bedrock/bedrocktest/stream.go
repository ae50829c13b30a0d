package bedrocktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// session is one response being written.
type session struct {
	srv         *Server
	w           http.ResponseWriter
	r           *http.Request
	bodyLen     int
	inputTokens int // EstimateTokens of the request
	start       time.Time

	enc       *eventstream.Encoder
	committed bool
	started   bool // messageStart sent
	stopped   bool // messageStop sent
	metaSent  bool
	block     string // kind of the open content block, "" when none
	index     int    // index of the open block, or of the next one
	deltas    int
	toolUsed  bool
	err       error
}

// Content block kinds. Text and reasoning blocks have no contentBlockStart on
// the wire (the ContentBlockStart union only has toolUse, toolResult and
// image members): they begin with their first delta.
const (
	blockText      = "text"
	blockReasoning = "reasoning"
	blockToolUse   = "toolUse"
)

func (ss *session) stream(reply Reply) {
	ss.enc = eventstream.NewEncoder()
	hasStop := false
	for _, st := range reply {
		if st.kind == stepStop {
			hasStop = true
		}
	}
	for _, st := range reply {
		if ss.err != nil {
			return
		}
		switch st.kind {
		case stepDelay:
			if !ss.srv.wait(ss.r, st.delay) {
				return
			}
		case stepHang:
			ss.commit()
			ss.srv.wait(ss.r, -1)
			return
		case stepHTTPError:
			if !ss.committed {
				writeHTTPError(ss.w, st.status, st.errType, st.message)
				return
			}
			ss.disconnect()
		case stepDisconnect:
			ss.disconnect()
		case stepText:
			for range st.n {
				ss.openBlock(blockText)
				ss.delta(map[string]any{"text": st.text})
				if ss.err != nil {
					return
				}
			}
		case stepReasoning:
			ss.openBlock(blockReasoning)
			if st.text != "" {
				ss.delta(map[string]any{"reasoningContent": map[string]any{"text": st.text}})
			}
			if st.signature != "" {
				ss.delta(map[string]any{"reasoningContent": map[string]any{"signature": st.signature}})
			}
		case stepToolUse:
			ss.toolUse(st)
		case stepStop:
			ss.messageStop(st.reason)
		case stepUsage:
			if !hasStop && !ss.stopped {
				ss.messageStop(autoStopReason(ss.toolUsed))
			}
			ss.metadata(st.usage)
		case stepException:
			ss.exception(st.errType, st.message)
			return
		case stepRaw:
			ss.event(st.eventType, json.RawMessage(st.text))
		}
	}
	if !ss.stopped {
		ss.messageStop(autoStopReason(ss.toolUsed))
	}
	if !ss.metaSent {
		ss.metadata(ss.autoUsage(ss.deltas))
	}
}

// commit sends the 200 and its headers once.
func (ss *session) commit() {
	if ss.committed {
		return
	}
	ss.committed = true
	h := ss.w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	ss.w.WriteHeader(http.StatusOK)
	ss.flush()
}

func (ss *session) flush() {
	if f, ok := ss.w.(http.Flusher); ok {
		f.Flush()
	}
}

// write encodes one message and flushes it, so each delta reaches the client
// when it is sent rather than when a buffer fills.
func (ss *session) write(msg eventstream.Message) {
	if ss.err != nil {
		return
	}
	ss.commit()
	if err := ss.enc.Encode(ss.w, msg); err != nil {
		ss.err = errClientGone
		return
	}
	ss.flush()
}

func (ss *session) event(eventType string, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		// A RawEvent with invalid JSON is sent as is: decoding it is the
		// client's problem, which is what such a test wants to see.
		if raw, ok := payload.(json.RawMessage); ok {
			b = raw
		}
	}
	var msg eventstream.Message
	msg.Headers.Set(":message-type", eventstream.StringValue("event"))
	msg.Headers.Set(":event-type", eventstream.StringValue(eventType))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Payload = b
	ss.write(msg)
}

func (ss *session) exception(errType, message string) {
	b, _ := json.Marshal(map[string]string{"message": message})
	var msg eventstream.Message
	msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
	msg.Headers.Set(":exception-type", eventstream.StringValue(errType))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Payload = b
	ss.write(msg)
}

// disconnect sends the first half of a well-formed event and drops the
// connection: the client's decoder sees a frame cut in the middle.
func (ss *session) disconnect() {
	ss.messageStart()
	var buf bytes.Buffer
	var msg eventstream.Message
	msg.Headers.Set(":message-type", eventstream.StringValue("event"))
	msg.Headers.Set(":event-type", eventstream.StringValue("contentBlockDelta"))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Payload = []byte(`{"contentBlockIndex":0,"delta":{"text":"cut"}}`)
	if err := ss.enc.Encode(&buf, msg); err == nil {
		_, _ = ss.w.Write(buf.Bytes()[:buf.Len()/2])
		ss.flush()
	}
	panic(http.ErrAbortHandler)
}

func (ss *session) messageStart() {
	if ss.started {
		return
	}
	ss.started = true
	ss.event("messageStart", map[string]any{"role": "assistant"})
}

// openBlock makes sure a block of kind is open, closing any other first.
func (ss *session) openBlock(kind string) {
	ss.messageStart()
	if ss.block == kind && kind != blockToolUse {
		return
	}
	ss.closeBlock()
	ss.block = kind
}

func (ss *session) closeBlock() {
	if ss.block == "" {
		return
	}
	ss.event("contentBlockStop", map[string]any{"contentBlockIndex": ss.index})
	ss.block = ""
	ss.index++
}

func (ss *session) delta(d map[string]any) {
	ss.deltas++
	ss.event("contentBlockDelta", map[string]any{"contentBlockIndex": ss.index, "delta": d})
}

func (ss *session) toolUse(st Step) {
	ss.toolUsed = true
	ss.openBlock(blockToolUse)
	ss.event("contentBlockStart", map[string]any{
		"contentBlockIndex": ss.index,
		"start":             map[string]any{"toolUse": map[string]any{"toolUseId": st.id, "name": st.name}},
	})
	for _, chunk := range splitChunks(st.input, 3) {
		ss.delta(map[string]any{"toolUse": map[string]any{"input": chunk}})
	}
	ss.closeBlock()
}

func (ss *session) messageStop(reason string) {
	ss.messageStart()
	ss.closeBlock()
	ss.stopped = true
	ss.event("messageStop", map[string]any{"stopReason": reason})
}

func (ss *session) metadata(u usageCounts) {
	ss.metaSent = true
	ss.event("metadata", map[string]any{
		"usage":   usageJSON(u),
		"metrics": map[string]any{"latencyMs": time.Since(ss.start).Milliseconds()},
	})
}

// autoUsage invents plausible, deterministic counts for replies that do not
// script Usage: EstimateTokens of the request as input tokens (the count the
// context limit uses; a quarter of the body for a request with no content),
// one output token per delta.
func (ss *session) autoUsage(deltas int) usageCounts {
	in := ss.inputTokens
	if in == 0 {
		in = ss.bodyLen / 4
	}
	return usageCounts{in: max(1, in), out: deltas}
}

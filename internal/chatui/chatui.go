// Package chatui decides what `skykoi chat` prints for the gateway's events:
// streamed answer text, one-line tool summaries, session lists and history.
// It does no I/O; the command writes the strings it returns, which keeps
// every rendering rule testable without a gateway or a terminal.
package chatui

import (
	"encoding/json"
	"strings"
)

// Terminal chat states (PROTOCOL.md, Runs).
const (
	StateDelta   = "delta"
	StateFinal   = "final"
	StateAborted = "aborted"
	StateError   = "error"
)

// ChatEvent is the payload of a `chat` event.
type ChatEvent struct {
	RunID        string   `json:"runId"`
	SessionKey   string   `json:"sessionKey"`
	Seq          int      `json:"seq"`
	State        string   `json:"state"`
	DeltaText    string   `json:"deltaText"`
	Message      *Message `json:"message"`
	ErrorMessage string   `json:"errorMessage"`
	StopReason   string   `json:"stopReason"`
}

// AgentEvent is the payload of an `agent` event; Data depends on Stream.
type AgentEvent struct {
	RunID      string          `json:"runId"`
	Seq        int             `json:"seq"`
	Stream     string          `json:"stream"`
	SessionKey string          `json:"sessionKey"`
	Data       json.RawMessage `json:"data"`
}

// ToolEvent is the data of an agent event on the "tool" stream.
type ToolEvent struct {
	Phase      string          `json:"phase"` // "start" or "result"
	Name       string          `json:"name"`
	ToolCallID string          `json:"toolCallId"`
	Args       json.RawMessage `json:"args"`
	IsError    bool            `json:"isError"`
	Result     string          `json:"result"`
	Details    map[string]any  `json:"details"`
}

// Message is a transcript message, as chat events and chat.history carry it.
type Message struct {
	Role       string    `json:"role"`
	Content    []Content `json:"content"`
	Timestamp  int64     `json:"timestamp"`
	StopReason string    `json:"stopReason,omitempty"`
	RunID      string    `json:"runId,omitempty"`
	// ErrorMessage is why a failed run got no answer (stopReason "error").
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// Content is one block of a message: text, toolCall or toolResult.
type Content struct {
	Type       string          `json:"type"`
	Text       string          `json:"text,omitempty"`
	ID         string          `json:"id,omitempty"`
	Name       string          `json:"name,omitempty"`
	Arguments  json.RawMessage `json:"arguments,omitempty"`
	ToolCallID string          `json:"toolCallId,omitempty"`
	IsError    bool            `json:"isError,omitempty"`
	Result     string          `json:"result,omitempty"`
}

// Text is the message's text blocks joined.
func (m *Message) Text() string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range m.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// RunText rebuilds a run's answer from a transcript, for a run whose final
// event was lost with the connection. The gateway records each model step's
// text as its own assistant message and, in the live stream, starts the text
// of a later step with a paragraph break; joining with "\n\n" gives the same
// text the final event would have carried.
func RunText(msgs []Message, runID string) string {
	var parts []string
	for i := range msgs {
		m := &msgs[i]
		if m.Role != "assistant" || m.RunID != runID {
			continue
		}
		if t := m.Text(); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n\n")
}

// Output is what to print for one event.
type Output struct {
	Stdout string
	Stderr string
	// Done is set when the run reached a terminal state; State says which.
	Done  bool
	State string
}

// Turn follows one run and turns its events into terminal text. It tracks
// how much of the answer is already on screen, so text is printed once even
// when deltas were lost (a slow subscriber, a reconnect): each event's full
// text so far is compared with what was shown, and only the rest is printed.
type Turn struct {
	RunID string

	shown    string            // answer text already printed
	col0     bool              // stdout is at the start of a line
	fresh    bool              // a line break of ours (after a tool line or a notice) already separates what follows
	openTool string            // toolCallId of a start line still waiting for its result
	calls    map[string]string // toolCallId → "[tool name: args]"
}

// NewTurn starts following runID.
func NewTurn(runID string) *Turn {
	return &Turn{RunID: runID, col0: true, calls: map[string]string{}}
}

// Shown is the answer text printed so far.
func (t *Turn) Shown() string { return t.shown }

// Break returns what ends the current stdout line ("\n" or ""), for a
// notice about to be printed in the middle of an answer; the answer then
// continues on the next line.
func (t *Turn) Break() string { return t.endLine() }

// Chat renders a chat event of this run.
func (t *Turn) Chat(ev ChatEvent) Output {
	switch ev.State {
	case StateDelta:
		full := t.shown + ev.DeltaText
		if ev.Message != nil {
			full = ev.Message.Text()
		}
		return Output{Stdout: t.text(full)}
	case StateFinal, StateAborted, StateError:
		full := t.shown
		if ev.Message != nil {
			full = ev.Message.Text()
		}
		out := Output{Stdout: t.text(full) + t.endLine(), Done: true, State: ev.State}
		switch ev.State {
		case StateAborted:
			out.Stderr = "[aborted]\n"
		case StateError:
			msg := ev.ErrorMessage
			if msg == "" {
				msg = "the run failed"
			}
			out.Stderr = "error: " + msg + "\n"
		}
		return out
	}
	// An unknown state from a newer gateway is not ours to interpret.
	return Output{}
}

// Recovered renders a run's outcome learned after a reconnect (agent.wait
// and chat.history) instead of from its terminal chat event.
func (t *Turn) Recovered(state, text, errMsg string) Output {
	ev := ChatEvent{RunID: t.RunID, State: state, ErrorMessage: errMsg}
	if text != "" || state == StateFinal {
		ev.Message = &Message{Role: "assistant", Content: []Content{{Type: "text", Text: text}}}
	}
	return t.Chat(ev)
}

// Tool renders a tool event of this run. The start prints the call at once,
// so a slow command is visible while it runs; the result completes the same
// line when nothing came in between, otherwise it repeats the call.
func (t *Turn) Tool(ev ToolEvent) Output {
	switch ev.Phase {
	case "start":
		call := ToolCall(ev.Name, ev.Args)
		t.calls[ev.ToolCallID] = call
		out := t.endLine() + call
		t.col0 = false
		t.openTool = ev.ToolCallID
		return Output{Stdout: out}
	case "result":
		res := " → " + ToolResult(ev.IsError, ev.Result, ev.Details) + "\n"
		var out string
		if t.openTool != "" && t.openTool == ev.ToolCallID {
			out = res
		} else {
			call, ok := t.calls[ev.ToolCallID]
			if !ok {
				call = ToolCall(ev.Name, nil)
			}
			out = t.endLine() + call + res
		}
		delete(t.calls, ev.ToolCallID)
		t.openTool = ""
		t.col0 = true
		t.fresh = true
		return Output{Stdout: out}
	}
	return Output{}
}

// text prints what full adds to the answer shown so far.
func (t *Turn) text(full string) string {
	add, ok := strings.CutPrefix(full, t.shown)
	var b strings.Builder
	if !ok {
		// The text is not a continuation of what is on screen (it cannot
		// happen while deltas add up, as the protocol promises); printing it
		// whole on a fresh line beats a garbled splice.
		b.WriteString(t.endLine())
		add = full
	}
	t.shown = full
	if add == "" {
		return b.String()
	}
	if t.fresh {
		// The text after a tool step starts with a paragraph break; the tool
		// line (or the line break before a notice) already separates it.
		add = strings.TrimLeft(add, "\n")
		if add == "" {
			return b.String()
		}
		t.fresh = false
	}
	if t.openTool != "" {
		// A tool's start line is still open: text goes below it.
		b.WriteString(t.endLine())
	}
	b.WriteString(add)
	t.col0 = strings.HasSuffix(add, "\n")
	return b.String()
}

// endLine moves to the start of a line if the cursor is not there, ending
// a tool line that never got its result.
func (t *Turn) endLine() string {
	t.openTool = ""
	if t.col0 {
		return ""
	}
	t.col0 = true
	t.fresh = true
	return "\n"
}

package bedrock

import (
	"encoding/json"
	"time"
)

// Request is one model call, in terms independent of the SDK so the agent
// does not import AWS types.
type Request struct {
	// Models are refs "amazon-bedrock/<modelId>": the primary first, then
	// the fallbacks in order.
	Models []string
	// System is the system prompt. A block with Cache set gets a cachePoint
	// after it when the model supports prompt caching.
	System []SystemBlock
	// Messages is the transcript, oldest first, alternating user/assistant.
	Messages []Message
	// Tools offered to the model.
	Tools []ToolSpec
	// MaxTokens bounds the visible answer; 0 leaves the model's default.
	// With thinking on, the reasoning budget is added on top.
	MaxTokens int
	// Thinking is off, low, medium or high; it maps to an extended-thinking
	// budget for Anthropic models that have it and is ignored for others.
	Thinking string
	// CacheMessagesUpTo puts a cachePoint after the first CacheMessagesUpTo
	// messages (the stable prefix that the next call will repeat), when the
	// model supports prompt caching; 0 puts none.
	CacheMessagesUpTo int
}

// SystemBlock is one part of the system prompt.
type SystemBlock struct {
	Text  string
	Cache bool
}

// Message is one turn of the transcript.
type Message struct {
	Role    string // RoleUser or RoleAssistant
	Content []Block
}

// Roles of a Message.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Block types.
const (
	BlockText       = "text"
	BlockToolUse    = "toolUse"
	BlockToolResult = "toolResult"
	// BlockReasoning is extended-thinking output. Anthropic models require
	// it (with its Signature) to be sent back unchanged in the assistant
	// turn that precedes a tool result, so the provider returns it in
	// Response.Content and accepts it in Messages.
	BlockReasoning = "reasoning"
	// BlockImage and BlockDocument carry a file the person attached, in a
	// user turn: Format names its type as Converse does (png, jpeg, gif,
	// webp; pdf, csv, doc, docx, xls, xlsx, html, txt, md), Bytes is the
	// file and a document's Name follows Bedrock's name rules.
	BlockImage    = "image"
	BlockDocument = "document"
)

// Block is one content block of a Message.
type Block struct {
	Type string // BlockText, BlockToolUse, BlockToolResult, BlockReasoning, BlockImage or BlockDocument

	// Text for BlockText and BlockReasoning.
	Text string

	// ToolUseID links a toolUse to its toolResult; Name and Input describe
	// the call (Input is the full JSON object).
	ToolUseID string
	Name      string
	Input     json.RawMessage

	// Result and IsError are a toolResult's output.
	Result  string
	IsError bool

	// Signature (and RedactedContent, for redacted reasoning) belong to a
	// reasoning block and must be returned to the model as received.
	Signature       string
	RedactedContent []byte

	// Format and Bytes are an image's or a document's; Name (above) is a
	// document's name.
	Format string
	Bytes  []byte
}

// ToolSpec describes a tool the model may call.
type ToolSpec struct {
	Name        string
	Description string
	InputSchema json.RawMessage // JSON Schema of the input object
}

// Response is the assembled assistant turn.
type Response struct {
	// Model is the ref that answered (a fallback when the primary failed).
	Model string
	// Content holds text, reasoning and toolUse blocks in the model's order;
	// toolUse blocks carry their complete Input JSON.
	Content []Block
	// StopReason is end_turn, tool_use, max_tokens, stop_sequence, … as
	// Bedrock reports it.
	StopReason string
	Usage      Usage
}

// Text returns the concatenated text blocks.
func (r *Response) Text() string {
	var n int
	for _, b := range r.Content {
		if b.Type == BlockText {
			n += len(b.Text)
		}
	}
	buf := make([]byte, 0, n)
	for _, b := range r.Content {
		if b.Type == BlockText {
			buf = append(buf, b.Text...)
		}
	}
	return string(buf)
}

// ToolUses returns the toolUse blocks the caller has to run.
func (r *Response) ToolUses() []Block {
	var out []Block
	for _, b := range r.Content {
		if b.Type == BlockToolUse {
			out = append(out, b)
		}
	}
	return out
}

// Event is something Stream reports while it runs: TextDelta,
// ToolUseStart, ToolUseInputDelta, Usage, Retry or Fallback.
type Event interface{ isEvent() }

// TextDelta is new answer text, in order.
type TextDelta struct{ Text string }

// ToolUseStart announces a tool call; its input follows in
// ToolUseInputDelta events.
type ToolUseStart struct{ ID, Name string }

// ToolUseInputDelta is a chunk of a tool call's input JSON; the chunks are
// not valid JSON on their own.
type ToolUseInputDelta struct{ ID, Partial string }

// Usage counts tokens of one model response. InputTokens excludes tokens
// read from or written to the prompt cache.
type Usage struct {
	InputTokens      int
	OutputTokens     int
	CacheReadTokens  int
	CacheWriteTokens int
}

// Retry says an attempt failed before any output and another one starts
// after Delay.
type Retry struct {
	Attempt int // the attempt about to start, from 2
	Model   string
	Delay   time.Duration
	Reason  string
}

// Fallback says Model From failed for good and To is tried next.
type Fallback struct {
	From, To string
	Reason   string
}

func (TextDelta) isEvent()         {}
func (ToolUseStart) isEvent()      {}
func (ToolUseInputDelta) isEvent() {}
func (Usage) isEvent()             {}
func (Retry) isEvent()             {}
func (Fallback) isEvent()          {}

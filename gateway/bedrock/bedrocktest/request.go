package bedrocktest

import (
	"encoding/json"
	"net/http"
)

// Request is one request the fake received, decoded from the wire so tests can
// assert what the real SDK client serialized. The JSON types below mirror the
// Converse API's request shapes as the restJson1 protocol writes them.
type Request struct {
	// Operation is "ConverseStream" or "Converse".
	Operation string
	// Path is the escaped request path as received.
	Path string
	// ModelID is the path label, URL-decoded (inference profile ids and ARNs
	// arrive escaped).
	ModelID string
	// Header is a copy of the request headers (Authorization included, so a
	// test can check the signature's scope; the fake never logs it).
	Header http.Header
	// Region and SigningService come from the SigV4 credential scope; they
	// prove which region the client signed for.
	Region         string
	SigningService string
	// Rejected says why the fake refused the request before scripting ran
	// (unsigned, bad path, bad JSON); empty when it was served.
	Rejected string

	// The decoded body.
	Messages                     []Message
	System                       []SystemBlock
	ToolConfig                   *ToolConfig
	InferenceConfig              *InferenceConfig
	AdditionalModelRequestFields json.RawMessage

	// Body is the raw request body, for byte-level assertions.
	Body []byte
	// InputTokens is EstimateTokens of the decoded body: what the context
	// limit compares and what an unscripted usage reports.
	InputTokens int
}

// wireBody is the JSON body of Converse and ConverseStream.
type wireBody struct {
	Messages                     []Message        `json:"messages"`
	System                       []SystemBlock    `json:"system"`
	ToolConfig                   *ToolConfig      `json:"toolConfig"`
	InferenceConfig              *InferenceConfig `json:"inferenceConfig"`
	AdditionalModelRequestFields json.RawMessage  `json:"additionalModelRequestFields"`
}

// Message is one conversation turn as sent on the wire.
type Message struct {
	Role    string         `json:"role"`
	Content []ContentBlock `json:"content"`
}

// ContentBlock is the wire union: exactly one member is set.
type ContentBlock struct {
	Text             *string          `json:"text,omitempty"`
	ToolUse          *ToolUseBlock    `json:"toolUse,omitempty"`
	ToolResult       *ToolResultBlock `json:"toolResult,omitempty"`
	CachePoint       *CachePoint      `json:"cachePoint,omitempty"`
	ReasoningContent json.RawMessage  `json:"reasoningContent,omitempty"`
	Image            *ImageBlock      `json:"image,omitempty"`
	Document         *DocumentBlock   `json:"document,omitempty"`
}

// ImageBlock is an image in a user turn; Source.Bytes is decoded from the
// base64 the wire carries.
type ImageBlock struct {
	Format string      `json:"format"`
	Source BytesSource `json:"source"`
}

// DocumentBlock is a document in a user turn.
type DocumentBlock struct {
	Format string      `json:"format"`
	Name   string      `json:"name"`
	Source BytesSource `json:"source"`
}

// BytesSource is the bytes member of an image or document source.
type BytesSource struct {
	Bytes []byte `json:"bytes"`
}

// Images returns every image block of the request's messages, in order.
func (r Request) Images() []ImageBlock {
	var out []ImageBlock
	for _, m := range r.Messages {
		for _, b := range m.Content {
			if b.Image != nil {
				out = append(out, *b.Image)
			}
		}
	}
	return out
}

// Documents returns every document block of the request's messages, in order.
func (r Request) Documents() []DocumentBlock {
	var out []DocumentBlock
	for _, m := range r.Messages {
		for _, b := range m.Content {
			if b.Document != nil {
				out = append(out, *b.Document)
			}
		}
	}
	return out
}

// ToolUseBlock is a tool call the assistant made in an earlier turn.
type ToolUseBlock struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

// ToolResultBlock carries a tool's output back to the model.
type ToolResultBlock struct {
	ToolUseID string              `json:"toolUseId"`
	Content   []ToolResultContent `json:"content"`
	Status    string              `json:"status,omitempty"`
}

// ToolResultContent is one part of a tool result.
type ToolResultContent struct {
	Text *string         `json:"text,omitempty"`
	JSON json.RawMessage `json:"json,omitempty"`
}

// CachePoint marks the end of a prompt prefix the model may cache.
type CachePoint struct {
	Type string `json:"type"`
}

// SystemBlock is one part of the system prompt.
type SystemBlock struct {
	Text       *string     `json:"text,omitempty"`
	CachePoint *CachePoint `json:"cachePoint,omitempty"`
}

// ToolConfig lists the tools offered to the model.
type ToolConfig struct {
	Tools      []Tool          `json:"tools"`
	ToolChoice json.RawMessage `json:"toolChoice,omitempty"`
}

// Tool is one entry of toolConfig.tools.
type Tool struct {
	ToolSpec   *ToolSpec   `json:"toolSpec,omitempty"`
	CachePoint *CachePoint `json:"cachePoint,omitempty"`
}

// ToolSpec describes a tool.
type ToolSpec struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	InputSchema struct {
		JSON json.RawMessage `json:"json"`
	} `json:"inputSchema"`
}

// InferenceConfig holds the generic inference parameters.
type InferenceConfig struct {
	MaxTokens     *int     `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

// HasSystemCachePoint reports whether the system prompt carries a cachePoint.
func (r Request) HasSystemCachePoint() bool {
	for _, b := range r.System {
		if b.CachePoint != nil {
			return true
		}
	}
	return false
}

// MessageCachePoints returns the indexes of messages that carry a cachePoint.
func (r Request) MessageCachePoints() []int {
	var idx []int
	for i, m := range r.Messages {
		for _, b := range m.Content {
			if b.CachePoint != nil {
				idx = append(idx, i)
				break
			}
		}
	}
	return idx
}

package session

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Message is one transcript entry, in the shape chat.history returns.
type Message struct {
	Role       string    `json:"role"` // "user" or "assistant" (tool results travel in user messages)
	Content    []Content `json:"content"`
	Timestamp  int64     `json:"timestamp"` // unix ms; Append fills it in when zero
	Usage      *Usage    `json:"usage,omitempty"`
	StopReason string    `json:"stopReason,omitempty"`
	RunID      string    `json:"runId,omitempty"`
	Model      string    `json:"model,omitempty"`
	// ErrorMessage is set on the entry a failed run leaves (role assistant,
	// stopReason "error", no content): why the turn got no answer.
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// Content is one block of a message. The JSON shapes are:
//
//	{"type":"text", "text"}
//	{"type":"toolCall", "id", "name", "arguments"}              arguments: any JSON value
//	{"type":"toolResult", "toolCallId", "name", "result", "isError"}
//	{"type":"attachment", "path", "mimeType", "size", "sha256", "fileName"}
//
// An attachment is a reference to a file the person sent, saved in the
// workspace (path is relative to it, "inbox/…"); the transcript never holds
// the bytes, and size and sha256 tell whether the file is still the one sent.
//
// A tool result's output is "result" (a string), matching the "result" of the
// agent event's tool stream, so clients read one name in both places.
type Content struct {
	Type       string          `json:"type"`
	Text       string          `json:"text,omitempty"`
	ID         string          `json:"id,omitempty"`
	Name       string          `json:"name,omitempty"`
	Arguments  json.RawMessage `json:"arguments,omitempty"`
	ToolCallID string          `json:"toolCallId,omitempty"`
	IsError    bool            `json:"isError,omitempty"`
	Result     string          `json:"result,omitempty"`
	// An attachment's reference.
	Path     string `json:"path,omitempty"`
	MimeType string `json:"mimeType,omitempty"`
	Size     int64  `json:"size,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	FileName string `json:"fileName,omitempty"`
}

// Usage is the token usage of one model response.
type Usage struct {
	InputTokens      int `json:"inputTokens"`
	OutputTokens     int `json:"outputTokens"`
	CacheReadTokens  int `json:"cacheReadTokens"`
	CacheWriteTokens int `json:"cacheWriteTokens"`
}

// Total is every token billed for the response, cached ones included.
func (u Usage) Total() int {
	return u.InputTokens + u.OutputTokens + u.CacheReadTokens + u.CacheWriteTokens
}

const (
	previewChars = 120
	titleChars   = 60
)

// Text is the message's text blocks joined by newlines.
func (m *Message) Text() string {
	var parts []string
	for _, c := range m.Content {
		if c.Type == "text" && c.Text != "" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// validate refuses what would make a transcript unreadable to clients; it is
// only applied to new messages, while loading accepts whatever parses.
func (m *Message) validate() error {
	if m.Role != "user" && m.Role != "assistant" {
		return fmt.Errorf("%w: message role %q: want user or assistant", ErrInvalid, m.Role)
	}
	if u := m.Usage; u != nil && (u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadTokens < 0 || u.CacheWriteTokens < 0) {
		return fmt.Errorf("%w: negative token count", ErrInvalid)
	}
	for i, c := range m.Content {
		switch c.Type {
		case "text":
		case "toolCall":
			if c.ID == "" || c.Name == "" {
				return fmt.Errorf("%w: content[%d]: toolCall needs id and name", ErrInvalid, i)
			}
			if len(c.Arguments) > 0 && !json.Valid(c.Arguments) {
				return fmt.Errorf("%w: content[%d]: toolCall arguments are not valid JSON", ErrInvalid, i)
			}
		case "toolResult":
			if c.ToolCallID == "" {
				return fmt.Errorf("%w: content[%d]: toolResult needs toolCallId", ErrInvalid, i)
			}
		case "attachment":
			if c.Path == "" || c.MimeType == "" || c.SHA256 == "" || c.Size <= 0 {
				return fmt.Errorf("%w: content[%d]: attachment needs path, mimeType, size and sha256", ErrInvalid, i)
			}
		default:
			return fmt.Errorf("%w: content[%d]: type %q: want text, toolCall, toolResult or attachment", ErrInvalid, i, c.Type)
		}
	}
	return nil
}

// oneLine collapses runs of whitespace so previews and titles fit one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cut shortens s to at most n runes (runes, not bytes, so UTF-8 stays valid).
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for range n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

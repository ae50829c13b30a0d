package bedrocktest

import (
	"fmt"
	"net/http"
)

// TooLongMessage is what Bedrock's Converse APIs answer (HTTP 400,
// ValidationException) when the prompt does not fit the model's context
// window; the bedrock package classifies it as a context overflow.
const TooLongMessage = "Input is too long for requested model."

// EstimateTokens is the fake's token count of a request: the bytes of every
// message's text, tool call (name and input) and tool result, of the system
// prompt and of the tool specs (name, description, schema), divided by four
// and rounded up. Real tokenizers average about four bytes of English per
// token; what matters for tests is that the limit and the reported
// usage.inputTokens use the same count, so a client's accounting can be
// checked against the fake exactly.
func EstimateTokens(r Request) int {
	n := 0
	for _, m := range r.Messages {
		for _, b := range m.Content {
			if b.Text != nil {
				n += len(*b.Text)
			}
			if u := b.ToolUse; u != nil {
				n += len(u.Name) + len(u.Input)
			}
			if tr := b.ToolResult; tr != nil {
				for _, c := range tr.Content {
					if c.Text != nil {
						n += len(*c.Text)
					}
					n += len(c.JSON)
				}
			}
			n += len(b.ReasoningContent)
		}
	}
	for _, s := range r.System {
		if s.Text != nil {
			n += len(*s.Text)
		}
	}
	if tc := r.ToolConfig; tc != nil {
		for _, t := range tc.Tools {
			if s := t.ToolSpec; s != nil {
				n += len(s.Name) + len(s.Description) + len(s.InputSchema.JSON)
			}
		}
	}
	return (n + 3) / 4
}

// SetContextLimit makes the fake refuse, like a model whose context window
// is tokens long, every request whose EstimateTokens exceeds it: HTTP 400
// ValidationException with TooLongMessage, before any scripted reply is
// used. 0 removes the limit. TooLong counts the refusals.
func (s *Server) SetContextLimit(tokens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctxLimit = tokens
}

// TooLong is how many requests the context limit refused.
func (s *Server) TooLong() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tooLong
}

// overLimit reports (and counts) a request past the context limit.
func (s *Server) overLimit(tokens int) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctxLimit <= 0 || tokens <= s.ctxLimit {
		return false, s.ctxLimit
	}
	s.tooLong++
	return true, s.ctxLimit
}

func writeTooLong(w http.ResponseWriter) {
	writeHTTPError(w, http.StatusBadRequest, "ValidationException", TooLongMessage)
}

func tooLongReason(tokens, limit int) string {
	return fmt.Sprintf("input too long: %d estimated tokens > context limit %d", tokens, limit)
}

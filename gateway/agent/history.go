package agent

import (
	"encoding/json"

	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/session"
)

// interruptedResult stands in for a tool result the transcript lacks (the
// run was aborted or the gateway died mid-tool): Bedrock refuses a toolUse
// without its result, and the model should know the call did not finish.
const interruptedResult = "the tool call was interrupted before it returned a result"

// toModelMessages turns a transcript into a message list Bedrock accepts:
// it starts with a user turn, roles alternate (neighbours of one role are
// merged, e.g. a chat.inject note after an answer), every toolUse is answered
// by a toolResult in the next user turn, and stray toolResults are dropped.
//
// Attachments become a note plus their image or document block (see
// attachments.go); load reads their bytes back, nil sends only the notes.
func toModelMessages(msgs []session.Message, load fileLoader) []bedrock.Message {
	var out []bedrock.Message
	send := replayPlan(msgs)
	docNames := map[string]bool{}
	for i, m := range msgs {
		var blocks []bedrock.Block
		for j, c := range m.Content {
			switch c.Type {
			case "attachment":
				if m.Role == "user" {
					blocks = append(blocks, attachmentBlocks(c, send[[2]int{i, j}], load, docNames)...)
				}
			case "text":
				if c.Text != "" {
					blocks = append(blocks, bedrock.Block{Type: bedrock.BlockText, Text: c.Text})
				}
			case "toolCall":
				if m.Role == "assistant" {
					in := c.Arguments
					if !json.Valid(in) || len(in) == 0 || in[0] != '{' {
						in = json.RawMessage("{}")
					}
					blocks = append(blocks, bedrock.Block{Type: bedrock.BlockToolUse, ToolUseID: c.ID, Name: c.Name, Input: in})
				}
			case "toolResult":
				if m.Role == "user" {
					blocks = append(blocks, bedrock.Block{Type: bedrock.BlockToolResult, ToolUseID: c.ToolCallID, Result: c.Result, IsError: c.IsError})
				}
			}
		}
		if len(blocks) == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role {
			out[n-1].Content = append(out[n-1].Content, blocks...)
			continue
		}
		out = append(out, bedrock.Message{Role: m.Role, Content: blocks})
	}
	return repairToolPairs(out)
}

// repairToolPairs enforces the toolUse → toolResult pairing and a leading
// user turn on an alternating list.
func repairToolPairs(in []bedrock.Message) []bedrock.Message {
	var out []bedrock.Message
	for i := 0; i < len(in); i++ {
		m := in[i]
		if len(out) == 0 && m.Role != bedrock.RoleUser {
			continue
		}
		if m.Role == bedrock.RoleUser {
			// Keep only results that answer the previous assistant turn.
			want := map[string]bool{}
			if n := len(out); n > 0 {
				for _, b := range out[n-1].Content {
					if b.Type == bedrock.BlockToolUse {
						want[b.ToolUseID] = true
					}
				}
			}
			var kept []bedrock.Block
			for _, b := range m.Content {
				if b.Type == bedrock.BlockToolResult && !want[b.ToolUseID] {
					continue
				}
				kept = append(kept, b)
			}
			if len(kept) == 0 {
				continue
			}
			m.Content = kept
			if n := len(out); n > 0 && out[n-1].Role == bedrock.RoleUser {
				out[n-1].Content = append(out[n-1].Content, kept...)
				continue
			}
			out = append(out, m)
			continue
		}
		// An assistant turn: make sure its tool calls get results.
		if n := len(out); n > 0 && out[n-1].Role == bedrock.RoleAssistant {
			out[n-1].Content = append(out[n-1].Content, m.Content...)
		} else {
			out = append(out, m)
		}
		var next *bedrock.Message
		if i+1 < len(in) && in[i+1].Role == bedrock.RoleUser {
			next = &in[i+1]
		}
		var missing []bedrock.Block
		for _, b := range m.Content {
			if b.Type != bedrock.BlockToolUse {
				continue
			}
			answered := false
			if next != nil {
				for _, r := range next.Content {
					answered = answered || (r.Type == bedrock.BlockToolResult && r.ToolUseID == b.ToolUseID)
				}
			}
			if !answered {
				missing = append(missing, bedrock.Block{Type: bedrock.BlockToolResult, ToolUseID: b.ToolUseID, Result: interruptedResult, IsError: true})
			}
		}
		if len(missing) > 0 {
			if next != nil {
				// Results go first in the user turn, as the model wrote them.
				next.Content = append(missing, next.Content...)
			} else {
				out = append(out, bedrock.Message{Role: bedrock.RoleUser, Content: missing})
			}
		}
	}
	return out
}

package bedrock

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	bedrockdoc "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// Anthropic accepts at most four cache points per request; one is kept for
// the transcript prefix.
const maxSystemCachePoints = 3

// defaultAnswerTokens is the room left for the visible answer when thinking
// is on but MaxTokens is 0 (max_tokens must exceed the thinking budget).
const defaultAnswerTokens = 8192

// emptyPlaceholder stands in for blank text: Bedrock rejects blank text
// blocks and empty messages, and a stored transcript may contain an empty
// answer (for example one cut off at max_tokens before any text).
const emptyPlaceholder = "(empty)"

// buildInput translates req for one model. Caching and thinking depend on
// the model, so a fallback gets its own translation.
func buildInput(modelID string, req Request) (*bedrockruntime.ConverseStreamInput, error) {
	cache := SupportsPromptCache(modelID)
	in := &bedrockruntime.ConverseStreamInput{ModelId: aws.String(modelID)}

	points := 0
	for _, sb := range req.System {
		if strings.TrimSpace(sb.Text) == "" {
			continue
		}
		in.System = append(in.System, &types.SystemContentBlockMemberText{Value: sb.Text})
		if sb.Cache && cache && points < maxSystemCachePoints {
			in.System = append(in.System, &types.SystemContentBlockMemberCachePoint{
				Value: types.CachePointBlock{Type: types.CachePointTypeDefault},
			})
			points++
		}
	}

	cacheAfter := -1
	if cache && req.CacheMessagesUpTo > 0 {
		cacheAfter = min(req.CacheMessagesUpTo, len(req.Messages)) - 1
	}
	// Reasoning blocks only mean something to models with extended thinking;
	// after a fallback to another kind of model they would be rejected.
	keepReasoning := supportsThinking(modelID)
	for i, m := range req.Messages {
		msg, err := buildMessage(m, keepReasoning)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		if i == cacheAfter {
			msg.Content = append(msg.Content, &types.ContentBlockMemberCachePoint{
				Value: types.CachePointBlock{Type: types.CachePointTypeDefault},
			})
		}
		in.Messages = append(in.Messages, msg)
	}

	if len(req.Tools) > 0 {
		tc := &types.ToolConfiguration{}
		for _, t := range req.Tools {
			schema := t.InputSchema
			if len(strings.TrimSpace(string(schema))) == 0 {
				schema = json.RawMessage(`{"type":"object","properties":{}}`)
			}
			doc, err := toDocument(schema)
			if err != nil {
				return nil, fmt.Errorf("tool %q input schema: %w", t.Name, err)
			}
			spec := types.ToolSpecification{
				Name:        aws.String(t.Name),
				InputSchema: &types.ToolInputSchemaMemberJson{Value: doc},
			}
			if t.Description != "" {
				spec.Description = aws.String(t.Description)
			}
			tc.Tools = append(tc.Tools, &types.ToolMemberToolSpec{Value: spec})
		}
		in.ToolConfig = tc
	}

	budget, err := thinkingBudget(req.Thinking)
	if err != nil {
		return nil, err
	}
	maxTokens := req.MaxTokens
	if budget > 0 && supportsThinking(modelID) {
		// max_tokens counts thinking and answer together and must exceed
		// the budget; adding the budget keeps MaxTokens the room for the
		// visible answer, as the config describes it.
		if maxTokens == 0 {
			maxTokens = defaultAnswerTokens
		}
		maxTokens += budget
		in.AdditionalModelRequestFields = bedrockdoc.NewLazyDocument(map[string]any{
			"thinking": map[string]any{"type": "enabled", "budget_tokens": budget},
		})
	}
	if maxTokens > 0 {
		in.InferenceConfig = &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(min(maxTokens, math.MaxInt32)))}
	}
	return in, nil
}

func buildMessage(m Message, keepReasoning bool) (types.Message, error) {
	var out types.Message
	switch m.Role {
	case RoleUser:
		out.Role = types.ConversationRoleUser
	case RoleAssistant:
		out.Role = types.ConversationRoleAssistant
	default:
		return out, fmt.Errorf("role %q: want user or assistant", m.Role)
	}
	for j, b := range m.Content {
		if b.Type == BlockReasoning && !keepReasoning {
			continue
		}
		cb, err := buildBlock(b)
		if err != nil {
			return out, fmt.Errorf("block %d: %w", j, err)
		}
		if cb != nil {
			out.Content = append(out.Content, cb)
		}
	}
	if len(out.Content) == 0 {
		out.Content = []types.ContentBlock{&types.ContentBlockMemberText{Value: emptyPlaceholder}}
	}
	return out, nil
}

// buildBlock returns nil for blocks that must be left out (blank text).
func buildBlock(b Block) (types.ContentBlock, error) {
	switch b.Type {
	case BlockText:
		if strings.TrimSpace(b.Text) == "" {
			return nil, nil
		}
		return &types.ContentBlockMemberText{Value: b.Text}, nil
	case BlockToolUse:
		if b.ToolUseID == "" || b.Name == "" {
			return nil, fmt.Errorf("toolUse needs ToolUseID and Name")
		}
		doc, err := toDocument(b.Input)
		if err != nil {
			return nil, fmt.Errorf("toolUse %s input: %w", b.ToolUseID, err)
		}
		return &types.ContentBlockMemberToolUse{Value: types.ToolUseBlock{
			ToolUseId: aws.String(b.ToolUseID),
			Name:      aws.String(b.Name),
			Input:     doc,
		}}, nil
	case BlockToolResult:
		if b.ToolUseID == "" {
			return nil, fmt.Errorf("toolResult needs ToolUseID")
		}
		text := b.Result
		if strings.TrimSpace(text) == "" {
			text = emptyPlaceholder
		}
		tr := types.ToolResultBlock{
			ToolUseId: aws.String(b.ToolUseID),
			Content:   []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberText{Value: text}},
		}
		// status is only sent for errors: not every model accepts the field,
		// and success is what its absence means.
		if b.IsError {
			tr.Status = types.ToolResultStatusError
		}
		return &types.ContentBlockMemberToolResult{Value: tr}, nil
	case BlockReasoning:
		if len(b.RedactedContent) > 0 {
			return &types.ContentBlockMemberReasoningContent{
				Value: &types.ReasoningContentBlockMemberRedactedContent{Value: b.RedactedContent},
			}, nil
		}
		rt := types.ReasoningTextBlock{Text: aws.String(b.Text)}
		if b.Signature != "" {
			rt.Signature = aws.String(b.Signature)
		}
		return &types.ContentBlockMemberReasoningContent{
			Value: &types.ReasoningContentBlockMemberReasoningText{Value: rt},
		}, nil
	case BlockImage:
		if len(b.Bytes) == 0 {
			return nil, fmt.Errorf("image block has no bytes")
		}
		return &types.ContentBlockMemberImage{Value: types.ImageBlock{
			Format: types.ImageFormat(b.Format),
			Source: &types.ImageSourceMemberBytes{Value: b.Bytes},
		}}, nil
	case BlockDocument:
		if len(b.Bytes) == 0 || b.Name == "" {
			return nil, fmt.Errorf("document block needs Name and bytes")
		}
		return &types.ContentBlockMemberDocument{Value: types.DocumentBlock{
			Format: types.DocumentFormat(b.Format),
			Name:   aws.String(b.Name),
			Source: &types.DocumentSourceMemberBytes{Value: b.Bytes},
		}}, nil
	}
	return nil, fmt.Errorf("unknown block type %q", b.Type)
}

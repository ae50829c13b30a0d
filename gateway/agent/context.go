package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/files"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

// Context management. A session's context is estimated before every model
// request (bytesPerToken bytes of prompt per token, calibrated by the token
// count Bedrock reported for the previous request); at CompactPercent of the
// window the older turns are summarised by the model into a compaction entry,
// and the next requests send that summary plus the recent turns.
const (
	// CompactPercent of the context window triggers a compaction before
	// sending.
	CompactPercent = 80
	// KeepPercent of the window is the most a compaction keeps verbatim
	// (whole recent turns); the rest goes into the summary.
	KeepPercent = 30
	// ToolResultPercent of the window is the most one tool result may take
	// in what is sent; a longer one is cut in the middle with a marker (the
	// transcript keeps all of it).
	ToolResultPercent = 10
	// summarySourcePercent of the window bounds the conversation text given
	// to the summariser, so the summary request itself always fits.
	summarySourcePercent = 50
	// summaryToolResultChars bounds one tool result in that text.
	summaryToolResultChars = 2000
	// summaryMaxTokens bounds the summary.
	summaryMaxTokens = 4096
	bytesPerToken    = 4
)

// summaryPrompt is the system prompt of a summarisation request.
const summaryPrompt = "You are compacting a conversation between a person and their AI assistant (the Koi) so it fits the model's context window. " +
	"Write a summary the assistant can continue from: the person's goals and preferences, decisions made, facts learned, " +
	"files, commands and results that still matter, open questions and what was being worked on last. " +
	"Be specific (names, paths, numbers) and concise. Write only the summary."

// summaryIntro heads the summary when it goes back to the model.
const summaryIntro = "[Summary of the earlier part of this conversation, compacted to fit the context window]\n\n"

// estimateTokens is the size of a request as the model will count it,
// approximately: bytes of text, tool calls, tool results, system prompt and
// tool specs over bytesPerToken.
func estimateTokens(system []bedrock.SystemBlock, msgs []bedrock.Message, specs []bedrock.ToolSpec) int {
	n := 0
	for _, s := range system {
		n += len(s.Text)
	}
	for _, s := range specs {
		n += len(s.Name) + len(s.Description) + len(s.InputSchema)
	}
	return (n+bytesPerToken-1)/bytesPerToken + messagesTokens(msgs)
}

func messagesTokens(msgs []bedrock.Message) int {
	n := 0
	for _, m := range msgs {
		for _, b := range m.Content {
			n += len(b.Text) + len(b.Name) + len(b.Input) + len(b.Result) + len(b.Signature)
			if b.Type == bedrock.BlockImage || b.Type == bedrock.BlockDocument {
				n += fileTokens(b.Type, b.Format, int64(len(b.Bytes))) * bytesPerToken
			}
		}
	}
	return (n + bytesPerToken - 1) / bytesPerToken
}

func sessionMessageTokens(m *session.Message) int {
	n := 0
	for _, c := range m.Content {
		n += len(c.Text) + len(c.Name) + len(c.Arguments) + len(c.Result)
		if c.Type == "attachment" {
			kind, format, _ := files.Lookup(c.MimeType)
			n += fileTokens(kind, format, c.Size) * bytesPerToken
		}
	}
	return (n + bytesPerToken - 1) / bytesPerToken
}

// flushReserve is room the memory flush adds to a context: its instruction
// and note, generously.
const flushReserve = 1024

// window is the context window the run manages to.
func (l *loop) window() int { return contextWindow(l.cfg, l.modelRefs()) }

// contextWindow is the config's override, else the smallest window of the
// models refs may fall back through.
func contextWindow(cfg configgen.Config, refs []string) int {
	if w := cfg.Agents.Defaults.ContextTokens; w > 0 {
		return w
	}
	w := 0
	for _, ref := range refs {
		id, err := bedrock.ParseModelRef(ref)
		if err != nil {
			continue
		}
		if cw := bedrock.ContextWindow(id); w == 0 || cw < w {
			w = cw
		}
	}
	if w == 0 {
		w = bedrock.DefaultContextWindow
	}
	return w
}

// contextSize is the estimated size of the next request: the plain estimate,
// or, when Bedrock reported the size of an earlier request of this context
// (l.base, covering l.msgs[:l.baseLen]), that plus the estimate of what came
// since, whichever is larger.
func (l *loop) contextSize(system []bedrock.SystemBlock, specs []bedrock.ToolSpec) int {
	est := estimateTokens(system, l.msgs, specs)
	if l.base > 0 && l.baseLen <= len(l.msgs) {
		est = max(est, l.base+messagesTokens(l.msgs[l.baseLen:]))
	}
	return est
}

// buildMessages is the model's view of a context: the summary (as the
// opening user turn) and the messages after it, with huge tool results cut.
func buildMessages(c *session.Compaction, msgs []session.Message, window int, load fileLoader) []bedrock.Message {
	if c != nil {
		lead := session.Message{Role: "user", Content: []session.Content{{Type: "text", Text: summaryIntro + c.Summary}}}
		msgs = append([]session.Message{lead}, msgs...)
	}
	return trimToolResults(toModelMessages(msgs, load), window)
}

// trimToolResults cuts, in place, tool results longer than
// ToolResultPercent of the window.
func trimToolResults(msgs []bedrock.Message, window int) []bedrock.Message {
	limit := max(4000, window*bytesPerToken*ToolResultPercent/100)
	for i := range msgs {
		for j := range msgs[i].Content {
			b := &msgs[i].Content[j]
			if b.Type == bedrock.BlockToolResult && len(b.Result) > limit {
				b.Result = cutMiddle(b.Result, limit,
					"the middle of this tool result was trimmed to fit the context window (the full output is in the session transcript)")
			}
		}
	}
	return msgs
}

// cutMiddle keeps the start and the end of s, at most limit bytes together,
// with a marker saying how much went; cuts fall on rune boundaries.
func cutMiddle(s string, limit int, why string) string {
	if len(s) <= limit {
		return s
	}
	head, tail := limit*2/3, limit/3
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	from := len(s) - tail
	for from < len(s) && !utf8.RuneStart(s[from]) {
		from++
	}
	return s[:head] + "\n[… " + strconv.Itoa(from-head) + " bytes omitted: " + why + " …]\n" + s[from:]
}

// errNothingToCompact: the context is only the current turn.
var errNothingToCompact = errors.New("there are no earlier turns to summarise; the current message alone is too long for the model's context window")

// compactResult describes a finished compaction.
type compactResult struct {
	TokensBefore, TokensAfter int
	Summarized, Kept          int // messages
	Summary                   string
}

// compactor summarises a session's older turns into a compaction entry.
type compactor struct {
	rt      *Runtime
	key     string
	models  []string
	window  int
	onUsage func(bedrock.Usage)
	// sessionID is the session the spend is counted to.
	sessionID string
}

// compact summarises key's context up to the recent turns that fit
// KeepPercent of the window, records the compaction and returns the kept
// messages (the new context is the summary plus those).
func (c compactor) compact(ctx context.Context, tokensBefore int) (compactResult, *session.Compaction, []session.Message, error) {
	cur, err := c.rt.opts.Sessions.ContextMessages(c.key, 0)
	if err != nil {
		return compactResult{}, nil, nil, fmt.Errorf("compacting: reading the context: %w", err)
	}
	cut := keepFrom(cur.Messages, c.window*KeepPercent/100)
	if cut <= 0 {
		return compactResult{}, nil, nil, errNothingToCompact
	}
	source := summarySource(cur.Compaction, cur.Messages[:cut], c.window*bytesPerToken*summarySourcePercent/100)
	resp, err := c.rt.stream(ctx, CallInfo{SessionKey: c.key, SessionID: c.sessionID, Purpose: PurposeCompaction}, bedrock.Request{Models: c.models,
		System:    []bedrock.SystemBlock{{Text: summaryPrompt}},
		Messages:  []bedrock.Message{{Role: bedrock.RoleUser, Content: []bedrock.Block{{Type: bedrock.BlockText, Text: source}}}},
		MaxTokens: summaryMaxTokens}, func(bedrock.Event) {})
	if err != nil {
		return compactResult{}, nil, nil, fmt.Errorf("compacting: summarising the earlier turns: %w", err)
	}
	if c.onUsage != nil {
		c.onUsage(resp.Usage)
	}
	summary := strings.TrimSpace(resp.Text())
	if summary == "" {
		return compactResult{}, nil, nil, errors.New("compacting: the model returned an empty summary")
	}
	kept := cur.Messages[cut:]
	after := (len(summaryIntro)+len(summary)+bytesPerToken-1)/bytesPerToken + 0
	for i := range kept {
		after += sessionMessageTokens(&kept[i])
	}
	entry, err := c.rt.opts.Sessions.AppendCompaction(c.key, session.Compaction{Summary: summary, FirstKeptID: cur.IDs[cut],
		TokensBefore: tokensBefore, TokensAfter: after})
	if err != nil {
		return compactResult{}, nil, nil, fmt.Errorf("compacting: recording the summary: %w", err)
	}
	return compactResult{TokensBefore: tokensBefore, TokensAfter: after, Summarized: cut, Kept: len(kept), Summary: summary}, &entry, kept, nil
}

// keepFrom is the index of the first message to keep verbatim: the oldest
// turn start (a user message with text and no tool results) such that the
// messages from it on fit budget tokens; at least the last turn is kept.
func keepFrom(msgs []session.Message, budget int) int {
	cut, sum := -1, 0
	for i := len(msgs) - 1; i >= 0; i-- {
		sum += sessionMessageTokens(&msgs[i])
		if cut >= 0 && sum > budget {
			break
		}
		if startsUserTurn(&msgs[i]) {
			cut = i
		}
	}
	return cut
}

func startsUserTurn(m *session.Message) bool {
	if m.Role != "user" {
		return false
	}
	text := false
	for _, c := range m.Content {
		if c.Type == "toolResult" {
			return false
		}
		text = text || c.Type == "text" && c.Text != "" || c.Type == "attachment"
	}
	return text
}

// summarySource renders the turns to summarise as plain text, with the
// previous summary first, at most limit bytes (the latest part when longer).
func summarySource(prev *session.Compaction, msgs []session.Message, limit int) string {
	var b strings.Builder
	for _, m := range msgs {
		for _, c := range m.Content {
			switch c.Type {
			case "text":
				if c.Text != "" {
					b.WriteString(m.Role + ": " + c.Text + "\n\n")
				}
			case "attachment":
				b.WriteString(m.Role + " attached " + c.Path + " (" + c.MimeType + ")\n\n")
			case "toolCall":
				b.WriteString("assistant called tool " + c.Name + " with " + string(c.Arguments) + "\n\n")
			case "toolResult":
				label := "tool result"
				if c.IsError {
					label = "tool error"
				}
				b.WriteString(label + " (" + c.Name + "): " + cutMiddle(c.Result, summaryToolResultChars, "trimmed for the summary") + "\n\n")
			}
		}
	}
	body := b.String()
	if len(body) > limit {
		from := len(body) - limit
		for from < len(body) && !utf8.RuneStart(body[from]) {
			from++
		}
		body = "[… the oldest part of these turns was left out …]\n\n" + body[from:]
	}
	head := "Summarise this conversation.\n\n"
	if prev != nil {
		head += "Summary of what came before it (fold it into yours):\n" + prev.Summary + "\n\nThe conversation since:\n\n"
	}
	return head + body
}

// emitCompaction sends a compaction stream event.
func (e *emitter) compaction(data map[string]any) { e.agent("compaction", data) }

// compactNow runs one compaction inside a run and rebuilds the run's
// messages from it. willRetry says the request that follows repeats a
// refused one.
func (l *loop) compactNow(reason string, tokensBefore int, willRetry bool) error {
	l.em.compaction(map[string]any{"phase": "start", "reason": reason, "tokensBefore": tokensBefore})
	// What the summary leaves out is gone from the model's view: first let
	// the agent write down what it must keep. Not when the context no
	// longer fits (a "too long" refusal, or a tool result that took it past
	// the window): the flush would send that same context and be refused.
	if !willRetry && tokensBefore+flushReserve <= l.window() {
		if err := l.rt.FlushMemory(l.ctx, l.run.SessionKey); err != nil {
			l.rt.log.Warn("memory flush before the compaction failed; compacting anyway", "run", l.run.ID, "err", err)
		}
	}
	c := compactor{rt: l.rt, key: l.run.SessionKey, models: l.modelRefs(), window: l.window(), onUsage: l.addUsage, sessionID: l.em.sessionID}
	res, entry, kept, err := c.compact(l.ctx, tokensBefore)
	if err != nil {
		l.em.compaction(map[string]any{"phase": "end", "reason": reason, "ok": false, "error": err.Error(), "willRetry": false})
		return err
	}
	l.msgs = buildMessages(entry, kept, l.window(), l.rt.loadAttachment)
	l.base, l.baseLen = 0, 0
	l.compactions++
	l.lastCompaction = res
	l.rt.log.Info("compacted the session context", "run", l.run.ID, "reason", reason, "tokensBefore", res.TokensBefore,
		"tokensAfter", res.TokensAfter, "summarized", res.Summarized, "kept", res.Kept)
	l.em.compaction(map[string]any{"phase": "end", "reason": reason, "ok": true, "willRetry": willRetry,
		"tokensBefore": res.TokensBefore, "tokensAfter": res.TokensAfter,
		"summarizedMessages": res.Summarized, "keptMessages": res.Kept})
	return nil
}

// compactFailure is the run's error when a needed compaction failed.
func compactFailure(err error) (string, string) {
	if errors.Is(err, errNothingToCompact) {
		return "the message is too long for the model's context window even without earlier turns; send a shorter message", protocol.CodeInvalidRequest
	}
	var be *bedrock.Error
	if errors.As(err, &be) {
		return "the conversation no longer fits the model's context window and summarising it failed: " + be.Brief(), protocol.CodeUnavailable
	}
	return "the conversation no longer fits the model's context window and summarising it failed: " + err.Error(), protocol.CodeUnavailable
}

// compactOnly is a run that compacts the session's context on request and
// answers with what it did; it records nothing but the compaction entry.
func (l *loop) compactOnly() {
	size := l.contextSize(l.rt.systemPrompt(l.run.params.ExtraSystemPrompt), modelSpecs(l.tools.Specs(), nil))
	err := l.compactNow("manual", size, false)
	switch {
	case errors.Is(err, errNothingToCompact):
		l.addText("Nothing to compact: the conversation has no earlier turns to summarise.")
	case err != nil:
		if l.ctx.Err() != nil {
			l.endErr(context.Cause(l.ctx))
			return
		}
		var be *bedrock.Error
		msg := err.Error()
		if errors.As(err, &be) {
			msg = "summarising the conversation failed: " + be.Brief()
		}
		l.end(StatusError, msg, protocol.CodeUnavailable)
		return
	default:
		l.addText(fmt.Sprintf("Compacted the conversation: earlier turns are now a summary (about %d → %d tokens).",
			size, l.lastCompaction.TokensAfter))
	}
	l.flush()
	l.end(StatusOK, "compacted", "")
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/session"
)

// Memory flush: before a session's conversation is dropped from the model's
// view (a reset now; a compaction later), one silent turn lets the agent write
// what it must keep to its memory files.
const (
	// FlushTimeout bounds a flush turn: a reset waits for it, so a slow or
	// unreachable model must not hold the reset up for long.
	FlushTimeout = 90 * time.Second
	// flushMaxSteps bounds its model calls (a few writes and edits).
	flushMaxSteps = 6
	// SilentReply is the answer that means "nothing to keep" (OpenClaw's
	// silent token); a flush's text never reaches a client either way.
	SilentReply = "NO_REPLY"
)

// flushTools are the tools a flush turn may use: it writes notes, it does
// not run commands.
var flushTools = []string{"read", "write", "edit", "memory_search", "memory_get"}

// flushInstruction is the flush turn's system instruction; %s is today's
// note.
const flushInstruction = "Housekeeping turn, not shown to the person: this conversation is about to leave your context (the session is being reset). " +
	"If it contains anything worth remembering later (facts about the person, decisions, open tasks, things you learned), write it now " +
	"with the write or edit tool: durable facts to MEMORY.md, the rest appended to %s (read a file before replacing it; keep what is there). " +
	"Then answer with only " + SilentReply + ". If there is nothing worth keeping, answer " + SilentReply + " at once."

// FlushMemory runs one silent turn in key's current session: the model sees
// the conversation and a system instruction to write anything worth keeping
// to memory, with the file and memory tools only. Nothing is recorded in the
// transcript and no event goes to clients; only the files the tools write
// remain. It ends within FlushTimeout (or ctx). A session without a user
// message has nothing to keep and is skipped.
//
// Resets call it (see flushIfResetDue and the gateway's resetSession);
// compaction calls it before summarising, with the same guarantees.
func (r *Runtime) FlushMemory(ctx context.Context, key string) error {
	if r.opts.MemoryNote == nil {
		return nil
	}
	entry, ok := r.opts.Sessions.Get(key)
	if !ok {
		return nil
	}
	// The model's own view of the session: from the last compaction on,
	// as a run sends it, so the flush fits wherever the run fits.
	cv, err := r.opts.Sessions.ContextMessages(key, historyLimit)
	if err != nil {
		return fmt.Errorf("memory flush: reading the session context: %w", err)
	}
	if !slices.ContainsFunc(cv.Messages, func(m session.Message) bool { return m.Role == "user" && strings.TrimSpace(m.Text()) != "" }) {
		return nil
	}
	tl, err := r.opts.ToolsFor(entry.ExecSecurity)
	if err != nil {
		return fmt.Errorf("memory flush: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, FlushTimeout)
	defer cancel()
	stop := context.AfterFunc(r.base, cancel) // shutdown ends it too
	defer stop()

	cfg := r.opts.Config()
	refs := modelRefs(cfg, entry.Model)
	window := contextWindow(cfg, refs)
	msgs := buildMessages(cv.Compaction, cv.Messages, window, r.loadAttachment)
	note := bedrock.Block{Type: bedrock.BlockText, Text: "[memory flush] Save what is worth keeping from this conversation now, or answer " + SilentReply + "."}
	if n := len(msgs); n > 0 && msgs[n-1].Role == bedrock.RoleUser {
		msgs[n-1].Content = append(slices.Clone(msgs[n-1].Content), note)
	} else {
		msgs = append(msgs, bedrock.Message{Role: bedrock.RoleUser, Content: []bedrock.Block{note}})
	}
	system := append(r.systemPrompt(""), bedrock.SystemBlock{Text: fmt.Sprintf(flushInstruction, r.opts.MemoryNote())})
	specs := modelSpecs(tl.Specs(), flushTools)
	for step := 0; step < flushMaxSteps; step++ {
		// The flush's own tool results grow the context: cut huge ones as
		// a run does, and stop rather than send what the model would
		// refuse (what was written so far stays written).
		msgs = trimToolResults(msgs, window)
		if estimateTokens(system, msgs, specs) > window {
			return fmt.Errorf("memory flush for %s: stopped after %d model calls: the context window is full", key, step)
		}
		req := bedrock.Request{Models: refs, System: system, Messages: msgs, Tools: specs, MaxTokens: cfg.Agents.Defaults.MaxTokens}
		resp, err := r.stream(ctx, CallInfo{SessionKey: key, SessionID: entry.SessionID, Purpose: PurposeFlush}, req, func(bedrock.Event) {})
		if err != nil {
			return fmt.Errorf("memory flush for %s: %w", key, err)
		}
		msgs = append(msgs, bedrock.Message{Role: bedrock.RoleAssistant, Content: resp.Content})
		uses := resp.ToolUses()
		if len(uses) == 0 {
			return nil
		}
		var results []bedrock.Block
		for _, u := range uses {
			res := bedrock.Block{Type: bedrock.BlockToolResult, ToolUseID: u.ToolUseID}
			if !slices.Contains(flushTools, u.Name) {
				res.Result, res.IsError = "the memory flush may only use "+strings.Join(flushTools, ", "), true
			} else {
				out := tl.Run(ctx, u.Name, u.Input)
				res.Result, res.IsError = out.Text, out.IsError
				r.log.Debug("memory flush tool call", "key", key, "tool", u.Name, "isError", out.IsError)
			}
			results = append(results, res)
		}
		msgs = append(msgs, bedrock.Message{Role: bedrock.RoleUser, Content: results})
		if ctx.Err() != nil {
			return fmt.Errorf("memory flush for %s: %w", key, context.Cause(ctx))
		}
	}
	return errors.New("memory flush: stopped after " + fmt.Sprint(flushMaxSteps) + " model calls")
}

// flushIfResetDue runs the memory flush when the session's reset policy is
// about to start it over (the run's Resolve does the reset): it runs in the
// session's queue at the start of the run, so it sees the old conversation
// and nothing else writes to it meanwhile.
func (r *Runtime) flushIfResetDue(ctx context.Context, run *Run) {
	if r.opts.MemoryNote == nil || r.opts.Sessions.ResetDue(run.SessionKey) == "" {
		return
	}
	if err := r.FlushMemory(ctx, run.SessionKey); err != nil {
		r.log.Warn("memory flush before the reset failed; resetting anyway", "key", run.SessionKey, "err", err)
	}
}

package cron

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/internal/regularfile"
)

// HeartbeatSessionKey is the session heartbeat turns run in: their polls
// and acknowledgements stay out of the main conversation, which only sees
// what the agent had to say.
const HeartbeatSessionKey = "heartbeat"

// HeartbeatFile is the workspace file a heartbeat reads.
const HeartbeatFile = "HEARTBEAT.md"

// maxHeartbeatFile bounds what is read from HEARTBEAT.md into the prompt.
const maxHeartbeatFile = 32 << 10

// DefaultHeartbeatPrompt is the heartbeat turn's message unless the config
// gives one; the file's contents follow it.
const DefaultHeartbeatPrompt = "This is a scheduled heartbeat check. Read HEARTBEAT.md below and follow it. " +
	"Do not infer or repeat old tasks from prior chats. If nothing needs attention, reply HEARTBEAT_OK."

// ackToken and silentToken are OpenClaw's conventions for "nothing to say".
const (
	ackToken    = "HEARTBEAT_OK"
	silentToken = "NO_REPLY"
	// ackSlack is how much text may ride along with HEARTBEAT_OK and still
	// count as an acknowledgement (OpenClaw's 300 characters).
	ackSlack = 300
)

// Silent reports an answer that asks to say nothing: NO_REPLY, empty, or
// HEARTBEAT_OK at its start or end with at most 300 characters besides.
func Silent(text string) bool {
	t := strings.TrimSpace(text)
	if t == "" || strings.EqualFold(t, silentToken) {
		return true
	}
	for _, cut := range []func(string, string) (string, bool){strings.CutPrefix, strings.CutSuffix} {
		if rest, ok := cut(t, ackToken); ok {
			return len(strings.TrimSpace(rest)) <= ackSlack
		}
	}
	return false
}

// HeartbeatConfig is agents.defaults.heartbeat with cron.enabled.
type HeartbeatConfig struct {
	Enabled    bool
	Every      string
	Start, End string // HH:MM
	TimeZone   string
	Prompt     string
}

// HeartbeatOptions configure a Heartbeat.
type HeartbeatOptions struct {
	Config    func() HeartbeatConfig
	Workspace func() string
	// Turn runs one agent turn and returns its final text.
	Turn func(ctx context.Context, runID, message string) (string, error)
	// Announce puts what the agent had to say in the main session.
	Announce func(runID, text string) error
	Now      func() time.Time
	Logger   *slog.Logger
	// OnFire is called on each timer firing (benchmarks count wake-ups).
	OnFire func()
}

// Heartbeat runs the periodic turn on one timer: it sleeps until the next
// tick inside the active hours, never polls between ticks.
type Heartbeat struct {
	opts HeartbeatOptions
	log  *slog.Logger

	mu      sync.Mutex
	anchor  time.Time // ticks fall on anchor + k·every
	timer   *time.Timer
	ctx     context.Context
	closed  bool
	running bool
	seq     int
	wg      sync.WaitGroup
}

// NewHeartbeat builds a heartbeat; it starts with Run.
func NewHeartbeat(o HeartbeatOptions) *Heartbeat {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Heartbeat{opts: o, log: o.Logger}
}

// plan is a heartbeat config made ready: every (0 = off), the window in
// minutes after midnight and its zone.
type plan struct {
	every      time.Duration
	start, end int
	loc        *time.Location
}

func (h *Heartbeat) plan() (plan, bool) {
	c := h.opts.Config()
	if !c.Enabled {
		return plan{}, false
	}
	every, err := configgen.ParseDuration(c.Every)
	if err != nil || every < time.Minute {
		// The validator refuses bad values; below a minute is a misread
		// unit that would turn the heartbeat into a model-call loop.
		return plan{}, false
	}
	p := plan{every: every, start: 0, end: 24 * 60, loc: time.Local}
	if m, ok := configgen.ClockMinutes(c.Start); ok {
		p.start = m
	}
	if m, ok := configgen.ClockMinutes(c.End); ok {
		p.end = m
	}
	if p.start == p.end {
		return plan{}, false // a zero-width window: never
	}
	if c.TimeZone != "" {
		loc, err := configgen.LoadTimeZone(c.TimeZone)
		if err != nil {
			return plan{}, false
		}
		p.loc = loc
	}
	return p, true
}

// inWindow reports whether t falls in the active hours.
func (p plan) inWindow(t time.Time) bool {
	lt := t.In(p.loc)
	m := lt.Hour()*60 + lt.Minute()
	if p.start < p.end {
		return m >= p.start && m < p.end
	}
	return m >= p.start || m < p.end // wraps past midnight
}

// windowOpen is the first time at or after t inside the window.
func (p plan) windowOpen(t time.Time) time.Time {
	if p.inWindow(t) {
		return t
	}
	lt := t.In(p.loc)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, p.loc)
	for i := 0; i < 3; i++ {
		open := day.AddDate(0, 0, i).Add(time.Duration(p.start) * time.Minute)
		if !open.Before(t) {
			return open
		}
	}
	return t
}

// nextTick is the first tick strictly after t that falls in the window.
func (h *Heartbeat) nextTick(p plan, t time.Time) time.Time {
	k := t.Sub(h.anchor)/p.every + 1
	next := h.anchor.Add(k * p.every)
	if p.inWindow(next) {
		return next
	}
	// Outside the window: the first beat is when it opens.
	return p.windowOpen(next)
}

// NextDue is the next heartbeat that would call the model: false when the
// heartbeat is off or HEARTBEAT.md has nothing to act on (then the tick
// costs nothing, and a sleeping Koi need not wake for it).
func (h *Heartbeat) NextDue() (time.Time, bool) {
	p, ok := h.plan()
	if !ok {
		return time.Time{}, false
	}
	if _, ok := h.readFile(); !ok {
		return time.Time{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.anchor.IsZero() {
		h.anchor = h.opts.Now()
	}
	return h.nextTick(p, h.opts.Now()), true
}

// readFile returns HEARTBEAT.md when it has content to act on.
func (h *Heartbeat) readFile() (string, bool) {
	path := filepath.Join(h.opts.Workspace(), HeartbeatFile)
	f, _, err := regularfile.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	buf := make([]byte, maxHeartbeatFile)
	n, _ := f.Read(buf)
	text := string(buf[:n])
	return text, !EffectivelyEmpty(text)
}

// EffectivelyEmpty reports a HEARTBEAT.md with nothing to act on: only
// blank lines, headings, HTML comments, fence markers or empty checklist
// items.
func EffectivelyEmpty(text string) bool {
	inComment := false
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if inComment {
			if i := strings.Index(l, "-->"); i >= 0 {
				inComment = false
				l = strings.TrimSpace(l[i+3:])
			} else {
				continue
			}
		}
		for strings.HasPrefix(l, "<!--") {
			i := strings.Index(l, "-->")
			if i < 0 {
				inComment = true
				l = ""
				break
			}
			l = strings.TrimSpace(l[i+3:])
		}
		switch {
		case l == "", strings.HasPrefix(l, "#"), strings.HasPrefix(l, "```"), strings.HasPrefix(l, "~~~"):
			continue
		}
		item := strings.TrimSpace(strings.TrimLeft(l, "-*+"))
		for _, box := range []string{"[ ]", "[x]", "[X]"} {
			item = strings.TrimSpace(strings.TrimPrefix(item, box))
		}
		if item != "" {
			return false
		}
	}
	return true
}

// Run serves ticks until ctx ends.
func (h *Heartbeat) Run(ctx context.Context) {
	h.mu.Lock()
	h.ctx = ctx
	if h.anchor.IsZero() {
		h.anchor = h.opts.Now()
	}
	h.armLocked()
	h.mu.Unlock()
	<-ctx.Done()
	h.mu.Lock()
	h.closed = true
	if h.timer != nil {
		h.timer.Stop()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// Rearm re-reads the config (after a reload).
func (h *Heartbeat) Rearm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armLocked()
}

func (h *Heartbeat) armLocked() {
	if h.ctx == nil || h.closed {
		return
	}
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	p, ok := h.plan()
	if !ok {
		return // off: no timer at all
	}
	next := h.nextTick(p, h.opts.Now())
	h.timer = time.AfterFunc(max(next.Sub(h.opts.Now()), 0), h.fire)
}

func (h *Heartbeat) fire() {
	if h.opts.OnFire != nil {
		h.opts.OnFire()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timer = nil
	if h.closed {
		return
	}
	p, ok := h.plan()
	if ok && !h.running && p.inWindow(h.opts.Now()) {
		if text, has := h.readFile(); has {
			h.running = true
			h.seq++
			runID := "heartbeat:" + strconv.FormatInt(h.opts.Now().UnixMilli(), 10) + ":" + strconv.Itoa(h.seq)
			h.wg.Add(1)
			go h.beat(h.ctx, runID, h.prompt(text))
		}
	}
	h.armLocked()
}

func (h *Heartbeat) prompt(file string) string {
	p := strings.TrimSpace(h.opts.Config().Prompt)
	if p == "" {
		p = DefaultHeartbeatPrompt
	}
	return p + "\n\n" + HeartbeatFile + ":\n" + file
}

// beat runs one turn and announces its answer unless it is an
// acknowledgement.
func (h *Heartbeat) beat(ctx context.Context, runID, message string) {
	defer h.wg.Done()
	defer func() {
		h.mu.Lock()
		h.running = false
		h.mu.Unlock()
	}()
	text, err := h.opts.Turn(ctx, runID, message)
	if err != nil {
		h.log.Warn("heartbeat turn failed", "run", runID, "err", err)
		return
	}
	if Silent(text) {
		h.log.Debug("heartbeat: nothing to report", "run", runID)
		return
	}
	if err := h.opts.Announce(runID, text); err != nil {
		h.log.Warn("heartbeat: announcing to the main session failed", "run", runID, "err", fmt.Errorf("announcing: %w", err))
	}
}

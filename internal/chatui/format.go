package chatui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Lengths past which one-line summaries are cut: a tool line must stay one
// terminal line even for a heredoc command or a page of output.
const (
	MaxArgsChars   = 60
	MaxResultChars = 80
	MaxTitleChars  = 50
	MaxTextChars   = 400
)

// argKeys are the arguments that say what a call does, in order of
// preference: for exec the command, for the file tools the path.
var argKeys = []string{"command", "path", "url", "query", "pattern", "name"}

// ToolCall is "[tool NAME: ARGS]" with ARGS summarised on one line.
func ToolCall(name string, args json.RawMessage) string {
	if name == "" {
		name = "?"
	}
	a := ArgsSummary(args)
	if a == "" {
		return "[tool " + name + "]"
	}
	return "[tool " + name + ": " + a + "]"
}

// ArgsSummary is the telling part of a tool call's arguments: the command or
// path when there is one, the process tool's action and handle, otherwise the
// arguments as compact JSON. It is one line, cut at MaxArgsChars.
func ArgsSummary(args json.RawMessage) string {
	args = bytes.TrimSpace(args)
	if len(args) == 0 || string(args) == "null" {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal(args, &m); err != nil {
		// Arguments that are not an object (the gateway passes invalid JSON
		// from the model on as a string) are shown as they are.
		var s string
		if json.Unmarshal(args, &s) == nil {
			return Truncate(OneLine(s), MaxArgsChars)
		}
		return Truncate(OneLine(string(args)), MaxArgsChars)
	}
	for _, k := range argKeys {
		if s, ok := m[k].(string); ok && s != "" {
			return Truncate(OneLine(s), MaxArgsChars)
		}
	}
	if action, ok := m["action"].(string); ok {
		if h, ok := m["handle"].(string); ok && h != "" {
			action += " " + h
		}
		return Truncate(OneLine(action), MaxArgsChars)
	}
	if len(m) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, args); err != nil {
		return Truncate(OneLine(string(args)), MaxArgsChars)
	}
	return Truncate(OneLine(b.String()), MaxArgsChars)
}

// ToolResult is "ok", "ok (exit 0)" or "error: FIRST LINE (exit N)".
func ToolResult(isError bool, result string, details map[string]any) string {
	exit := ""
	if code, ok := details["exitCode"].(float64); ok {
		exit = fmt.Sprintf("exit %d", int(code))
	} else if code, ok := details["exitCode"].(int); ok {
		exit = fmt.Sprintf("exit %d", code)
	}
	if !isError {
		if exit != "" {
			return "ok (" + exit + ")"
		}
		return "ok"
	}
	line := Truncate(firstLine(result), MaxResultChars)
	switch {
	case line == "" && exit == "":
		return "error"
	case line == "":
		return "error (" + exit + ")"
	case exit == "":
		return "error: " + line
	}
	return "error: " + line + " (" + exit + ")"
}

// firstLine is the first line of s with text in it, trimmed.
func firstLine(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if t := strings.TrimSpace(line); t != "" {
			return t
		}
	}
	return ""
}

// OneLine collapses every run of white space, newlines included, into one
// space, and drops other control characters, so text from a model or a
// command cannot break the line or move the cursor.
func OneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case unicode.IsSpace(r):
			space = true
		case unicode.IsControl(r):
		default:
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Truncate cuts s to at most n runes, marking the cut with "…".
func Truncate(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// SessionRow is one entry of sessions.list.
type SessionRow struct {
	Key                string `json:"key"`
	SessionID          string `json:"sessionId"`
	UpdatedAt          int64  `json:"updatedAt"`
	Label              string `json:"label"`
	DerivedTitle       string `json:"derivedTitle"`
	LastMessagePreview string `json:"lastMessagePreview"`
	TotalTokens        int    `json:"totalTokens"`
}

// Title is the best one-line name for a session: its label, else the title
// derived from its first message, else its last message.
func (r SessionRow) Title() string {
	for _, s := range []string{r.Label, r.DerivedTitle, r.LastMessagePreview} {
		if s = OneLine(s); s != "" {
			return Truncate(s, MaxTitleChars)
		}
	}
	return "(empty)"
}

// mainPrefix is what the gateway puts before a short session key; the list
// shows keys without it because that is how people type them.
const mainPrefix = "agent:main:"

// ShortKey drops the "agent:main:" prefix the gateway adds to short keys.
func ShortKey(key string) string {
	if s, ok := strings.CutPrefix(key, mainPrefix); ok && s != "" {
		return s
	}
	return key
}

// FormatSessions is the /sessions table; current (a canonical key) is marked
// with "*". Times are relative to now, as people scan for "the one from this
// morning" rather than for a timestamp.
func FormatSessions(rows []SessionRow, current string, now time.Time) string {
	if len(rows) == 0 {
		return "no sessions yet\n"
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  SESSION\tUPDATED\tTITLE")
	for _, r := range rows {
		mark := " "
		if r.Key == current {
			mark = "*"
		}
		fmt.Fprintf(w, "%s %s\t%s\t%s\n", mark, OneLine(ShortKey(r.Key)), Ago(r.UpdatedAt, now), r.Title())
	}
	_ = w.Flush() // a strings.Builder does not fail
	return b.String()
}

// Ago renders a unix-ms time relative to now: "just now", "5m ago", "3h ago",
// "2d ago", or the date beyond a week.
func Ago(ms int64, now time.Time) string {
	if ms <= 0 {
		return "-"
	}
	t := time.UnixMilli(ms)
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	case d < 7*24*time.Hour:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
	return t.Local().Format("2006-01-02")
}

// FormatHistory is the /history view: who said what, tool calls and their
// results as one-line summaries, long texts cut at MaxTextChars.
func FormatHistory(msgs []Message) string {
	if len(msgs) == 0 {
		return "no messages in this session yet\n"
	}
	var b strings.Builder
	for _, m := range msgs {
		who := "koi"
		if m.Role == "user" {
			who = "you"
		}
		for _, c := range m.Content {
			switch c.Type {
			case "text":
				t := strings.TrimSpace(c.Text)
				if t == "" {
					continue
				}
				// "you:" rather than "you>": the latter is the prompt.
				fmt.Fprintf(&b, "%s: %s\n", who, Truncate(t, MaxTextChars))
			case "toolCall":
				fmt.Fprintf(&b, "     %s\n", ToolCall(c.Name, c.Arguments))
			case "toolResult":
				fmt.Fprintf(&b, "     [%s] → %s\n", c.Name, ToolResult(c.IsError, c.Result, nil))
			}
		}
		if m.ErrorMessage != "" {
			fmt.Fprintf(&b, "%s: [error] %s\n", who, OneLine(m.ErrorMessage))
		}
	}
	return b.String()
}

// Command is a line that starts with "/": a chat command, not a message.
type Command struct {
	Name string // without the slash, lower case
	Arg  string // the rest of the line, trimmed
}

// ParseCommand recognises a command line. A line that does not start with
// "/" (or is only "/") is a message.
func ParseCommand(line string) (Command, bool) {
	line = strings.TrimSpace(line)
	if len(line) < 2 || line[0] != '/' {
		return Command{}, false
	}
	name, arg, _ := strings.Cut(line[1:], " ")
	return Command{Name: strings.ToLower(name), Arg: strings.TrimSpace(arg)}, true
}

// Help lists the commands.
const Help = `Type a message and press Enter to send it to your Koi.
Commands:
  /new, /reset     start a new session (the old transcript is kept)
  /stop            stop what the Koi is doing in this session
  /sessions        list sessions
  /session KEY     switch to session KEY
  /history         show the last 20 messages of this session
  /help            show this help
  /quit, /exit     leave (so does Ctrl-D)
Ctrl-C while the Koi answers stops the answer; Ctrl-C again leaves.
`

package chatui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func msg(text string) *Message {
	return &Message{Role: "assistant", Content: []Content{{Type: "text", Text: text}}}
}

func delta(d, full string) ChatEvent {
	return ChatEvent{RunID: "r", State: StateDelta, DeltaText: d, Message: msg(full)}
}

// step is one event fed to a Turn: a chat event or a tool event.
type step struct {
	chat *ChatEvent
	tool *ToolEvent
}

func chatStep(e ChatEvent) step { return step{chat: &e} }
func toolStep(e ToolEvent) step { return step{tool: &e} }

func TestTurnRendering(t *testing.T) {
	final := func(full string) ChatEvent { return ChatEvent{RunID: "r", State: StateFinal, Message: msg(full)} }
	tests := []struct {
		name           string
		steps          []step
		stdout, stderr string
		state          string
	}{
		{
			name:   "deltas then final",
			steps:  []step{chatStep(delta("Hel", "Hel")), chatStep(delta("lo ", "Hello ")), chatStep(delta("world", "Hello world")), chatStep(final("Hello world"))},
			stdout: "Hello world\n",
			state:  StateFinal,
		},
		{
			name:   "a lost delta is printed from the next event's full text",
			steps:  []step{chatStep(delta("Hel", "Hel")), chatStep(delta("world", "Hello world")), chatStep(final("Hello world."))},
			stdout: "Hello world.\n",
			state:  StateFinal,
		},
		{
			name:   "only the final arrives",
			steps:  []step{chatStep(final("All of it."))},
			stdout: "All of it.\n",
			state:  StateFinal,
		},
		{
			name:   "deltas without a message use deltaText",
			steps:  []step{chatStep(ChatEvent{State: StateDelta, DeltaText: "a"}), chatStep(ChatEvent{State: StateDelta, DeltaText: "b"}), chatStep(ChatEvent{State: StateFinal})},
			stdout: "ab\n",
			state:  StateFinal,
		},
		{
			name:   "an answer ending in a newline gets no second one",
			steps:  []step{chatStep(delta("line\n", "line\n")), chatStep(final("line\n"))},
			stdout: "line\n",
			state:  StateFinal,
		},
		{
			name:   "text that does not continue what was shown is printed whole",
			steps:  []step{chatStep(delta("abc", "abc")), chatStep(final("xyz"))},
			stdout: "abc\nxyz\n",
			state:  StateFinal,
		},
		{
			name: "tool turn",
			steps: []step{
				chatStep(delta("Let me look.", "Let me look.")),
				toolStep(ToolEvent{Phase: "start", Name: "exec", ToolCallID: "t1", Args: json.RawMessage(`{"command":"echo hi"}`)}),
				toolStep(ToolEvent{Phase: "result", Name: "exec", ToolCallID: "t1", Result: "hi\n[exit code 0]", Details: map[string]any{"exitCode": float64(0)}}),
				chatStep(delta("\n\nIt said hi.", "Let me look.\n\nIt said hi.")),
				chatStep(final("Let me look.\n\nIt said hi.")),
			},
			stdout: "Let me look.\n[tool exec: echo hi] → ok (exit 0)\nIt said hi.\n",
			state:  StateFinal,
		},
		{
			name: "a failing tool and a paragraph break arriving alone",
			steps: []step{
				toolStep(ToolEvent{Phase: "start", Name: "read", ToolCallID: "t1", Args: json.RawMessage(`{"path":"nope.txt"}`)}),
				toolStep(ToolEvent{Phase: "result", Name: "read", ToolCallID: "t1", IsError: true, Result: "open nope.txt: no such file"}),
				chatStep(delta("\n\n", "\n\n")),
				chatStep(delta("No file.", "\n\nNo file.")),
				chatStep(final("\n\nNo file.")),
			},
			stdout: "[tool read: nope.txt] → error: open nope.txt: no such file\nNo file.\n",
			state:  StateFinal,
		},
		{
			name: "a result whose start was missed repeats the call by name",
			steps: []step{
				toolStep(ToolEvent{Phase: "result", Name: "exec", ToolCallID: "t9", Details: map[string]any{"exitCode": float64(0)}}),
				chatStep(final("")),
			},
			stdout: "[tool exec] → ok (exit 0)\n",
			state:  StateFinal,
		},
		{
			name: "a start without its result is ended by the final",
			steps: []step{
				chatStep(delta("Working.", "Working.")),
				toolStep(ToolEvent{Phase: "start", Name: "exec", ToolCallID: "t1", Args: json.RawMessage(`{"command":"sleep 100"}`)}),
				chatStep(ChatEvent{State: StateAborted, Message: msg("Working.")}),
			},
			stdout: "Working.\n[tool exec: sleep 100]\n",
			stderr: "[aborted]\n",
			state:  StateAborted,
		},
		{
			name:   "error keeps the partial text",
			steps:  []step{chatStep(delta("half an ans", "half an ans")), chatStep(ChatEvent{State: StateError, ErrorMessage: "model stream broke", Message: msg("half an ans")})},
			stdout: "half an ans\n",
			stderr: "error: model stream broke\n",
			state:  StateError,
		},
		{
			name:   "error without a message or text",
			steps:  []step{chatStep(ChatEvent{State: StateError})},
			stderr: "error: the run failed\n",
			state:  StateError,
		},
		{
			name:  "unknown states are ignored",
			steps: []step{chatStep(ChatEvent{State: "thinking"})},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			turn := NewTurn("r")
			var stdout, stderr strings.Builder
			var last Output
			for i, s := range tc.steps {
				var o Output
				if s.chat != nil {
					o = turn.Chat(*s.chat)
				} else {
					o = turn.Tool(*s.tool)
				}
				if o.Done && i != len(tc.steps)-1 {
					t.Fatalf("done at step %d of %d", i, len(tc.steps))
				}
				stdout.WriteString(o.Stdout)
				stderr.WriteString(o.Stderr)
				last = o
			}
			if stdout.String() != tc.stdout {
				t.Errorf("stdout\n got %q\nwant %q", stdout.String(), tc.stdout)
			}
			if stderr.String() != tc.stderr {
				t.Errorf("stderr\n got %q\nwant %q", stderr.String(), tc.stderr)
			}
			if last.State != tc.state || last.Done != (tc.state != "") {
				t.Errorf("ended %q done=%v, want %q", last.State, last.Done, tc.state)
			}
		})
	}
}

func TestTurnRecovered(t *testing.T) {
	turn := NewTurn("r")
	o := turn.Chat(delta("The first half", "The first half"))
	if o.Stdout != "The first half" {
		t.Fatalf("delta printed %q", o.Stdout)
	}
	// A notice in the middle of the answer moves it to the next line.
	if b := turn.Break(); b != "\n" {
		t.Fatalf("break %q", b)
	}
	o = turn.Recovered(StateFinal, "The first half and the rest.", "")
	if o.Stdout != " and the rest.\n" || !o.Done || o.State != StateFinal {
		t.Fatalf("recovered %+v", o)
	}
	// The connection dropped while a tool ran: the notice ends the open
	// tool line, and the recovered text's paragraph break adds no blank
	// lines below it.
	turn = NewTurn("r")
	var screen strings.Builder
	screen.WriteString(turn.Chat(delta("Working on it.", "Working on it.")).Stdout)
	screen.WriteString(turn.Tool(ToolEvent{Phase: "start", Name: "exec", ToolCallID: "t1", Args: json.RawMessage(`{"command":"make"}`)}).Stdout)
	screen.WriteString(turn.Break())
	screen.WriteString(turn.Recovered(StateFinal, "Working on it.\n\nAll done.", "").Stdout)
	if want := "Working on it.\n[tool exec: make]\nAll done.\n"; screen.String() != want {
		t.Fatalf("recovered after a tool\n got %q\nwant %q", screen.String(), want)
	}
	o = NewTurn("r").Recovered(StateError, "", "the model refused")
	if o.Stdout != "" || o.Stderr != "error: the model refused\n" || o.State != StateError {
		t.Fatalf("recovered error %+v", o)
	}
}

func TestRunText(t *testing.T) {
	msgs := []Message{
		{Role: "user", RunID: "r1", Content: []Content{{Type: "text", Text: "hi"}}},
		{Role: "assistant", RunID: "r0", Content: []Content{{Type: "text", Text: "older"}}},
		{Role: "assistant", RunID: "r1", Content: []Content{{Type: "text", Text: "Let me look."}, {Type: "toolCall", Name: "exec"}}},
		{Role: "user", RunID: "r1", Content: []Content{{Type: "toolResult", Name: "exec", Result: "x"}}},
		{Role: "assistant", RunID: "r1", Content: []Content{{Type: "toolCall", Name: "read"}}},
		{Role: "assistant", RunID: "r1", Content: []Content{{Type: "text", Text: "Done."}}},
	}
	if got := RunText(msgs, "r1"); got != "Let me look.\n\nDone." {
		t.Fatalf("RunText %q", got)
	}
	if got := RunText(msgs, "nope"); got != "" {
		t.Fatalf("RunText of an unknown run %q", got)
	}
}

func TestToolSummaries(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name, args, want string
	}{
		{"exec", `{"command":"echo hi"}`, "[tool exec: echo hi]"},
		{"exec", `{"command":"cat <<EOF\nline one\n\tline two\nEOF","timeoutSec":5}`, "[tool exec: cat <<EOF line one line two EOF]"},
		{"exec", `{"command":"` + long + `"}`, "[tool exec: " + strings.Repeat("x", MaxArgsChars-1) + "…]"},
		{"read", `{"path":"notes/todo.md","offset":3}`, "[tool read: notes/todo.md]"},
		{"process", `{"action":"poll","handle":"bg1"}`, "[tool process: poll bg1]"},
		{"process", `{"action":"list"}`, "[tool process: list]"},
		{"custom", `{"n":1,"b":true}`, `[tool custom: {"n":1,"b":true}]`},
		{"custom", `{}`, "[tool custom]"},
		{"custom", ``, "[tool custom]"},
		{"custom", `"not json {"`, "[tool custom: not json {]"},
		{"exec", `{"command":"printf '\u001b[2J'"}`, "[tool exec: printf '[2J']"},
		{"", `null`, "[tool ?]"},
	}
	for _, tc := range tests {
		if got := ToolCall(tc.name, json.RawMessage(tc.args)); got != tc.want {
			t.Errorf("ToolCall(%s, %s)\n got %q\nwant %q", tc.name, tc.args, got, tc.want)
		}
	}

	results := []struct {
		isError bool
		result  string
		details map[string]any
		want    string
	}{
		{false, "hi\n[exit code 0]", map[string]any{"exitCode": float64(0)}, "ok (exit 0)"},
		{false, "file contents", nil, "ok"},
		{true, "\n  ls: cannot access 'x': No such file\n[exit code 2]", map[string]any{"exitCode": float64(2)}, "error: ls: cannot access 'x': No such file (exit 2)"},
		{true, "", map[string]any{"exitCode": 1}, "error (exit 1)"},
		{true, "", nil, "error"},
		{true, long, nil, "error: " + strings.Repeat("x", MaxResultChars-1) + "…"},
	}
	for _, tc := range results {
		if got := ToolResult(tc.isError, tc.result, tc.details); got != tc.want {
			t.Errorf("ToolResult(%v, %.20q)\n got %q\nwant %q", tc.isError, tc.result, got, tc.want)
		}
	}
}

func TestTruncateAndOneLine(t *testing.T) {
	if got := Truncate("héllo wörld", 5); got != "héll…" {
		t.Errorf("Truncate %q", got)
	}
	if got := Truncate("short", 10); got != "short" {
		t.Errorf("Truncate %q", got)
	}
	if got := OneLine("  a\r\n\tb  \x07c "); got != "a b c" {
		t.Errorf("OneLine %q", got)
	}
}

func TestFormatSessions(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rows := []SessionRow{
		{Key: "agent:main:main", UpdatedAt: now.Add(-30 * time.Second).UnixMilli(), DerivedTitle: "plan the\ntrip", LastMessagePreview: "sure"},
		{Key: "agent:main:work", UpdatedAt: now.Add(-90 * time.Minute).UnixMilli(), Label: "Work", DerivedTitle: "ignored"},
		{Key: "agent:main:old", UpdatedAt: now.Add(-3 * 24 * time.Hour).UnixMilli(), LastMessagePreview: strings.Repeat("y", 80)},
		{Key: "agent:main:empty"},
	}
	got := FormatSessions(rows, "agent:main:work", now)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), got)
	}
	checks := [][]string{
		{"SESSION", "UPDATED", "TITLE"},
		{"  main", "just now", "plan the trip"},
		{"* work", "1h ago", "Work"},
		{"  old", "3d ago", strings.Repeat("y", MaxTitleChars-1) + "…"},
		{"  empty", "-", "(empty)"},
	}
	for i, want := range checks {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if FormatSessions(nil, "", now) != "no sessions yet\n" {
		t.Error("empty list")
	}
	if got := Ago(now.Add(-30*24*time.Hour).UnixMilli(), now); got != now.Add(-30*24*time.Hour).Local().Format("2006-01-02") {
		t.Errorf("Ago a month back: %q", got)
	}
}

func TestFormatHistory(t *testing.T) {
	msgs := []Message{
		{Role: "user", Content: []Content{{Type: "text", Text: "what is in note.txt?"}}},
		{Role: "assistant", Content: []Content{{Type: "text", Text: "Let me look."}, {Type: "toolCall", Name: "read", Arguments: json.RawMessage(`{"path":"note.txt"}`)}}},
		{Role: "user", Content: []Content{{Type: "toolResult", Name: "read", Result: "hello"}}},
		{Role: "assistant", Content: []Content{{Type: "text", Text: "  It says hello.  "}, {Type: "text", Text: ""}}},
		{Role: "user", Content: []Content{{Type: "text", Text: "and now?"}}},
		{Role: "assistant", Content: []Content{}, StopReason: "error", ErrorMessage: "The model is unreachable: no credentials."},
	}
	want := "you: what is in note.txt?\n" +
		"koi: Let me look.\n" +
		"     [tool read: note.txt]\n" +
		"     [read] → ok\n" +
		"koi: It says hello.\n" +
		"you: and now?\n" +
		"koi: [error] The model is unreachable: no credentials.\n"
	if got := FormatHistory(msgs); got != want {
		t.Errorf("history\n got %q\nwant %q", got, want)
	}
	if FormatHistory(nil) != "no messages in this session yet\n" {
		t.Error("empty history")
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		cmd  Command
		ok   bool
	}{
		{"/new", Command{Name: "new"}, true},
		{"  /Session  work  ", Command{Name: "session", Arg: "work"}, true},
		{"/history", Command{Name: "history"}, true},
		{"/", Command{}, false},
		{"hello /new", Command{}, false},
		{"", Command{}, false},
	}
	for _, tc := range tests {
		cmd, ok := ParseCommand(tc.line)
		if cmd != tc.cmd || ok != tc.ok {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v, %v", tc.line, cmd, ok, tc.cmd, tc.ok)
		}
	}
}

package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTripAcrossReopen(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	if e.Key != MainKey || e.SessionID == "" || e.CreatedAt != t0.UnixMilli() {
		t.Fatalf("new entry = %+v", e)
	}
	if fi, err := os.Stat(env.dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	msgs := []Message{
		textMsg("user", "Please list the files\n in my   workspace"),
		withUsage(Message{Role: "assistant", Content: []Content{
			{Type: "text", Text: "Looking."},
			{Type: "toolCall", ID: "tc1", Name: "exec", Arguments: json.RawMessage(`{"cmd":"ls"}`)},
		}, StopReason: "tool_use", RunID: "run1"}, "amazon-bedrock/m1", 100, 20, 5, 7),
		{Role: "user", Content: []Content{{Type: "toolResult", ToolCallID: "tc1", Name: "exec", Result: "a.txt\nb.txt", IsError: false}}},
		withUsage(Message{Role: "assistant", Content: []Content{{Type: "text", Text: "Two files: a.txt and b.txt."}}, StopReason: "end_turn", RunID: "run1"}, "amazon-bedrock/m1", 150, 10, 0, 0),
	}
	var last Entry
	for _, m := range msgs {
		env.clk.Add(time.Second)
		last = mustAppend(t, s, "main", m)
	}
	want := Entry{Key: MainKey, SessionID: e.SessionID, CreatedAt: e.CreatedAt, UpdatedAt: t0.Add(4 * time.Second).UnixMilli(),
		InputTokens: 250, OutputTokens: 30, CacheReadTokens: 5, CacheWriteTokens: 7, TotalTokens: 292, MessageCount: 4,
		ContextTokens: 160, LastMessageID: last.LastMessageID, LastMessagePreview: "Two files: a.txt and b.txt.", DerivedTitle: "Please list the files in my workspace"}
	if last != want {
		t.Fatalf("entry after appends:\n got %+v\nwant %+v", last, want)
	}
	sid, got, err := s.History(MainKey, 0)
	if err != nil || sid != e.SessionID || len(got) != 4 {
		t.Fatalf("History = %s, %d msgs, %v", sid, len(got), err)
	}
	if got[0].Timestamp != t0.Add(time.Second).UnixMilli() {
		t.Errorf("timestamp not filled in: %d", got[0].Timestamp)
	}
	if string(got[1].Content[1].Arguments) != `{"cmd":"ls"}` || got[2].Content[0].Result != "a.txt\nb.txt" {
		t.Errorf("tool blocks did not round-trip: %+v", got[1:3])
	}
	if _, two, _ := s.History(MainKey, 2); len(two) != 2 || two[1].Text() != "Two files: a.txt and b.txt." {
		t.Errorf("History limit 2 = %+v", two)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := env.open(t)
	if g, ok := s2.Get("agent:main:main"); !ok || g != want {
		t.Fatalf("after reopen Get = %+v, %v", g, ok)
	}
	_, again, err := s2.History("", 0)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("history after reopen differs:\n%+v\n%+v (%v)", again, got, err)
	}
	if n := checkJSONL(t, filepath.Join(env.dir, e.SessionID+".jsonl")); n != 5 {
		t.Errorf("transcript has %d lines, want header + 4", n)
	}
	var hdr Header
	first, _, _ := strings.Cut(string(readFile(t, filepath.Join(env.dir, e.SessionID+".jsonl"))), "\n")
	if err := json.Unmarshal([]byte(first), &hdr); err != nil || hdr != (Header{Type: "session", Version: 1, SessionID: e.SessionID, Key: MainKey, CreatedAt: e.CreatedAt}) {
		t.Errorf("header = %+v, %v", hdr, err)
	}
	for _, name := range []string{indexName, usageName, e.SessionID + ".jsonl"} {
		if fi, err := os.Stat(filepath.Join(env.dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, %v; want 0600", name, fi.Mode().Perm(), err)
		}
	}
}

func TestAppendValidation(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "")
	bad := []Message{
		{Role: "system", Content: []Content{{Type: "text", Text: "x"}}},
		{Role: "user", Content: []Content{{Type: "image"}}},
		{Role: "assistant", Content: []Content{{Type: "toolCall", Name: "exec"}}},
		{Role: "assistant", Content: []Content{{Type: "toolCall", ID: "1", Name: "exec", Arguments: json.RawMessage(`{`)}}},
		{Role: "user", Content: []Content{{Type: "toolResult"}}},
		{Role: "assistant", Usage: &Usage{InputTokens: -1}},
	}
	for _, m := range bad {
		if _, err := s.Append("", m); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(%+v) error = %v, want ErrInvalid", m, err)
		}
	}
	if _, err := s.Append("nobody", textMsg("user", "hi")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Append to unknown session: %v, want ErrNotFound", err)
	}
	if _, _, err := s.History("nobody", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("History of unknown session: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Resolve("agent:ops:x"); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("Resolve of another agent: %v", err)
	}
	if e, _ := s.Get(""); e.MessageCount != 0 {
		t.Errorf("refused appends changed the entry: %+v", e)
	}
}

// writeTranscript replaces a transcript by hand, as a crash or an editor would.
func appendRaw(t *testing.T, path, raw string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(raw); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTornLastLine(t *testing.T) {
	tests := []struct {
		name       string
		tail       string // written after two good messages
		wantTorn   bool
		wantLines  int // after the next append
		cutOnWrite bool
	}{
		{"half a line", `{"type":"message","id":"x","message":{"role":"assistant","content":[{"type":"te`, true, 4, true},
		{"complete JSON without newline", `{"type":"message","id":"x","message":{"role":"assistant","content":[]}}`, true, 4, true},
		{"zero-filled tail", "\x00\x00\x00\x00\x00\x00", true, 4, true},
		// A complete line that is not JSON is not a write cut short; it is
		// dropped on read but left in place (nothing written is erased).
		{"garbage complete line", "not json at all\n", true, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			s := env.open(t)
			e := mustResolve(t, s, "")
			mustAppend(t, s, "", textMsg("user", "one"))
			mustAppend(t, s, "", textMsg("assistant", "two"))
			_ = s.Close()
			path := filepath.Join(env.dir, e.SessionID+".jsonl")
			appendRaw(t, path, tt.tail) // the crash: index still describes two messages

			tr, err := LoadTranscript(path)
			if err != nil || tr.Torn != tt.wantTorn || len(tr.Messages) != 2 || tr.Skipped != 0 {
				t.Fatalf("LoadTranscript = torn %v, %d msgs, skipped %d, %v", tr.Torn, len(tr.Messages), tr.Skipped, err)
			}
			s = env.open(t)
			if got := historyTexts(t, s, ""); !reflect.DeepEqual(got, []string{"one", "two"}) {
				t.Fatalf("history = %q", got)
			}
			if !contains(env.logs.String(), "tornLastLine=true") {
				t.Errorf("torn line not reported in logs:\n%s", env.logs.String())
			}
			got := mustAppend(t, s, "", textMsg("user", "three"))
			if got.MessageCount != 3 {
				t.Errorf("MessageCount = %d", got.MessageCount)
			}
			if tt.cutOnWrite {
				if n := checkJSONL(t, path); n != tt.wantLines {
					t.Errorf("%d lines, want %d", n, tt.wantLines)
				}
			} else if tr, _ := LoadTranscript(path); tr.Skipped != 1 || tr.Torn || len(tr.Messages) != 3 {
				t.Errorf("after append: skipped %d, torn %v, %d msgs", tr.Skipped, tr.Torn, len(tr.Messages))
			}
			if got := historyTexts(t, s, ""); !reflect.DeepEqual(got, []string{"one", "two", "three"}) {
				t.Fatalf("history after append = %q", got)
			}
			_ = s.Close()
			s = env.open(t)
			if got := historyTexts(t, s, ""); !reflect.DeepEqual(got, []string{"one", "two", "three"}) {
				t.Fatalf("history after reopen = %q", got)
			}
		})
	}
}

func TestGarbageLineInMiddleSkipped(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	mustAppend(t, s, "", textMsg("user", "one"))
	_ = s.Close()
	path := filepath.Join(env.dir, e.SessionID+".jsonl")
	appendRaw(t, path, "{broken\n\n"+`{"type":"message","id":"z"}`+"\n"+`{"type":"future-thing","x":1}`+"\n")
	appendRaw(t, path, `{"type":"message","id":"y","message":{"role":"assistant","content":[{"type":"text","text":"two"}],"timestamp":5}}`+"\n")

	tr, _ := LoadTranscript(path)
	if tr.Skipped != 2 || tr.Torn || len(tr.Messages) != 2 {
		t.Fatalf("skipped %d (want 2: the broken line and the message without a body), torn %v, %d msgs", tr.Skipped, tr.Torn, len(tr.Messages))
	}
	s = env.open(t)
	if got := historyTexts(t, s, ""); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Fatalf("history = %q", got)
	}
	if g, _ := s.Get(""); g.MessageCount != 2 || g.LastMessagePreview != "two" {
		t.Errorf("entry not re-derived: %+v", g)
	}
	if !contains(env.logs.String(), "skippedLines=2") {
		t.Errorf("skipped lines not reported:\n%s", env.logs.String())
	}
}

// TestCrashBetweenAppendAndIndex is kill -9 after the transcript fsync and
// before the index (and usage) writes: the old index and usage files are put
// back, as if the new ones were never written.
func TestCrashBetweenAppendAndIndex(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	mustAppend(t, s, "", textMsg("user", "question"))
	mustAppend(t, s, "", withUsage(textMsg("assistant", "answer one"), "m", 10, 1, 0, 0))
	s.flushCaches("test") // the deferred index/usage write after these appends
	oldIndex := readFile(t, filepath.Join(env.dir, indexName))
	oldUsage := readFile(t, filepath.Join(env.dir, usageName))
	want := mustAppend(t, s, "", withUsage(textMsg("assistant", "answer two"), "m", 20, 2, 3, 4))
	_ = s.Close()
	if err := os.WriteFile(filepath.Join(env.dir, indexName), oldIndex, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.dir, usageName), oldUsage, 0o600); err != nil {
		t.Fatal(err)
	}

	s = env.open(t)
	got, ok := s.Get("")
	if !ok || got != want {
		t.Fatalf("entry not re-derived from the transcript:\n got %+v\nwant %+v", got, want)
	}
	if h := historyTexts(t, s, ""); len(h) != 3 || h[2] != "answer two" {
		t.Fatalf("history = %q", h)
	}
	u := s.Usage(1)
	if u.Totals != (Totals{InputTokens: 30, OutputTokens: 3, CacheReadTokens: 3, CacheWriteTokens: 4, Requests: 2}) {
		t.Fatalf("usage after recovery = %+v", u.Totals)
	}
	_ = s.Close()
	// A second reopen must not count the recovered usage again.
	s = env.open(t)
	if u2 := s.Usage(1); !reflect.DeepEqual(u2, u) {
		t.Fatalf("usage changed on a clean reopen: %+v vs %+v", u2.Totals, u.Totals)
	}
	if g, _ := s.Get(""); g.SessionID != e.SessionID {
		t.Errorf("sessionId changed")
	}
}

func TestCrashDuringResetLeavesOrphanOnly(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	mustAppend(t, s, "", textMsg("user", "hello"))
	oldIndex := readFile(t, filepath.Join(env.dir, indexName))
	if _, err := s.Reset(""); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// The reset's new transcript exists, its index write never happened.
	if err := os.WriteFile(filepath.Join(env.dir, indexName), oldIndex, 0o600); err != nil {
		t.Fatal(err)
	}
	s = env.open(t)
	if g, _ := s.Get(""); g.SessionID != e.SessionID || g.MessageCount != 1 {
		t.Fatalf("entry = %+v", g)
	}
	if h := historyTexts(t, s, ""); len(h) != 1 {
		t.Fatalf("history = %q", h)
	}
}

func TestCorruptIndexRebuilt(t *testing.T) {
	tests := []struct {
		name  string
		index func(valid []byte) []byte
	}{
		{"not JSON", func([]byte) []byte { return []byte("{\"version\":1,\"sessions\":{\"agent:main:main\":{\"ke") }},
		{"wrong shape", func([]byte) []byte { return []byte(`[1,2,3]`) }},
		{"path in sessionId", func(v []byte) []byte {
			return []byte(`{"version":1,"sessions":{"agent:main:main":{"key":"agent:main:main","sessionId":"../../etc/passwd"}}}`)
		}},
		{"key mismatch", func(v []byte) []byte {
			return []byte(`{"version":1,"sessions":{"agent:main:x":{"key":"agent:main:y","sessionId":"abc"}}}`)
		}},
		{"missing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			s := env.open(t)
			mustResolve(t, s, "")
			mustAppend(t, s, "", withUsage(textMsg("user", "old conversation"), "m", 1, 1, 0, 0))
			env.clk.Add(time.Minute)
			if _, err := s.Reset(""); err != nil { // main now has two transcripts
				t.Fatal(err)
			}
			env.clk.Add(time.Minute)
			mustAppend(t, s, "", withUsage(textMsg("user", "new conversation"), "m", 2, 2, 0, 0))
			mustResolve(t, s, "work")
			mustAppend(t, s, "work", textMsg("user", "work stuff"))
			before := s.List(ListOptions{})
			usageBefore := s.Usage(30)
			_ = s.Close()

			indexPath := filepath.Join(env.dir, indexName)
			var bad []byte
			if tt.index == nil {
				os.Remove(indexPath)
			} else {
				bad = tt.index(readFile(t, indexPath))
				if err := os.WriteFile(indexPath, bad, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s = env.open(t)
			after := s.List(ListOptions{})
			if len(after) != 2 {
				t.Fatalf("rebuilt %d sessions, want 2: %+v", len(after), after)
			}
			for i := range before {
				if after[i] != before[i] {
					t.Errorf("rebuilt entry differs:\n got %+v\nwant %+v", after[i], before[i])
				}
			}
			if h := historyTexts(t, s, ""); !reflect.DeepEqual(h, []string{"new conversation"}) {
				t.Errorf("main history = %q", h)
			}
			if u := s.Usage(30); !reflect.DeepEqual(u, usageBefore) {
				t.Errorf("usage changed by the rebuild: %+v vs %+v", u.Totals, usageBefore.Totals)
			}
			kept, _ := filepath.Glob(indexPath + ".corrupt-*")
			if tt.index == nil {
				if len(kept) != 0 {
					t.Errorf("kept %v for a missing index", kept)
				}
			} else {
				if len(kept) != 1 || string(readFile(t, kept[0])) != string(bad) {
					t.Fatalf("bad index not kept intact: %v", kept)
				}
				if !contains(env.logs.String(), "rebuilt the index") {
					t.Errorf("rebuild not logged:\n%s", env.logs.String())
				}
			}
			var f indexFile
			if err := json.Unmarshal(readFile(t, indexPath), &f); err != nil || len(f.Sessions) != 2 {
				t.Errorf("new index: %d sessions, %v", len(f.Sessions), err)
			}
		})
	}
}

// TestRebuildSkipsDeletedKeys: a delete renames only the current transcript;
// transcripts the key had before a reset must not resurrect it.
func TestRebuildSkipsDeletedKeys(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "")
	mustResolve(t, s, "tmp")
	mustAppend(t, s, "tmp", textMsg("user", "before reset"))
	env.clk.Add(time.Minute)
	if _, err := s.Reset("tmp"); err != nil {
		t.Fatal(err)
	}
	env.clk.Add(time.Minute)
	if ok, err := s.Delete("tmp"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	env.clk.Add(time.Minute)
	mustResolve(t, s, "again")
	mustAppend(t, s, "again", textMsg("user", "x"))
	env.clk.Add(time.Minute)
	if ok, err := s.Delete("again"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	env.clk.Add(time.Minute)
	recreated := mustResolve(t, s, "again") // recreated after its delete: must survive
	_ = s.Close()
	os.Remove(filepath.Join(env.dir, indexName))
	s = env.open(t)
	if _, ok := s.Get("tmp"); ok {
		t.Error("deleted key resurrected by the rebuild")
	}
	if g, ok := s.Get("again"); !ok || g.SessionID != recreated.SessionID || g.ResetAt != 0 {
		t.Errorf("recreated key: %+v, %v", g, ok)
	}
	if s.Count() != 2 {
		t.Errorf("Count = %d", s.Count())
	}
}

func TestNewerIndexVersionRefused(t *testing.T) {
	env := newEnv(t)
	os.MkdirAll(env.dir, 0o700)
	os.WriteFile(filepath.Join(env.dir, indexName), []byte(`{"version":99,"sessions":{}}`), 0o600)
	if _, err := Open(env.opts); err == nil || !contains(err.Error(), "newer") {
		t.Fatalf("Open = %v, want a refusal", err)
	}
}

func TestResetKeepsOldTranscript(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	if _, err := s.Patch("", Patch{Label: SetTo("mine"), ExecSecurity: SetTo("full")}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "", withUsage(textMsg("user", "hello"), "m", 5, 5, 0, 0))
	oldBytes := readFile(t, filepath.Join(env.dir, e.SessionID+".jsonl"))
	env.clk.Add(time.Hour)
	r, err := s.Reset("main")
	if err != nil {
		t.Fatal(err)
	}
	if r.SessionID == e.SessionID || r.TotalTokens != 0 || r.MessageCount != 0 || r.Label != "mine" || r.ExecSecurity != "full" ||
		r.ResetAt != env.clk.Now().UnixMilli() || r.DerivedTitle != "" || r.LastMessagePreview != "" {
		t.Fatalf("entry after reset = %+v", r)
	}
	if got := readFile(t, filepath.Join(env.dir, e.SessionID+".jsonl")); string(got) != string(oldBytes) {
		t.Fatal("old transcript changed")
	}
	if h := historyTexts(t, s, ""); len(h) != 0 {
		t.Errorf("history after reset = %q", h)
	}
	if _, err := s.Reset("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Reset of unknown session: %v", err)
	}
	if u := s.Usage(1); u.Totals.InputTokens != 5 {
		t.Errorf("reset lost usage: %+v", u.Totals)
	}
}

func TestPatch(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	created := mustResolve(t, s, "p")
	set := func(p Patch) Entry {
		t.Helper()
		e, err := s.Patch("p", p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	env.clk.Add(time.Hour)
	e := set(Patch{Label: SetTo("Trip"), Model: SetTo("amazon-bedrock/x"), ExecSecurity: SetTo("allowlist")})
	if e.Label != "Trip" || e.Model != "amazon-bedrock/x" || e.ExecSecurity != "allowlist" || e.UpdatedAt != created.UpdatedAt {
		t.Fatalf("after set: %+v", e)
	}
	// Decoded from the wire: null clears, absent keeps.
	var p Patch
	if err := json.Unmarshal([]byte(`{"label":null,"execSecurity":"deny"}`), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Label.Present || !p.Label.Null || p.Model.Present || p.ExecSecurity.Value != "deny" {
		t.Fatalf("decoded patch = %+v", p)
	}
	e = set(p)
	if e.Label != "" || e.Model != "amazon-bedrock/x" || e.ExecSecurity != "deny" {
		t.Fatalf("after null: %+v", e)
	}
	e = set(Patch{Model: Cleared[string](), ExecSecurity: SetTo("")})
	if e.Model != "" || e.ExecSecurity != "" {
		t.Fatalf("after clear: %+v", e)
	}
	for _, bad := range []Patch{
		{ExecSecurity: SetTo("all")},
		{Label: SetTo(strings.Repeat("x", maxLabel+1))},
		{Label: SetTo("two\nlines")},
		{Model: SetTo("has space")},
	} {
		if _, err := s.Patch("p", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Patch(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := s.Patch("nope", Patch{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Patch of unknown: %v", err)
	}
	set(Patch{Label: SetTo("Kept")})
	_ = s.Close()
	s = env.open(t)
	if g, _ := s.Get("p"); g.Label != "Kept" {
		t.Errorf("label not persisted: %+v", g)
	}
	if b, _ := json.Marshal(Patch{Label: SetTo("a"), Model: Cleared[string]()}); string(b) != `{"label":"a","model":null,"execSecurity":null}` {
		t.Errorf("marshal = %s", b)
	}
}

func TestDelete(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "")
	e := mustResolve(t, s, "scratch")
	mustAppend(t, s, "scratch", textMsg("user", "temp"))
	content := readFile(t, filepath.Join(env.dir, e.SessionID+".jsonl"))

	if _, err := s.Delete(""); !errors.Is(err, ErrMainSession) {
		t.Fatalf("deleting main: %v", err)
	}
	if _, err := s.Delete("agent:main:main"); !errors.Is(err, ErrMainSession) {
		t.Fatalf("deleting main by full key: %v", err)
	}
	ok, err := s.Delete("scratch")
	if err != nil || !ok {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	renamed := filepath.Join(env.dir, fmt.Sprintf("%s.jsonl.deleted-%d", e.SessionID, t0.Unix()))
	if got := readFile(t, renamed); string(got) != string(content) {
		t.Fatal("renamed transcript differs")
	}
	if _, err := os.Stat(filepath.Join(env.dir, e.SessionID+".jsonl")); !os.IsNotExist(err) {
		t.Fatal("transcript still under its live name")
	}
	if _, ok := s.Get("scratch"); ok || s.Count() != 1 {
		t.Fatal("deleted session still listed")
	}
	if ok, err := s.Delete("scratch"); ok || err != nil {
		t.Fatalf("second Delete = %v, %v", ok, err)
	}
	_ = s.Close()
	s = env.open(t)
	if _, ok := s.Get("scratch"); ok {
		t.Fatal("deleted session back after reopen")
	}
	if n := mustResolve(t, s, "scratch"); n.SessionID == e.SessionID || n.MessageCount != 0 {
		t.Fatalf("re-created session = %+v", n)
	}
}

// TestInterruptedDelete: the transcript was renamed, then the process died
// before the index was rewritten.
func TestInterruptedDelete(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "gone")
	_ = s.Close()
	p := filepath.Join(env.dir, e.SessionID+".jsonl")
	if err := os.Rename(p, p+".deleted-1"); err != nil {
		t.Fatal(err)
	}
	s = env.open(t)
	if _, ok := s.Get("gone"); ok {
		t.Fatal("interrupted delete not finished")
	}
	// A transcript that simply vanished keeps its session.
	e2 := mustResolve(t, s, "vanish")
	_ = s.Close()
	os.Remove(filepath.Join(env.dir, e2.SessionID+".jsonl"))
	s = env.open(t)
	if _, ok := s.Get("vanish"); !ok {
		t.Fatal("session with a missing transcript dropped")
	}
	mustAppend(t, s, "vanish", textMsg("user", "back"))
	if tr, _ := LoadTranscript(filepath.Join(env.dir, e2.SessionID+".jsonl")); tr.Header == nil || len(tr.Messages) != 1 {
		t.Fatalf("recreated transcript: %+v", tr)
	}

	// Missing at Open, restored from a backup before the next message: the
	// restored lines are kept, only an unterminated tail is cut.
	e3 := mustResolve(t, s, "restored")
	mustAppend(t, s, "restored", textMsg("user", "from backup"))
	_ = s.Close()
	p3 := filepath.Join(env.dir, e3.SessionID+".jsonl")
	backup := readFile(t, p3)
	os.Remove(p3)
	s = env.open(t)
	writeFile(t, p3, string(backup)+`{"type":"mess`)
	mustAppend(t, s, "restored", textMsg("user", "new"))
	if n := checkJSONL(t, p3); n != 3 {
		t.Fatalf("%d lines after restoring, want 3", n)
	}
	if h := historyTexts(t, s, "restored"); !reflect.DeepEqual(h, []string{"from backup", "new"}) {
		t.Fatalf("history = %q", h)
	}
	if g, _ := s.Get("restored"); g.MessageCount != 2 || g.DerivedTitle != "from backup" {
		t.Fatalf("entry not re-derived from the restored transcript: %+v", g)
	}
}

func TestList(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	for i, k := range []string{"alpha", "beta", "gamma", "delta"} {
		mustResolve(t, s, k)
		mustAppend(t, s, k, textMsg("user", "About "+strings.ToUpper(k)))
		if i < 3 {
			env.clk.Add(time.Hour)
		}
	}
	if _, err := s.Patch("beta", Patch{Label: SetTo("Holiday Plans")}); err != nil {
		t.Fatal(err)
	}
	keys := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, strings.TrimPrefix(e.Key, keyPrefix))
		}
		return out
	}
	tests := []struct {
		o    ListOptions
		want []string
	}{
		{ListOptions{}, []string{"delta", "gamma", "beta", "alpha"}},
		{ListOptions{Limit: 2}, []string{"delta", "gamma"}},
		{ListOptions{ActiveMinutes: 61}, []string{"delta", "gamma"}},
		{ListOptions{ActiveMinutes: 60}, []string{"delta", "gamma"}},
		{ListOptions{ActiveMinutes: 59}, []string{"delta"}},
		{ListOptions{Search: "holiday"}, []string{"beta"}},
		{ListOptions{Search: "ABOUT GAM"}, []string{"gamma"}}, // derived title
		{ListOptions{Search: "agent:main:al"}, []string{"alpha"}},
		{ListOptions{Search: "nothing"}, nil},
	}
	for _, tt := range tests {
		if got := keys(s.List(tt.o)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("List(%+v) = %q, want %q", tt.o, got, tt.want)
		}
	}
	if s.Count() != 4 || len(s.Recent(3)) != 3 || s.Recent(3)[0].Key != "agent:main:delta" {
		t.Errorf("Count %d, Recent %+v", s.Count(), s.Recent(3))
	}
}

func TestPreview(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "full")
	mustAppend(t, s, "full", textMsg("user", "first question"))
	mustAppend(t, s, "full", Message{Role: "assistant", Content: []Content{{Type: "toolCall", ID: "1", Name: "exec"}}})
	mustAppend(t, s, "full", textMsg("assistant", "a fairly long answer"))
	mustResolve(t, s, "blank")
	got := s.Preview([]string{"full", "blank", "nope", "agent:ops:x"}, 1, 8)
	want := []Preview{
		{Key: "full", Status: "ok", Items: []PreviewItem{{Role: "assistant", Text: "a fairly"}}},
		{Key: "blank", Status: "empty", Items: []PreviewItem{}},
		{Key: "nope", Status: "missing", Items: []PreviewItem{}},
		{Key: "agent:ops:x", Status: "missing", Items: []PreviewItem{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Preview =\n%+v\nwant\n%+v", got, want)
	}
	all := s.Preview([]string{"agent:main:full"}, 0, 0)
	if len(all[0].Items) != 2 || all[0].Items[0].Text != "first question" {
		t.Errorf("default preview = %+v", all)
	}
}

func TestConcurrentAppendsOneSession(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	const n = 48
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Append("", withUsage(textMsg("assistant", fmt.Sprintf("msg %d", i)), "m", 1, 1, 1, 1))
			errs <- err
		}()
		go s.List(ListOptions{})
		go s.Preview([]string{""}, 3, 10)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(env.dir, e.SessionID+".jsonl")
	if lines := checkJSONL(t, path); lines != n+1 {
		t.Fatalf("%d lines, want %d", lines, n+1)
	}
	g, _ := s.Get("")
	if g.MessageCount != n || g.TotalTokens != 4*n {
		t.Fatalf("entry = %+v", g)
	}
	if u := s.Usage(1); u.Totals.Requests != n {
		t.Fatalf("usage requests = %d", u.Totals.Requests)
	}
	_ = s.Close()
	s = env.open(t)
	if g2, _ := s.Get(""); g2 != g {
		t.Fatalf("after reopen %+v != %+v", g2, g)
	}
}

func TestConcurrentResolveCreatesOnce(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	const n = 16
	ids := make(chan string, n*3)
	var wg sync.WaitGroup
	for i := range n * 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"a", "b", "c"}[i%3]
			e, _, err := s.Resolve(key)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Append(key, textMsg("user", "hi")); err != nil {
				t.Error(err)
			}
			ids <- key + "=" + e.SessionID
		}()
	}
	wg.Wait()
	close(ids)
	distinct := map[string]bool{}
	for id := range ids {
		distinct[id] = true
	}
	if len(distinct) != 3 || s.Count() != 3 || len(transcriptFiles(t, env.dir)) != 3 {
		t.Fatalf("sessions: %v, count %d, files %v", distinct, s.Count(), transcriptFiles(t, env.dir))
	}
	for _, k := range []string{"a", "b", "c"} {
		if g, _ := s.Get(k); g.MessageCount != n {
			t.Errorf("%s: %d messages", k, g.MessageCount)
		}
	}
}

func TestStaleTempFilesRemoved(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	_ = s.Close()
	stale := filepath.Join(env.dir, ".sessions.json.tmp-123")
	os.WriteFile(stale, []byte("half"), 0o600)
	s = env.open(t)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale temp file left")
	}
}

// TestSummaryMatchesList: the one-pass Summary gives List's count and order
// for every n, ties on UpdatedAt included.
func TestSummaryMatchesList(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	for i := range 20 {
		k := fmt.Sprintf("s%02d", (i*7)%20) // keys not in time order
		mustResolve(t, s, k)
		mustAppend(t, s, k, textMsg("user", "hi"))
		if i%3 != 0 { // every third shares its time with the next
			env.clk.Add(time.Minute)
		}
	}
	all := s.List(ListOptions{})
	for n := 0; n <= 22; n++ {
		count, recent := s.Summary(n)
		want := all[:min(max(n, 0), len(all))]
		if count != len(all) || !reflect.DeepEqual(recent, want) {
			t.Fatalf("Summary(%d) = %d, %v; want %d, %v", n, count, recent, len(all), want)
		}
	}
}

package session

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func contextTexts(t *testing.T, s *Store, key string) (summary string, texts []string) {
	t.Helper()
	c, err := s.ContextMessages(key, 0)
	if err != nil {
		t.Fatalf("ContextMessages: %v", err)
	}
	if c.Compaction != nil {
		summary = c.Compaction.Summary
	}
	for _, m := range c.Messages {
		texts = append(texts, m.Text())
	}
	return summary, texts
}

// fill appends n user/assistant pairs and returns their message ids.
func fill(t *testing.T, s *Store, from, n int) []string {
	t.Helper()
	var ids []string
	for i := from; i < from+n; i++ {
		for _, role := range []string{"user", "assistant"} {
			e := mustAppend(t, s, "", textMsg(role, role[:1]+string(rune('0'+i))))
			ids = append(ids, e.LastMessageID)
		}
	}
	return ids
}

// A compaction changes what the model sees, not the transcript: every line
// stays, chat.history still has every message, and the context (summary +
// kept + later messages) survives a reopen, also when the index lags.
func TestCompactionContext(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keep      int  // index of the first kept message; -1 keeps none
		dropIndex bool // reopen without sessions.json (crash before the index write)
	}{
		{"keeps the last turn", 4, false},
		{"keeps none", -1, false},
		{"index lost", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			s := env.open(t)
			e := mustResolve(t, s, "")
			ids := fill(t, s, 0, 3)
			path := filepath.Join(env.dir, e.SessionID+".jsonl")
			before := readFile(t, path)
			c := Compaction{Summary: "the gist", TokensBefore: 900, TokensAfter: 100}
			var want []string
			if tc.keep >= 0 {
				c.FirstKeptID = ids[tc.keep]
				want = []string{"u0", "a0", "u1", "a1", "u2", "a2"}[tc.keep:]
			}
			got, err := s.AppendCompaction("", c)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID == "" || got.Timestamp == 0 {
				t.Errorf("compaction = %+v", got)
			}
			after := readFile(t, path)
			if !strings.HasPrefix(string(after), string(before)) {
				t.Fatal("the transcript was rewritten, not appended to")
			}
			var line map[string]any
			lines := strings.Split(strings.TrimSuffix(string(after), "\n"), "\n")
			last := lines[len(lines)-1]
			if err := json.Unmarshal([]byte(last), &line); err != nil || line["type"] != "compaction" || line["summary"] != "the gist" ||
				line["tokensBefore"] != 900.0 || (tc.keep >= 0) != (line["firstKeptId"] != nil) {
				t.Errorf("compaction line = %s (%v)", last, err)
			}
			mustAppend(t, s, "", textMsg("user", "u3"))
			want = append(want, "u3")
			check := func(s *Store, when string) {
				t.Helper()
				if sum, texts := contextTexts(t, s, ""); sum != "the gist" || !reflect.DeepEqual(texts, want) {
					t.Errorf("%s: context = %q %q, want %q", when, sum, texts, want)
				}
				if h := historyTexts(t, s, ""); len(h) != 7 {
					t.Errorf("%s: history has %d messages, want all 7: %q", when, len(h), h)
				}
			}
			check(s, "before reopen")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.dropIndex {
				if err := os.Remove(filepath.Join(env.dir, indexName)); err != nil {
					t.Fatal(err)
				}
			}
			s = env.open(t)
			check(s, "after reopen")
			if strings.Contains(env.logs.String(), "did not check out") {
				t.Errorf("the context start was not found from the index:\n%s", env.logs.String())
			}
			_ = s.Close()
		})
	}
}

// The remembered offset is only a hint: pointing anywhere else, the store
// reads the whole transcript and gets the same context.
func TestCompactionHintVerified(t *testing.T) {
	for _, off := range []int64{0, 1, 7, 200, 1 << 30} {
		env := newEnv(t)
		s := env.open(t)
		mustResolve(t, s, "")
		ids := fill(t, s, 0, 3)
		if _, err := s.AppendCompaction("", Compaction{Summary: "sum", FirstKeptID: ids[2]}); err != nil {
			t.Fatal(err)
		}
		st := s.lookup(MainKey)
		st.mu.Lock()
		st.hint.Off = off
		st.mu.Unlock()
		if sum, texts := contextTexts(t, s, ""); sum != "sum" || !reflect.DeepEqual(texts, []string{"u1", "a1", "u2", "a2"}) {
			t.Errorf("hint %d: context = %q %q", off, sum, texts)
		}
		if !strings.Contains(env.logs.String(), "did not check out") {
			t.Errorf("hint %d: a wrong hint was not noticed", off)
		}
		_ = s.Close()
	}
}

// kill -9 while the compaction line was being written leaves half a line:
// the transcript loads, only that line is dropped (the context is the one
// before it), and the next append cuts the tail off.
func TestTornCompactionLine(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	e := mustResolve(t, s, "")
	ids := fill(t, s, 0, 2)
	if _, err := s.AppendCompaction("", Compaction{Summary: "first", FirstKeptID: ids[2]}); err != nil {
		t.Fatal(err)
	}
	fill(t, s, 2, 1)
	path := filepath.Join(env.dir, e.SessionID+".jsonl")
	good := readFile(t, path)
	if _, err := s.AppendCompaction("", Compaction{Summary: "second, torn", FirstKeptID: ids[3]}); err != nil {
		t.Fatal(err)
	}
	full := readFile(t, path)
	_ = s.Close()
	// The crash: the line only half written; the index may say anything.
	if err := os.WriteFile(path, full[:len(good)+(len(full)-len(good))/2], 0o600); err != nil {
		t.Fatal(err)
	}
	s = env.open(t)
	want := []string{"u1", "a1", "u2", "a2"}
	if sum, texts := contextTexts(t, s, ""); sum != "first" || !reflect.DeepEqual(texts, want) {
		t.Errorf("context = %q %q, want first %q", sum, texts, want)
	}
	if h := historyTexts(t, s, ""); len(h) != 6 {
		t.Errorf("history = %q, want all 6", h)
	}
	mustAppend(t, s, "", textMsg("user", "u3"))
	if n := checkJSONL(t, path); n != 1+6+1+1 {
		t.Errorf("%d lines after the next append, want header, 6 messages, 1 compaction, 1 new", n)
	}
	if sum, texts := contextTexts(t, s, ""); sum != "first" || !reflect.DeepEqual(texts, append(want, "u3")) {
		t.Errorf("after append: context = %q %q", sum, texts)
	}
	_ = s.Close()
}

func TestAppendCompactionRefuses(t *testing.T) {
	env := newEnv(t)
	s := env.open(t)
	mustResolve(t, s, "")
	fill(t, s, 0, 1)
	for _, c := range []Compaction{{Summary: ""}, {Summary: "s", FirstKeptID: "nope"}} {
		if _, err := s.AppendCompaction("", c); err == nil {
			t.Errorf("AppendCompaction(%+v) succeeded", c)
		}
	}
	_ = s.Close()
}

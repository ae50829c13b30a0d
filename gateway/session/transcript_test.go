package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestParseTranscript(t *testing.T) {
	hdr := `{"type":"session","version":1,"sessionId":"s1","key":"agent:main:main","createdAt":1}` + "\n"
	msg := func(id, text string) string {
		return `{"type":"message","id":"` + id + `","message":{"role":"user","content":[{"type":"text","text":"` + text + `"}],"timestamp":2}}` + "\n"
	}
	tests := []struct {
		name    string
		data    string
		header  bool
		msgs    int
		skipped int
		torn    bool
		end     int
	}{
		{"empty", "", false, 0, 0, false, 0},
		{"header only", hdr, true, 0, 0, false, len(hdr)},
		{"two messages", hdr + msg("a", "x") + msg("b", "y"), true, 2, 0, false, len(hdr + msg("a", "x") + msg("b", "y"))},
		{"torn tail", hdr + msg("a", "x") + `{"type":"mess`, true, 1, 0, true, len(hdr + msg("a", "x"))},
		{"whitespace tail is not torn", hdr + "  ", true, 0, 0, false, len(hdr)},
		{"invalid last line", hdr + "nope\n", true, 0, 0, true, len(hdr) + 5},
		{"invalid middle line", hdr + "nope\n" + msg("a", "x"), true, 1, 1, false, len(hdr+msg("a", "x")) + 5},
		{"no header", msg("a", "x"), false, 1, 0, false, len(msg("a", "x"))},
		{"second header skipped", hdr + msg("a", "x") + hdr + msg("b", "y"), true, 2, 1, false, len(hdr + msg("a", "x") + hdr + msg("b", "y"))},
		{"unknown type ignored", hdr + `{"type":"laterThing"}` + "\n", true, 0, 0, false, len(hdr) + 22},
		{"CRLF lines", hdr[:len(hdr)-1] + "\r\n" + msg("a", "x"), true, 1, 0, false, len(hdr+msg("a", "x")) + 1},
		{"wrong field type", hdr + `{"type":"message","message":{"role":1}}` + "\n" + msg("a", "x"), true, 1, 1, false, len(hdr+msg("a", "x")) + 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseTranscript([]byte(tt.data))
			if (got.Header != nil) != tt.header || len(got.Messages) != tt.msgs || len(got.IDs) != tt.msgs ||
				got.Skipped != tt.skipped || got.Torn != tt.torn || got.End != int64(tt.end) {
				t.Fatalf("got header %v, %d msgs, skipped %d, torn %v, end %d", got.Header != nil, len(got.Messages), got.Skipped, got.Torn, got.End)
			}
		})
	}
}

func TestLoadTranscriptMissing(t *testing.T) {
	if _, err := LoadTranscript(filepath.Join(t.TempDir(), "nope.jsonl")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzLoadTranscript feeds arbitrary bytes to the loader as a transcript
// file. It must never panic; what it loads must re-serialize stably; and
// cutting the file at End and appending a line (what Append does) must give a
// file that reads back with exactly one more message and no torn tail.
func FuzzLoadTranscript(f *testing.F) {
	hdr := `{"type":"session","version":1,"sessionId":"s1","key":"agent:main:main","createdAt":1}` + "\n"
	msg := `{"type":"message","id":"a","message":{"role":"assistant","content":[{"type":"text","text":"hi"},{"type":"toolCall","id":"t","name":"exec","arguments":{"cmd" : "ls"}}],"timestamp":2,"usage":{"inputTokens":1,"outputTokens":2,"cacheReadTokens":3,"cacheWriteTokens":4}}}` + "\n"
	for _, seed := range []string{
		"", hdr, hdr + msg, hdr + msg + msg[:40], hdr + "garbage\n" + msg, "\n\n\n", msg + "\x00\x00",
		`{"type":"message","message":{"content":null,"arguments":null}}` + "\n",
		`{"type":"message","message":{"role":"user","content":[{"type":"toolResult","toolCallId":"t","result":"\xff","isError":true}]}}` + "\n",
		`{"type":"message","message":{"content":[{"arguments":[1,{"a":"<>&"}]}]}}` + "\n",
		hdr + msg + `{"type":"compaction","id":"c","summary":"s","firstKeptId":"a","tokensBefore":9}` + "\n" + msg,
		hdr + msg + `{"type":"compaction","id":"c","summary":"s","firstKeptId":"gone"}` + "\n",
		hdr + `{"type":"compaction","summary":""}` + "\n" + msg,
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	newLine, err := encodeMessage("new", &Message{Role: "user", Content: []Content{{Type: "text", Text: "appended"}}, Timestamp: 9})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "t.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tr, err := LoadTranscript(path)
		if err != nil {
			t.Fatal(err)
		}
		if tr.End < 0 || tr.End > int64(len(data)) || (tr.End > 0 && data[tr.End-1] != '\n') {
			t.Fatalf("End %d is not just past a newline", tr.End)
		}
		if len(tr.IDs) != len(tr.Messages) {
			t.Fatalf("%d ids for %d messages", len(tr.IDs), len(tr.Messages))
		}
		for i := range tr.Messages {
			b1, err := json.Marshal(tr.Messages[i])
			if err != nil {
				t.Fatalf("message %d does not re-serialize: %v", i, err)
			}
			var again Message
			if err := json.Unmarshal(b1, &again); err != nil {
				t.Fatalf("re-serialized message %d does not parse: %v\n%s", i, err, b1)
			}
			b2, _ := json.Marshal(again)
			if !bytes.Equal(b1, b2) {
				t.Fatalf("message %d is not stable:\n%s\n%s", i, b1, b2)
			}
		}
		// What Append does: cut at End, add one line.
		next := append(append([]byte{}, data[:tr.End]...), newLine...)
		tr2 := ParseTranscript(next)
		if tr2.Torn || len(tr2.Messages) != len(tr.Messages)+1 || tr2.End != int64(len(next)) {
			t.Fatalf("after append: torn %v, %d msgs (had %d), end %d of %d", tr2.Torn, len(tr2.Messages), len(tr.Messages), tr2.End, len(next))
		}
		if tr2.Messages[len(tr2.Messages)-1].Text() != "appended" {
			t.Fatal("appended message not last")
		}
	})
}

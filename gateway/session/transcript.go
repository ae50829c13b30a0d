package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// transcriptVersion is written in every header; readers accept any version
// and ignore line types they do not know, so later versions can add lines.
const transcriptVersion = 1

// Header is a transcript's first line. It repeats what the index knows about
// the session so the index can be rebuilt from transcripts alone.
type Header struct {
	Type      string `json:"type"` // "session"
	Version   int    `json:"version"`
	SessionID string `json:"sessionId"`
	Key       string `json:"key"`
	CreatedAt int64  `json:"createdAt"` // unix ms
}

type messageLine struct {
	Type    string   `json:"type"` // "message"
	ID      string   `json:"id"`
	Message *Message `json:"message"`
}

// MessageOfLine is the message a transcript line carries, for readers
// outside the store (the memory index), so there is one reading of the
// format; ok is false for every other line type and for a line that does
// not parse.
func MessageOfLine(line []byte) (m *Message, ok bool) {
	var l messageLine
	if json.Unmarshal(line, &l) != nil || l.Type != "message" || l.Message == nil {
		return nil, false
	}
	return l.Message, true
}

// anyLine is the union of every line type, for reading.
type anyLine struct {
	Type      string   `json:"type"`
	ID        string   `json:"id"`
	Message   *Message `json:"message"`
	Version   int      `json:"version"`
	SessionID string   `json:"sessionId"`
	Key       string   `json:"key"`
	CreatedAt int64    `json:"createdAt"`

	// compaction lines
	Summary      string `json:"summary"`
	FirstKeptID  string `json:"firstKeptId"`
	TokensBefore int    `json:"tokensBefore"`
	TokensAfter  int    `json:"tokensAfter"`
	Timestamp    int64  `json:"timestamp"`
}

// Transcript is what ParseTranscript could read from a transcript file.
type Transcript struct {
	Header   *Header   // nil when the file does not start with a header
	Messages []Message // in file order
	IDs      []string  // IDs[i] is the line id of Messages[i]
	// Skipped counts unreadable lines before the last one; they are ignored.
	Skipped int
	// Torn is set when the last line was dropped: it had no trailing newline
	// (a write cut short by a crash) or was not valid JSON.
	Torn bool
	// End is the offset just past the last newline. Bytes beyond it are an
	// unterminated tail; appends truncate the file to End first.
	End int64

	// Compaction is the last compaction entry, nil when there is none;
	// KeptFrom is the index in Messages of the first message it kept
	// verbatim (len of Messages before it when it kept none). The model's
	// context is the summary plus Messages[KeptFrom:].
	Compaction *Compaction
	KeptFrom   int
	// starts[i] is the byte offset of Messages[i]'s line; compactionAt that
	// of the last compaction line; firstID and firstAt the id and offset of
	// the first message or compaction line (firstAt -1: none).
	starts       []int64
	compactionAt int64
	compactedAt  int // len(Messages) when the last compaction line came
	firstID      string
	firstAt      int64
}

// ParseTranscript reads transcript bytes. It never fails: what cannot be read
// is skipped and counted, so one bad line never hides a conversation.
func ParseTranscript(data []byte) Transcript {
	t := Transcript{firstAt: -1}
	off := 0
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			if len(bytes.TrimSpace(data[off:])) > 0 {
				t.Torn = true
			}
			break
		}
		ln := data[off : off+nl]
		lineStart := int64(off)
		off += nl + 1
		t.End = int64(off)
		last := off == len(data)
		if len(bytes.TrimSpace(ln)) == 0 {
			continue
		}
		bad := func() {
			if last {
				t.Torn = true
			} else {
				t.Skipped++
			}
		}
		var l anyLine
		if err := json.Unmarshal(ln, &l); err != nil {
			bad()
			continue
		}
		switch l.Type {
		case "session":
			if t.Header != nil || len(t.Messages) > 0 {
				bad() // a header anywhere but the top is not this file's header
				continue
			}
			t.Header = &Header{Type: l.Type, Version: l.Version, SessionID: l.SessionID, Key: l.Key, CreatedAt: l.CreatedAt}
		case "message":
			if l.Message == nil {
				bad()
				continue
			}
			m := *l.Message
			if m.Content == nil {
				m.Content = []Content{}
			}
			t.Messages = append(t.Messages, m)
			t.IDs = append(t.IDs, l.ID)
			t.starts = append(t.starts, lineStart)
			t.first(l.ID, lineStart)
		case "compaction":
			if l.Summary == "" {
				bad()
				continue
			}
			// A first kept message that is not there (a hand-edited file)
			// keeps none: the summary covers what came before.
			kept := len(t.Messages)
			if l.FirstKeptID != "" {
				// Backwards: the kept messages are the recent ones.
				for i := len(t.IDs) - 1; i >= 0; i-- {
					if t.IDs[i] == l.FirstKeptID {
						kept = i
						break
					}
				}
			}
			t.compactionAt, t.compactedAt = lineStart, len(t.Messages)
			t.first(l.ID, lineStart)
			t.Compaction = &Compaction{ID: l.ID, Summary: l.Summary, FirstKeptID: l.FirstKeptID,
				TokensBefore: l.TokensBefore, TokensAfter: l.TokensAfter, Timestamp: l.Timestamp}
			t.KeptFrom = kept
		default:
			// Line types from a later version: not ours to judge.
		}
	}
	return t
}

func (t *Transcript) first(id string, at int64) {
	if t.firstAt < 0 {
		t.firstID, t.firstAt = id, at
	}
}

// LoadTranscript reads and parses a transcript file.
func LoadTranscript(path string) (Transcript, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Transcript{}, fmt.Errorf("loading transcript: %w", err)
	}
	return ParseTranscript(data), nil
}

func encodeHeader(sid, key string, createdAt int64) []byte {
	b, err := json.Marshal(Header{Type: "session", Version: transcriptVersion, SessionID: sid, Key: key, CreatedAt: createdAt})
	if err != nil {
		panic(err) // strings and ints always marshal
	}
	return append(b, '\n')
}

func encodeCompaction(c *Compaction) ([]byte, error) {
	b, err := json.Marshal(compactionLine{Type: "compaction", Compaction: *c})
	if err != nil {
		return nil, fmt.Errorf("encoding compaction: %w", err)
	}
	return append(b, '\n'), nil
}

func encodeMessage(id string, m *Message) ([]byte, error) {
	b, err := json.Marshal(messageLine{Type: "message", ID: id, Message: m})
	if err != nil {
		return nil, fmt.Errorf("encoding message: %w", err)
	}
	return append(b, '\n'), nil
}

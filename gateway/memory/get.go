package memory

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// memory_get limits: OpenClaw's window and excerpt cap.
const (
	DefaultGetLines = 120
	GetMaxChars     = 12000
)

// maxMemoryFile is the most of one memory file that is read, by memory_get
// and by the index alike.
const maxMemoryFile = 8 << 20

// Excerpt is what memory_get returns: lines from..from+lines-1 of a memory
// file. NextFrom is the line to continue from when more follows (0 at the
// end).
type Excerpt struct {
	Path       string `json:"path"`
	From       int    `json:"from"`
	Lines      int    `json:"lines"`
	TotalLines int    `json:"totalLines"`
	Text       string `json:"text"`
	Truncated  bool   `json:"truncated,omitempty"`
	NextFrom   int    `json:"nextFrom,omitempty"`
}

// Get reads part of the memory file rel (slash-separated, relative to the
// workspace): from is the first line (default 1), lines how many (default
// DefaultGetLines); the text is capped at GetMaxChars. Anything but
// MEMORY.md and memory/*.md, and any symlink, is refused with ErrNotMemory.
func (s *Store) Get(rel string, from, lines int) (Excerpt, error) {
	if from <= 0 {
		from = 1
	}
	if lines <= 0 {
		lines = DefaultGetLines
	}
	data, err := readRegular(s.opts.Workspace(), rel, maxMemoryFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Excerpt{}, fmt.Errorf("reading memory file %s: it does not exist (memory_search finds what is kept; write creates a note)", rel)
	}
	if err != nil {
		return Excerpt{}, fmt.Errorf("reading memory file %s: %w", rel, err)
	}
	all := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(data) == 0 {
		all = nil
	}
	ex := Excerpt{Path: rel, From: from, TotalLines: len(all)}
	if from > len(all) {
		return ex, nil
	}
	end := min(len(all), from-1+lines)
	var b strings.Builder
	for i := from - 1; i < end; i++ {
		if b.Len()+len(all[i])+1 > GetMaxChars {
			ex.Truncated = true
			if b.Len() == 0 { // one huge line: show its start
				b.WriteString(cutUTF8(all[i], GetMaxChars))
				i++
			}
			end = i
			break
		}
		b.WriteString(all[i])
		b.WriteByte('\n')
	}
	ex.Text = b.String()
	ex.Lines = end - (from - 1)
	if end < len(all) {
		ex.NextFrom = end + 1
	}
	return ex, nil
}

package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

// Response bounds. Methods that answer from stored data (transcripts, the
// session index) grow with what has been stored, so each one fits its
// answer into responseBudget through fitItems and marks what it left out;
// sendRes refuses anything that still exceeds the frame limit.
const (
	responseBudget = protocol.MaxResponseBytes
	// maxHistoryMessageBytes bounds one chat.history message: a single
	// multi-megabyte tool result must not crowd every other message out of
	// the budget. Messages a person types (chat.send allows 1 MiB) rarely
	// come near it.
	maxHistoryMessageBytes = 256 << 10
	// envelopeSlack is room for a payload's own fields around its list.
	envelopeSlack = 4 << 10
)

// fitItems prepares items for the wire with prep and keeps the prepared
// items that fit budget bytes of JSON, starting from the most important
// end: the end of the list when lastFirst (a transcript, oldest first), its
// start otherwise (a list sorted newest first). What it keeps is contiguous
// and in the original order; omitted is how many it left out. prep runs only
// on items it reaches, so a long list past the budget costs little. An item
// that does not encode counts as too large.
func fitItems[T, U any](items []T, budget int, lastFirst bool, prep func(T) U) (kept []U, omitted int) {
	used := 2 // the brackets
	kept = []U{}
	for i := range items {
		idx := i
		if lastFirst {
			idx = len(items) - 1 - i
		}
		u := prep(items[idx])
		b, err := json.Marshal(u)
		if err != nil || used+len(b)+1 > budget {
			break
		}
		used += len(b) + 1 // and its comma
		kept = append(kept, u)
	}
	if lastFirst {
		slices.Reverse(kept)
	}
	return kept, len(items) - len(kept)
}

// historyMessage is a chat.history entry; Truncated marks one whose largest
// fields were shortened to fit maxHistoryMessageBytes (each shortened field
// ends with a truncation note saying how much is missing).
type historyMessage struct {
	session.Message
	Truncated bool `json:"truncated,omitempty"`
}

// truncationNote ends a field that was cut.
func truncationNote(shown, total int) string {
	return fmt.Sprintf("\n[… truncated: the first %d of %d bytes are shown]", shown, total)
}

// clipMessage shortens m's largest text, tool result or tool argument fields
// until its JSON fits limit bytes. It copies what it changes; m's content
// slice is shared with the store's transcript and must not be written.
func clipMessage(m session.Message, limit int) historyMessage {
	out := historyMessage{Message: m}
	size := func() int { b, _ := json.Marshal(out); return len(b) }
	excess := size() - limit
	if excess <= 0 {
		return out
	}
	out.Truncated = true
	out.Content = append([]session.Content(nil), m.Content...)
	// Each round cuts the largest remaining field by what is still over,
	// measured on the encoding (escapes make JSON longer than the text), so
	// a few rounds settle even when every field is large.
	type field struct {
		get   func() string
		set   func(string)
		total int
	}
	var fields []*field
	for i := range out.Content {
		c := &out.Content[i]
		if c.Text != "" {
			fields = append(fields, &field{get: func() string { return c.Text }, set: func(s string) { c.Text = s }, total: len(c.Text)})
		}
		if c.Result != "" {
			fields = append(fields, &field{get: func() string { return c.Result }, set: func(s string) { c.Result = s }, total: len(c.Result)})
		}
		if len(c.Arguments) > 0 {
			// Cut arguments are no longer valid JSON: they become a JSON
			// string of their start, which every client can still show.
			orig := string(c.Arguments)
			cur := orig
			fields = append(fields, &field{get: func() string { return cur }, set: func(s string) {
				cur = s
				c.Arguments, _ = json.Marshal(s)
			}, total: len(orig)})
		}
	}
	shown := map[*field]int{}
	for round := 0; round < 8 && excess > 0; round++ {
		var big *field
		for _, f := range fields {
			if big == nil || len(f.get()) > len(big.get()) {
				big = f
			}
		}
		if big == nil || len(big.get()) == 0 {
			break
		}
		// A field cut before holds its kept prefix and then the note, so
		// cutting again shortens the prefix.
		keep, cut := shown[big]
		if !cut {
			keep = big.total
		}
		keep = runeStart(big.get(), max(keep-excess-64, 0)) // 64: room for the note
		shown[big] = keep
		big.set(big.get()[:keep] + truncationNote(keep, big.total))
		excess = size() - limit
	}
	if excess > 0 {
		// Thousands of small blocks: no one field is worth cutting.
		total := size() + excess
		out.Content = []session.Content{{Type: "text", Text: fmt.Sprintf(
			"[… this message (%d bytes of JSON) is too large for chat.history; it is kept in the transcript on the Koi]", total)}}
	}
	return out
}

// runeStart moves n back to the start of a UTF-8 sequence in s, so a cut
// never splits a character.
func runeStart(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

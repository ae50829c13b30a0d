package tools

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// capture holds a command's combined output in bounded memory: the first
// headCap bytes and the last tailCap bytes (a ring), while counting everything
// that went past. A command printing a gigabyte costs a gigabyte of reading,
// never a gigabyte of memory, and the pipe keeps draining so the command is
// never blocked on a full pipe.
//
// Limits are in bytes; a character is at least one byte, so the text shown
// never exceeds the character limit.
type capture struct {
	mu        sync.Mutex
	headCap   int
	tailCap   int
	head      []byte
	ring      []byte // allocated when output first outgrows the head
	ringStart int
	ringLen   int
	// beforeTail is the last byte that fell out of the ring (valid once any has).
	beforeTail byte
	total      int64 // bytes written
	cont       int64 // UTF-8 continuation bytes written: total-cont is the character count
}

func newCapture(limit int) *capture {
	h := limit / 2
	return &capture{headCap: h, tailCap: limit - h}
}

func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	cont := countContinuation(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(n)
	c.cont += int64(cont)
	if room := c.headCap - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 || c.tailCap == 0 {
		return n, nil
	}
	if c.ring == nil {
		c.ring = make([]byte, c.tailCap)
	}
	// Remember the byte just before the ring's first one, to know whether
	// the kept tail starts at a line start.
	if len(p) > c.tailCap {
		c.beforeTail = p[len(p)-c.tailCap-1]
	} else if drop := c.ringLen + len(p) - c.tailCap; drop > 0 {
		c.beforeTail = c.ring[(c.ringStart+drop-1)%c.tailCap]
	}
	if len(p) >= c.tailCap {
		copy(c.ring, p[len(p)-c.tailCap:])
		c.ringStart, c.ringLen = 0, c.tailCap
		return n, nil
	}
	end := (c.ringStart + c.ringLen) % c.tailCap
	k := copy(c.ring[end:], p)
	copy(c.ring, p[k:])
	newLen := c.ringLen + len(p)
	if newLen > c.tailCap {
		c.ringStart = (c.ringStart + newLen - c.tailCap) % c.tailCap
		newLen = c.tailCap
	}
	c.ringLen = newLen
	return n, nil
}

func countContinuation(p []byte) int {
	n := 0
	for _, b := range p {
		if b&0xC0 == 0x80 {
			n++
		}
	}
	return n
}

// tailLocked returns the ring's bytes in order. c.mu is held.
func (c *capture) tailLocked() []byte {
	out := make([]byte, c.ringLen)
	k := copy(out, c.ring[c.ringStart:min(c.ringStart+c.ringLen, len(c.ring))])
	copy(out[k:], c.ring[:c.ringLen-k])
	return out
}

func (c *capture) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// snapshot returns the output for the model: all of it when it fits, else the
// start and the end around a note saying how much was left out.
func (c *capture) snapshot() (text string, truncated bool, totalChars int64) {
	c.mu.Lock()
	head := append([]byte(nil), c.head...)
	tail := c.tailLocked()
	total, chars, beforeTail := c.total, c.total-c.cont, c.beforeTail
	c.mu.Unlock()

	gap := total - int64(len(head)) - int64(len(tail))
	if gap == 0 {
		return strings.ToValidUTF8(string(head)+string(tail), "\uFFFD"), false, chars
	}
	// Cut at character boundaries so the seam shows no broken characters.
	head = head[:len(head)-incompleteSuffix(head)]
	tail = tail[leadingContinuation(tail):]
	// Cut at line ends when that loses little, so both sides show whole
	// lines around the note.
	if i := bytes.LastIndexByte(head, '\n'); i >= len(head)/2 {
		head = head[:i+1]
	}
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i < len(tail)/2 && beforeTail != '\n' {
		tail = tail[i+1:]
	}
	omitted := chars - int64(len(head)-countContinuation(head)) - int64(len(tail)-countContinuation(tail))
	var b strings.Builder
	b.WriteString(strings.ToValidUTF8(string(head), "\uFFFD"))
	if len(head) > 0 && head[len(head)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "[… %d characters omitted …]\n", omitted)
	b.WriteString(strings.ToValidUTF8(string(tail), "\uFFFD"))
	return b.String(), true, chars
}

// readFrom returns up to limit bytes of output from byte offset off on, the
// offset the text really starts at (later than off when those bytes are no
// longer kept, having fallen between the head and the tail), and the offset
// to continue from.
func (c *capture) readFrom(off int64, limit int) (text string, start, next int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	off = min(off, c.total)
	h := int64(len(c.head))
	tailFrom := c.total - int64(c.ringLen)
	var data []byte
	partial := 0 // bytes of a character cut in two by the gap after the head
	switch {
	case off < h:
		data = append(data, c.head[off:]...)
		if tailFrom == h {
			data = append(data, c.tailLocked()...)
		} else {
			partial = incompleteSuffix(data)
			data = data[:len(data)-partial]
		}
	default:
		off = max(off, tailFrom)
		data = c.tailLocked()[off-tailFrom:]
	}
	if n := leadingContinuation(data); n > 0 && off > 0 {
		// The offset falls inside a character (after a skip, or as given):
		// start at the next whole one.
		data = data[n:]
		off += int64(n)
	}
	if len(data) > limit {
		data = data[:limit]
		if cut := incompleteSuffix(data); cut < len(data) {
			data = data[:len(data)-cut]
		}
		partial = 0
	}
	return strings.ToValidUTF8(string(data), "\uFFFD"), off, off + int64(len(data)+partial)
}

// incompleteSuffix is the length of a UTF-8 sequence cut off at the end of b.
func incompleteSuffix(b []byte) int {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c&0xC0 == 0x80 {
			continue // continuation byte: keep looking for the start
		}
		if c < 0x80 {
			return 0
		}
		// A start byte; is its sequence complete?
		if utf8.FullRune(b[len(b)-i:]) {
			return 0
		}
		return i
	}
	return 0
}

// leadingContinuation counts the continuation bytes b starts with (the rest of
// a character whose start was dropped), at most UTFMax-1.
func leadingContinuation(b []byte) int {
	n := 0
	for n < len(b) && n < utf8.UTFMax-1 && b[n]&0xC0 == 0x80 {
		n++
	}
	return n
}

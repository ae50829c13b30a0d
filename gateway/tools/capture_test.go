package tools

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCaptureMatchesReference writes random chunks and compares what the
// capture keeps with the same bytes held in full.
func TestCaptureMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1, 2, 7, 64, 1000} {
		for trial := range 50 {
			c := newCapture(limit)
			var all []byte
			writes := rng.IntN(20)
			// Most trials write whole characters (valid UTF-8 cut anywhere by
			// the capture); some write stray bytes.
			valid := trial%4 != 0
			for range writes {
				var chunk []byte
				for range rng.IntN(3*limit + 1) {
					if valid {
						chunk = append(chunk, []string{"a", "b", "\n", "é", "€", "😀"}[rng.IntN(6)]...)
					} else {
						chunk = append(chunk, "ab\ncé€"[rng.IntN(9)])
					}
				}
				c.Write(chunk)
				all = append(all, chunk...)
			}
			if c.size() != int64(len(all)) {
				t.Fatalf("limit %d trial %d: size %d, want %d", limit, trial, c.size(), len(all))
			}
			text, truncated, chars := c.snapshot()
			if want := int64(len(all) - countContinuation(all)); chars != want {
				t.Fatalf("chars = %d, want %d", chars, want)
			}
			if len(all) <= limit {
				if truncated || text != strings.ToValidUTF8(string(all), "\uFFFD") {
					t.Fatalf("limit %d: untruncated output changed: %q vs %q", limit, text, all)
				}
			} else {
				if !truncated || !strings.Contains(text, "characters omitted") {
					t.Fatalf("limit %d: %d bytes not truncated: %q", limit, len(all), text)
				}
				head, tail, _ := strings.Cut(text, "[… ")
				num, tail, _ := strings.Cut(tail, " characters omitted …]\n")
				omitted, err := strconv.ParseInt(num, 10, 64)
				if err != nil {
					t.Fatalf("no count in %q", text)
				}
				if valid {
					// The newline before the note may have been added by
					// snapshot rather than be output.
					shown := int64(utf8.RuneCountInString(head) + utf8.RuneCountInString(tail))
					if shown+omitted != chars && shown-1+omitted != chars {
						t.Fatalf("limit %d: shown %d + omitted %d != %d characters", limit, shown, omitted, chars)
					}
				}
				if !strings.HasPrefix(strings.ToValidUTF8(string(all), "\uFFFD"), strings.TrimSuffix(head, "\n")) && head != "\n" {
					t.Fatalf("limit %d: head %q is not a prefix", limit, head)
				}
				if !strings.HasSuffix(strings.ToValidUTF8(string(all), "\uFFFD"), tail) {
					t.Fatalf("limit %d: tail %q is not a suffix", limit, tail)
				}
				if utf8.RuneCountInString(head)+utf8.RuneCountInString(tail) > limit+1 {
					t.Fatalf("limit %d: shows %d+%d characters", limit, len(head), len(tail))
				}
			}
			// Reading by offsets returns the kept bytes in order and says
			// how many were skipped.
			var off, skipped, consumed int64
			for steps := 0; off < int64(len(all)); steps++ {
				data, start, next := c.readFrom(off, 5)
				sk := start - off
				if next <= off && sk == 0 {
					t.Fatalf("readFrom(%d) made no progress", off)
				}
				skipped += sk
				consumed += next - off - sk
				if !utf8.ValidString(data) {
					t.Fatalf("readFrom returned invalid UTF-8 %q", data)
				}
				if valid && strings.ContainsRune(data, utf8.RuneError) {
					t.Fatalf("limit %d: readFrom cut a character: %q", limit, data)
				}
				off = next
				if steps > 10*len(all)+10 {
					t.Fatal("readFrom does not terminate")
				}
			}
			if consumed+skipped != int64(len(all)) {
				t.Fatalf("limit %d: read %d + skipped %d != %d", limit, consumed, skipped, len(all))
			}
		}
	}
}

func TestCaptureCutsAtLines(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		limit  int
		want   string
	}{
		{"fits", []string{"a\n", "b\n"}, 10, "a\nb\n"},
		{"whole lines both sides", []string{strings.Repeat("y\n", 100)}, 10, "y\ny\n[… 192 characters omitted …]\ny\ny\n"},
		{"same in small writes", strings.Split(strings.Repeat("y\n", 100), ""), 10, "y\ny\n[… 192 characters omitted …]\ny\ny\n"},
		{"partial lines dropped", []string{"0123\n5678\nabcd\nfghi\n"}, 16, "0123\n[… 10 characters omitted …]\nfghi\n"},
		{"one long line", []string{strings.Repeat("x", 50)}, 10, "xxxxx\n[… 40 characters omitted …]\nxxxxx"},
		{"no broken characters", []string{strings.Repeat("é", 50)}, 11, "éé\n[… 45 characters omitted …]\nééé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapture(tt.limit)
			for _, w := range tt.writes {
				c.Write([]byte(w))
			}
			got, _, _ := c.snapshot()
			if got != tt.want {
				t.Errorf("snapshot = %q\nwant       %q", got, tt.want)
			}
		})
	}
}

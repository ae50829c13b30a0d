package configgen

import (
	"fmt"
	"strings"
)

// suggest explains an unknown key k found in object n at path: a near-miss
// of a sibling, a key that lives elsewhere in the tree (a top-level "exec"
// belongs under tools), or a dotted key that should have been nested.
func suggest(n *node, path, k string) string {
	if target := lookup(k); target != nil && strings.Contains(k, ".") && path == "" {
		return fmt.Sprintf(" (dotted keys are not expanded; nest it: %s)", strings.ReplaceAll(k, ".", " → "))
	}
	best, bestD := "", 1<<30
	for _, f := range n.fields {
		if f.ignored {
			continue
		}
		if d := distance(strings.ToLower(k), strings.ToLower(f.key)); d < bestD {
			best, bestD = f.key, d
		}
	}
	if best != "" && bestD <= maxTypos(k) {
		return fmt.Sprintf(" (did you mean %s?)", join(path, best))
	}
	// Misplaced key: the shortest path elsewhere whose last key matches.
	home := ""
	walk(root, "", func(p string, f *node) {
		if strings.EqualFold(f.key, k) && !f.ignored && (home == "" || len(p) < len(home)) {
			home = p
		}
	})
	if home != "" && home != join(path, k) {
		return fmt.Sprintf(" (did you mean %s?)", home)
	}
	return ""
}

// maxTypos is how far a key may be from a known one and still be taken for
// a typo: one edit for short keys, about a third of the key for longer ones.
func maxTypos(k string) int {
	if n := len(k) / 3; n > 1 {
		return n
	}
	return 1
}

// distance is the optimal-string-alignment distance between a and b: the
// Levenshtein distance with a swap of two neighbours ("prot" for "port")
// counted as one edit, the commonest typo in a key.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

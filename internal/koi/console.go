package koi

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/skykoi/skykoi/gateway/client"
)

// The lines the bootstrap (cloudinit/bootstrap.sh) prints on the console.
const (
	MarkFingerprint = "SKYKOI-TLS-SHA256"
	MarkReady       = "SKYKOI-READY"
	MarkFailed      = "SKYKOI-FAILED"
)

// decodeConsole undoes EC2's base64 of the console output.
func decodeConsole(b64 string) (string, error) {
	if b64 == "" {
		return "", nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", fmt.Errorf("decoding the console output (base64): %w", err)
	}
	return string(raw), nil
}

// ParseConsole finds the bootstrap's announcements in console output:
//
//	SKYKOI-TLS-SHA256 AA:BB:…   the nginx certificate's SHA-256 fingerprint
//	SKYKOI-READY                the Koi is up
//	SKYKOI-FAILED step: reason  the bootstrap stopped at step
//
// The fingerprint comes back normalised (upper-case hex with colons, as
// openssl prints it), and the last valid one wins: a console can hold more
// than one boot. ready and failed describe the last outcome seen, so at
// most one of them is set.
//
// Console output is messy, so a mark may follow a prefix (a kernel
// timestamp "[   12.3]", "cloud-init[845]:", "ci-info:", a date) and lines
// may end in CR. A mark glued to the text before it, or inside quotes, or on
// a shell trace line ("+ printf … 'SKYKOI-READY'"), is not an announcement
// and is ignored, as is a fingerprint torn by interleaved output.
func ParseConsole(text string) (fingerprint string, ready bool, failed string) {
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' }) {
		mark, rest, ok := findMark(line)
		if !ok {
			continue
		}
		switch mark {
		case MarkFingerprint:
			fields := strings.Fields(rest)
			if len(fields) != 1 {
				continue
			}
			b, err := client.ParseFingerprint(fields[0])
			if err != nil {
				continue
			}
			fingerprint = client.FormatFingerprint(b)
		case MarkReady:
			if strings.TrimSpace(rest) != "" {
				continue
			}
			ready, failed = true, ""
		case MarkFailed:
			reason := strings.TrimSpace(rest)
			if reason == "" {
				reason = "unknown step: no reason given"
			}
			ready, failed = false, reason
		}
	}
	return fingerprint, ready, failed
}

// findMark returns the mark on a line and the text after it.
func findMark(line string) (mark, rest string, ok bool) {
	i := strings.Index(line, "SKYKOI-")
	if i < 0 {
		return "", "", false
	}
	prefix := line[:i]
	if i > 0 && !strings.ContainsRune(" \t:]>", rune(line[i-1])) {
		return "", "", false
	}
	if strings.HasPrefix(strings.TrimSpace(prefix), "+") {
		// bash -x trace of the command that prints the mark, not the mark.
		return "", "", false
	}
	after := line[i:]
	for _, m := range []string{MarkFingerprint, MarkReady, MarkFailed} {
		r, found := strings.CutPrefix(after, m)
		if !found {
			continue
		}
		if r != "" && r[0] != ' ' && r[0] != '\t' {
			// SKYKOI-READYZ or the like: another word.
			return "", "", false
		}
		return m, r, true
	}
	return "", "", false
}

// SplitFailure splits "step: reason" from a SKYKOI-FAILED line.
func SplitFailure(failed string) (step, reason string) {
	step, reason, ok := strings.Cut(failed, ":")
	if !ok {
		return "", strings.TrimSpace(failed)
	}
	return strings.TrimSpace(step), strings.TrimSpace(reason)
}

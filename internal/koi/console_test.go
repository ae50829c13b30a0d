package koi_test

import (
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/internal/koi"
)

var (
	fpA = strings.Repeat("AA:", 31) + "AA"
	fpB = strings.Repeat("0B:", 31) + "0B"
)

func TestParseConsole(t *testing.T) {
	tests := []struct {
		name, text string
		fp         string
		ready      bool
		failed     string
	}{
		{name: "empty"},
		{name: "plain", text: "SKYKOI-TLS-SHA256 " + fpA + "\nSKYKOI-READY\n", fp: fpA, ready: true},
		{name: "CRLF and no final newline", text: "SKYKOI-TLS-SHA256 " + fpA + "\r\nSKYKOI-READY", fp: fpA, ready: true},
		{name: "fingerprint only", text: "boot\nSKYKOI-TLS-SHA256 " + fpA + "\n", fp: fpA},
		{
			name: "prefixes",
			text: "[   12.345678] cloud-init[845]: SKYKOI-TLS-SHA256 " + fpA + "\n" +
				"ci-info: SKYKOI-READY\n",
			fp: fpA, ready: true,
		},
		{
			name: "timestamp prefix",
			text: "2026-01-02 03:04:05,678 - SKYKOI-TLS-SHA256 " + fpA + "\n<14>Jan  2 03:04:05 SKYKOI-READY\n",
			fp:   fpA, ready: true,
		},
		{
			name: "lower case and no colons are normalised",
			text: "SKYKOI-TLS-SHA256 " + strings.ToLower(strings.ReplaceAll(fpB, ":", "")) + "\n",
			fp:   fpB,
		},
		{
			name: "last fingerprint wins",
			text: "SKYKOI-TLS-SHA256 " + fpA + "\nSKYKOI-READY\nreboot\nSKYKOI-TLS-SHA256 " + fpB + "\n",
			fp:   fpB, ready: true,
		},
		{
			name: "torn fingerprint is ignored",
			text: "SKYKOI-TLS-SHA256 " + fpA + "\nSKYKOI-TLS-SHA256 " + fpB[:40] + "\n",
			fp:   fpA,
		},
		{
			name: "fingerprint with trailing junk is ignored",
			text: "SKYKOI-TLS-SHA256 " + fpA + " [  3.1] usb 1-1: new device\n",
		},
		{
			name:   "failed",
			text:   "SKYKOI-TLS-SHA256 " + fpA + "\nSKYKOI-FAILED packages: apt-get install nginx failed\n",
			fp:     fpA,
			failed: "packages: apt-get install nginx failed",
		},
		{
			name:   "failed twice (stdout and serial)",
			text:   "cloud-init[9]: SKYKOI-FAILED volume: no data volume after 120 tries\r\nSKYKOI-FAILED volume: no data volume after 120 tries\r\n",
			failed: "volume: no data volume after 120 tries",
		},
		{
			name: "ready after failed: last outcome wins",
			text: "SKYKOI-FAILED services: nginx\nSKYKOI-READY\n", ready: true,
		},
		{
			name: "shell trace lines are not announcements",
			text: "+ console SKYKOI-READY\n+ printf '%s\\n' 'SKYKOI-FAILED x: y'\n++ echo \"SKYKOI-READY\"\n",
		},
		{
			name: "glued or quoted marks are not announcements",
			text: "xSKYKOI-READY\n'SKYKOI-READY'\n\"SKYKOI-FAILED a: b\"\n",
		},
		{name: "another word", text: "SKYKOI-READYZ\nSKYKOI-READY now\nSKYKOI-FAILEDX\n"},
		{name: "failed without reason", text: "SKYKOI-FAILED\n", failed: "unknown step: no reason given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp, ready, failed := koi.ParseConsole(tt.text)
			if fp != tt.fp || ready != tt.ready || failed != tt.failed {
				t.Errorf("ParseConsole = %q, %v, %q; want %q, %v, %q", fp, ready, failed, tt.fp, tt.ready, tt.failed)
			}
		})
	}
}

func TestSplitFailure(t *testing.T) {
	for in, want := range map[string][2]string{
		"packages: apt failed: exit 100": {"packages", "apt failed: exit 100"},
		"no colon here":                  {"", "no colon here"},
	} {
		step, reason := koi.SplitFailure(in)
		if step != want[0] || reason != want[1] {
			t.Errorf("SplitFailure(%q) = %q, %q", in, step, reason)
		}
	}
}

func FuzzParseConsole(f *testing.F) {
	f.Add("SKYKOI-TLS-SHA256 " + fpA + "\r\nSKYKOI-READY\n")
	f.Add("ci-info: SKYKOI-FAILED tls: openssl: 1\n")
	f.Add("+ SKYKOI-READY\n\rSKYKOI-\n")
	f.Fuzz(func(t *testing.T, text string) {
		fp, ready, failed := koi.ParseConsole(text)
		if ready && failed != "" {
			t.Fatalf("both ready and failed %q", failed)
		}
		if fp != "" {
			b, err := client.ParseFingerprint(fp)
			if err != nil || client.FormatFingerprint(b) != fp {
				t.Fatalf("fingerprint %q is not normalised: %v", fp, err)
			}
			if !strings.Contains(strings.ToUpper(strings.ReplaceAll(text, ":", "")), strings.ReplaceAll(fp, ":", "")) {
				t.Fatalf("fingerprint %q is not in the text", fp)
			}
		}
		if strings.ContainsAny(failed, "\r\n") {
			t.Fatalf("failed spans lines: %q", failed)
		}
	})
}

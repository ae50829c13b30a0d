package files

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDecodeImage checks a 3.7 MB PNG as chat.send receives it (base64
// in JSON): the cost an attachment adds before its run is queued.
func BenchmarkDecodeImage(b *testing.B) {
	data := append(pngBytes(b), bytes.Repeat([]byte{0x42}, 3_700_000)...)
	in := []json.RawMessage{att("image", "image/png", "big.png", data)}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(in, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenDownload is the confinement cost of one download (Root open,
// real-path and protected-path checks), without the transfer.
func BenchmarkOpenDownload(b *testing.B) {
	ws := b.TempDir()
	os.MkdirAll(filepath.Join(ws, "out", "deep"), 0o700)
	os.WriteFile(filepath.Join(ws, "out", "deep", "r.pdf"), []byte(pdfBytes), 0o600)
	protected := []string{filepath.Join(ws, "..", "state"), filepath.Join(ws, "..", "skykoi.json")}
	for b.Loop() {
		o, err := OpenDownload(ws, "out/deep/r.pdf", protected)
		if err != nil {
			b.Fatal(err)
		}
		o.File.Close()
	}
}

package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/files"
	"github.com/skykoi/skykoi/gateway/session"
)

func attRef(path, mime string, size int64) session.Content {
	return session.Content{Type: "attachment", Path: path, MimeType: mime, Size: size, SHA256: "00", FileName: path[strings.LastIndex(path, "/")+1:]}
}

// counts tallies what a replayed history sends.
func counts(msgs []bedrock.Message) (images, docs, notes int, docNames []string) {
	for _, m := range msgs {
		for _, b := range m.Content {
			switch {
			case b.Type == bedrock.BlockImage:
				images++
			case b.Type == bedrock.BlockDocument:
				docs++
				docNames = append(docNames, b.Name)
			case b.Type == bedrock.BlockText && strings.Contains(b.Text, "not re-sent"), strings.Contains(b.Text, "deleted or changed"):
				notes++
			}
		}
	}
	return
}

func TestReplayAttachments(t *testing.T) {
	load := func(c session.Content) ([]byte, error) {
		if strings.Contains(c.Path, "gone") {
			return nil, fmt.Errorf("reading: %w", files.ErrChanged)
		}
		return []byte("bytes of " + c.Path), nil
	}
	turn := func(cs ...session.Content) []session.Message {
		return []session.Message{
			{Role: "user", Content: append([]session.Content{{Type: "text", Text: "see"}}, cs...)},
			{Role: "assistant", Content: []session.Content{{Type: "text", Text: "ok"}}},
		}
	}
	var many []session.Message
	for i := range 22 {
		many = append(many, turn(attRef(fmt.Sprintf("inbox/%02d.png", i), "image/png", 10))...)
	}
	var docs []session.Message
	for i := range 6 {
		docs = append(docs, turn(attRef(fmt.Sprintf("inbox/r%d.pdf", i), "application/pdf", 10))...)
	}
	cases := []struct {
		name                string
		msgs                []session.Message
		load                fileLoader
		images, docs, notes int
		firstDocName        string
	}{
		{"image and pdf", turn(attRef("inbox/a.png", "image/png", 10), attRef("inbox/Q3 report.pdf", "application/pdf", 10)), load, 1, 1, 0, "Q3 report"},
		{"newest 20 images", many, load, 20, 0, 2, ""},
		{"newest 5 documents", docs, load, 0, 5, 1, "r1"},
		{"deleted file", turn(attRef("inbox/gone.png", "image/png", 10)), load, 0, 0, 1, ""},
		{"no loader", turn(attRef("inbox/a.png", "image/png", 10)), nil, 0, 0, 1, ""},
		{"over the byte budget", turn(attRef("inbox/big.pdf", "application/pdf", replayBytes+1)), load, 0, 0, 1, ""},
		{"assistant attachment ignored", []session.Message{{Role: "user", Content: []session.Content{{Type: "text", Text: "hi"}}},
			{Role: "assistant", Content: []session.Content{attRef("inbox/a.png", "image/png", 10)}}}, load, 0, 0, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := toModelMessages(c.msgs, c.load)
			im, dc, notes, names := counts(out)
			if im != c.images || dc != c.docs || notes != c.notes {
				t.Errorf("images %d docs %d notes %d; want %d %d %d", im, dc, notes, c.images, c.docs, c.notes)
			}
			if c.firstDocName != "" && (len(names) == 0 || names[0] != c.firstDocName) {
				t.Errorf("document names %q; want the first %q", names, c.firstDocName)
			}
		})
	}
	// The model always learns where the file is.
	out := toModelMessages(turn(attRef("inbox/a.png", "image/png", 10)), load)
	if !strings.Contains(out[0].Content[1].Text, "inbox/a.png") {
		t.Errorf("no note naming the path: %+v", out[0].Content)
	}
}

func TestFileTokens(t *testing.T) {
	cases := []struct {
		kind, format string
		size         int64
		want         int
	}{
		{files.KindImage, "png", 3_000_000, imageTokens},
		{files.KindDocument, "txt", 4000, 1000},
		{files.KindDocument, "csv", 400, 100},
		{files.KindDocument, "pdf", 4_480_000, 70_000},
		{bedrock.BlockDocument, "docx", 6400, 100},
	}
	for _, c := range cases {
		if got := fileTokens(c.kind, c.format, c.size); got != c.want {
			t.Errorf("fileTokens(%s, %s, %d) = %d; want %d", c.kind, c.format, c.size, got, c.want)
		}
	}
}

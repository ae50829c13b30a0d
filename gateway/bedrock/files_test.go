package bedrock_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock"
	bt "github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// Images and documents travel through the real SDK client as Converse
// image and document blocks, bytes intact; what Bedrock would refuse the
// fake refuses too.
func TestFileBlocks(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nfake image body")
	pdf := []byte("%PDF-1.4 fake document")
	cases := []struct {
		name   string
		blocks []bedrock.Block
		reject string // "" = accepted
	}{
		{"image and document", []bedrock.Block{
			{Type: bedrock.BlockText, Text: "look at these"},
			{Type: bedrock.BlockImage, Format: "png", Bytes: png},
			{Type: bedrock.BlockDocument, Format: "pdf", Name: "Q3 report", Bytes: pdf},
		}, ""},
		{"document name with a dot", []bedrock.Block{
			{Type: bedrock.BlockText, Text: "x"},
			{Type: bedrock.BlockDocument, Format: "pdf", Name: "report.pdf", Bytes: pdf},
		}, "can only contain"},
		{"document without text", []bedrock.Block{
			{Type: bedrock.BlockDocument, Format: "pdf", Name: "r", Bytes: pdf},
		}, "text block"},
		{"unknown image format", []bedrock.Block{
			{Type: bedrock.BlockText, Text: "x"},
			{Type: bedrock.BlockImage, Format: "bmp", Bytes: png},
		}, "image format"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := bt.NewServer()
			defer srv.Close()
			srv.SetDefault(bt.Reply{bt.Text("seen")})
			p := newProvider(t, srv, nil)
			_, err := p.Stream(context.Background(), bedrock.Request{Models: []string{opus},
				Messages: []bedrock.Message{{Role: bedrock.RoleUser, Content: c.blocks}}}, func(bedrock.Event) {})
			reqs := srv.Requests()
			if len(reqs) == 0 {
				t.Fatal("no request reached the fake")
			}
			last := reqs[len(reqs)-1]
			if c.reject != "" {
				if err == nil || !strings.Contains(last.Rejected, c.reject) {
					t.Fatalf("err %v, rejected %q; want a refusal containing %q", err, last.Rejected, c.reject)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			imgs, docs := last.Images(), last.Documents()
			if len(imgs) != 1 || imgs[0].Format != "png" || !bytes.Equal(imgs[0].Source.Bytes, png) {
				t.Errorf("images %+v", imgs)
			}
			if len(docs) != 1 || docs[0].Format != "pdf" || docs[0].Name != "Q3 report" || !bytes.Equal(docs[0].Source.Bytes, pdf) {
				t.Errorf("documents %+v", docs)
			}
		})
	}
}

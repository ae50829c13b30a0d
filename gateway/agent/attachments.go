package agent

import (
	"errors"
	"fmt"

	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/files"
	"github.com/skykoi/skykoi/gateway/session"
)

// Attachments in the model's view. The transcript keeps a reference to each
// file saved in the workspace inbox; every request re-reads the newest ones
// from there and sends them as image or document blocks, so an image stays
// visible to the model for the turns after it was sent (a text stand-in
// would leave the model describing a picture it no longer sees). Older ones,
// past Bedrock's per-request limits, and files that were deleted or changed
// since go as a text line naming the inbox path instead, which the model can
// still open with its tools.
const (
	// replayBytes bounds the attachment bytes of one request, newest first:
	// the same as one message may carry.
	replayBytes = 16 << 20
	// imageTokens is the estimate for one image (Anthropic counts about
	// width×height/750 tokens; 1600 is a full-size picture).
	imageTokens = 1600
)

// fileLoader reads an attachment's bytes back from the workspace.
type fileLoader func(c session.Content) ([]byte, error)

// loadAttachment is the Runtime's fileLoader: the inbox of the workspace in
// force.
func (r *Runtime) loadAttachment(c session.Content) ([]byte, error) {
	if r.opts.Workspace == nil {
		return nil, errors.New("no workspace")
	}
	return files.Load(r.opts.Workspace(), files.Ref{Path: c.Path, Size: c.Size, SHA256: c.SHA256})
}

// replayPlan picks the attachments whose bytes a request carries: the
// newest, within Bedrock's counts (images, documents) and replayBytes.
func replayPlan(msgs []session.Message) map[[2]int]bool {
	send := map[[2]int]bool{}
	images, docs, size := 0, 0, int64(0)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		for j := len(msgs[i].Content) - 1; j >= 0; j-- {
			c := msgs[i].Content[j]
			if c.Type != "attachment" {
				continue
			}
			kind, _, ok := files.Lookup(c.MimeType)
			if !ok || size+c.Size > replayBytes {
				continue
			}
			if kind == files.KindImage && images < files.BedrockMaxImages {
				images++
			} else if kind == files.KindDocument && docs < files.BedrockMaxDocuments {
				docs++
			} else {
				continue
			}
			size += c.Size
			send[[2]int{i, j}] = true
		}
	}
	return send
}

// attachmentBlocks are the blocks for one attachment: a line naming the
// file (so the model can refer to it and open it with its tools), then the
// file itself when send and it still reads back unchanged.
func attachmentBlocks(c session.Content, send bool, load fileLoader, docNames map[string]bool) []bedrock.Block {
	label := fmt.Sprintf("[attached file %s (%s, %s)", c.Path, c.MimeType, files.Human(c.Size))
	kind, format, ok := files.Lookup(c.MimeType)
	if !send || !ok || load == nil {
		return []bedrock.Block{{Type: bedrock.BlockText, Text: label + "; not re-sent to the model with this request, open it from the workspace if it is needed]"}}
	}
	data, err := load(c)
	if err != nil {
		why := "it could not be read"
		if errors.Is(err, files.ErrChanged) {
			why = "it was deleted or changed since it was sent"
		}
		return []bedrock.Block{{Type: bedrock.BlockText, Text: label + "; " + why + ", so only this note stands for it]"}}
	}
	b := bedrock.Block{Type: bedrock.BlockImage, Format: format, Bytes: data}
	if kind == files.KindDocument {
		b.Type, b.Name = bedrock.BlockDocument, files.DocumentName(c.FileName, docNames)
	}
	return []bedrock.Block{{Type: bedrock.BlockText, Text: label + "]"}, b}
}

// binaryDocBytesPerToken: a PDF or Office file is compressed, and the model
// reads its extracted text (and page images), so its size says far less
// about its tokens than a text file's does; 64 bytes a token puts a 4.5 MB
// PDF at about 70 000 tokens, a typical long report. Bedrock's own count of
// the request corrects the estimate after the first answer.
const binaryDocBytesPerToken = 64

// fileTokens estimates an image's or document's tokens; kind is a bedrock
// block type or a files kind (both spell "image" and "document").
func fileTokens(kind, format string, size int64) int {
	switch {
	case kind == files.KindImage:
		return imageTokens
	case format == "txt" || format == "md" || format == "csv" || format == "html":
		return int(size) / bytesPerToken
	}
	return int(size) / binaryDocBytesPerToken
}

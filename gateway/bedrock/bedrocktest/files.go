package bedrocktest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Bedrock's Converse rules for images and documents, as its
// ValidationExceptions state them; the fake refuses what the service would,
// so a test passing here does not fail against Bedrock.
var (
	imageFormats    = []string{"png", "jpeg", "gif", "webp"}
	documentFormats = []string{"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"}
	// Alphanumerics, whitespace (never two in a row), hyphens, parentheses
	// and square brackets.
	documentName = regexp.MustCompile(`^[A-Za-z0-9\-()\[\] ]+$`)
)

const (
	maxImages         = 20
	maxDocuments      = 5
	maxImageBytes     = 3_750_000
	maxDocumentBytes  = 4_500_000
	maxDocumentNameLn = 200
)

// checkFiles returns why Bedrock would refuse the request's images and
// documents, or "".
func checkFiles(msgs []Message) string {
	images, docs := 0, 0
	names := map[string]bool{}
	for i, m := range msgs {
		hasText := false
		hasDoc := false
		for _, b := range m.Content {
			hasText = hasText || (b.Text != nil && strings.TrimSpace(*b.Text) != "")
			if b.Image == nil && b.Document == nil {
				continue
			}
			if m.Role != "user" {
				return fmt.Sprintf("messages.%d: images and documents are only allowed in user messages", i)
			}
			if im := b.Image; im != nil {
				images++
				if !slices.Contains(imageFormats, im.Format) {
					return fmt.Sprintf("messages.%d: image format %q is not one of %v", i, im.Format, imageFormats)
				}
				if len(im.Source.Bytes) == 0 || len(im.Source.Bytes) > maxImageBytes {
					return fmt.Sprintf("messages.%d: image size %d is not within 1..%d bytes", i, len(im.Source.Bytes), maxImageBytes)
				}
			}
			if d := b.Document; d != nil {
				docs++
				hasDoc = true
				if !slices.Contains(documentFormats, d.Format) {
					return fmt.Sprintf("messages.%d: document format %q is not one of %v", i, d.Format, documentFormats)
				}
				if !documentName.MatchString(d.Name) || strings.Contains(d.Name, "  ") || len(d.Name) > maxDocumentNameLn {
					return fmt.Sprintf("messages.%d: the document name %q can only contain alphanumeric characters, whitespace characters (no more than one in a row), hyphens, parentheses and square brackets", i, d.Name)
				}
				if names[d.Name] {
					return fmt.Sprintf("messages.%d: duplicate document name %q", i, d.Name)
				}
				names[d.Name] = true
				if len(d.Source.Bytes) == 0 || len(d.Source.Bytes) > maxDocumentBytes {
					return fmt.Sprintf("messages.%d: document size %d is not within 1..%d bytes", i, len(d.Source.Bytes), maxDocumentBytes)
				}
			}
		}
		if hasDoc && !hasText {
			return fmt.Sprintf("messages.%d: a message with a document must also contain a text block", i)
		}
	}
	if images > maxImages {
		return fmt.Sprintf("too many images: %d > %d", images, maxImages)
	}
	if docs > maxDocuments {
		return fmt.Sprintf("too many documents: %d > %d", docs, maxDocuments)
	}
	return ""
}

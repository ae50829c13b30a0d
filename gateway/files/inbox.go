package files

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"
)

// InboxDir is where attachments are saved, relative to the workspace.
const InboxDir = "inbox"

// Ref is what the transcript keeps of a saved attachment: where it is and
// how to check it is still the same file, never the bytes.
type Ref struct {
	Path     string // relative to the workspace, "inbox/…"
	MimeType string
	Size     int64
	SHA256   string // hex
	Kind     string // KindImage or KindDocument
	Format   string // Bedrock's format name
	FileName string // the sanitised name as sent (the stored one adds a unique prefix)
}

// maxInboxRead bounds what Load reads back: a file that grew past the
// largest attachment is no longer the one the person sent.
const maxInboxRead = BedrockMaxDocumentBytes + 1

// Save writes each attachment to <workspace>/inbox/ under a unique name,
// atomically (temp file, fsync, rename, directory fsync) with mode 0600. The
// workspace is opened as an os.Root, so an inbox that is a symlink out of the
// workspace is refused rather than followed. On any error the files already
// saved are removed: a refused message leaves nothing behind.
func Save(workspace string, atts []Attachment, now time.Time) (refs []Ref, err error) {
	if len(atts) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(workspace, 0o700); err != nil {
		return nil, fmt.Errorf("saving attachments: creating the workspace: %w", err)
	}
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("saving attachments: opening the workspace: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(InboxDir, 0o700); err != nil {
		return nil, fmt.Errorf("saving attachments: creating %s in the workspace: %w", InboxDir, err)
	}
	defer func() {
		if err != nil {
			for _, r := range refs {
				_ = root.Remove(r.Path)
			}
			refs = nil
		}
	}()
	for _, a := range atts {
		var tag [4]byte
		if _, err := rand.Read(tag[:]); err != nil {
			return refs, fmt.Errorf("saving attachments: %w", err)
		}
		name := now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(tag[:]) + "-" + a.FileName
		rel := path.Join(InboxDir, name)
		if err := writeAtomic(root, rel, a.Data); err != nil {
			return refs, fmt.Errorf("saving attachment %s: %w", a.FileName, err)
		}
		sum := sha256.Sum256(a.Data)
		refs = append(refs, Ref{Path: rel, MimeType: a.MimeType, Size: int64(len(a.Data)), SHA256: hex.EncodeToString(sum[:]),
			Kind: a.Kind, Format: a.Format, FileName: a.FileName})
	}
	if err := syncDir(root, InboxDir); err != nil {
		return refs, fmt.Errorf("saving attachments: %w", err)
	}
	return refs, nil
}

// Remove deletes saved attachments again (a run that was refused after
// they were saved). Errors are ignored: the files are harmless leftovers.
func Remove(workspace string, refs []Ref) {
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return
	}
	defer root.Close()
	for _, r := range refs {
		_ = root.Remove(r.Path)
	}
}

// writeAtomic is internal/atomicfile's sequence inside a Root: that package
// takes a path, and a path would follow a symlinked inbox out of the
// workspace.
func writeAtomic(root *os.Root, rel string, data []byte) (err error) {
	var tag [6]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return err
	}
	tmp := path.Join(path.Dir(rel), ".tmp-"+hex.EncodeToString(tag[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	// O_EXCL on the final name is impossible with rename; the random tag
	// in the name makes a clash practically impossible.
	return root.Rename(tmp, rel)
}

func syncDir(root *os.Root, rel string) error {
	d, err := root.Open(rel)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrChanged means a saved attachment is missing or no longer the file
// that was sent (its size or sha256 differ).
var ErrChanged = errors.New("the saved attachment is missing or was changed")

// Load reads a saved attachment back for the model, checking it is still
// the file the transcript describes.
func Load(workspace string, r Ref) ([]byte, error) {
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("reading attachment %s: %w", r.Path, err)
	}
	defer root.Close()
	f, err := root.Open(r.Path)
	if err != nil {
		return nil, fmt.Errorf("reading attachment %s: %w: %w", r.Path, ErrChanged, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInboxRead))
	if err != nil {
		return nil, fmt.Errorf("reading attachment %s: %w", r.Path, err)
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != r.Size || hex.EncodeToString(sum[:]) != r.SHA256 {
		return nil, fmt.Errorf("reading attachment %s: %w", r.Path, ErrChanged)
	}
	return data, nil
}

// Package atomicfile replaces files so that a reader, or a crash, sees either
// the old contents or the new, never a mix.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// maxTempStem bounds the part of the temp file's name taken from the target,
// so ".<stem>.tmp-<random>" fits NAME_MAX (255) even for a 255-byte name.
const maxTempStem = 200

// Write replaces path with data: a temp file in the same directory (so the
// rename stays on one filesystem), fsynced, chmod'ed, renamed over path, and
// the directory fsynced so the rename itself survives a power cut.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if len(base) > maxTempStem {
		// Keep the temp name under NAME_MAX whatever the target's length,
		// cut on a character boundary.
		base = base[:maxTempStem]
		for !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so entries created or renamed in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Package regularfile opens workspace files for reading the one safe way:
// the agent can leave anything in its workspace, and a FIFO or a device
// where a regular file is expected must neither hang nor flood the reader.
package regularfile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Open opens p for reading without blocking on a FIFO (the open would wait
// for a writer, hanging whoever reads) and refuses anything but a regular
// file, since a device may never end. Skills discovery and memory use it;
// the file tools do the same in their openRegular, between which they
// re-check the opened file's real path.
func Open(p string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%s)", p, fi.Mode().Type())
	}
	return f, fi, nil
}

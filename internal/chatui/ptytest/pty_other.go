//go:build !linux

package ptytest

import (
	"errors"
	"os"
)

// Open is implemented on Linux only; elsewhere the pty test is skipped.
func Open() (master, slave *os.File, err error) {
	return nil, nil, errors.ErrUnsupported
}

package session

import (
	"errors"
	"fmt"
	"syscall"
)

var (
	// ErrNotFound: the session key names no session (the gateway's NOT_FOUND).
	ErrNotFound = errors.New("session not found")
	// ErrInvalidKey: the session key is malformed (INVALID_REQUEST).
	ErrInvalidKey = errors.New("invalid session key")
	// ErrUnknownAgent: the key names an agent other than "main" (INVALID_REQUEST "unknown agent").
	ErrUnknownAgent = errors.New("unknown agent")
	// ErrInvalid: a message or patch value was refused (INVALID_REQUEST).
	ErrInvalid = errors.New("invalid value")
	// ErrMainSession: the main session cannot be deleted (INVALID_REQUEST).
	ErrMainSession = errors.New("the main session cannot be deleted")
	// ErrDiskFull: the state directory's filesystem is out of space or quota (UNAVAILABLE).
	ErrDiskFull = errors.New("disk full")
	// ErrReadOnly: the state directory cannot be written (UNAVAILABLE).
	ErrReadOnly = errors.New("state directory is read-only")
)

// diskError is a write that failed because of the disk, not the request:
// it matches ErrDiskFull or ErrReadOnly and the underlying OS error.
type diskError struct {
	op   string
	kind error
	hint string
	err  error
}

func (e *diskError) Error() string {
	return fmt.Sprintf("%s: %s (%v)", e.op, e.hint, e.err)
}

func (e *diskError) Unwrap() []error { return []error{e.kind, e.err} }

// wrapDisk wraps err with the operation, and says plainly when the cause is a
// full or read-only disk, because that is what the operator has to fix.
func wrapDisk(op, dir string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &diskError{op, ErrDiskFull, "the disk holding " + dir + " is full; free some space and retry", err}
	case errors.Is(err, syscall.EROFS):
		return &diskError{op, ErrReadOnly, dir + " is on a read-only filesystem; remount it read-write", err}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &diskError{op, ErrReadOnly, dir + " is read-only (permission denied); make it writable by the gateway", err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

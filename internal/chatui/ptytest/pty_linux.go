//go:build linux

package ptytest

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// Open returns a new pseudo-terminal's master and slave ends.
func Open() (master, slave *os.File, err error) {
	// O_NOCTTY: the test process must not adopt the pty as its controlling
	// terminal (it would then get its signals).
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx: %w", err)
	}
	// SyscallConn, not Fd: Fd would switch the master to blocking mode, and
	// a blocked Read could then not be ended by Close.
	rc, err := m.SyscallConn()
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty master: %w", err)
	}
	var n uint32
	var ioErr error
	cerr := rc.Control(func(fd uintptr) {
		var unlock int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
			ioErr = fmt.Errorf("unlocking the pty: %w", e)
			return
		}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
			ioErr = fmt.Errorf("reading the pty number: %w", e)
		}
	})
	if cerr != nil || ioErr != nil {
		m.Close()
		if cerr != nil {
			return nil, nil, fmt.Errorf("pty master: %w", cerr)
		}
		return nil, nil, ioErr
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("opening the pty slave: %w", err)
	}
	return m, s, nil
}

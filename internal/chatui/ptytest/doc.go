// Package ptytest opens a pseudo-terminal for tests that must see a program
// behave as it does in a real terminal (a prompt shown only on a TTY). The
// module has no pty library, and the few ioctls needed on Linux are simple
// enough to make directly.
package ptytest

// Package sdnotify speaks systemd's notify protocol (Type=notify units): a
// datagram to $NOTIFY_SOCKET for READY=1, STOPPING=1 and WATCHDOG=1. Outside
// systemd the socket is unset and every call is a no-op.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Notifier sends states to systemd. The zero value is a no-op.
type Notifier struct {
	socket string
	// watchdog is WATCHDOG_USEC as a duration, 0 when systemd did not ask.
	watchdog time.Duration
}

// FromEnv reads NOTIFY_SOCKET and WATCHDOG_USEC (and WATCHDOG_PID, which must
// be this process when set) through getenv.
func FromEnv(getenv func(string) string, pid int) Notifier {
	n := Notifier{socket: getenv("NOTIFY_SOCKET")}
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		if p := getenv("WATCHDOG_PID"); p == "" || p == strconv.Itoa(pid) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// Enabled reports whether a notify socket is configured.
func (n Notifier) Enabled() bool { return n.socket != "" }

// Notify sends one state string such as "READY=1".
func (n Notifier) Notify(state string) error {
	if n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if addr.Name[0] == '@' { // abstract namespace
		addr.Name = "\x00" + addr.Name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}

// WatchdogInterval is how often to send WATCHDOG=1: half the timeout systemd
// set, the margin its documentation recommends. Zero when there is no watchdog.
func (n Notifier) WatchdogInterval() time.Duration { return n.watchdog / 2 }

// RunWatchdog sends WATCHDOG=1 every WatchdogInterval until ctx ends. alive
// is asked first each time, so a wedged process stops petting the dog.
func (n Notifier) RunWatchdog(ctx context.Context, alive func() bool) {
	iv := n.WatchdogInterval()
	if iv <= 0 || n.socket == "" {
		return
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive == nil || alive() {
				_ = n.Notify("WATCHDOG=1")
			}
		}
	}
}

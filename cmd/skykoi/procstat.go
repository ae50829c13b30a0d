package main

import (
	"github.com/skykoi/skykoi/internal/procstat"

	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procRSSMB is VmRSS of pid in MB, 0 when it cannot be read.
func procRSSMB(pid int) float64 {
	b, _ := procstat.RSSBytes(pid)
	return float64(b) / (1 << 20)
}

// pidListeningOn finds the process with a TCP socket listening on port, via
// /proc/net/tcp{,6} (socket inode) and /proc/*/fd; 0 when not found or not
// permitted.
func pidListeningOn(port int) int {
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil && int(p) == port {
				inodes[fields[9]] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}

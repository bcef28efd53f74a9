package kittest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is a live process as Linux's /proc shows it.
type Process struct {
	PID, PPID int
	// Comm is the command name (/proc/<pid>/comm): "node", "python3".
	Comm string
}

// Children returns the live children of pid (zombies left out), for tests
// that count the processes a program started: one host per pool, none
// left behind.
func Children(pid int) []Process {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []Process
	for _, path := range stats {
		p, state, ok := readStat(path)
		if ok && p.PPID == pid && state != "Z" {
			kids = append(kids, p)
		}
	}
	return kids
}

// Alive reports whether pid runs: it exists and is not a zombie.
func Alive(pid int) bool {
	_, state, ok := readStat(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return ok && state != "Z"
}

// readStat reads a /proc/<pid>/stat file: pid (comm) state ppid ...,
// where comm may hold spaces and parentheses.
func readStat(path string) (p Process, state string, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Process{}, "", false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Process{}, "", false
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return Process{}, "", false
	}
	p.PID, _ = strconv.Atoi(strings.TrimSpace(s[:open]))
	p.Comm = s[open+1 : end]
	p.PPID, err = strconv.Atoi(fields[1])
	return p, fields[0], err == nil
}

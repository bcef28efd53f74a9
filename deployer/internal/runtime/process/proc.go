package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStart returns the start time of pid in clock ticks since boot (field
// 22 of /proc/<pid>/stat) and whether the process is alive: a zombie is
// dead, it only waits for its parent to reap it. Together with the pid the
// start time names a process uniquely, so a reused pid is never mistaken
// for an instance.
func procStart(pid int) (ticks uint64, alive bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses itself: fields are counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("parse stat of pid %d: no command field", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("parse stat of pid %d: %d fields", pid, len(fields)+2)
	}
	ticks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse start time of pid %d: %w", pid, err)
	}
	state := fields[0]
	return ticks, state != "Z" && state != "X", nil
}

// sameProcess reports whether pid is alive and started at ticks.
func sameProcess(pid int, ticks uint64) bool {
	got, alive, err := procStart(pid)
	return err == nil && alive && got == ticks
}

// killGroup signals the process group led by pid (instances run in their
// own group, so helpers they spawn go too).
func killGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}

// cmdline returns the arguments of pid, nil if it is gone.
func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// descendants returns the processes under pid (children, theirs, ...), as
// /proc shows them now.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		// fields[1] is field 4, the parent's pid.
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], n)
		}
	}
	var out []int
	for todo := children[pid]; len(todo) > 0; {
		n := todo[0]
		todo = append(todo[1:], children[n]...)
		out = append(out, n)
	}
	return out
}

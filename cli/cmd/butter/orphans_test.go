package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestKill9UpLeavesNoInstances: SIGKILL of butter up takes every fnbox
// instance it started with it, and their function processes too, so no
// stale instance keeps consuming with old code for the next platform.
func TestKill9UpLeavesNoInstances(t *testing.T) {
	p := startPlatform(t)
	up := p.up
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), `name: tied
platform: node
functions:
  - fn: handler.js:run
    bindings:
      streams: [{ name: tied-in, offset: first }]
    scale: { min: 2 }
`)
	writeFile(t, filepath.Join(dir, "handler.js"), "exports.run = async (event) => ({ ok: true });\n")
	p.must("", "stream", "create", "tied-in")
	p.deployerCmd("deploy", dir)

	// Both replicas run, each with its node host.
	codePrefix := filepath.Join(p.data, "deployments") + string(filepath.Separator)
	var procs []int
	kittest.Eventually(t, "two fnbox instances with their function processes", func() error {
		boxes := fnboxes(codePrefix)
		if len(boxes) != 2 {
			return fmt.Errorf("%d fnbox instances", len(boxes))
		}
		procs = append([]int(nil), boxes...)
		for _, b := range boxes {
			// One binary: the instance is butter itself, not a separate fnbox.
			if args := cmdlineOf(b); len(args) < 2 || args[0] != butterBin || args[1] != "fnbox" {
				t.Fatalf("instance %d runs %q, want %s fnbox ...", b, args, butterBin)
			}
			kids := childrenOf(b)
			if len(kids) == 0 {
				return fmt.Errorf("fnbox %d has no function process yet", b)
			}
			procs = append(procs, kids...)
		}
		return nil
	})

	killed := time.Now()
	if err := up.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = up.Wait()
	kittest.Eventually(t, "every instance and function process gone", func() error {
		var alive []int
		for _, pid := range procs {
			if running(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) > 0 {
			return fmt.Errorf("still running: %v", alive)
		}
		if left := fnboxes(codePrefix); len(left) > 0 {
			return fmt.Errorf("fnbox instances still running: %v", left)
		}
		return nil
	})
	t.Logf("%d processes gone %s after the SIGKILL", len(procs), time.Since(killed).Round(time.Millisecond))
}

// cmdlineOf returns the arguments of pid, nil if it is gone.
func cmdlineOf(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// fnboxes returns the pids of live fnbox processes whose --code lies
// under prefix.
func fnboxes(prefix string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !running(pid) {
			continue
		}
		args := cmdlineOf(pid)
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--code" && strings.HasPrefix(args[i+1], prefix) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// childrenOf returns the live children of pid.
func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, err := stat(child); err == nil && ppid == pid && running(child) {
			out = append(out, child)
		}
	}
	return out
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	state, _, err := stat(pid)
	return err == nil && state != "Z" && state != "X"
}

// stat reads the state and parent of pid from /proc/<pid>/stat.
func stat(pid int) (state string, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	s := string(b)
	// The command name may hold spaces and parentheses: count from the
	// last ')'.
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return "", 0, errors.New("short stat")
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0], ppid, err
}

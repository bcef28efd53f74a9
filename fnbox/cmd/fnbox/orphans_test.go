package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestKill9LeavesNoFunctionProcess kills fnbox with SIGKILL while it hosts
// a long-running function process (the node and python hosts, an http
// server) and checks that the process dies with it: a restarted fnbox
// starts new ones, so survivors would pile up, holding ports and memory.
func TestKill9LeavesNoFunctionProcess(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, example := range []string{"hello", "enrich", "http-shout"} {
		t.Run(example, func(t *testing.T) {
			cmd := exec.Command(bin, "--code", filepath.Join("..", "..", "..", "examples", example),
				"--brokers", b.Addr(), "--instance", example+"-0", "--log-level", "warn")
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				}
			})
			var kids []int
			kittest.Eventually(t, "fnbox starts its function process", func() error {
				kids = children(t, cmd.Process.Pid)
				if len(kids) == 0 {
					return errors.New("no child process yet")
				}
				return nil
			})
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			kittest.Eventually(t, "the function process dies with fnbox", func() error {
				for _, pid := range kids {
					if alive(pid) {
						return fmt.Errorf("function process %d still runs", pid)
					}
				}
				return nil
			})
		})
	}
}

// children returns the pids of the live processes whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, path := range stats {
		state, ppid, ok := procStat(path)
		if ok && ppid == pid && state != "Z" {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			kids = append(kids, child)
		}
	}
	return kids
}

// alive reports whether pid runs (exists and is not a zombie).
func alive(pid int) bool {
	state, _, ok := procStat(fmt.Sprintf("/proc/%d/stat", pid))
	return ok && state != "Z"
}

// procStat reads the state and parent pid of a /proc/<pid>/stat file.
func procStat(path string) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0], ppid, err == nil
}

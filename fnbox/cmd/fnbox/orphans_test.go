package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
			var kids []kittest.Process
			kittest.Eventually(t, "fnbox starts its function process", func() error {
				kids = kittest.Children(cmd.Process.Pid)
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
				for _, k := range kids {
					if kittest.Alive(k.PID) {
						return fmt.Errorf("function process %d still runs", k.PID)
					}
				}
				return nil
			})
		})
	}
}

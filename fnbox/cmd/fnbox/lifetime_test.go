package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

const lifeDescriptor = `
name: life
platform: exec
functions:
  - fn: cat
    name: echo
    bindings:
      streams: [in]
`

// lifeRig is a broker with the streams of lifeDescriptor and one fnbox
// running it at log level warn.
type lifeRig struct {
	b         *broker.Broker
	cmd       *exec.Cmd
	stderr    *kittest.Buffer
	readyFile string
	exited    chan struct{}
}

func startLife(t *testing.T, grace string) *lifeRig {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []topics.Spec{{Name: "in", Partitions: 1}, control.DeploymentsSpec()} {
		if err := b.CreateTopic(s); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "butter.yaml"), []byte(lifeDescriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &lifeRig{b: b, stderr: &kittest.Buffer{}, readyFile: filepath.Join(t.TempDir(), "life.ready"), exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "--code", dir, "--brokers", b.Addr(), "--instance", "life-0",
		"--"+control.ReadyFileFlag, r.readyFile, "--"+control.OrphanGraceFlag, grace)
	// The level that used to hide readiness from the deployer.
	r.cmd.Env = append(os.Environ(), "BUTTER_LOG_LEVEL=warn")
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.exited
	})
	return r
}

// waitReady waits for the ready file and returns what it holds.
func (r *lifeRig) waitReady(t *testing.T) control.ReadyFile {
	t.Helper()
	var rf control.ReadyFile
	kittest.Eventually(t, "ready file", func() error {
		b, err := os.ReadFile(r.readyFile)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rf)
	})
	return rf
}

// waitExit waits for fnbox to exit and returns its exit status.
func (r *lifeRig) waitExit(t *testing.T) int {
	t.Helper()
	kittest.Eventually(t, "fnbox exits", func() error {
		select {
		case <-r.exited:
			return nil
		default:
			return fmt.Errorf("still running:\n%s", r.stderr)
		}
	})
	return r.cmd.ProcessState.ExitCode()
}

// TestReadyFileAtWarnLevel: readiness reaches the deployer through the
// ready file whatever the log level; the ready log line is not written at
// warn, and the address in the file serves /readyz.
func TestReadyFileAtWarnLevel(t *testing.T) {
	r := startLife(t, "0")
	rf := r.waitReady(t)
	if rf.PID != r.cmd.Process.Pid || rf.Instance != "life-0" || rf.Admin == "" {
		t.Errorf("ready file = %+v, want pid %d, instance life-0 and the admin address", rf, r.cmd.Process.Pid)
	}
	kittest.WaitReady(t, "fnbox", "http://"+rf.Admin)
	if strings.Contains(r.stderr.String(), control.ReadyMessage) {
		t.Errorf("the ready line was logged at level warn:\n%s", r.stderr)
	}
}

// TestOrphanExitsWhenBrokerGone: an instance whose broker vanishes exits
// by itself after the grace period, with ExitCodeOrphan.
func TestOrphanExitsWhenBrokerGone(t *testing.T) {
	r := startLife(t, "2s")
	r.waitReady(t)
	closed := time.Now()
	r.b.Close()
	if code := r.waitExit(t); code != control.ExitCodeOrphan {
		t.Fatalf("exit status %d, want %d\n%s", code, control.ExitCodeOrphan, r.stderr)
	}
	t.Logf("exited %s after its broker closed (grace 2s)", time.Since(closed).Round(time.Millisecond))
	if !strings.Contains(r.stderr.String(), "unreachable") {
		t.Errorf("no reason given:\n%s", r.stderr)
	}
}

// TestOrphanExitsWhenDeploymentDeleted: an instance whose deployment is
// deleted while no deployer stops it exits after the grace period, though
// the broker is up; it ran as long as the deployment existed.
func TestOrphanExitsWhenDeploymentDeleted(t *testing.T) {
	r := startLife(t, "1s")
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := context.Background()
	rec, err := control.DeploymentRecord(topics.Deployments, control.Deployment{Name: "life", Version: "v1", Descriptor: lifeDescriptor})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r.waitReady(t)
	select {
	case <-r.exited:
		t.Fatalf("exited while its deployment exists:\n%s", r.stderr)
	default:
	}
	if err := cl.ProduceSync(ctx, control.DeploymentTombstone(topics.Deployments, "life")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if code := r.waitExit(t); code != control.ExitCodeOrphan {
		t.Fatalf("exit status %d, want %d\n%s", code, control.ExitCodeOrphan, r.stderr)
	}
	if want := "deployment life was deleted"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
}

package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/testutil"
	"github.com/buttercompass/butter/proto/kit"
)

// fakeFnbox is the stand-in fnbox binary and realFnbox the real one, both
// built by TestMain.
var fakeFnbox, realFnbox string

func TestMain(m *testing.M) {
	kittest.MainWithBinaries(m,
		kittest.Binary{Pkg: "testdata/fakefnbox", Name: "fakefnbox", Path: &fakeFnbox},
		kittest.Binary{Pkg: "../../../../fnbox/cmd/fnbox", Name: "fnbox", Path: &realFnbox})
}

const desc = "name: orders\nplatform: exec\nfunctions:\n  - fn: ./a.sh\n    bindings: { streams: [orders] }\n"

func newRuntime(t *testing.T, dir string, grace time.Duration) *Runtime {
	t.Helper()
	rt, err := New(Config{DataDir: dir, Bin: fakeFnbox, Grace: grace, Kafka: kit.KafkaConfig{Brokers: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

func TestStopKillsAfterGrace(t *testing.T) {
	t.Setenv("FAKEFNBOX_IGNORE_TERM", "1")
	rt := newRuntime(t, t.TempDir(), 300*time.Millisecond)
	ctx := context.Background()
	in, err := rt.Start(ctx, runtime.InstanceSpec{Deployment: "orders", Version: "v1", Functions: []string{"a"}, Descriptor: desc})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the ready line, so SIGTERM is already being ignored.
	kittest.Eventually(t, "ready line", func() error {
		b, _ := os.ReadFile(rt.logPath(in.ID))
		if len(b) == 0 {
			return fmt.Errorf("no output yet")
		}
		return nil
	})
	start := time.Now()
	if err := rt.Stop(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("stopped after %s, before the grace period", d)
	}
	if syscall.Kill(in.PID, 0) == nil {
		t.Error("process still alive")
	}
	if insts, _ := rt.List(ctx); len(insts) != 0 {
		t.Errorf("still listed: %+v", insts)
	}
}

// TestStartRefusesPathVersions: a version or deployment name that would
// make the code directory a path out of the data dir starts nothing and
// removes nothing.
func TestStartRefusesPathVersions(t *testing.T) {
	data := t.TempDir()
	rt := newRuntime(t, data, time.Second)
	keep := filepath.Join(data, "instances", "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []runtime.InstanceSpec{
		{Deployment: "orders", Version: "../../instances"},
		{Deployment: "orders", Version: ".."},
		{Deployment: "..", Version: "v1"},
		{Deployment: "a/b", Version: "v1"},
	} {
		spec.Functions, spec.Descriptor = []string{"a"}, desc
		if in, err := rt.Start(context.Background(), spec); err == nil {
			t.Errorf("Start(%q, %q) started %s, want an error", spec.Deployment, spec.Version, in.ID)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a refused start touched the instances dir: %v", err)
	}
}

// TestSweepKillsUnrecordedInstances covers a deployer killed between
// starting fnbox and writing its record.
func TestSweepKillsUnrecordedInstances(t *testing.T) {
	dir := t.TempDir()
	code := filepath.Join(dir, "deployments", "orders", "v1")
	if err := os.MkdirAll(code, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(code, "butter.yaml"), []byte(desc), 0o644)
	abs, _ := filepath.Abs(code)
	cmd := exec.Command(fakeFnbox, "--code", abs, "--instance", "lost")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	rt := newRuntime(t, dir, time.Second)
	if _, err := rt.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(testutil.Timeout):
		t.Fatal("unrecorded fnbox survived the sweep")
	}
}

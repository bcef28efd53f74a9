package process

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// TestReadyAtWarnLevel: the real fnbox at BUTTER_LOG_LEVEL=warn, which
// writes no "fnbox ready" line, is counted ready through its ready file,
// and stays ready when a restarted deployer adopts it.
func TestReadyAtWarnLevel(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic(topics.Stream("orders")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BUTTER_LOG_LEVEL", "warn")
	dir := t.TempDir()
	rt, err := New(Config{DataDir: dir, Bin: realFnbox, Grace: 5 * time.Second, Kafka: b.Kafka()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	ctx := context.Background()
	in, err := rt.Start(ctx, runtime.InstanceSpec{Deployment: "orders", Version: "v1", Functions: []string{"a"},
		Descriptor: "name: orders\nplatform: exec\nfunctions:\n  - fn: cat\n    name: a\n    bindings: { streams: [orders] }\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop(ctx, in.ID) })
	ready := func(rt *Runtime) error {
		insts, err := rt.List(ctx)
		if err != nil {
			return err
		}
		if len(insts) != 1 || !insts[0].Ready || insts[0].State != runtime.StateRunning {
			return fmt.Errorf("instances %+v", insts)
		}
		return nil
	}
	kittest.Eventually(t, "instance ready", func() error { return ready(rt) })
	if log, _ := os.ReadFile(rt.logPath(in.ID)); strings.Contains(string(log), control.ReadyMessage) {
		t.Errorf("the ready line was logged at warn:\n%s", log)
	}

	again, err := New(Config{DataDir: dir, Bin: realFnbox, Grace: 5 * time.Second, Kafka: b.Kafka()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	if err := ready(again); err != nil {
		t.Errorf("adopted: %v", err)
	}
}

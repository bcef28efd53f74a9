package process

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/buttercompass/butter/deployer/internal/reconcile"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestBrokenStaysStoppedAfterRestart: a version whose code failed to load
// is not started again by a restarted deployer (same data dir); a new
// version is.
func TestBrokenStaysStoppedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	broken := control.Deployment{Name: "orders", Version: "v1", Descriptor: desc + "# fakefnbox: fail to load\n"}

	first := newRuntime(t, dir, time.Second)
	rec := reconcile.New(reconcile.Config{Runtime: first, Source: fixedSource{broken}, BackoffBase: time.Millisecond})
	kittest.Eventually(t, "v1 reported broken", func() error {
		_ = rec.Sync(ctx)
		if st := rec.Status(broken); len(st) != 1 || !st[0].Broken {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// The restarted deployer: a new runtime and reconciler on the data dir.
	second := newRuntime(t, dir, time.Second)
	rec = reconcile.New(reconcile.Config{Runtime: second, Source: fixedSource{broken}, BackoffBase: time.Millisecond})
	for range 5 {
		_ = rec.Sync(ctx)
		insts, err := second.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(insts) != 0 {
			t.Fatalf("the broken version was started again: %+v", insts)
		}
	}
	if st := rec.Status(broken); len(st) != 1 || !st[0].Broken || st[0].LastError == "" {
		t.Errorf("status after restart = %+v, want broken with its error", st)
	}

	fixed := control.Deployment{Name: "orders", Version: "v2", Descriptor: desc}
	rec = reconcile.New(reconcile.Config{Runtime: second, Source: fixedSource{fixed}})
	kittest.Eventually(t, "v2 runs", func() error {
		_ = rec.Sync(ctx)
		if insts := rec.Instances("orders"); len(insts) != 1 || !insts[0].Ready {
			return fmt.Errorf("instances %+v", insts)
		}
		return nil
	})
	for _, in := range rec.Instances("orders") {
		_ = second.Stop(ctx, in.ID)
	}
}

// TestAdoptsOnlySameBrokers: a restarted deployer adopts an instance of
// its data dir started for the same brokers, and kills one started for
// other brokers instead of letting it run old code against them.
func TestAdoptsOnlySameBrokers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	spec := runtime.InstanceSpec{Deployment: "orders", Version: "v1", Functions: []string{"a"}, Descriptor: desc}
	first := newRuntime(t, dir, time.Second)
	in, err := first.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}

	same := newRuntime(t, dir, time.Second)
	insts, err := same.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 || insts[0].ID != in.ID || !insts[0].Adopted {
		t.Fatalf("same brokers: listed %+v, want %s adopted", insts, in.ID)
	}

	other, err := New(Config{DataDir: dir, Bin: fakeFnbox, Grace: time.Second, Kafka: kit.KafkaConfig{Brokers: []string{"127.0.0.1:2"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	if insts, err := other.List(ctx); err != nil || len(insts) != 0 {
		t.Fatalf("other brokers: listed %+v, %v; want nothing adopted", insts, err)
	}
	kittest.Eventually(t, "the instance of other brokers is killed", func() error {
		if _, alive, _ := procStart(in.PID); alive {
			return fmt.Errorf("pid %d still runs", in.PID)
		}
		return nil
	})
}

package process

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/buttercompass/butter/deployer/internal/reconcile"
	"github.com/buttercompass/butter/proto/control"
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

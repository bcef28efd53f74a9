package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/runtime/process"
	"github.com/buttercompass/butter/deployer/internal/testutil"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
)

// fakeFnbox is the stand-in fnbox binary built by TestMain.
var fakeFnbox string

func TestMain(m *testing.M) { testutil.MainWithFakeFnbox(m, &fakeFnbox) }

// source is a fixed desired state the test changes by hand.
type source struct {
	mu      sync.Mutex
	deps    map[string]control.Deployment
	changed chan struct{}
}

var _ Source = (*source)(nil)

func newSource() *source {
	return &source{deps: map[string]control.Deployment{}, changed: make(chan struct{})}
}

func (s *source) List() []control.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []control.Deployment
	for _, d := range s.deps {
		out = append(out, d)
	}
	return out
}

func (s *source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *source) set(d control.Deployment, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if deleted {
		delete(s.deps, d.Name)
	} else {
		s.deps[d.Name] = d
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// twoFunctions wants two replicas: replica 0 runs a and b, replica 1 runs a.
func twoFunctions(version string) control.Deployment {
	return control.Deployment{Name: "orders", Version: version, Descriptor: `name: orders
platform: exec
functions:
  - fn: ./a.sh
    name: a
    bindings: { streams: [orders] }
    scale: { min: 2 }
  - fn: ./b.sh
    name: b
    bindings: { streams: [orders] }
`}
}

func newRuntime(t *testing.T, dir string) *process.Runtime {
	t.Helper()
	rt, err := process.New(process.Config{DataDir: dir, Bin: fakeFnbox, Grace: 5 * time.Second,
		Kafka: kit.KafkaConfig{Brokers: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

// run starts a reconciler and returns a function that stops it (without
// stopping instances when keep).
func run(t *testing.T, rt runtime.Runtime, src Source, keep bool) (*Reconciler, func()) {
	t.Helper()
	r := New(Config{Runtime: rt, Source: src, BackoffBase: 200 * time.Millisecond, BackoffMax: time.Second,
		Resync: 50 * time.Millisecond, KeepInstances: keep})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reconciler: %v", err)
		}
	})
	t.Cleanup(stop)
	return r, stop
}

func running(t *testing.T, rt runtime.Runtime) []runtime.Instance {
	t.Helper()
	insts, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Instance
	for _, in := range insts {
		if in.State == runtime.StateRunning {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b runtime.Instance) int { return a.Replica - b.Replica })
	return out
}

func wantReplicas(t *testing.T, rt runtime.Runtime, version string, fns ...[]string) []runtime.Instance {
	t.Helper()
	var got []runtime.Instance
	kittest.Eventually(t, "replicas running", func() error {
		got = running(t, rt)
		if len(got) != len(fns) {
			return fmt.Errorf("%d running, want %d: %+v", len(got), len(fns), got)
		}
		for i, in := range got {
			if in.Replica != i || in.Version != version || !slices.Equal(in.Functions, fns[i]) || !alive(in.PID) {
				return fmt.Errorf("replica %d = %+v", i, in)
			}
		}
		return nil
	})
	return got
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStartsMinReplicasAndStopsOnDelete(t *testing.T) {
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	d := twoFunctions("v1")
	src.set(d, false)
	r, _ := run(t, rt, src, false)
	insts := wantReplicas(t, rt, "v1", []string{"a", "b"}, []string{"a"})

	// Running counts instances once they say they are ready.
	kittest.Eventually(t, "status running", func() error {
		st := r.Status(d)
		if st[0].Name != "a" || st[0].Desired != 2 || st[0].Running != 2 || st[1].Desired != 1 || st[1].Running != 1 {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})

	src.set(d, true)
	kittest.Eventually(t, "instances stopped", func() error {
		if n := len(running(t, rt)); n > 0 {
			return fmt.Errorf("%d still listed", n)
		}
		for _, in := range insts {
			if alive(in.PID) {
				return fmt.Errorf("pid %d alive", in.PID)
			}
		}
		return nil
	})
}

func TestUpdateStartsNewBeforeStoppingOld(t *testing.T) {
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	src.set(twoFunctions("v1"), false)
	run(t, rt, src, false)
	old := wantReplicas(t, rt, "v1", []string{"a", "b"}, []string{"a"})
	src.set(twoFunctions("v2"), false)
	wantReplicas(t, rt, "v2", []string{"a", "b"}, []string{"a"})
	for _, in := range old {
		if alive(in.PID) {
			t.Errorf("old instance %s (pid %d) still alive", in.ID, in.PID)
		}
	}
}

// TestUpdateThatFailsToLoadKeepsOld: the old version serves until the
// new one is ready, so a new version whose code fails to load leaves the
// old one running, and the next good version replaces it.
func TestUpdateThatFailsToLoadKeepsOld(t *testing.T) {
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	src.set(twoFunctions("v1"), false)
	r, _ := run(t, rt, src, false)
	old := wantReplicas(t, rt, "v1", []string{"a", "b"}, []string{"a"})

	broken := twoFunctions("v2")
	broken.Descriptor += "# fakefnbox: fail to load\n"
	src.set(broken, false)
	kittest.Eventually(t, "v2 reported broken and gone", func() error {
		if st := r.Status(broken); st[0].LastError == "" {
			return fmt.Errorf("status %+v", st)
		}
		// Both replicas' v2 may start in one pass; the second exits a
		// moment after the first is reported.
		for _, in := range running(t, rt) {
			if in.Version == "v2" {
				return fmt.Errorf("v2 instance %s still running", in.ID)
			}
		}
		return nil
	})
	for _, in := range old {
		if !alive(in.PID) {
			t.Errorf("v1 instance %s stopped for a v2 that does not load", in.ID)
		}
	}
	if got := running(t, rt); len(got) != 2 || got[0].Version != "v1" || got[1].Version != "v1" {
		t.Errorf("running %+v, want both v1 replicas", got)
	}

	src.set(twoFunctions("v3"), false)
	wantReplicas(t, rt, "v3", []string{"a", "b"}, []string{"a"})
	for _, in := range old {
		if alive(in.PID) {
			t.Errorf("v1 instance %s still alive after v3 runs", in.ID)
		}
	}
}

// TestNoStartsAfterStop: a request still in flight when the deployer
// stops must not start instances after the shutdown stopped them all.
func TestNoStartsAfterStop(t *testing.T) {
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	src.set(twoFunctions("v1"), false)
	r, stop := run(t, rt, src, false)
	wantReplicas(t, rt, "v1", []string{"a", "b"}, []string{"a"})
	stop()
	if got := running(t, rt); len(got) != 0 {
		t.Fatalf("after stop: %+v", got)
	}
	src.set(twoFunctions("v2"), false)
	if err := r.Sync(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Sync after stop: %v, want ErrStopped", err)
	}
	if got := running(t, rt); len(got) != 0 {
		t.Errorf("a pass after stop started %+v", got)
	}
}

// TestCodeOfGoneVersionsIsRemoved: the code dir of a version goes once it
// is neither deployed nor run, so disk use follows what is deployed.
func TestCodeOfGoneVersionsIsRemoved(t *testing.T) {
	rt, err := process.New(process.Config{DataDir: t.TempDir(), Bin: fakeFnbox, Grace: 5 * time.Second, PruneAfter: -1,
		Kafka: kit.KafkaConfig{Brokers: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	src := newSource()
	src.set(twoFunctions("v1"), false)
	run(t, rt, src, false)
	wantReplicas(t, rt, "v1", []string{"a", "b"}, []string{"a"})
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if !exists(rt.CodeDir("orders", "v1")) {
		t.Fatal("no code dir for the running v1")
	}

	src.set(twoFunctions("v2"), false)
	wantReplicas(t, rt, "v2", []string{"a", "b"}, []string{"a"})
	kittest.Eventually(t, "v1 code removed", func() error {
		if exists(rt.CodeDir("orders", "v1")) {
			return fmt.Errorf("%s still there", rt.CodeDir("orders", "v1"))
		}
		return nil
	})
	if !exists(rt.CodeDir("orders", "v2")) {
		t.Fatal("the running v2's code dir was removed")
	}

	src.set(twoFunctions("v2"), true)
	kittest.Eventually(t, "deployment code removed", func() error {
		if dir := filepath.Dir(rt.CodeDir("orders", "v2")); exists(dir) {
			return fmt.Errorf("%s still there", dir)
		}
		return nil
	})
}

func TestCrashRestartsWithBackoff(t *testing.T) {
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	d := twoFunctions("v1")
	src.set(d, false)
	r, _ := run(t, rt, src, false)
	first := wantReplicas(t, rt, "v1", []string{"a", "b"}, []string{"a"})

	var gaps []time.Duration
	victim := first[1]
	for range 3 {
		killed := time.Now()
		_ = syscall.Kill(victim.PID, syscall.SIGKILL)
		var next runtime.Instance
		kittest.Eventually(t, "replica 1 restarted", func() error {
			got := running(t, rt)
			if len(got) != 2 || got[1].ID == victim.ID {
				return fmt.Errorf("running %+v", got)
			}
			next = got[1]
			return nil
		})
		gaps = append(gaps, time.Since(killed))
		victim = next
	}
	// Backoff steps 200ms, 400ms, 800ms, jittered within the upper half of
	// each step: each restart waits at least half its step.
	for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		if gaps[i] < want {
			t.Errorf("restart %d after %s, want at least %s", i+1, gaps[i], want)
		}
	}
	if st := r.Status(d); st[0].LastError == "" || st[0].Restarts != 3 {
		t.Errorf("status after crashes = %+v, want last error and 3 restarts", st)
	}
	if running(t, rt)[0].ID != first[0].ID {
		t.Error("replica 0 was restarted though it never crashed")
	}
}

func TestRestartAdoptsWithoutDuplicates(t *testing.T) {
	dir := t.TempDir()
	rt1 := newRuntime(t, dir)
	src := newSource()
	src.set(twoFunctions("v1"), false)
	_, stop1 := run(t, rt1, src, true)
	before := wantReplicas(t, rt1, "v1", []string{"a", "b"}, []string{"a"})
	stop1() // the deployer goes away, its instances stay

	rt2 := newRuntime(t, dir)
	r2, _ := run(t, rt2, src, false)
	after := wantReplicas(t, rt2, "v1", []string{"a", "b"}, []string{"a"})
	if err := r2.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	after = running(t, rt2)
	if len(after) != 2 {
		t.Fatalf("after restart %d instances, want 2", len(after))
	}
	for i := range before {
		if after[i].ID != before[i].ID || after[i].PID != before[i].PID || !after[i].Adopted {
			t.Errorf("replica %d: before %s/%d, after %s/%d adopted=%v", i, before[i].ID, before[i].PID, after[i].ID, after[i].PID, after[i].Adopted)
		}
	}
}

func TestOrphansAreStopped(t *testing.T) {
	dir := t.TempDir()
	rt1 := newRuntime(t, dir)
	src := newSource()
	src.set(twoFunctions("v1"), false)
	_, stop1 := run(t, rt1, src, true)
	orphans := wantReplicas(t, rt1, "v1", []string{"a", "b"}, []string{"a"})
	stop1()

	// While the deployer was away the deployment was deleted.
	rt2 := newRuntime(t, dir)
	run(t, rt2, newSource(), false)
	kittest.Eventually(t, "orphans stopped", func() error {
		for _, in := range orphans {
			if alive(in.PID) {
				return fmt.Errorf("orphan pid %d alive", in.PID)
			}
		}
		if n := len(running(t, rt2)); n > 0 {
			return fmt.Errorf("%d instances listed", n)
		}
		return nil
	})
}

func TestDesiredReplicas(t *testing.T) {
	got, err := Desired(twoFunctions("v1"))
	if err != nil || len(got) != 2 || !slices.Equal(got[0], []string{"a", "b"}) || !slices.Equal(got[1], []string{"a"}) {
		t.Fatalf("Desired = %v, %v", got, err)
	}
}

// TestFencingSlots: a replica restarted after a crash gets the fencing
// slot of the instance it replaces (its exactly-once producers fence the
// dead one's), while an update's new version, running beside the old one
// until ready, gets a slot of its own; live instances never share one.
func TestFencingSlots(t *testing.T) {
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	src.set(twoFunctions("v1"), false)
	run(t, rt, src, false)
	first := wantReplicas(t, rt, "v1", []string{"a", "b"}, []string{"a"})
	if first[0].Slot == first[1].Slot {
		t.Fatalf("replicas share fencing slot %d", first[0].Slot)
	}

	_ = syscall.Kill(first[1].PID, syscall.SIGKILL)
	kittest.Eventually(t, "replica 1 restarted", func() error {
		got := running(t, rt)
		if len(got) != 2 || got[1].ID == first[1].ID {
			return fmt.Errorf("running %+v", got)
		}
		if got[1].Slot != first[1].Slot {
			t.Fatalf("restarted replica 1 has slot %d, want %d (its predecessor's)", got[1].Slot, first[1].Slot)
		}
		return nil
	})

	// During the update old and new instances overlap: every live
	// instance's slot is distinct at every look.
	src.set(twoFunctions("v2"), false)
	kittest.Eventually(t, "v2 running", func() error {
		insts, err := rt.List(context.Background())
		if err != nil {
			return err
		}
		seen := map[int]string{}
		v2 := 0
		for _, in := range insts {
			if in.State != runtime.StateRunning {
				continue
			}
			if other, dup := seen[in.Slot]; dup {
				t.Fatalf("instances %s and %s share slot %d", other, in.ID, in.Slot)
			}
			seen[in.Slot] = in.ID
			if in.Version == "v2" {
				v2++
			}
		}
		if v2 != 2 || len(seen) != 2 {
			return fmt.Errorf("%d running, %d of v2", len(seen), v2)
		}
		return nil
	})
}

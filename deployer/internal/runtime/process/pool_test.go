package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/testutil"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// sharedDesc is an isolation: shared node deployment named name.
func sharedDesc(name string) string {
	return "name: " + name + "\nplatform: node\nisolation: shared\nfunctions:\n  - fn: a.js:f\n    name: a\n    bindings: { streams: [orders] }\n"
}

func sharedSpec(name string, slot int) runtime.InstanceSpec {
	return runtime.InstanceSpec{Deployment: name, Version: "v1", Slot: slot, Functions: []string{"a"}, Descriptor: sharedDesc(name)}
}

// listed returns rt's instances by id.
func listed(t *testing.T, rt *Runtime) map[string]runtime.Instance {
	t.Helper()
	insts, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]runtime.Instance{}
	for _, in := range insts {
		if _, dup := out[in.ID]; dup {
			t.Fatalf("instance %s listed twice: %+v", in.ID, insts)
		}
		out[in.ID] = in
	}
	return out
}

// allReady waits until exactly ids are listed, running and ready.
func allReady(t *testing.T, rt *Runtime, ids ...string) map[string]runtime.Instance {
	t.Helper()
	var got map[string]runtime.Instance
	kittest.Eventually(t, "members ready", func() error {
		got = listed(t, rt)
		if len(got) != len(ids) {
			return fmt.Errorf("listed %+v, want %v", got, ids)
		}
		for _, id := range ids {
			if in := got[id]; in.State != runtime.StateRunning || !in.Ready {
				return fmt.Errorf("%s: %+v", id, in)
			}
		}
		return nil
	})
	return got
}

// poolPIDs returns the pids of the processes running rt's pool of
// platform (`--pool <dir>`), one when all is well.
func poolPIDs(rt *Runtime, platform string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, alive, _ := procStart(pid); !alive {
			continue
		}
		args := cmdline(pid)
		if i := slices.Index(args, "--"+control.PoolFlag); i >= 0 && i+1 < len(args) && args[i+1] == rt.poolDir(platform) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestPoolMemberFile: a shared deployment's instance is a member file
// holding the command line a lone fnbox would get, and its SASL password
// in Env, readable by the deployer's user only.
func TestPoolMemberFile(t *testing.T) {
	t.Setenv("BUTTER_SASL_PASSWORD", "the-deployers-own")
	dir := t.TempDir()
	k := kit.KafkaConfig{Brokers: []string{"127.0.0.1:1"}, SASLMechanism: kit.SASLPlain, SASLUser: "orders", SASLPassword: "hunter2"}
	rt, err := New(Config{DataDir: dir, Bin: fakeFnbox, BinArgs: []string{"fnbox"}, Grace: time.Second, Kafka: kit.KafkaConfig{Brokers: k.Brokers},
		Login: func(string) kit.KafkaConfig { return k }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	ctx := context.Background()
	in, err := rt.Start(ctx, sharedSpec("orders", 3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(rt) })
	b, err := os.ReadFile(rt.memberPath("node", in.ID))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(rt.memberPath("node", in.ID))
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("member file mode %o, want 600", perm)
	}
	var m control.PoolMember
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	code := rt.CodeDir("orders", "v1")
	want, env := rt.args(code, filepath.Join(code, control.DescriptorFile), in.ID, []string{"a"}, k)
	want = append(want, "--"+control.SlotFlag, "3", "--"+control.ReadyFileFlag, rt.readyPath(in.ID))
	if m.Instance != in.ID || !slices.Equal(m.Args, want) {
		t.Errorf("member %s args\n%q\nwant %s\n%q", m.Instance, m.Args, in.ID, want)
	}
	if slices.Contains(m.Args, "hunter2") {
		t.Errorf("the password is in Args: %q", m.Args)
	}
	if len(env) != 1 || m.Env["BUTTER_SASL_PASSWORD"] != "hunter2" || len(m.Env) != 1 {
		t.Errorf("member env %v, want the password alone (login env %q)", m.Env, env)
	}
	// The pool itself is `fnbox --pool DIR --pool-platform node`, after
	// BinArgs.
	pool := rt.pools["node"]
	if args := cmdline(pool.rec.PID); !slices.Equal(args[1:], []string{"fnbox", "--pool", rt.poolDir("node"), "--pool-platform", "node"}) {
		t.Errorf("pool command line %q", args)
	}
	// Nor does the pool get the deployer's own password: every shared
	// deployment's code runs in it.
	if environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pool.rec.PID)); err != nil || strings.Contains(string(environ), "the-deployers-own") {
		t.Errorf("pool environment holds the deployer's password (%v)", err)
	}
	if in.PID != pool.rec.PID {
		t.Errorf("instance pid %d, pool pid %d", in.PID, pool.rec.PID)
	}
	allReady(t, rt, in.ID)
}

// stopAll stops every instance of rt, and its pools.
func stopAll(rt *Runtime) {
	ctx := context.Background()
	insts, _ := rt.List(ctx)
	for _, in := range insts {
		_ = rt.Stop(ctx, in.ID)
	}
	_ = rt.StopIdlePools(ctx)
}

// TestPoolLifecycle runs two shared deployments in one pool through a
// stop, a kill -9 of the pool, a new start and a restarted runtime. It
// runs with the stand-in fnbox, and with the real one on a real broker
// and node.
func TestPoolLifecycle(t *testing.T) {
	t.Run("fake", func(t *testing.T) {
		testPoolLifecycle(t, fakeFnbox, kit.KafkaConfig{Brokers: []string{"127.0.0.1:1"}}, func(name string, slot int) runtime.InstanceSpec {
			return sharedSpec(name, slot)
		})
	})
	t.Run("real", func(t *testing.T) {
		b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		if err := b.CreateTopic(topics.Stream("orders")); err != nil {
			t.Fatal(err)
		}
		code := tarGz(t, map[string]string{"a.js": "exports.f = async (event) => ({ seen: event.id });\n"})
		testPoolLifecycle(t, realFnbox, b.Kafka(), func(name string, slot int) runtime.InstanceSpec {
			spec := sharedSpec(name, slot)
			spec.Code = code
			return spec
		})
	})
}

func testPoolLifecycle(t *testing.T, bin string, k kit.KafkaConfig, spec func(name string, slot int) runtime.InstanceSpec) {
	dir := t.TempDir()
	ctx := context.Background()
	newRT := func() *Runtime {
		rt, err := New(Config{DataDir: dir, Bin: bin, Grace: 10 * time.Second, Kafka: k})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rt.Close)
		return rt
	}
	rt := newRT()
	t.Cleanup(func() { stopAll(rt) })
	a, err := rt.Start(ctx, spec("alpha", 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rt.Start(ctx, spec("beta", 0))
	if err != nil {
		t.Fatal(err)
	}
	got := allReady(t, rt, a.ID, b.ID)
	if got[a.ID].PID != got[b.ID].PID || got[a.ID].PID == 0 {
		t.Fatalf("members in different processes: %+v", got)
	}
	poolPID := got[a.ID].PID
	if pids := poolPIDs(rt, "node"); !slices.Equal(pids, []int{poolPID}) {
		t.Fatalf("pool processes %v, want [%d]", pids, poolPID)
	}

	// Stop one: the other goes on in the same pool.
	if err := rt.Stop(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	got = allReady(t, rt, b.ID)
	if got[b.ID].PID != poolPID {
		t.Errorf("after a stop, beta's pid %d, want the pool's %d", got[b.ID].PID, poolPID)
	}
	for _, f := range []string{rt.memberPath("node", a.ID), rt.memberExitPath("node", a.ID), rt.recordPath(a.ID), rt.readyPath(a.ID)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stopped member left %s: %v", f, err)
		}
	}

	// A second member again, then kill -9 the pool: both are reported
	// exited, and neither is ready.
	c, err := rt.Start(ctx, spec("gamma", 1))
	if err != nil {
		t.Fatal(err)
	}
	allReady(t, rt, b.ID, c.ID)
	if err := syscall.Kill(poolPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "members exited", func() error {
		got = listed(t, rt)
		for _, id := range []string{b.ID, c.ID} {
			if in, ok := got[id]; !ok || in.State != runtime.StateExited || in.Error == "" || in.Permanent {
				return fmt.Errorf("%s: %+v", id, in)
			}
		}
		if len(got) != 2 {
			return fmt.Errorf("listed %+v", got)
		}
		return nil
	})

	// What the reconciler does next: stop the exited ones, start again.
	for _, id := range []string{b.ID, c.ID} {
		if err := rt.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	b2, err := rt.Start(ctx, spec("beta", 0))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := rt.Start(ctx, spec("gamma", 1))
	if err != nil {
		t.Fatal(err)
	}
	got = allReady(t, rt, b2.ID, c2.ID)
	newPID := got[b2.ID].PID
	if newPID == poolPID || got[c2.ID].PID != newPID {
		t.Errorf("restarted members' pids %d and %d, old pool %d", newPID, got[c2.ID].PID, poolPID)
	}
	if pids := poolPIDs(rt, "node"); !slices.Equal(pids, []int{newPID}) {
		t.Errorf("pool processes %v, want [%d]", pids, newPID)
	}

	// A restarted deployer adopts the pool and both members: same pid, no
	// duplicate, nothing killed.
	again := newRT()
	got = allReady(t, again, b2.ID, c2.ID)
	for _, id := range []string{b2.ID, c2.ID} {
		if in := got[id]; !in.Adopted || in.PID != newPID {
			t.Errorf("adopted %s: %+v, want adopted with pid %d", id, in, newPID)
		}
	}
	if pids := poolPIDs(again, "node"); !slices.Equal(pids, []int{newPID}) {
		t.Errorf("after adoption, pool processes %v, want [%d]", pids, newPID)
	}
	// It runs the pool as its own: a new member joins it, a stop works.
	d, err := again.Start(ctx, spec("delta", 0))
	if err != nil {
		t.Fatal(err)
	}
	got = allReady(t, again, b2.ID, c2.ID, d.ID)
	if got[d.ID].PID != newPID {
		t.Errorf("new member after adoption in pid %d, want the adopted pool's %d", got[d.ID].PID, newPID)
	}
	if err := again.Stop(ctx, b2.ID); err != nil {
		t.Fatal(err)
	}
	allReady(t, again, c2.ID, d.ID)
	stopAll(again)
}

// TestPoolLoadError: a member whose code fails to load exits for good,
// the version is refused from then on (also by a restarted runtime), and
// the pool and its other members go on.
func TestPoolLoadError(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	rt := newRuntime(t, dir, time.Second)
	t.Cleanup(func() { stopAll(rt) })
	good, err := rt.Start(ctx, sharedSpec("good", 0))
	if err != nil {
		t.Fatal(err)
	}
	spec := sharedSpec("bad", 0)
	spec.Descriptor += "# fakefnbox: fail to load\n"
	bad, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "bad exited for good", func() error {
		got := listed(t, rt)
		if in := got[bad.ID]; in.State != runtime.StateExited || !in.Permanent || in.Error != "handler.js:1: SyntaxError: Unexpected token" {
			return fmt.Errorf("bad: %+v", in)
		}
		if in := got[good.ID]; in.State != runtime.StateRunning || !in.Ready {
			return fmt.Errorf("good: %+v", in)
		}
		return nil
	})
	if err := rt.Stop(ctx, bad.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, spec); !errors.Is(err, runtime.ErrBroken) {
		t.Errorf("start of the broken version again: %v, want ErrBroken", err)
	}
	again := newRuntime(t, dir, time.Second)
	if _, err := again.Start(ctx, spec); !errors.Is(err, runtime.ErrBroken) {
		t.Errorf("restarted runtime: %v, want ErrBroken", err)
	}
	allReady(t, again, good.ID)
}

// TestPoolStopsWhenIdle: a pool whose last member stopped is stopped
// after PoolIdle; the next shared start starts a new one.
func TestPoolStopsWhenIdle(t *testing.T) {
	rt, err := New(Config{DataDir: t.TempDir(), Bin: fakeFnbox, Grace: time.Second, PoolIdle: time.Millisecond,
		Kafka: kit.KafkaConfig{Brokers: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	t.Cleanup(func() { stopAll(rt) })
	ctx := context.Background()
	in, err := rt.Start(ctx, sharedSpec("orders", 0))
	if err != nil {
		t.Fatal(err)
	}
	allReady(t, rt, in.ID)
	if err := rt.Stop(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "idle pool stopped", func() error {
		listed(t, rt)
		if pids := poolPIDs(rt, "node"); len(pids) > 0 {
			return fmt.Errorf("pool processes %v", pids)
		}
		if fileExists(rt.poolRecord("node")) {
			return errors.New("pool record left")
		}
		return nil
	})
	in, err = rt.Start(ctx, sharedSpec("orders", 0))
	if err != nil {
		t.Fatal(err)
	}
	allReady(t, rt, in.ID)
}

// TestPoolSweep: a restarted runtime kills a pool process of its data
// dir that has no record, and removes member files no record names, so
// nothing runs that the reconciler does not know.
func TestPoolSweep(t *testing.T) {
	dir := t.TempDir()
	rt := newRuntime(t, dir, time.Second)
	members := rt.membersDir("node")
	if err := os.MkdirAll(members, 0o700); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(members, "lost-0-abcd"+control.PoolMemberExt)
	if err := os.WriteFile(stray, []byte(`{"instance":"lost-0-abcd","args":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fakeFnbox, "--"+control.PoolFlag, rt.poolDir("node"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if insts := listed(t, rt); len(insts) != 0 {
		t.Errorf("listed %+v", insts)
	}
	select {
	case <-done:
	case <-time.After(testutil.Timeout):
		t.Fatal("unrecorded pool survived the sweep")
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unrecorded member file left: %v", err)
	}
}

// TestPoolGoneWhileDown: a restarted runtime whose pool died meanwhile
// lists none of its members and forgets their files, so the reconciler
// starts them again (in a new pool).
func TestPoolGoneWhileDown(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first := newRuntime(t, dir, time.Second)
	in, err := first.Start(ctx, sharedSpec("orders", 0))
	if err != nil {
		t.Fatal(err)
	}
	allReady(t, first, in.ID)
	if err := syscall.Kill(in.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "pool gone", func() error {
		if _, alive, _ := procStart(in.PID); alive {
			return fmt.Errorf("pid %d alive", in.PID)
		}
		return nil
	})
	second := newRuntime(t, dir, time.Second)
	t.Cleanup(func() { stopAll(second) })
	if got := listed(t, second); len(got) != 0 {
		t.Errorf("listed %+v, want nothing", got)
	}
	for _, f := range []string{second.recordPath(in.ID), second.memberPath("node", in.ID), second.poolRecord("node")} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("left %s: %v", f, err)
		}
	}
	again, err := second.Start(ctx, sharedSpec("orders", 0))
	if err != nil {
		t.Fatal(err)
	}
	allReady(t, second, again.ID)
}

// TestPoolLoadErrorReal: with the real fnbox, node code that throws as it
// loads ends its member for good (the pool's exit file), marks the
// version broken, and leaves the pool serving the other member.
func TestPoolLoadErrorReal(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic(topics.Stream("orders")); err != nil {
		t.Fatal(err)
	}
	rt, err := New(Config{DataDir: t.TempDir(), Bin: realFnbox, Grace: 10 * time.Second, Kafka: b.Kafka()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	t.Cleanup(func() { stopAll(rt) })
	ctx := context.Background()
	good := sharedSpec("good", 0)
	good.Code = tarGz(t, map[string]string{"a.js": "exports.f = async () => null;\n"})
	bad := sharedSpec("bad", 0)
	bad.Code = tarGz(t, map[string]string{"a.js": "throw new Error('boom at load');\n"})
	g, err := rt.Start(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	x, err := rt.Start(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "bad exited for good, good ready", func() error {
		got := listed(t, rt)
		if in := got[x.ID]; in.State != runtime.StateExited || !in.Permanent || !strings.Contains(in.Error, "boom at load") {
			return fmt.Errorf("bad: %+v", in)
		}
		if in := got[g.ID]; in.State != runtime.StateRunning || !in.Ready || in.PID != g.PID {
			return fmt.Errorf("good: %+v", in)
		}
		return nil
	})
	if err := rt.Stop(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, bad); !errors.Is(err, runtime.ErrBroken) {
		t.Errorf("start of the broken version again: %v, want ErrBroken", err)
	}
	allReady(t, rt, g.ID)
}

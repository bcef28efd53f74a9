package stdio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// newPool starts a pool for platform, closed at the end of the test; the
// pool's own log goes to logs.
func newPool(t *testing.T, platform string) (*Pool, *runtimetest.SyncBuffer) {
	t.Helper()
	need(t, platform)
	logs := &runtimetest.SyncBuffer{}
	p, err := NewPool(platform, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close pool: %v", err)
		}
		if t.Failed() {
			t.Logf("pool log:\n%s", logs)
		}
	})
	return p.(*Pool), logs
}

// sharedSpec is a spec for the pool tests' deployment in testdata/pool/<platform>/<dir>.
type sharedSpec struct {
	runtime.Spec
	stdout, stderr *runtimetest.SyncBuffer
}

func poolSpec(t *testing.T, platform, name, dir string, fns ...string) sharedSpec {
	t.Helper()
	file := map[string]string{"node": "handler.js", "python": "handler.py"}[platform]
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nplatform: %s\nisolation: shared\nfunctions:\n", name, platform)
	for _, fn := range fns {
		fmt.Fprintf(&b, "  - { fn: %q, name: %s, bindings: { streams: [in] } }\n", file+":"+fn, fn)
	}
	desc, err := descriptor.Parse(name+".yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("parse descriptor: %v", err)
	}
	s := sharedSpec{stdout: &runtimetest.SyncBuffer{}, stderr: &runtimetest.SyncBuffer{}}
	s.Spec = runtime.Spec{Deployment: desc, Dir: filepath.Join("testdata", "pool", platform, dir), Stdout: s.stdout, Stderr: s.stderr}
	return s
}

func add(t *testing.T, p *Pool, s sharedSpec) runtime.Runtime {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := p.Add(ctx, s.Spec)
	if err != nil {
		t.Fatalf("Add %s: %v", s.Deployment.Name, err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// who invokes a pool test deployment's who function with data tag and
// checks it answered as deployment want, its file found beside its module.
func who(t *testing.T, rt runtime.Runtime, tag, want string) {
	t.Helper()
	res, err := invoke(rt, "who", event(t, "application/json", []byte(strconv.Quote(tag))))
	if err != nil {
		t.Fatalf("who (%s): %v", want, err)
	}
	var got struct {
		Who, File string
		CwdIsDir  bool
	}
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatalf("who answered %s: %v", res.Data, err)
	}
	if got.Who != want || got.File != "name-"+want || got.CwdIsDir {
		t.Fatalf("who = %s, want deployment %s's code, its name.txt, and a working directory not its dir", res.Data, want)
	}
}

// hostProcesses counts the processes running p's host program.
func hostProcesses(t *testing.T, p *Pool) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), p.cfg.script) {
			n++
		}
	}
	return n
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kit.Poll(ctx, 10*time.Millisecond, cond); err != nil {
		t.Fatalf("%s: never happened", what)
	}
}

// TestPoolConformance runs the conformance suite against deployments added
// to one pool per language: the suite's deployment and its broken one share
// one host. The fixtures' env is dropped, as a shared deployment has none.
func TestPoolConformance(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			p, _ := newPool(t, l.platform)
			add := func(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error) {
				d := *spec.Deployment
				d.Env, d.Isolation = nil, descriptor.IsolationShared
				spec.Deployment, spec.Env = &d, nil
				return p.Add(ctx, spec)
			}
			runtimetest.RunConformance(t, runtimetest.Conformance{Name: l.platform + "-pool", Dir: filepath.Join("..", "testdata", "conformance", l.platform), Start: add})
			if n := hostProcesses(t, p); n != 1 {
				t.Errorf("%d host processes for the pool, want 1", n)
			}
		})
	}
}

// TestPoolSharesOneHost: two deployments with the same function and file
// names answer each with its own code from one host process, their output
// goes each to its own Stdout and Stderr, and closing one leaves the
// other working.
func TestPoolSharesOneHost(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			p, _ := newPool(t, l.platform)
			pid := p.HostPID()
			if pid == 0 || hostProcesses(t, p) != 1 {
				t.Fatalf("a new pool has host pid %d and %d host processes, want its warm host", pid, hostProcesses(t, p))
			}
			sa, sb := poolSpec(t, l.platform, "dep-a", "a", "who"), poolSpec(t, l.platform, "dep-b", "b", "who", "loaded")
			a, b := add(t, p, sa), add(t, p, sb)
			who(t, a, "t1", "a")
			who(t, b, "t2", "b")
			if got := p.HostPID(); got != pid || hostProcesses(t, p) != 1 {
				t.Fatalf("after two Adds: host pid %d (was %d), %d host processes; want the one warm host", got, pid, hostProcesses(t, p))
			}
			// Written before the function returned: there when Invoke returns.
			for _, c := range []struct {
				buf       *runtimetest.SyncBuffer
				want, not string
			}{
				{sa.stdout, "stdout-a t1\n", "-b"}, {sa.stderr, "stderr-a t1\n", "-b"},
				{sb.stdout, "stdout-b t2\n", "-a"}, {sb.stderr, "stderr-b t2\n", "-a"},
			} {
				if s := c.buf.String(); !strings.Contains(s, c.want) || strings.Contains(s, c.not) {
					t.Errorf("output %q, want %q and nothing of the other deployment", s, c.want)
				}
			}

			// A second Add of the same deployment (a rolling update) is a
			// set of its own: closing the first leaves it.
			a2 := add(t, p, poolSpec(t, l.platform, "dep-a", "a", "who"))
			if err := a.Close(context.Background()); err != nil {
				t.Fatalf("close a: %v", err)
			}
			if _, err := invoke(a, "who", event(t, "application/json", []byte(`"x"`))); err == nil {
				t.Error("Invoke after Close succeeded")
			}
			who(t, b, "t3", "b")
			who(t, a2, "t4", "a")
			if p.HostPID() != pid {
				t.Error("closing a deployment restarted the host")
			}
			// Unloaded from the host: only b's entry module is left.
			if err := a2.Close(context.Background()); err != nil {
				t.Fatalf("close a2: %v", err)
			}
			if res, err := invoke(b, "loaded", event(t, "application/json", []byte("1"))); err != nil || string(res.Data) != "1" {
				t.Errorf("entry modules in the host after closing a twice: %s, %v; want only b's", res.Data, err)
			}
		})
	}
}

// TestPoolHostKilled: kill -9 of the host fails the invocations in flight
// of every deployment with ErrCrashed; the next ones run in a new host
// with every deployment loaded again.
func TestPoolHostKilled(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			p, logs := newPool(t, l.platform)
			a := add(t, p, poolSpec(t, l.platform, "dep-a", "a", "who", "slow"))
			b := add(t, p, poolSpec(t, l.platform, "dep-b", "b", "who"))
			who(t, a, "t1", "a")
			pid := p.HostPID()

			host := runtimetest.NewTestHost(nil)
			slow := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, err := a.Invoke(ctx, runtime.Invocation{Function: "slow", Events: event1(t), Deadline: time.Now().Add(30 * time.Second)}, host)
				slow <- err
			}()
			poll(t, "slow started", func() bool { return len(host.Logs()) > 0 })
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := <-slow; !errors.Is(err, runtime.ErrCrashed) {
				t.Fatalf("in-flight invocation of a killed host: %v, want ErrCrashed", err)
			}
			who(t, b, "t2", "b")
			who(t, a, "t3", "a")
			if got := p.HostPID(); got == pid || got == 0 || hostProcesses(t, p) != 1 {
				t.Errorf("after the kill: host pid %d (killed %d), %d host processes; want one new host", got, pid, hostProcesses(t, p))
			}
			if !strings.Contains(logs.String(), "starting a new one") {
				t.Errorf("the pool did not log the restart:\n%s", logs)
			}
		})
	}
}

// TestPoolFunctionCrashes: a function that exits the host (process.exit,
// os._exit) fails itself and the other deployment's invocation in flight,
// and both work again after.
func TestPoolFunctionCrashes(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			p, _ := newPool(t, l.platform)
			a := add(t, p, poolSpec(t, l.platform, "dep-a", "a", "who", "slow"))
			b := add(t, p, poolSpec(t, l.platform, "dep-b", "b", "who", "crash"))
			host := runtimetest.NewTestHost(nil)
			slow := make(chan error, 1)
			go func() {
				_, err := a.Invoke(context.Background(), runtime.Invocation{Function: "slow", Events: event1(t), Deadline: time.Now().Add(30 * time.Second)}, host)
				slow <- err
			}()
			poll(t, "slow started", func() bool { return len(host.Logs()) > 0 })
			if _, err := invoke(b, "crash", event(t, "application/json", []byte("1"))); !errors.Is(err, runtime.ErrCrashed) {
				t.Fatalf("crash: %v, want ErrCrashed", err)
			}
			if err := <-slow; !errors.Is(err, runtime.ErrCrashed) {
				t.Fatalf("the other deployment's invocation in flight: %v, want ErrCrashed", err)
			}
			who(t, a, "t1", "a")
			who(t, b, "t2", "b")
		})
	}
}

// TestPoolStuckHost: a handler stuck past its deadline gets the shared
// host killed stuckGrace later, so the other deployments' invocations run
// in a new host instead of timing out behind it.
func TestPoolStuckHost(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			p, _ := newPool(t, l.platform)
			a := add(t, p, poolSpec(t, l.platform, "dep-a", "a", "spin"))
			b := add(t, p, poolSpec(t, l.platform, "dep-b", "b", "who"))
			pid := p.HostPID()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			d, _ := ctx.Deadline()
			if _, err := a.Invoke(ctx, runtime.Invocation{Function: "spin", Events: event1(t), Deadline: d}, runtimetest.NewTestHost(nil)); !errors.Is(err, runtime.ErrTimeout) {
				t.Fatalf("spin: %v, want a timeout", err)
			}
			pctx, pcancel := context.WithTimeout(context.Background(), stuckGrace+10*time.Second)
			defer pcancel()
			if err := kit.Poll(pctx, 50*time.Millisecond, func() bool { return p.HostPID() != pid }); err != nil {
				t.Fatal("the stuck host was never killed")
			}
			who(t, b, "t1", "b")
		})
	}
}

// TestPoolLoadError: a deployment that does not load fails its Add with
// ErrLoad naming the file and line, and the host and the others go on.
func TestPoolLoadError(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			p, _ := newPool(t, l.platform)
			a := add(t, p, poolSpec(t, l.platform, "dep-a", "a", "who"))
			pid := p.HostPID()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := p.Add(ctx, poolSpec(t, l.platform, "broken", "broken", "who").Spec)
			if !errors.Is(err, runtime.ErrLoad) || !strings.Contains(err.Error(), l.file+":2") || !strings.Contains(err.Error(), "broken on purpose") {
				t.Fatalf("Add of broken code: %v, want ErrLoad naming %s:2", err, l.file)
			}
			who(t, a, "t1", "a")
			if p.HostPID() != pid {
				t.Error("a load error restarted the host")
			}
			// Unloaded entirely: a later deployment of the same name loads.
			who(t, add(t, p, poolSpec(t, l.platform, "broken", "b", "who")), "t2", "b")
		})
	}
}

// TestPoolRefusesEnv: one process has one environment.
func TestPoolRefusesEnv(t *testing.T) {
	p, _ := newPool(t, "node")
	for name, set := range map[string]func(*runtime.Spec){
		"env":       func(s *runtime.Spec) { s.Deployment.Env = map[string]string{"A": "1"} },
		"secretEnv": func(s *runtime.Spec) { s.Deployment.SecretEnv = map[string]string{"A": "1"} },
		"Spec.Env":  func(s *runtime.Spec) { s.Env = map[string]string{"A": "1"} },
	} {
		s := poolSpec(t, "node", "dep-a", "a", "who").Spec
		set(&s)
		if rt, err := p.Add(context.Background(), s); err == nil || !strings.Contains(err.Error(), "isolation: process") {
			if rt != nil {
				rt.Close(context.Background())
			}
			t.Errorf("Add with %s: %v, want a refusal", name, err)
		}
	}
}

func event1(t *testing.T) []envelope.Delivery {
	return []envelope.Delivery{event(t, "application/json", []byte("1"))}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// poolRig is a broker, a pool directory and the shared node deployments
// whose instances the tests add to the pool.
type poolRig struct {
	t    *testing.T
	b    *broker.Broker
	ctx  context.Context
	dir  string // the pool directory
	pool *exec.Cmd
	cl   *kgo.Client
}

func newPoolRig(t *testing.T, timeout time.Duration) *poolRig {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &poolRig{t: t, b: b, ctx: ctx, dir: t.TempDir(), cl: cl}
}

// sharedDescriptor is a node echo from <name>-in to <name>-out with the
// given isolation ("" leaves it out).
func sharedDescriptor(name, isolation string) string {
	d := `
name: ` + name + `
platform: node
functions:
  - fn: handler.js:echo
    name: echo
    bindings:
      streams: [{name: ` + name + `-in, offset: first}]
      out: ` + name + `-out
    delivery: {ordering: none}
    scale: {concurrency: 8}
`
	if isolation != "" {
		d += "isolation: " + isolation + "\n"
	}
	return d
}

// deployment creates name's streams and a code directory with descriptor
// and handler, and returns the directory.
func (p *poolRig) deployment(name, descriptor, handler string) string {
	p.t.Helper()
	for _, s := range []string{name + "-in", name + "-out", name + "-echo-dlq"} {
		if err := p.b.CreateTopic(topics.Spec{Name: s, Partitions: 2}); err != nil {
			p.t.Fatal(err)
		}
	}
	dir := p.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "butter.yaml"), []byte(descriptor), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte(handler), 0o644); err != nil {
		p.t.Fatal(err)
	}
	return dir
}

// produce writes n events <name>-<from>..<name>-<from+n-1> to name's in.
func (p *poolRig) produce(name string, from, n int) {
	p.t.Helper()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		e := envelope.New("/test", "t")
		e.SetID(fmt.Sprintf("%s-%d", name, i))
		_ = e.SetData(event.ApplicationJSON, i)
		r, _ := envelope.ToRecord(name+"-in", e)
		recs = append(recs, r)
	}
	if err := p.cl.ProduceSync(p.ctx, recs...).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// startPool starts `fnbox --pool` on the rig's directory and waits for
// its pool.ready.
func (p *poolRig) startPool(extra ...string) *exec.Cmd {
	p.t.Helper()
	cmd := exec.Command(bin, append([]string{"--" + control.PoolFlag, p.dir, "--brokers", p.b.Addr(), "--log-level", "warn"}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	kittest.Eventually(p.t, "pool.ready of this pool", func() error {
		rf, err := readJSON[control.ReadyFile](filepath.Join(p.dir, control.PoolReadyFile))
		if err != nil {
			return err
		}
		if rf.PID != cmd.Process.Pid || rf.Instance != "pool" || rf.Admin == "" {
			return fmt.Errorf("pool.ready holds %+v", rf)
		}
		return nil
	})
	p.pool = cmd
	return cmd
}

// member is the path of a member's file, or with ext its exit file.
func (p *poolRig) member(id, ext string) string {
	return filepath.Join(p.dir, control.PoolMembersDir, id+ext)
}

// addMember writes member id's file, as the deployer does (atomically),
// and returns the path of its ready file. Its args name the broker unless
// env does.
func (p *poolRig) addMember(id, code string, env map[string]string, extra ...string) string {
	p.t.Helper()
	ready := filepath.Join(p.t.TempDir(), "ready")
	args := []string{"--code", code, "--instance", id, "--" + control.ReadyFileFlag, ready}
	if env["BUTTER_BROKERS"] == "" {
		args = append(args, "--brokers", p.b.Addr())
	}
	m := control.PoolMember{Instance: id, Env: env, Args: append(args, extra...)}
	b, err := json.Marshal(m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p.member(id, "")), 0o755); err != nil {
		p.t.Fatal(err)
	}
	tmp := p.member("."+id, ".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.member(id, control.PoolMemberExt)); err != nil {
		p.t.Fatal(err)
	}
	return ready
}

// waitReady waits for a member's ready file naming the pool.
func (p *poolRig) waitReady(id, ready string) {
	p.t.Helper()
	kittest.Eventually(p.t, id+" ready", func() error {
		rf, err := readJSON[control.ReadyFile](ready)
		if err != nil {
			return err
		}
		if rf.PID != p.pool.Process.Pid || rf.Instance != id || rf.Admin == "" {
			return fmt.Errorf("ready file holds %+v", rf)
		}
		return nil
	})
}

// waitExit waits for a member's exit file and returns it.
func (p *poolRig) waitExit(id string) control.PoolExit {
	p.t.Helper()
	var e control.PoolExit
	kittest.Eventually(p.t, id+"'s exit file", func() error {
		var err error
		e, err = readJSON[control.PoolExit](p.member(id, control.PoolExitExt))
		return err
	})
	return e
}

func readJSON[T any](path string) (T, error) {
	var v T
	b, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(b, &v)
}

// outCounter reads a deployment's out from the start, counting results per
// input id.
type outCounter struct {
	p     *poolRig
	name  string
	cl    *kgo.Client
	seen  map[string]int
	total int
}

func (p *poolRig) counter(name string) *outCounter {
	p.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.b.Addr()), kgo.ConsumeTopics(name+"-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(cl.Close)
	return &outCounter{p: p, name: name, cl: cl, seen: map[string]int{}}
}

// readUntil reads until cond holds.
func (o *outCounter) readUntil(cond func() bool) {
	o.p.t.Helper()
	for !cond() {
		if o.p.ctx.Err() != nil {
			o.p.t.Fatalf("timed out: %d inputs of %s reached out (%d results)", len(o.seen), o.name, o.total)
		}
		pctx, cancel := context.WithTimeout(o.p.ctx, 200*time.Millisecond)
		fs := o.cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			o.total++
			for _, id := range inputs(o.p.t, envelope.FromRecord(r).Event) {
				o.seen[id]++
			}
		})
	}
}

// allSeen reports whether every input name-0..name-<n-1> has a result.
func (o *outCounter) allSeen(n int) bool {
	for i := range n {
		if o.seen[fmt.Sprintf("%s-%d", o.name, i)] == 0 {
			return false
		}
	}
	return true
}

// childNames returns the command names of pid's live children.
func childNames(t *testing.T, pid int) []string {
	t.Helper()
	var names []string
	for _, c := range kittest.Children(pid) {
		names = append(names, c.Comm)
	}
	return names
}

// groupMembers returns how many members the consumer group has.
func (p *poolRig) groupMembers(group string) (int, error) {
	gs, err := kadm.NewClient(p.cl).DescribeGroups(p.ctx, group)
	if err != nil {
		return 0, err
	}
	g, ok := gs[group]
	if !ok {
		return 0, fmt.Errorf("group %s not described", group)
	}
	if g.Err != nil {
		return 0, g.Err
	}
	return len(g.Members), nil
}

const echoHandler = "exports.echo = (event) => ({ n: event.data });\n"

// TestPoolRunsSharedDeployments runs two shared node deployments as
// members of one pool: both become ready and process their streams with
// one node host under the pool; deleting one member's file drains it
// (exit file, group left) while the other goes on.
func TestPoolRunsSharedDeployments(t *testing.T) {
	const n = 300
	p := newPoolRig(t, 4*time.Minute)
	codeA := p.deployment("pa", sharedDescriptor("pa", "shared"), echoHandler)
	codeB := p.deployment("pb", sharedDescriptor("pb", "shared"), echoHandler)
	p.produce("pa", 0, n)
	p.produce("pb", 0, n)
	pool := p.startPool()

	// pa-1 learns its broker from its Env only: a member's Env is its
	// environment (the pool's own has no BUTTER_BROKERS, so it would dial
	// the default localhost:9092).
	readyA := p.addMember("pa-1", codeA, map[string]string{"BUTTER_BROKERS": p.b.Addr()})
	readyB := p.addMember("pb-1", codeB, nil)
	p.waitReady("pa-1", readyA)
	p.waitReady("pb-1", readyB)

	outA, outB := p.counter("pa"), p.counter("pb")
	outA.readUntil(func() bool { return outA.allSeen(n) })
	outB.readUntil(func() bool { return outB.allSeen(n) })

	kids := childNames(t, pool.Process.Pid)
	nodes := 0
	for _, k := range kids {
		if k == "node" {
			nodes++
		}
	}
	if nodes != 1 || len(kids) != 1 {
		t.Errorf("pool's children %v, want one node host", kids)
	}

	// One /metrics for both, each member's series labelled by instance.
	rf, err := readJSON[control.ReadyFile](filepath.Join(p.dir, control.PoolReadyFile))
	if err != nil {
		t.Fatal(err)
	}
	metrics := get(t, "http://"+rf.Admin+"/metrics")
	for _, id := range []string{"pa-1", "pb-1"} {
		if !strings.Contains(metrics, `butter_fnbox_events_processed_total{deployment="`+id[:2]+`",function="echo",instance="`+id+`"}`) {
			t.Errorf("/metrics has no processed count of %s:\n%s", id, metrics)
		}
	}
	if code := getStatus(t, "http://"+rf.Admin+"/readyz"); code != http.StatusOK {
		t.Errorf("pool /readyz %d, want 200", code)
	}

	// Rewriting a running member's file does not restart it: its ready
	// file stays as written (a start removes it first).
	readyInfo, err := os.Stat(readyB)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p.member("pb-1", control.PoolMemberExt))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.member("pb-1", control.PoolMemberExt), raw, 0o644); err != nil {
		t.Fatal(err)
	}

	// Deleting pa-1's file stops it: it drains, leaves its group and says
	// so in its exit file; its ready file goes first.
	if err := os.Remove(p.member("pa-1", control.PoolMemberExt)); err != nil {
		t.Fatal(err)
	}
	if e := p.waitExit("pa-1"); e != (control.PoolExit{}) {
		t.Errorf("exit of a deleted member %+v, want empty", e)
	}
	if _, err := os.Stat(readyA); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file of the stopped member: %v, want it gone", err)
	}
	kittest.Eventually(t, "pa's group left", func() error {
		members, err := p.groupMembers(topics.Namespace("").ConsumerGroup("pa", "echo"))
		if err == nil && members != 0 {
			err = fmt.Errorf("%d members", members)
		}
		return err
	})
	if metrics := get(t, "http://"+rf.Admin+"/metrics"); strings.Contains(metrics, `instance="pa-1"`) {
		t.Error("/metrics still serves the stopped member's series")
	}
	// Its spans were flushed as it stopped, through its own tracer
	// provider (the pool installs no global one).
	traces, err := kgo.NewClient(kgo.SeedBrokers(p.b.Addr()), kgo.ConsumeTopics(topics.Traces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer traces.Close()
	kittest.Eventually(t, "pa-1's spans in "+topics.Traces, func() error {
		pctx, cancel := context.WithTimeout(p.ctx, 200*time.Millisecond)
		defer cancel()
		found := false
		traces.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			found = found || strings.Contains(string(r.Value), "pa.echo") || strings.Contains(string(r.Value), "pa-in")
		})
		if !found {
			return errors.New("no span of pa yet")
		}
		return nil
	})

	// pb-1 goes on, in the same host, never restarted.
	p.produce("pb", n, n)
	outB.readUntil(func() bool { return outB.allSeen(2 * n) })
	if info, err := os.Stat(readyB); err != nil || !info.ModTime().Equal(readyInfo.ModTime()) {
		t.Errorf("pb-1's ready file after its member file was rewritten: %v, %v; want it untouched", info, err)
	}
	if kids := childNames(t, pool.Process.Pid); len(kids) != 1 {
		t.Errorf("pool's children after a member left %v, want the one node host", kids)
	}

	// SIGTERM drains the rest; a member stopped with the pool gets no exit
	// file: the next pool resumes it.
	if err := pool.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := pool.Wait(); err != nil {
		t.Errorf("pool after SIGTERM: %v, want a clean exit", err)
	}
	if _, err := os.Stat(p.member("pb-1", control.PoolExitExt)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("exit file of a member stopped with its pool: %v, want none", err)
	}
	for _, f := range []string{readyB, filepath.Join(p.dir, control.PoolReadyFile)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the pool stopped: %v, want it gone", f, err)
		}
	}
	members, err := p.groupMembers(topics.Namespace("").ConsumerGroup("pb", "echo"))
	if err != nil || members != 0 {
		t.Errorf("pb's group after SIGTERM: %d members, %v; want it left", members, err)
	}
}

// TestPoolKill9LosesNothing kills the pool process with SIGKILL while
// both its members consume, and starts a pool again on the same
// directory: it resumes both, and every input reaches out.
func TestPoolKill9LosesNothing(t *testing.T) {
	const n = 5000
	p := newPoolRig(t, 8*time.Minute)
	codeA := p.deployment("ka", sharedDescriptor("ka", "shared"), echoHandler)
	codeB := p.deployment("kb", sharedDescriptor("kb", "shared"), echoHandler)
	p.produce("ka", 0, n)
	p.produce("kb", 0, n)
	first := p.startPool("--pool-platform", "node")
	readyA := p.addMember("ka-1", codeA, nil)
	readyB := p.addMember("kb-1", codeB, nil)

	outA, outB := p.counter("ka"), p.counter("kb")
	outA.readUntil(func() bool { return outA.total >= n/4 })
	outB.readUntil(func() bool { return outB.total >= 1 })
	hosts := kittest.Children(first.Process.Pid)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	// The host dies with its pool: a new pool must not run beside it.
	kittest.Eventually(t, "the killed pool's node host gone", func() error {
		for _, h := range hosts {
			if kittest.Alive(h.PID) {
				return fmt.Errorf("host %d still runs", h.PID)
			}
		}
		return nil
	})
	t.Logf("killed after %d and %d results", outA.total, outB.total)

	p.startPool("--pool-platform", "node")
	p.waitReady("ka-1", readyA)
	p.waitReady("kb-1", readyB)
	outA.readUntil(func() bool { return outA.allSeen(n) })
	outB.readUntil(func() bool { return outB.allSeen(n) })
	for _, o := range []*outCounter{outA, outB} {
		for id := range o.seen {
			if !strings.HasPrefix(id, o.name+"-") {
				t.Errorf("%s-out has a result for %q", o.name, id)
			}
		}
		t.Logf("%s: all %d inputs reached out; %d results (%d redelivered)", o.name, n, o.total, o.total-n)
	}
	for _, id := range []string{"ka-1", "kb-1"} {
		if _, err := os.Stat(p.member(id, control.PoolExitExt)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("exit file of %s, resumed after the kill: %v, want none", id, err)
		}
	}
}

// TestPoolRefusesMembers: a member whose deployment is not shared, or of
// another platform, gets an exit file saying why; one whose code fails to
// load gets LoadError, and neither stops the pool or its other members.
func TestPoolRefusesMembers(t *testing.T) {
	p := newPoolRig(t, 3*time.Minute)
	lone := p.deployment("lone", sharedDescriptor("lone", ""), echoHandler)
	broken := p.deployment("broken", sharedDescriptor("broken", "shared"), "throw new Error('broken at load');\n")
	good := p.deployment("good", sharedDescriptor("good", "shared"), echoHandler)
	py := p.deployment("py", strings.Replace(sharedDescriptor("py", "shared"), "platform: node", "platform: python", 1)+"", "")
	p.startPool("--pool-platform", "node")

	p.addMember("lone-1", lone, nil)
	if e := p.waitExit("lone-1"); !strings.Contains(e.Error, "isolation: shared") || e.LoadError {
		t.Errorf("exit of a member without isolation: shared: %+v", e)
	}
	p.addMember("py-1", py, nil)
	if e := p.waitExit("py-1"); !strings.Contains(e.Error, "serves node") || e.LoadError {
		t.Errorf("exit of a python member of a node pool: %+v", e)
	}
	p.addMember("broken-1", broken, nil)
	if e := p.waitExit("broken-1"); !e.LoadError || !strings.Contains(e.Error, "broken at load") {
		t.Errorf("exit of a member whose code does not load: %+v, want LoadError and the cause", e)
	}

	// A member of a healthy deployment still runs beside them, and the
	// refused ones are not retried while their exit files stay.
	ready := p.addMember("good-1", good, nil)
	p.waitReady("good-1", ready)
	p.produce("good", 0, 10)
	out := p.counter("good")
	out.readUntil(func() bool { return out.allSeen(10) })
	for _, id := range []string{"lone-1", "py-1", "broken-1"} {
		if _, err := os.Stat(p.member(id, control.PoolExitExt)); err != nil {
			t.Errorf("exit file of %s: %v", id, err)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPoolOrphanExitsWhenBrokerGone: a pool watches its broker through its
// members' logins, not its own flags (the deployer gives it none): with
// its own --brokers pointing nowhere it outlives its grace while its
// member's broker answers, and exits with ExitCodeOrphan once that broker
// is gone, writing no exit file (the members end with it).
func TestPoolOrphanExitsWhenBrokerGone(t *testing.T) {
	p := newPoolRig(t, 2*time.Minute)
	code := p.deployment("oa", sharedDescriptor("oa", "shared"), echoHandler)
	pool := p.startPool("--brokers", "127.0.0.1:1", "--orphan-grace", "1s")
	p.waitReady("oa-1", p.addMember("oa-1", code, nil))
	exited := make(chan error, 1)
	go func() { exited <- pool.Wait() }()

	// Three graces with the pool's own broker unreachable: it stays.
	out := p.counter("oa")
	survive := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(survive); i++ {
		select {
		case err := <-exited:
			t.Fatalf("the pool exited with its member's broker up: %v", err)
		default:
		}
		p.produce("oa", i, 1)
		out.readUntil(func() bool { return out.seen[fmt.Sprintf("oa-%d", i)] > 0 })
	}

	p.b.Close()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != control.ExitCodeOrphan {
			t.Fatalf("pool exit %v, want status %d", err, control.ExitCodeOrphan)
		}
	case <-p.ctx.Done():
		t.Fatal("the pool did not exit after its broker closed")
	}
	if _, err := os.Stat(p.member("oa-1", control.PoolExitExt)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("exit file of a member ended with its orphaned pool: %v, want none", err)
	}
}

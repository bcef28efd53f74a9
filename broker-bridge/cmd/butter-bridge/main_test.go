package main

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// bin and vcsim are built by TestMain: the kill test runs them as
// processes, so a SIGKILL is a real one.
var bin, vcsim string

func TestMain(m *testing.M) {
	kittest.MainWithBinaries(m,
		kittest.Binary{Pkg: ".", Name: "butter-bridge", Path: &bin},
		kittest.Binary{Pkg: "../vcsim", Name: "vcsim", Path: &vcsim})
}

// proc is a process whose first stdout line with prefix gives its URL.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *kittest.Buffer
	done chan struct{}
}

func start(t *testing.T, prefix, path string, args ...string) *proc {
	t.Helper()
	p := &proc{logs: &kittest.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stderr = p.logs
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				urls <- strings.Fields(rest)[0]
			}
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("logs of %s:\n%s", filepath.Base(path), p.logs.String())
		}
	})
	select {
	case p.url = <-urls:
	case <-p.done:
		t.Fatalf("%s exited:\n%s", path, p.logs.String())
	case <-time.After(kittest.Timeout):
		t.Fatalf("%s did not start:\n%s", path, p.logs.String())
	}
	return p
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill() // SIGKILL
	<-p.done
}

// TestKill posts vCenter events to a vcsim process while the bridge
// process reading it is SIGKILLed 3 times: every event is on the stream
// exactly once (read_committed), in key order per entity.
func TestKill(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := b.Kafka()
	if err := b.CreateTopic(control.DeploymentsSpec()); err != nil {
		t.Fatal(err)
	}
	sim := start(t, "vcsim on ", vcsim, "-addr", "127.0.0.1:0")
	vu, err := url.Parse(sim.url)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := vu.User.Password()
	plain := *vu
	plain.User = nil
	desc := fmt.Sprintf("name: vc\nplatform: node\nsecretEnv: {VC_PASSWORD: %q}\nfunctions: [{fn: a.js:f, bindings: {streams: [vc-events]}}]\n"+
		"bridges: [{name: vcenter, stream: vc-events, source: {vcenter: {url: %q, insecure: true, username: %q, passwordFrom: VC_PASSWORD, pageSize: 100, poll: 20ms}}}]\n",
		pass, plain.String(), vu.User.Username())
	cl, err := kcfg.NewClient(kgo.ProducerBatchMaxBytes(control.MaxRecordBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec, _ := control.DeploymentRecord(topics.Deployments, control.Deployment{Name: "vc", Version: "1", Descriptor: desc, Created: time.Now(), Updated: time.Now()})
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	bridgeArgs := []string{"--addr", "127.0.0.1:0", "--brokers", b.Addr(), "--secret-key-file", filepath.Join(t.TempDir(), "none"), "--retry", "100ms"}
	bridge := start(t, "bridge on ", bin, bridgeArgs...)

	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, vu, true)
	if err != nil {
		t.Fatal(err)
	}
	vms, err := find.NewFinder(c.Client).VirtualMachineList(ctx, "*")
	if err != nil || len(vms) < 2 {
		t.Fatalf("vms: %v %v", vms, err)
	}
	em := event.NewManager(c.Client)
	postTo := func(vm *object.VirtualMachine, msg string) error {
		return em.PostEvent(ctx, &types.GeneralUserEvent{GeneralEvent: types.GeneralEvent{Event: types.Event{Vm: &types.VmEventArgument{Vm: vm.Reference()}}, Message: msg}})
	}
	rd, err := kcfg.NewClient(kgo.ConsumeTopics("vc-events"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	// A reader follows the stream (read_committed) for the whole test.
	var mu sync.Mutex
	seen := map[int]int{}    // event key → times on the stream
	last := map[string]int{} // record key (entity) → last event key
	msgs := map[string]bool{}
	var stored atomic.Int64 // distinct "m<i>" messages on the stream
	rctx, stopReading := context.WithCancel(ctx)
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		for rctx.Err() == nil {
			fs := rd.PollFetches(rctx)
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				e := envelope.FromRecord(r).Event
				k, _ := strconv.Atoi(e.ID())
				seen[k]++
				if k <= last[string(r.Key)] {
					t.Errorf("entity %s: event %d after %d", r.Key, k, last[string(r.Key)])
				}
				last[string(r.Key)] = k
				var data struct {
					Message string `json:"message"`
				}
				_ = e.DataAs(&data)
				if strings.HasPrefix(data.Message, "m") && !msgs[data.Message] {
					stored.Add(1)
				}
				msgs[data.Message] = true
			})
			mu.Unlock()
		}
	}()
	defer func() { stopReading(); <-reading }()
	// The first start reads from the vCenter's now: wait until it reads.
	kittest.Eventually(t, "the bridge reads", func() error {
		if err := postTo(vms[0], "probe"); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !msgs["probe"] {
			return fmt.Errorf("nothing on the stream")
		}
		return nil
	})

	// Post 10,000 events as fast as vcsim takes them and kill the bridge
	// 3 times. govmomi's simulator keeps only the last 1,000 events
	// (simulator/history_collector.go: maxPageSize = 1000, an unexported
	// constant that also prunes the history), where a real vCenter keeps
	// its event history in its database; so the poster stays at most
	// window events ahead of the stream, and waits while the bridge is
	// down, instead of letting vcsim drop events no bridge could read.
	const total, window = 10000, 600
	var posted atomic.Int64
	postDone := make(chan error, 1)
	go func() {
		for i := range total {
			_ = kit.Poll(ctx, 5*time.Millisecond, func() bool { return posted.Load()-stored.Load() < window })
			if err := postTo(vms[i%len(vms)], fmt.Sprint("m", i)); err != nil {
				postDone <- err
				return
			}
			posted.Add(1)
		}
		postDone <- nil
	}()
	began := time.Now()
	for k := 1; k <= 3; k++ {
		kittest.Eventually(t, "events posted", func() error {
			if n := posted.Load(); n < int64(k*total/4) {
				return fmt.Errorf("%d posted", n)
			}
			return nil
		})
		bridge.kill()
		t.Logf("kill %d after %d events posted, %d on the stream", k, posted.Load(), stored.Load())
		bridge = start(t, "bridge on ", bin, bridgeArgs...)
	}
	if err := <-postDone; err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "every event on the stream", func() error {
		if n := stored.Load(); n < total {
			return fmt.Errorf("%d of %d", n, total)
		}
		return nil
	})
	t.Logf("%d events posted and on the stream in %s", total, time.Since(began).Round(time.Millisecond))
	stopReading()
	<-reading
	mu.Lock()
	defer mu.Unlock()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("event %d on the stream %d times", k, n)
		}
	}
}

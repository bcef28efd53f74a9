package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// bin is the fnbox binary under test, built once for every test.
var bin string

func TestMain(m *testing.M) {
	kittest.MainWithBinaries(m, kittest.Binary{Pkg: ".", Name: "fnbox", Path: &bin})
}

const killDescriptor = `
name: kill
platform: exec
functions:
  - fn: cat
    name: echo
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {ordering: none}
    scale: {concurrency: 16}
`

// killRig is a broker holding n input events and a way to start fnbox
// processes on them, for the kill -9 tests.
type killRig struct {
	t    *testing.T
	b    *broker.Broker
	dir  string
	ctx  context.Context
	n    int
	out  *kgo.Client // reads out from the start
	seen map[string]int
	// total counts results read from out (seen counts the inputs they
	// answer), marks the endMark records.
	total, marks int
	ready        map[*exec.Cmd]string // each started fnbox's ready file
}

// endMark is the value of the records the exactly-once test appends to out
// after fnbox exited.
const endMark = "end-of-test"

// newKillRig starts a broker with streams in, out and the dead-letter
// stream, 4 partitions each, writes n events k-0..k-<n-1> to in and the
// descriptor to a code directory. out is read with read_committed when
// committed is set. Waits are bounded by timeout.
func newKillRig(t *testing.T, descriptor, dlq string, n int, committed bool, timeout time.Duration) *killRig {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []string{"in", "out", dlq} {
		if err := b.CreateTopic(topics.Spec{Name: s, Partitions: 4}); err != nil {
			t.Fatal(err)
		}
	}
	cl := outReader(t, b.Addr(), committed)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "butter.yaml"), []byte(descriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &killRig{t: t, b: b, dir: dir, ctx: ctx, n: n, out: cl, seen: map[string]int{}, ready: map[*exec.Cmd]string{}}
	k.produce(n)
	return k
}

// produce writes n events k-0..k-<n-1> to in.
func (k *killRig) produce(n int) {
	k.t.Helper()
	var recs []*kgo.Record
	for i := range n {
		e := envelope.New("/test", "t")
		e.SetID(fmt.Sprintf("k-%d", i))
		_ = e.SetData(event.ApplicationJSON, i)
		r, _ := envelope.ToRecord("in", e)
		recs = append(recs, r)
	}
	if err := k.out.ProduceSync(k.ctx, recs...).FirstErr(); err != nil {
		k.t.Fatal(err)
	}
}

// outReader is a client reading out from the start.
func outReader(t *testing.T, addr string, committed bool) *kgo.Client {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addr),
		kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// newKillReader is a second reader of k's out, with its own counts.
func newKillReader(t *testing.T, k *killRig, committed bool) *killRig {
	t.Helper()
	r := *k
	r.out, r.seen, r.total, r.marks = outReader(t, k.b.Addr(), committed), map[string]int{}, 0, 0
	return &r
}

// start starts an fnbox process as instance, with extra flags.
func (k *killRig) start(instance string, extra ...string) *exec.Cmd {
	k.t.Helper()
	ready := filepath.Join(k.t.TempDir(), "ready")
	cmd := exec.Command(bin, append([]string{"--code", k.dir, "--brokers", k.b.Addr(), "--instance", instance, "--log-level", "warn",
		"--" + control.ReadyFileFlag, ready}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.ready[cmd] = ready
	k.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// readUntil reads out, counting results by the input they answer (their
// subject), until cond holds.
func (k *killRig) readUntil(cond func() bool) {
	k.t.Helper()
	for !cond() {
		if k.ctx.Err() != nil {
			k.t.Fatalf("timed out: %d of %d inputs reached out (%d results)", len(k.seen), k.n, k.total)
		}
		pctx, pcancel := context.WithTimeout(k.ctx, 200*time.Millisecond)
		fs := k.out.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == endMark {
				k.marks++
				return
			}
			k.total++
			for _, id := range inputs(k.t, envelope.FromRecord(r).Event) {
				k.seen[id]++
			}
		})
	}
}

// inputs returns the ids of the inputs a result answers: its subject, or
// every id of a batch.
func inputs(t *testing.T, e event.Event) []string {
	t.Helper()
	list, ok := e.Extensions()[obs.ExtBatchIDs].(string)
	if !ok {
		return []string{e.Subject()}
	}
	var ids []string
	if err := json.Unmarshal([]byte(list), &ids); err != nil {
		t.Fatalf("result %s: %s: %v", e.ID(), obs.ExtBatchIDs, err)
	}
	return ids
}

// kill sends SIGKILL to cmd and reaps it.
func (k *killRig) kill(cmd *exec.Cmd) {
	k.t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		k.t.Fatal(err)
	}
	_ = cmd.Wait()
}

// stop sends SIGTERM to cmd and expects a clean exit.
func (k *killRig) stop(cmd *exec.Cmd) {
	k.t.Helper()
	// A SIGTERM before fnbox set up its signal handling (a moment after
	// exec) kills it outright: stop an instance once it is ready.
	kittest.Eventually(k.t, "fnbox ready before it is stopped", func() error {
		_, err := os.Stat(k.ready[cmd])
		return err
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		k.t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		k.t.Errorf("fnbox after SIGTERM: %v, want a clean exit", err)
	}
}

// TestKill9LosesNothing kills a real fnbox process with SIGKILL in the middle
// of a stream and restarts it: every input must reach out at least once.
func TestKill9LosesNothing(t *testing.T) {
	const n = 20000
	k := newKillRig(t, killDescriptor, "kill-echo-dlq", n, false, 10*time.Minute)

	first := k.start("kill-1")
	k.readUntil(func() bool { return k.total >= n/4 })
	k.kill(first)
	t.Logf("killed after %d results", k.total)

	second := k.start("kill-1")
	k.readUntil(func() bool { return len(k.seen) == n })
	t.Logf("all %d inputs reached out; %d results in all (%d redelivered)", n, k.total, k.total-n)
	k.stop(second)
}

const latestDescriptor = `
name: latest
platform: exec
functions:
  - fn: cat
    name: echo
    bindings:
      streams: [in]
      out: out
`

// TestKill9BeforeFirstCommit kills fnbox, bound with the default offset
// latest, before its group ever committed: the restarted fnbox must go on
// from where the first one started, not from a later end of the stream,
// which would skip every event in between.
func TestKill9BeforeFirstCommit(t *testing.T) {
	const n = 2000
	k := newKillRig(t, latestDescriptor, "latest-unused", 0, false, 5*time.Minute)
	k.n = n
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	first := k.start("latest-1", "--admin", admin)
	// Ready once the group joined and latest was resolved: what is written
	// from now on is the function's to process.
	kittest.WaitReady(t, "fnbox", "http://"+admin)
	k.produce(n)
	// A poll of 500 events, one process each, is seconds of work: the
	// first result comes long before the poll's commit.
	k.readUntil(func() bool { return k.total >= 1 })
	k.kill(first)
	t.Logf("killed after %d results", k.total)

	second := k.start("latest-1")
	k.readUntil(func() bool { return len(k.seen) == n })
	t.Logf("all %d inputs reached out after the restart", n)
	k.stop(second)
}

const eosDescriptor = `
name: eos
platform: exec
functions:
  - fn: cat
    name: echo
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {guarantee: exactly-once, batch: 10}
`

// TestKill9ExactlyOnce kills a real exactly-once fnbox process with SIGKILL
// in the middle of a stream, after some of its transactions committed and
// most likely with one open, and restarts it as the same instance (so with
// the same transactional id, which fences the dead one and aborts its open
// transaction). Read with read_committed, every input must then be answered
// by exactly one result, and out hold nothing else. The function takes
// batches of 10: a cat process per event would make the test take minutes
// on a busy machine, and the transactions (one per poll) are the same.
func TestKill9ExactlyOnce(t *testing.T) {
	const n = 20000
	k := newKillRig(t, eosDescriptor, "eos-echo-dlq", n, true, 10*time.Minute)

	// The kill point is seen with read_uncommitted: results of the open
	// transaction show there before it commits, so the kill most likely
	// catches one open.
	raw := newKillReader(t, k, false)
	first := k.start("eos-1")
	raw.readUntil(func() bool { return len(raw.seen) >= n/4 })
	k.kill(first)
	killedAt := len(raw.seen)

	second := k.start("eos-1")
	k.readUntil(func() bool { return len(k.seen) >= n })
	k.stop(second)

	// Everything in out before a marker written now, after fnbox exited,
	// is decided (committed or aborted): reading up to the marker of every
	// partition reads all of it.
	mark := make([]*kgo.Record, 4)
	for p := range mark {
		mark[p] = &kgo.Record{Topic: "out", Partition: int32(p), Value: []byte(endMark)}
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(k.b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	if err := pcl.ProduceSync(k.ctx, mark...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	k.readUntil(func() bool { return k.marks == len(mark) })

	// What read_uncommitted sees beyond that is what the fencing aborted.
	raw.readUntil(func() bool { return raw.marks == len(mark) })

	dups := 0
	for id, c := range k.seen {
		if !strings.HasPrefix(id, "k-") {
			t.Errorf("unexpected result for %q", id)
		}
		if c != 1 {
			dups += c - 1
			if dups < 10 {
				t.Errorf("%s has %d results, want exactly 1", id, c)
			}
		}
	}
	t.Logf("killed after %d of %d inputs had a result (committed or not); after the restart %d committed results answer %d inputs, %d duplicates; %d results aborted",
		killedAt, n, k.total, len(k.seen), dups, raw.total-k.total)
	if len(k.seen) != n || dups != 0 {
		t.Fatalf("results answer %d distinct inputs with %d duplicates, want each of %d exactly once", len(k.seen), dups, n)
	}
}

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/internal/engine"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
)

// Crash recovery bounds (docs/delivery.md): after the last of a series of
// kills, a restarted instance has every result visible to read_committed
// readers within the session timeout (the dead members' leave), plus the
// transaction timeout (a transaction no restart fenced), plus 30 s for the
// work itself on a busy machine.
const (
	sessionTimeout = 10 * time.Second
	recoveryBound  = sessionTimeout + engine.DefaultTxnTimeout + 30*time.Second
)

// freeAddr is a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// status is the HTTP status of GET url, 0 when it cannot be had.
func status(url string) int {
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// killStarting starts an instance and SIGKILLs it while it starts: once
// its admin server answers, which is before it joins its groups, so in
// most runs before /readyz says ready. It reports whether it was killed
// before ready.
func (k *killRig) killStarting(instance string, extra ...string) bool {
	k.t.Helper()
	admin := freeAddr(k.t)
	cmd := k.start(instance, append([]string{"--admin", admin}, extra...)...)
	k.eventually("fnbox admin up", func() error {
		if status("http://"+admin+"/livez") != http.StatusOK {
			return fmt.Errorf("not up")
		}
		return nil
	})
	before := status("http://"+admin+"/readyz") != http.StatusOK
	k.kill(cmd)
	return before
}

// eventually polls cond within the rig's deadline.
func (k *killRig) eventually(what string, cond func() error) {
	k.t.Helper()
	for {
		err := cond()
		if err == nil {
			return
		}
		if k.ctx.Err() != nil {
			k.t.Fatalf("%s: %v", what, err)
		}
		select {
		case <-k.ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readWithin is readUntil that fails once by has passed.
func (k *killRig) readWithin(by time.Time, what string, cond func() bool) {
	k.t.Helper()
	ctx, cancel := context.WithDeadline(k.ctx, by)
	defer cancel()
	for !cond() {
		if ctx.Err() != nil {
			k.t.Fatalf("%s: not within the bound: %d of %d inputs have a result (%d results)", what, len(k.seen), k.n, k.total)
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
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

// markEnd writes endMark to every partition of out and reads k up to
// them: everything before is decided (committed or aborted) once the
// writers are gone.
func (k *killRig) markEnd(readers ...*killRig) {
	k.t.Helper()
	mark := make([]*kgo.Record, 4)
	for p := range mark {
		mark[p] = &kgo.Record{Topic: "out", Partition: int32(p), Value: []byte(endMark)}
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(k.b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		k.t.Fatal(err)
	}
	defer pcl.Close()
	if err := pcl.ProduceSync(k.ctx, mark...).FirstErr(); err != nil {
		k.t.Fatal(err)
	}
	for _, r := range append([]*killRig{k}, readers...) {
		r.readUntil(func() bool { return r.marks == len(mark) })
	}
}

// duplicates counts results beyond the first for each input.
func (k *killRig) duplicates() int {
	dups := 0
	for id, c := range k.seen {
		if !strings.HasPrefix(id, "k-") {
			k.t.Errorf("unexpected result for %q", id)
		}
		dups += c - 1
	}
	return dups
}

type killAt int

const (
	working  killAt = iota // once it has written results
	starting               // before it is ready
)

// nodeEcho is a node function answering each event with its data after
// delay ms: a runtime host that costs little CPU, so that the kill tests
// measure recovery rather than how fast a busy machine spawns processes.
func nodeEcho(delay int) string {
	return `exports.echo = (event) => new Promise((resolve) => setTimeout(() => resolve({ n: event.data }), ` + strconv.Itoa(delay) + `));
`
}

// nodeDescriptor is the descriptor of the node echo under guarantee.
func nodeDescriptor(name, guarantee string) string {
	return `
name: ` + name + `
platform: node
functions:
  - fn: handler.js:echo
    name: echo
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {guarantee: ` + guarantee + `}
`
}

// newNodeRig is newKillRig for the node echo of nodeDescriptor.
func newNodeRig(t *testing.T, name, guarantee string, delay, n int, committed bool) *killRig {
	t.Helper()
	k := newKillRig(t, nodeDescriptor(name, guarantee), name+"-echo-dlq", n, committed, 8*time.Minute)
	if err := os.WriteFile(filepath.Join(k.dir, "handler.js"), []byte(nodeEcho(delay)), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKillRepeatedly kills an instance several times in a row with
// SIGKILL, some while working and some while starting, each restarted in
// the same fencing slot as the deployer does, then starts it once more.
// Within recoveryBound of the last kill every input has its result, seen
// by a read_committed reader; under exactly-once each exactly once.
func TestKillRepeatedly(t *testing.T) {
	cases := []struct {
		name, guarantee string
		kills           []killAt
	}{
		{"exactly-once/3", "exactly-once", []killAt{working, starting, starting}},
		{"exactly-once/5", "exactly-once", []killAt{working, starting, working, starting, starting}},
		{"at-least-once/3", "at-least-once", []killAt{working, starting, starting}},
		{"at-least-once/5", "at-least-once", []killAt{working, starting, working, starting, starting}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const n = 3000
			k := newNodeRig(t, "rep", c.guarantee, 2, n, true)
			raw := newKillReader(t, k, false) // sees open transactions: kill points
			slot := []string{"--" + control.SlotFlag, "0"}
			beforeReady := 0
			for _, at := range c.kills {
				switch at {
				case working:
					cmd := k.start("crash-1", slot...)
					target := min(len(raw.seen)+n/10, n)
					raw.readUntil(func() bool { return len(raw.seen) >= target })
					k.kill(cmd)
				case starting:
					if k.killStarting("crash-1", slot...) {
						beforeReady++
					}
				}
			}
			lastKill := time.Now()
			final := k.start("crash-1", slot...)
			k.readWithin(lastKill.Add(recoveryBound), "every result visible to read_committed", func() bool { return len(k.seen) == n })
			took := time.Since(lastKill)
			k.stop(final)
			k.markEnd(raw)
			dups := k.duplicates()
			t.Logf("%d kills (%d before ready): all %d results visible to read_committed %s after the last kill (bound %s); %d results, %d duplicates, %d seen by read_uncommitted",
				len(c.kills), beforeReady, n, took.Round(100*time.Millisecond), recoveryBound, k.total, dups, raw.total)
			if c.guarantee == "exactly-once" && dups != 0 {
				t.Fatalf("exactly-once: %d duplicate results read_committed", dups)
			}
		})
	}
}

// lag is how many events of in the group has not committed.
func lag(ctx context.Context, t *testing.T, adm *kadm.Client, group string) (int64, error) {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, "in")
	if err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	var total int64
	ends.Each(func(e kadm.ListedOffset) {
		at := int64(0)
		if o, ok := committed.Lookup(e.Topic, e.Partition); ok && o.At >= 0 {
			at = o.At
		}
		total += e.Offset - at
	})
	return total, nil
}

// TestKill9GroupRecovers is the stuck-group run of issue 8: two instances
// share 10,000 events, one is killed with SIGKILL 4 times 5 s apart (and
// restarted each time, as the deployer would). Within the session timeout
// + 30 s of the last kill the group's lag is 0 and every input has its
// result: dead members do not hold their partitions.
func TestKill9GroupRecovers(t *testing.T) {
	t.Parallel()
	const n = 10000
	k := newNodeRig(t, "grp", "at-least-once", 1, n, false)
	stays := k.start("stays")
	victim := k.start("victim")
	for i := range 4 {
		next := time.Now().Add(5 * time.Second)
		k.readUntil(func() bool { return !time.Now().Before(next) || len(k.seen) == n })
		k.kill(victim)
		if i < 3 {
			victim = k.start("victim")
		}
	}
	lastKill := time.Now()
	victim = k.start("victim")
	adm := kadm.NewClient(k.out)
	var l int64
	by := lastKill.Add(sessionTimeout + 30*time.Second)
	lastLog := time.Now()
	for {
		var err error
		l, err = lag(k.ctx, t, adm, "butter.grp.echo")
		if err == nil && l == 0 {
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			t.Logf("%s after the last kill: lag %d (err %v)", time.Since(lastKill).Round(time.Second), l, err)
		}
		if time.Now().After(by) {
			t.Fatalf("group lag %d (err %v) %s after the last kill, want 0 within %s", l, err, time.Since(lastKill).Round(time.Second), sessionTimeout+30*time.Second)
		}
		select {
		case <-k.ctx.Done():
			t.Fatal("timed out")
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("lag 0 %s after the last kill", time.Since(lastKill).Round(100*time.Millisecond))
	k.readUntil(func() bool { return len(k.seen) == n })
	k.stop(victim)
	k.stop(stays)
	t.Logf("all %d inputs have a result; %d results (%d redelivered)", n, k.total, k.total-n)
}

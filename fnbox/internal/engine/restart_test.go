package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/topics"
)

func TestRestartResumesFromCommitted(t *testing.T) {
	e := newEnv(t)
	e.stream("orders", 2)
	e.stream("scored", 2)
	in := events("r", "t", 1000)
	e.produce("orders", 2, in...)
	rec := newRecorder()
	slow := runtime.Funcs{"score": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		time.Sleep(time.Millisecond)
		return echo(rec)(ctx, inv, h)
	}}
	first := e.start(parse(t, basic), slow, func(c *Config) { c.MaxPollRecords = 100 })
	waitFor(t, "300 events processed", func() bool { return rec.total() >= 300 })
	first.shutdown(t)
	c := e.committed(topics.Namespace("").ConsumerGroup("shop", "score"), "orders")
	if c[0]+c[1] < 300 || c[0]+c[1] >= 1000 {
		t.Fatalf("committed %v after a graceful stop, want what was done", c)
	}
	e.start(parse(t, basic), slow)
	got := causes(e.read("scored", 1000, false))
	for _, ev := range in {
		// A graceful stop commits everything done: nothing twice.
		if got[ev.ID()] != 1 {
			t.Fatalf("%s reached out %d times, want 1", ev.ID(), got[ev.ID()])
		}
	}
}

func TestExactlyOnceSurvivesCrash(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 4)
	e.stream("out", 4)
	e.stream("audit", 1)
	const n = 600
	in := events("x", "t", n)
	e.produce("in", 4, in...)
	d := parse(t, `
name: eos
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
      emits: [audit]
    delivery: {guarantee: exactly-once}
`)
	rec := newRecorder()
	crash := make(chan struct{})
	var once sync.Once
	fns := runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		if err := h.Emit(ctx, runtime.Emit{Stream: "audit", Data: []byte(`1`)}); err != nil {
			return runtime.Result{}, err
		}
		if rec.record(inv.Events[0]); rec.total() == n/2 {
			once.Do(func() { close(crash) })
		}
		return runtime.Result{Data: inv.Events[0].Event.Data()}, nil
	}}
	first := e.start(d, fns, func(c *Config) { c.crash = crash; c.MaxPollRecords = 50 })
	<-crash
	first.shutdown(t)
	e.start(d, fns)

	for _, s := range []string{"out", "audit"} {
		got := causes(e.read(s, n, true))
		for _, ev := range in {
			if got[ev.ID()] != 1 {
				t.Fatalf("%s: %s appears %d times, want exactly 1", s, ev.ID(), got[ev.ID()])
			}
		}
	}
	if rec.total() <= n {
		t.Logf("note: the crash redid no work (%d invocations)", rec.total())
	}
}

// TestExactlyOncePollLongerThanTransaction: a poll ends in one transaction,
// and a poll of slow events takes longer than the transaction timeout. The
// transaction is open only while the done poll's outputs are written, so
// the broker never aborts it for the function's slowness, and every event
// is in out once.
func TestExactlyOncePollLongerThanTransaction(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	const n = 20
	in := events("s", "t", n)
	e.produce("in", 1, in...)
	d := parse(t, `
name: eos
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {guarantee: exactly-once}
`)
	rec := newRecorder()
	fns := runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		time.Sleep(150 * time.Millisecond) // the whole poll: 3 s
		rec.record(inv.Events[0])
		return runtime.Result{Data: inv.Events[0].Event.Data()}, nil
	}}
	e.start(d, fns, func(c *Config) { c.TxnTimeout = 2 * time.Second })

	got := causes(e.read("out", n, true))
	for _, ev := range in {
		if got[ev.ID()] != 1 {
			t.Fatalf("%s appears %d times in out, want exactly 1", ev.ID(), got[ev.ID()])
		}
	}
	t.Logf("%d invocations for %d events", rec.total(), n)
}

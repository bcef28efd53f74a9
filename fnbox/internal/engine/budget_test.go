package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
)

// TestAtLeastOncePollBudgetKeepsRetries: an at-least-once poll starts
// invocations for half the rebalance timeout only, so a retry backoff
// longer than that ends the poll (letting a waiting rebalance through)
// and the event is polled again. Its attempt count and backoff go on from
// where they were: it is dead-lettered after delivery.retries like any
// other, not retried forever with a count restarted at every poll, and
// the events after it in its partition wait, in order.
func TestAtLeastOncePollBudgetKeepsRetries(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.stream("budget-f-dlq", 1)
	in := events("b", "t", 5) // b-0 fails every time
	e.produce("in", 1, in...)
	d := parse(t, `
name: budget
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {retries: 3, backoff: 1500ms, maxBackoff: 1500ms, timeout: 5s}
`)
	rec := newRecorder()
	e.start(d, runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		ev := inv.Events[0]
		if rec.record(ev) >= 1 && ev.Event.ID() == "b-0" {
			return runtime.Result{}, errors.New("always fails")
		}
		return runtime.Result{Data: ev.Event.Data()}, nil
	}}, func(c *Config) { c.RebalanceTimeout = 400 * time.Millisecond })

	dlq := e.read("budget-f-dlq", 1, false)
	out := e.read("out", 4, false)
	if got := envelope.Extension(dlq[0].Event, obs.ExtDLQAttempts); dlq[0].Event.ID() != "b-0" || got != "4" {
		t.Fatalf("dead letter %s with %s attempts, want b-0 with 4 (retries go on across polls)", dlq[0].Event.ID(), got)
	}
	if n := rec.count("b-0"); n != 4 {
		t.Fatalf("b-0 invoked %d times, want 4", n)
	}
	for i, d := range out {
		if want := in[i+1].ID(); d.Event.Subject() != want {
			t.Fatalf("result %d answers %s, want %s: order kept behind the retried event", i, d.Event.Subject(), want)
		}
	}
}

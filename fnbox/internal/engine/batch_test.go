package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// invocations records the events of every invocation, safe for
// concurrent use.
type invocations struct {
	mu    sync.Mutex
	calls [][]envelope.Delivery
}

func (iv *invocations) record(inv runtime.Invocation) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	iv.calls = append(iv.calls, slices.Clone(inv.Events))
}

func (iv *invocations) snapshot() [][]envelope.Delivery {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return slices.Clone(iv.calls)
}

// largest is the most events one invocation carried so far.
func (iv *invocations) largest() int {
	n := 0
	for _, c := range iv.snapshot() {
		n = max(n, len(c))
	}
	return n
}

// batchEcho returns, for a batch, the number of its events.
func batchEcho(iv *invocations) runtime.Handler {
	return func(_ context.Context, inv runtime.Invocation, _ runtime.Host) (runtime.Result, error) {
		iv.record(inv)
		return runtime.Result{Data: fmt.Appendf(nil, "%d", len(inv.Events))}, nil
	}
}

// checkBatches checks that every invocation carried 1..size events of one
// partition in offset order, at consecutive offsets when nothing was
// filtered out or expired (gaps), and returns how often each event id was
// invoked.
func checkBatches(t *testing.T, calls [][]envelope.Delivery, size int, gaps bool) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, c := range calls {
		if len(c) == 0 || len(c) > size {
			t.Fatalf("invocation with %d events, want 1..%d", len(c), size)
		}
		for i, d := range c {
			seen[d.Event.ID()]++
			if i > 0 && (d.Partition != c[0].Partition || d.Offset <= c[i-1].Offset || !gaps && d.Offset != c[i-1].Offset+1) {
				t.Fatalf("invocation holds %d/%d after %d/%d: want following offsets of one partition",
					d.Partition, d.Offset, c[i-1].Partition, c[i-1].Offset)
			}
		}
	}
	return seen
}

// TestBatchGroupsEvents runs 1,000 events with delivery.batch 100 under
// each guarantee and ordering: every event is in exactly one invocation,
// no invocation holds more than 100, each invocation writes one result
// listing its events, and every offset is committed.
func TestBatchGroupsEvents(t *testing.T) {
	for _, tc := range []struct{ name, delivery string }{
		{"at-least-once", "{batch: 100}"},
		{"exactly-once", "{batch: 100, guarantee: exactly-once}"},
		{"ordering-none", "{batch: 100, ordering: none}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.stream("in", 4)
			e.stream("out", 4)
			const n = 1000
			in := events("b", "t", n)
			e.produce("in", 4, in...)
			iv := &invocations{}
			e.start(parse(t, `
name: bat
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: `+tc.delivery+`
    scale: {concurrency: 4}
`), runtime.Funcs{"f": batchEcho(iv)})

			waitFor(t, "all offsets committed", func() bool {
				c := e.committed(topics.Namespace("").ConsumerGroup("bat", "f"), "in")
				return c[0]+c[1]+c[2]+c[3] == n
			})
			calls := iv.snapshot()
			seen := checkBatches(t, calls, 100, false)
			for _, ev := range in {
				if seen[ev.ID()] != 1 {
					t.Fatalf("%s invoked %d times, want exactly 1", ev.ID(), seen[ev.ID()])
				}
			}
			if len(calls) >= n {
				t.Fatalf("%d invocations for %d events: nothing was batched", len(calls), n)
			}
			t.Logf("%d invocations, largest %d events", len(calls), iv.largest())

			// One result per invocation: caused by its first event,
			// listing them all when there are several.
			covered := map[string]int{}
			for _, d := range e.read("out", len(calls), true) {
				ids := []string{envelope.Extension(d.Event, envelope.ExtCausationID)}
				if list := envelope.Extension(d.Event, obs.ExtBatchIDs); list != "" {
					ids = nil
					if err := json.Unmarshal([]byte(list), &ids); err != nil {
						t.Fatalf("result %s: %s: %v", d.Event.ID(), obs.ExtBatchIDs, err)
					}
					if ids[0] != envelope.Extension(d.Event, envelope.ExtCausationID) {
						t.Fatalf("result caused by %s lists %s first", envelope.Extension(d.Event, envelope.ExtCausationID), ids[0])
					}
				}
				if string(d.Event.Data()) != fmt.Sprint(len(ids)) {
					t.Fatalf("result of a batch of %d events says %s", len(ids), d.Event.Data())
				}
				for _, id := range ids {
					covered[id]++
				}
			}
			for _, ev := range in {
				if covered[ev.ID()] != 1 {
					t.Fatalf("%s covered by %d results, want 1", ev.ID(), covered[ev.ID()])
				}
			}
		})
	}
}

// TestBatchFailureDeadLettersEveryEvent checks that retries repeat a whole
// batch and a batch that exhausts them dead-letters each of its events,
// that filtered-out events are committed without being invoked, and that
// an expired event is dead-lettered alone without invoking.
func TestBatchFailureDeadLettersEveryEvent(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.stream("fail-f-dlq", 1)
	const n = 100
	in := events("f", "t", n)
	skipped := func(i int) bool { return i%10 == 9 }
	for i := range in {
		if skipped(i) {
			in[i].SetType("skip")
		}
	}
	envelope.SetDeadline(&in[5], time.Now().Add(-time.Minute))
	e.produce("in", 1, in...)
	iv := &invocations{}
	e.start(parse(t, `
name: fail
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first, filter: {type: t}}]
      out: out
    delivery: {batch: 10, retries: 2, backoff: 1ms, maxBackoff: 5ms}
`), runtime.Funcs{"f": func(_ context.Context, inv runtime.Invocation, _ runtime.Host) (runtime.Result, error) {
		iv.record(inv)
		for _, d := range inv.Events {
			if d.Event.ID() == "f-42" {
				return runtime.Result{}, errors.New("boom")
			}
		}
		return runtime.Result{Data: []byte(`1`)}, nil
	}})
	waitFor(t, "offset 100 committed", func() bool {
		return e.committed(topics.Namespace("").ConsumerGroup("fail", "f"), "in")[0] == n
	})

	calls := iv.snapshot()
	seen := checkBatches(t, calls, 10, true)
	var failed []envelope.Delivery // the batch holding f-42
	for _, c := range calls {
		if slices.ContainsFunc(c, func(d envelope.Delivery) bool { return d.Event.ID() == "f-42" }) {
			failed = c
		}
	}
	if len(failed) < 2 {
		t.Fatalf("f-42 was invoked in a batch of %d, want several events", len(failed))
	}
	inFailed := map[string]bool{}
	for _, d := range failed {
		inFailed[d.Event.ID()] = true
	}
	for i, ev := range in {
		want := 1
		switch {
		case skipped(i) || i == 5:
			want = 0
		case inFailed[ev.ID()]:
			want = 3 // the first attempt and 2 retries, of the whole batch
		}
		if seen[ev.ID()] != want {
			t.Errorf("%s invoked %d times, want %d", ev.ID(), seen[ev.ID()], want)
		}
	}

	dlq := e.read("fail-f-dlq", len(failed)+1, false)
	if len(dlq) != len(failed)+1 {
		t.Fatalf("%d dead letters, want %d (the failed batch and the expired event)", len(dlq), len(failed)+1)
	}
	for _, d := range dlq {
		id := d.Event.ID()
		wantAttempts, wantErr := "3", "boom"
		if id == "f-5" {
			wantAttempts, wantErr = "0", obs.ErrDeadlineExpired
		} else if !inFailed[id] {
			t.Errorf("%s dead-lettered, but its batch succeeded", id)
		}
		if got := envelope.Extension(d.Event, obs.ExtDLQAttempts); got != wantAttempts {
			t.Errorf("%s: attempts %s, want %s", id, got, wantAttempts)
		}
		if got := envelope.Extension(d.Event, obs.ExtDLQError); !strings.Contains(got, wantErr) {
			t.Errorf("%s: error %q, want %q", id, got, wantErr)
		}
	}
}

// TestBatchAsLargeAsThePoll checks that a batch larger than MaxPollRecords
// still fills: the poll grows to the batch size.
func TestBatchAsLargeAsThePoll(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.produce("in", 1, events("p", "t", 1000)...)
	iv := &invocations{}
	e.start(parse(t, `
name: big
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {batch: 500}
`), runtime.Funcs{"f": batchEcho(iv)}, func(c *Config) { c.MaxPollRecords = 100 })
	waitFor(t, "offset 1000 committed", func() bool {
		return e.committed(topics.Namespace("").ConsumerGroup("big", "f"), "in")[0] == 1000
	})
	seen := checkBatches(t, iv.snapshot(), 500, false)
	if len(seen) != 1000 {
		t.Fatalf("%d events invoked, want 1000", len(seen))
	}
	if got := iv.largest(); got <= 100 {
		t.Fatalf("largest invocation %d events, want more than MaxPollRecords (100)", got)
	}
	t.Logf("largest invocation %d events", iv.largest())
}

// TestBatchEventWithDeadlineRunsAlone checks that an event carrying a
// deadline is invoked on its own, so its deadline bounds no other event's
// invocation, while the events around it are still batched.
func TestBatchEventWithDeadlineRunsAlone(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	in := events("d", "t", 10)
	envelope.SetDeadline(&in[4], time.Now().Add(time.Hour))
	e.produce("in", 1, in...)
	iv := &invocations{}
	e.start(parse(t, `
name: dl
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {batch: 10}
`), runtime.Funcs{"f": batchEcho(iv)})
	waitFor(t, "all 10 events invoked", func() bool {
		n := 0
		for _, c := range iv.snapshot() {
			n += len(c)
		}
		return n == 10
	})
	for _, c := range iv.snapshot() {
		for _, d := range c {
			if d.Event.ID() == "d-4" && len(c) != 1 {
				t.Fatalf("d-4, which has a deadline, was invoked with %d events", len(c))
			}
		}
	}
	if got := iv.largest(); got < 2 {
		t.Errorf("largest invocation %d events: the others were not batched", got)
	}
}

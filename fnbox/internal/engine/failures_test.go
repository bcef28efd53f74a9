package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

const failing = `
name: fail
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {retries: 2, backoff: 1ms, maxBackoff: 5ms}
`

func TestRetriesThenDeadLetter(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2)
	e.stream("out", 2)
	e.stream("fail-f-dlq", 1)
	in := events("e", "t", 200)
	e.produce("in", 2, in...)
	bad := func(id string) bool { return strings.HasSuffix(id, "7") }       // e-7, e-17...: 20 events
	permanent := func(id string) bool { return strings.HasSuffix(id, "3") } // 20 events
	rec := newRecorder()
	e.start(parse(t, failing), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		d := inv.Events[0]
		rec.record(d)
		switch id := d.Event.ID(); {
		case bad(id):
			return runtime.Result{}, errors.New("boom " + id)
		case permanent(id):
			return runtime.Result{}, &runtime.FunctionError{Message: "bad input", Permanent: true}
		}
		return runtime.Result{Data: d.Event.Data()}, nil
	}})

	dlq := e.read("fail-f-dlq", 40, false)
	out := e.read("out", 160, false)
	if len(dlq) != 40 || len(out) != 160 {
		t.Fatalf("dlq %d, out %d; want 40 and 160", len(dlq), len(out))
	}
	for _, d := range dlq {
		ev := d.Event
		id := ev.ID()
		wantAttempts, wantErr := "3", "boom "+id
		if permanent(id) {
			wantAttempts, wantErr = "1", "function failed: bad input"
		}
		if got := envelope.Extension(ev, obs.ExtDLQAttempts); got != wantAttempts {
			t.Errorf("%s: attempts %s, want %s", id, got, wantAttempts)
		}
		if got := rec.count(id); strings.TrimSpace(wantAttempts) != string(rune('0'+got)) {
			t.Errorf("%s: invoked %d times, want %s", id, got, wantAttempts)
		}
		if got := envelope.Extension(ev, obs.ExtDLQError); got != wantErr {
			t.Errorf("%s: error %q, want %q", id, got, wantErr)
		}
		if envelope.Extension(ev, obs.ExtDLQStream) != "in" || envelope.Extension(ev, obs.ExtDLQFunction) != "fail/f" ||
			envelope.Extension(ev, obs.ExtDLQPartition) == "" || envelope.Extension(ev, obs.ExtDLQOffset) == "" {
			t.Errorf("%s: dead-letter extensions %v", id, ev.Extensions())
		}
		if ev.Type() != "t" || string(ev.Data()) == "" {
			t.Errorf("%s: dead letter is not the original event: %v", id, ev)
		}
	}
	// Why each event failed is in the function's log: a warning per retry,
	// an error per dead letter, tagged with the event.
	kittest.Eventually(t, "a log line per retry and per dead letter", func() error {
		retries, dead := map[string]int{}, map[string]string{}
		for _, l := range readLogs(t, e, "fail") {
			if l.Origin != obs.OriginFnbox || l.Function != "f" {
				continue
			}
			switch l.Level {
			case obs.LevelWarn:
				retries[l.EventID]++
			case obs.LevelError:
				dead[l.EventID] = l.Message
			}
		}
		for _, d := range dlq {
			id := d.Event.ID()
			wantRetries, wantErr := 2, "boom "+id
			if permanent(id) {
				wantRetries, wantErr = 0, "function failed: bad input"
			}
			if retries[id] != wantRetries || !strings.Contains(dead[id], "fail-f-dlq") || !strings.HasSuffix(dead[id], wantErr) {
				return fmt.Errorf("%s: logs show %d retries and %q, want %d retries and a dead letter with %q", id, retries[id], dead[id], wantRetries, wantErr)
			}
		}
		return nil
	})
	// Order per partition: each partition's invocations never go back,
	// except for retries of the same offset.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for p, offs := range rec.order {
		if !slices.IsSorted(offs) {
			t.Errorf("partition %d invoked out of order: %v", p, offs)
		}
	}
}

func TestExpiredDeadlineDeadLettersWithoutInvoking(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.stream("fail-f-dlq", 1)
	in := events("d", "t", 2)
	envelope.SetDeadline(&in[0], time.Now().Add(-time.Minute))
	envelope.SetDeadline(&in[1], time.Now().Add(time.Hour))
	e.produce("in", 1, in...)
	rec := newRecorder()
	e.start(parse(t, failing), runtime.Funcs{"f": echo(rec)})
	dlq := e.read("fail-f-dlq", 1, false)
	e.read("out", 1, false)
	if len(dlq) != 1 || dlq[0].Event.ID() != "d-0" {
		t.Fatalf("dead letters %v, want d-0", dlq)
	}
	if got := envelope.Extension(dlq[0].Event, obs.ExtDLQError); got != obs.ErrDeadlineExpired {
		t.Errorf("error %q, want %q", got, obs.ErrDeadlineExpired)
	}
	if envelope.Extension(dlq[0].Event, obs.ExtDLQAttempts) != "0" || rec.count("d-0") != 0 {
		t.Errorf("expired event was invoked %d times", rec.count("d-0"))
	}
	if rec.count("d-1") != 1 {
		t.Errorf("d-1 invoked %d times, want 1", rec.count("d-1"))
	}
}

func TestFilterSkipsAndCommits(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	keep := events("k", "keep", 30)
	for i := range keep {
		keep[i].SetExtension("tenant", "acme")
	}
	other := events("x", "keep", 30) // wrong tenant
	skip := events("s", "skip", 40)
	for i := range skip {
		skip[i].SetExtension("tenant", "acme")
	}
	e.produce("in", 1, append(append(keep, other...), skip...)...)
	rec := newRecorder()
	e.start(parse(t, `
name: filt
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first, filter: {type: keep, tenant: acme}}]
      out: out
`), runtime.Funcs{"f": echo(rec)})
	out := e.read("out", 30, false)
	if len(out) != 30 || rec.total() != 30 {
		t.Fatalf("%d results, %d invocations; want 30", len(out), rec.total())
	}
	waitFor(t, "filtered events committed", func() bool {
		return e.committed(topics.Namespace("").ConsumerGroup("filt", "f"), "in")[0] == 100
	})
}

func TestEmitOnlyToDeclaredStreams(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("audit", 1)
	e.produce("in", 1, events("i", "t", 1)...)
	var undeclared atomic.Value
	e.start(parse(t, `
name: emit
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      emits: [audit]
`), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		undeclared.Store(h.Emit(ctx, runtime.Emit{Stream: "elsewhere", Data: []byte(`1`)}))
		return runtime.Result{}, h.Emit(ctx, runtime.Emit{Stream: "audit", Data: []byte(`{"a":1}`), Type: "com.example.audit", Key: "k1"})
	}})
	got := e.read("audit", 1, false)
	ev := got[0].Event
	if ev.Type() != "com.example.audit" || envelope.Extension(ev, envelope.ExtCausationID) != "i-0" || envelope.Extension(ev, envelope.ExtPartitionKey) != "k1" {
		t.Errorf("emitted %v", ev)
	}
	if err, _ := undeclared.Load().(error); !errors.Is(err, runtime.ErrUndeclaredStream) {
		t.Errorf("emit to an undeclared stream: %v, want ErrUndeclaredStream", err)
	}
}

// TestDeadlinePassingDuringRetriesStopsThem: an event whose deadline
// passes while it is being retried is dead-lettered as expired; the
// function is not invoked again for a requester that gave up.
func TestDeadlinePassingDuringRetriesStopsThem(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.stream("fail-f-dlq", 1)
	d := parse(t, strings.Replace(failing, "retries: 2, backoff: 1ms, maxBackoff: 5ms", "retries: 50, backoff: 300ms, maxBackoff: 300ms", 1))
	in := events("r", "t", 1)
	envelope.SetDeadline(&in[0], time.Now().Add(500*time.Millisecond))
	e.produce("in", 1, in...)
	var calls atomic.Int32
	e.start(d, runtime.Funcs{"f": func(context.Context, runtime.Invocation, runtime.Host) (runtime.Result, error) {
		calls.Add(1)
		return runtime.Result{}, errors.New("boom")
	}})
	dlq := e.read("fail-f-dlq", 1, false)
	if got := envelope.Extension(dlq[0].Event, obs.ExtDLQError); got != obs.ErrDeadlineExpired {
		t.Errorf("error %q, want %q", got, obs.ErrDeadlineExpired)
	}
	attempts := envelope.Extension(dlq[0].Event, obs.ExtDLQAttempts)
	// 50 retries with full jitter up to 300ms take seconds: the deadline
	// comes first.
	if n := calls.Load(); attempts != fmt.Sprint(n) || n >= 51 {
		t.Errorf("invoked %d times, dead letter says %s attempts; want the retries to stop at the deadline, before all 51", n, attempts)
	}
}

// Package testutil holds what the timer's tests share: an embedded broker,
// a polling helper and a reader of tick streams.
package testutil

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/timers"
)

// Timeout bounds every wait in tests (kittest.Timeout).
const Timeout = kittest.Timeout

// Broker starts an in-memory embedded broker on a random port and returns
// its address.
func Broker(t testing.TB) string {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// Client returns a plain client of brokers.
func Client(t testing.TB, brokers string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Tick is a tick event as read from a stream.
type Tick struct {
	ID   string
	Type string
	Data timers.Tick
	// Trace is the span context of the tick's traceparent extension.
	Trace trace.SpanContext
}

// Ticks reads a tick stream from its start, read_committed, as a
// consumer of ticks should.
type Ticks struct {
	cl *kgo.Client
	mu sync.Mutex
	ts []Tick
}

// ReadTicks starts reading stream.
func ReadTicks(t testing.TB, brokers, stream string) *Ticks {
	t.Helper()
	r := &Ticks{cl: Client(t, brokers,
		kgo.ConsumeTopics(stream),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)}
	return r
}

// Poll reads what is there now (waiting at most a moment) and returns
// every tick read so far, in stream order per partition.
func (r *Ticks) Poll(t testing.TB) []Tick {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	fs := r.cl.PollFetches(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	fs.EachRecord(func(rec *kgo.Record) {
		d := envelope.FromRecord(rec)
		var data timers.Tick
		if err := json.Unmarshal(d.Event.Data(), &data); err != nil {
			t.Errorf("tick %s: data %s: %v", d.Event.ID(), d.Event.Data(), err)
		}
		sc := trace.SpanContextFromContext(envelope.ExtractTrace(context.Background(), d.Event))
		r.ts = append(r.ts, Tick{ID: d.Event.ID(), Type: d.Event.Type(), Data: data, Trace: sc})
	})
	return slices.Clone(r.ts)
}

// WaitFor polls until at least n ticks are read and returns them.
func (r *Ticks) WaitFor(t testing.TB, n int) []Tick {
	t.Helper()
	var got []Tick
	kittest.Eventually(t, fmt.Sprintf("read %d ticks", n), func() error {
		got = r.Poll(t)
		if len(got) < n {
			return fmt.Errorf("%d ticks so far", len(got))
		}
		return nil
	})
	return got
}

// CheckExactlyOnce checks ticks of one schedule: each is well formed, no
// id repeats, and every scheduled time of the @every step between the
// first and the last is there. It returns the scheduled times, sorted.
func CheckExactlyOnce(t testing.TB, ticks []Tick, schedule string, step time.Duration) []time.Time {
	t.Helper()
	seen := map[string]bool{}
	var times []time.Time
	for _, tk := range ticks {
		if seen[tk.ID] {
			t.Errorf("duplicate tick %s", tk.ID)
			continue
		}
		seen[tk.ID] = true
		if tk.Type != timers.TypeTick {
			t.Errorf("tick %s has type %q", tk.ID, tk.Type)
		}
		if want := timers.TickID(schedule, tk.Data.ScheduledTime); tk.ID != want || tk.Data.Schedule != schedule {
			t.Errorf("tick %s: want id %s of schedule %s, data %+v", tk.ID, want, schedule, tk.Data)
		}
		if tk.Data.FiredTime.Before(tk.Data.ScheduledTime) {
			t.Errorf("tick %s fired at %v, before it was due", tk.ID, tk.Data.FiredTime)
		}
		times = append(times, tk.Data.ScheduledTime)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d != step {
			t.Errorf("scheduled times %v and %v are %s apart, want %s: a tick is missing", times[i-1], times[i], d, step)
		}
	}
	return times
}

package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/topics"
)

// keyedRecords are n events of stream "in" on partition 0, keyed k0..k<keys-1>
// in turn, with data i.
func keyedRecords(t *testing.T, n, keys int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for i, ev := range events("e", "t", n) {
		r, err := envelope.ToRecord("in", ev)
		if err != nil {
			t.Fatal(err)
		}
		r.Key = fmt.Appendf(nil, "k%d", i%keys)
		recs = append(recs, r)
	}
	return recs
}

// TestOrderingKeyKeepsOrderPerKey: with ordering key, the events of one
// record key are invoked one at a time in offset order, a retry holding
// back only its key, while different keys run concurrently; every event
// is delivered and the whole partition committed.
func TestOrderingKeyKeepsOrderPerKey(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	const n, keys = 300, 6
	e.produceRecords(keyedRecords(t, n, keys)...)
	var (
		mu      sync.Mutex
		seen    = map[string][]int{} // successful invocations, by key
		busy    = map[string]bool{}
		overlap []string
		failed  atomic.Bool
	)
	var now, peak atomic.Int64
	e.start(parse(t, `
name: bykey
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {ordering: key, retries: 2, backoff: 20ms, maxBackoff: 20ms}
    scale: {concurrency: 4}
`), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		if len(inv.Events) != 1 {
			t.Errorf("batch of %d events, want 1", len(inv.Events))
		}
		d := inv.Events[0]
		k := fmt.Sprintf("k%d", d.Offset%keys) // as keyedRecords keyed it
		var i int
		_ = json.Unmarshal(d.Event.Data(), &i)
		mu.Lock()
		if busy[k] {
			overlap = append(overlap, fmt.Sprintf("%s at %d", k, i))
		}
		busy[k] = true
		mu.Unlock()
		c := now.Add(1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		now.Add(-1)
		mu.Lock()
		defer mu.Unlock()
		busy[k] = false
		if i == 13 && failed.CompareAndSwap(false, true) {
			return runtime.Result{}, fmt.Errorf("first attempt of %d fails", i)
		}
		seen[k] = append(seen[k], i)
		return runtime.Result{Data: []byte(`1`)}, nil
	}})
	if got := causes(e.read("out", n, false)); len(got) != n {
		t.Fatalf("%d distinct results, want %d", len(got), n)
	}
	waitFor(t, fmt.Sprintf("offset %d committed", n), func() bool {
		return e.committed(topics.Namespace("").ConsumerGroup("bykey", "f"), "in")[0] == n
	})
	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Errorf("events of one key invoked concurrently: %s", strings.Join(overlap, ", "))
	}
	for k, is := range seen {
		for j := 1; j < len(is); j++ {
			if is[j] <= is[j-1] {
				t.Errorf("key %s handled out of order: %v", k, is)
				break
			}
		}
		if len(is) != n/keys {
			t.Errorf("key %s handled %d times, want %d", k, len(is), n/keys)
		}
	}
	if !failed.Load() {
		t.Error("event 13 never failed: the retry was not exercised")
	}
	if p := peak.Load(); p < 2 || p > 4 {
		t.Errorf("peak concurrency %d, want 2..4 (different keys at once, bounded by scale.concurrency)", p)
	}
}

// TestOrderingKeyBatchesNeverMixKeys: under ordering key a batch holds
// events of one key only, in offset order.
func TestOrderingKeyBatchesNeverMixKeys(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	const n, keys = 120, 3
	e.produceRecords(keyedRecords(t, n, keys)...)
	var total atomic.Int64
	e.start(parse(t, `
name: bykeyb
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {ordering: key, batch: 10}
`), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		for j, d := range inv.Events {
			if d.Offset%keys != inv.Events[0].Offset%keys {
				t.Errorf("batch mixes keys: offsets %d and %d", inv.Events[0].Offset, d.Offset)
			}
			if j > 0 && d.Offset <= inv.Events[j-1].Offset {
				t.Errorf("batch out of order: %d after %d", d.Offset, inv.Events[j-1].Offset)
			}
		}
		total.Add(int64(len(inv.Events)))
		return runtime.Result{Data: []byte(`1`)}, nil
	}})
	waitFor(t, fmt.Sprintf("offset %d committed", n), func() bool {
		return e.committed(topics.Namespace("").ConsumerGroup("bykeyb", "f"), "in")[0] == n
	})
	if got := total.Load(); got != n {
		t.Errorf("%d events handed over, want %d", got, n)
	}
}

// TestCommitNeverPassesUnacknowledgedResult: a result the broker cannot
// take (larger than a record may be) is never acknowledged, so no offset
// at or past its event is ever committed, while the results before it
// are written; the event is redelivered instead of lost.
func TestCommitNeverPassesUnacknowledgedResult(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.produce("in", 1, events("u", "t", 10)...)
	var attempts atomic.Int64
	big := []byte(`"` + strings.Repeat("x", 2<<20) + `"`)
	e.start(parse(t, `
name: unacked
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
`), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		if inv.Events[0].Offset == 5 {
			attempts.Add(1)
			return runtime.Result{Data: big}, nil
		}
		return runtime.Result{Data: []byte(`1`)}, nil
	}})
	got := causes(e.read("out", 5, false))
	for i := range 5 {
		if got[fmt.Sprintf("u-%d", i)] == 0 {
			t.Errorf("no result for u-%d", i)
		}
	}
	waitFor(t, "event 5 redelivered", func() bool { return attempts.Load() >= 2 })
	if c := e.committed(topics.Namespace("").ConsumerGroup("unacked", "f"), "in")[0]; c > 5 {
		t.Errorf("committed offset %d passes the event whose result was never acknowledged (5)", c)
	}
}

// TestPartitionsRunSideBySide: with ordering partition and the default
// concurrency, an instance invokes the events of its partitions side by
// side (kgo hands a poll out a partition at a time; see held), each
// partition still one event at a time in offset order; every event is
// delivered and every partition committed.
func TestPartitionsRunSideBySide(t *testing.T) {
	e := newEnv(t)
	const parts, n = 4, 2400 // 600 a partition: more than a poll of 500
	e.stream("in", parts)
	e.stream("out", 1)
	e.produce("in", parts, events("p", "t", n)...) // event i on partition i%4
	var (
		mu     sync.Mutex
		last   = map[int32]int{} // last event handled, by partition
		busy   = map[int32]bool{}
		bad    []string
		beside int // invocations that started while another partition's ran
	)
	var now, peak atomic.Int64
	e.start(parse(t, `
name: sidebyside
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
`), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		d := inv.Events[0]
		var i int
		_ = json.Unmarshal(d.Event.Data(), &i)
		p := d.Partition
		mu.Lock()
		if busy[p] {
			bad = append(bad, fmt.Sprintf("partition %d invoked twice at once (event %d)", p, i))
		}
		if l, ok := last[p]; ok && i <= l {
			bad = append(bad, fmt.Sprintf("partition %d: event %d after %d", p, i, l))
		}
		busy[p] = true
		for q, b := range busy {
			if b && q != p {
				beside++
				break
			}
		}
		mu.Unlock()
		c := now.Add(1)
		for pk := peak.Load(); c > pk && !peak.CompareAndSwap(pk, c); pk = peak.Load() {
		}
		time.Sleep(200 * time.Microsecond)
		now.Add(-1)
		mu.Lock()
		busy[p] = false
		last[p] = i
		mu.Unlock()
		return runtime.Result{Data: []byte(`1`)}, nil
	}})
	if got := causes(e.read("out", n, false)); len(got) != n {
		t.Fatalf("%d distinct results, want %d", len(got), n)
	}
	waitFor(t, "every partition committed to its end", func() bool {
		c := e.committed(topics.Namespace("").ConsumerGroup("sidebyside", "f"), "in")
		for p := range int32(parts) {
			if c[p] != n/parts {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("partition order broken: %s", strings.Join(bad[:min(len(bad), 5)], "; "))
	}
	if peak.Load() < 2 || beside < n/2 {
		t.Errorf("peak %d invocations at once, %d of %d started beside another partition's; want most partitions side by side", peak.Load(), beside, n)
	}
}

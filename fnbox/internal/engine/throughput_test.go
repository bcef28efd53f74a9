package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
)

// BenchmarkEngineNoop measures the engine alone: poll → decode → invoke
// → result → produce → commit, with an in-process no-op function (no
// runtime process, no IPC), on the embedded broker, 4 partitions, the
// delivery defaults (ordering partition, concurrency 1, at-least-once)
// and delivery.batch 1 or 500. Each iteration is one event; events/s is
// reported, and the time per event is what the engine costs on top of a
// function. cpu-ns/op is the process's CPU time per event (user and
// system, the embedded broker's and the bench's producer included), which
// moves far less than ns/op on a shared machine. docs/performance.md has
// the figures.
func BenchmarkEngineNoop(b *testing.B) {
	for _, batch := range []int{1, 500} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) { benchNoop(b, batch) })
	}
}

func benchNoop(b *testing.B, batch int) {
	n := max(b.N, 1000)
	e := newEnv(b)
	e.stream("in", 4)
	e.stream("out", 4)
	// The events are written first, as the bench's no-op rows do.
	cl := e.client(kgo.ProducerLinger(5 * time.Millisecond))
	ctx := context.Background()
	for i, ev := range events("b", "t", n) {
		r, err := envelope.ToRecord("in", ev)
		if err != nil {
			b.Fatal(err)
		}
		r.Key = []byte(strconv.Itoa(i))
		cl.Produce(ctx, r, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	fn := func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		if handled.Add(int64(len(inv.Events))) == int64(n) {
			close(done)
		}
		return runtime.Result{Data: fmt.Appendf(nil, `{"n":%d}`, len(inv.Events))}, nil
	}
	b.ResetTimer()
	cpu := cpuTime(b)
	start := time.Now()
	e.start(parse(b, fmt.Sprintf(`
name: bench
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {batch: %d}
`, batch)), runtime.Funcs{"f": fn})
	select {
	case <-done:
	case <-time.After(testTimeout):
		b.Fatalf("%d of %d events handled", handled.Load(), n)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(n), "cpu-ns/op")
	b.StopTimer()
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

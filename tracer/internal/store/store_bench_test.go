package store

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/buttercompass/butter/tracer/api"
)

// spanBatch returns n spans of n/3 traces (gateway → invoke → function),
// numbered from first, as the ingester applies them.
func spanBatch(first, n int) *Batch {
	b := &Batch{Offsets: map[string]map[int32]int64{"_butter.traces": {0: int64(first + n)}}}
	t0 := time.Now()
	for i := first; i < first+n; i++ {
		tr, k := i/3, i%3
		sp := api.Span{
			TraceID: fmt.Sprintf("%032x", tr+1), SpanID: fmt.Sprintf("%016x", i+1),
			Name: "POST /orders", Service: "gateway", Kind: "server", Start: t0.Add(time.Duration(k) * time.Millisecond),
			DurationMs: 3, Status: api.StatusOK,
			Attributes: map[string]any{"http.route": "/orders", "messaging.destination.name": "orders"},
		}
		if k > 0 {
			sp.ParentSpanID = fmt.Sprintf("%016x", i)
			sp.Name, sp.Service, sp.Deployment, sp.Function = "invoke price", "fnbox", "shop", "price"
		}
		b.Spans = append(b.Spans, SpanRow{Span: sp})
	}
	return b
}

// BenchmarkApplySpans measures indexing spans in transactions of 2000,
// the ingester's batch size.
func BenchmarkApplySpans(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const per = 2000
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		b.StopTimer()
		batch := spanBatch(i*per, per)
		b.StartTimer()
		if err := s.Apply(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "spans/s")
}

// BenchmarkGetTrace measures Trace with BUTTER_BENCH_SPANS spans stored
// (default 300000; the figure is 1000000) and reports its p99.
func BenchmarkGetTrace(b *testing.B) {
	total := 300000
	if v, err := strconv.Atoi(os.Getenv("BUTTER_BENCH_SPANS")); err == nil && v > 0 {
		total = v
	}
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < total; i += 3000 {
		if err := s.Apply(context.Background(), spanBatch(i, 3000)); err != nil {
			b.Fatal(err)
		}
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("%032x", (i*7919)%(total/3)+1)
		t := time.Now()
		tr, err := s.Trace(context.Background(), id)
		ds = append(ds, time.Since(t))
		if err != nil || len(tr.Spans) != 3 {
			b.Fatalf("trace %s: %d spans, %v", id, len(tr.Spans), err)
		}
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
}

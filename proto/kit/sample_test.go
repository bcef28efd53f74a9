package kit

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceSample: --trace-sample 0 records no new trace but keeps the
// traces a caller sampled; 1 records every one; out of range is refused.
func TestTraceSample(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "")
	sampled := func(ctx context.Context) bool {
		tp, err := NewTracerProvider(context.Background(), TelemetryConfig{Service: "test"})
		if err != nil {
			t.Fatal(err)
		}
		defer tp.Shutdown(context.Background())
		_, span := tp.Tracer("t").Start(ctx, "s")
		defer span.End()
		return span.SpanContext().IsSampled()
	}
	caller := propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if !trace.SpanContextFromContext(caller).IsSampled() {
		t.Fatal("test traceparent is not sampled")
	}

	if err := ApplyTraceSample(0); err != nil {
		t.Fatal(err)
	}
	if sampled(context.Background()) {
		t.Error("sample 0: a new trace was recorded")
	}
	if !sampled(caller) {
		t.Error("sample 0: the child of a sampled caller was dropped")
	}
	if err := ApplyTraceSample(1); err != nil {
		t.Fatal(err)
	}
	if !sampled(context.Background()) {
		t.Error("sample 1: a new trace was dropped")
	}
	for _, bad := range []float64{-0.1, 1.5} {
		if err := ApplyTraceSample(bad); err == nil {
			t.Errorf("ApplyTraceSample(%v) accepted", bad)
		}
	}
}

package envelope

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func remoteSpan(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, err := trace.ParseTraceState("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	if err != nil {
		t.Fatalf("parse tracestate: %v", err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
}

func TestTraceInjectExtract(t *testing.T) {
	sc := remoteSpan(t)
	e := New("/s", "t")
	InjectTrace(trace.ContextWithSpanContext(context.Background(), sc), &e)

	ext := e.Extensions()
	if got := ext[ExtTraceparent]; got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent = %#v", got)
	}
	if got := ext[ExtTracestate]; got != "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" {
		t.Errorf("tracestate = %#v", got)
	}

	// Through a record, as a consumer sees it.
	r, err := ToRecord("t", e)
	if err != nil {
		t.Fatalf("ToRecord: %v", err)
	}
	got := trace.SpanContextFromContext(ExtractTrace(context.Background(), FromRecord(r).Event))
	if !got.Equal(sc) {
		t.Errorf("extracted %+v, want %+v", got, sc)
	}
}

func TestTraceWithSDK(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("envelope-test")

	ctx, producer := tracer.Start(context.Background(), "produce")
	e := New("/s", "t")
	InjectTrace(ctx, &e)
	producer.End()

	r, err := ToRecord("t", e)
	if err != nil {
		t.Fatalf("ToRecord: %v", err)
	}
	_, consumer := tracer.Start(ExtractTrace(context.Background(), FromRecord(r).Event), "consume")
	consumer.End()

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("recorded %d spans, want 2", len(spans))
	}
	p, c := spans[0], spans[1]
	if c.Parent().SpanID() != p.SpanContext().SpanID() || c.SpanContext().TraceID() != p.SpanContext().TraceID() {
		t.Errorf("consumer span %v is not a child of producer span %v", c.Parent(), p.SpanContext())
	}
	if !c.Parent().IsRemote() {
		t.Error("extracted parent not marked remote")
	}
}

func TestInjectTraceWithoutSpanKeepsExtensions(t *testing.T) {
	parent := New("/s", "t")
	parent.SetExtension(ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	parent.SetExtension(ExtTracestate, "k=v")
	e := Child(parent, "/s", "t")
	InjectTrace(context.Background(), &e)
	if e.Extensions()[ExtTraceparent] != parent.Extensions()[ExtTraceparent] || e.Extensions()[ExtTracestate] != "k=v" {
		t.Errorf("InjectTrace without a span changed the carried trace: %v", e.Extensions())
	}

	// A span without tracestate replaces the carried one entirely.
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
	InjectTrace(trace.ContextWithSpanContext(context.Background(), sc), &e)
	if got := e.Extensions()[ExtTraceparent]; got != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00" {
		t.Errorf("traceparent = %#v", got)
	}
	if ts, ok := e.Extensions()[ExtTracestate]; ok {
		t.Errorf("stale tracestate %v kept with a new traceparent", ts)
	}

	var zero event.Event
	InjectTrace(trace.ContextWithSpanContext(context.Background(), sc), &zero) // must not panic
}

func TestExtractTraceMissingOrMalformed(t *testing.T) {
	ctx := context.Background()
	plain := New("/s", "t")
	bad := New("/s", "t")
	bad.SetExtension(ExtTraceparent, "00-not-a-trace")
	for name, e := range map[string]event.Event{"none": plain, "malformed": bad, "zero event": {}} {
		if sc := trace.SpanContextFromContext(ExtractTrace(ctx, e)); sc.IsValid() {
			t.Errorf("%s: extracted a valid span context %v", name, sc)
		}
	}
}

package runtime

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
)

// TraceHeader and TraceStateHeader are the W3C trace context a function is
// given with each invocation, so that spans it makes itself are children
// of fnbox's invoke span: as HTTP headers (http and go platforms), as
// context.traceparent / context.tracestate (node, python) and as the
// TRACEPARENT / TRACESTATE environment variables (exec, following the
// OpenTelemetry convention for environment carriers).
const (
	TraceHeader      = "traceparent"
	TraceStateHeader = "tracestate"
)

// TraceParent returns the W3C traceparent and tracestate of the span in
// ctx, empty when ctx holds none.
func TraceParent(ctx context.Context) (traceparent, tracestate string) {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c[TraceHeader], c[TraceStateHeader]
}

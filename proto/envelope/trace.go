package envelope

import (
	"context"
	"slices"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext is fixed rather than otel's global propagator: the
// extensions are W3C trace context by definition (CloudEvents distributed
// tracing extension), whatever a service configures for its own HTTP.
var traceContext = propagation.TraceContext{}

// InjectTrace writes the span context of ctx into the traceparent and
// tracestate extensions of e. When ctx holds no valid span, e is left as it
// is, so a trace carried over by Child survives a caller that does not
// trace.
func InjectTrace(ctx context.Context, e *event.Event) {
	if e.Context == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	// Inject skips an empty tracestate; drop the old one so it cannot end
	// up paired with a traceparent of another trace.
	e.SetExtension(ExtTracestate, nil)
	traceContext.Inject(ctx, carrier{e})
}

// ExtractTrace returns ctx with the remote span context held in the
// traceparent and tracestate extensions of e, so spans started from it are
// children of the span that sent e. A missing or malformed traceparent
// returns ctx unchanged.
func ExtractTrace(ctx context.Context, e event.Event) context.Context {
	if e.Context == nil {
		return ctx
	}
	return traceContext.Extract(ctx, carrier{&e})
}

// carrier lets the otel propagator read and write event extensions.
type carrier struct{ e *event.Event }

var _ propagation.TextMapCarrier = carrier{}

// Get returns the canonical string form of extension key, or "".
func (c carrier) Get(key string) string {
	return Extension(*c.e, key)
}

// Set stores value as extension key.
func (c carrier) Set(key, value string) { c.e.SetExtension(key, value) }

// Keys lists the extension names of the event.
func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c.e.Extensions()))
	for k := range c.e.Extensions() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
)

// invoke runs one attempt with the events ds (one, or a batch of one
// partition in offset order). The invocation gets its own context:
// shutting down lets it finish within its deadline, the earliest of now +
// delivery.timeout and the events' deadlines. The returned context carries
// the invocation's span, for the trace of its outputs; its parent is the
// fetch span in parent (see fetchSpan).
func (r *runner) invoke(ctx, parent context.Context, rt runtime.Runtime, ds []envelope.Delivery) (context.Context, runtime.Result, []*kgo.Record, error) {
	deadline := time.Now().Add(r.fn.Delivery.Timeout.Std())
	for _, d := range ds {
		if dl, ok := envelope.Deadline(d.Event); ok && dl.Before(deadline) {
			deadline = dl
		}
	}
	d := ds[0]
	sctx, span := r.e.tracer().Start(parent, r.invokeSpan, consumerSpan...)
	if span.IsRecording() { // attributes cost allocations, for nothing when not sampled
		span.SetAttributes(
			attribute.String("butter.deployment", r.e.cfg.Deployment.Name),
			attribute.String("butter.function", r.fn.Name),
			attribute.String("cloudevents.event_id", d.Event.ID()),
			attribute.String("cloudevents.event_type", d.Event.Type()),
			attribute.String("messaging.destination.name", d.Stream),
			attribute.Int("messaging.destination.partition.id", int(d.Partition)),
			attribute.Int64("messaging.kafka.offset", d.Offset),
			attribute.Int("messaging.batch.message_count", len(ds)),
		)
	}
	defer span.End()
	ictx, cancel := context.WithDeadline(sctx, deadline)
	defer cancel()

	h := &host{r: r, in: d, trace: sctx, txn: r.exactlyOnce()}
	start := time.Now()
	res, err := rt.Invoke(ictx, runtime.Invocation{
		Function: r.fn.Name,
		Events:   ds,
		Deadline: deadline,
	}, h)
	r.stats.observe(time.Since(start))
	emits := h.finish()
	if err == nil && ictx.Err() != nil {
		// A handler that ignored its deadline still ran past it.
		err = fmt.Errorf("invoke %s: %w", r.fn.Name, runtime.ErrTimeout)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return sctx, runtime.Result{}, nil, err
	}
	return sctx, res, emits, nil
}

// fetchSpan makes the span of receiving the events live of pb (indexes
// into pb.ds): from the poll returning them to their invocation starting,
// which is now. Its parent is the first event's traceparent (a batch
// continues the trace of its first event); it is named and described
// after OpenTelemetry's messaging conventions ("receive <stream>"). kotel's
// hooks are not used: they set their own trace headers on the records,
// which fight the CloudEvents traceparent extension. The returned context
// carries the span, without ctx's cancellation, for the invoke spans.
func (r *runner) fetchSpan(ctx context.Context, pb *partBatch, live []int) context.Context {
	d, rec := pb.ds[live[0]], pb.recs[live[0]]
	pctx := envelope.ExtractTrace(context.WithoutCancel(ctx), d.Event)
	name, ok := r.receiveSpans[d.Stream]
	if !ok {
		name = "receive " + d.Stream
	}
	sctx, span := r.e.tracer().Start(pctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(pb.polled))
	if span.IsRecording() { // attributes cost allocations, for nothing when not sampled
		span.SetAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("messaging.operation.name", "poll"),
			attribute.String("messaging.destination.name", d.Stream),
			attribute.Int("messaging.destination.partition.id", int(d.Partition)),
			attribute.Int64("messaging.kafka.offset", d.Offset),
			attribute.String("messaging.consumer.group.name", r.group),
			attribute.String("messaging.message.id", d.Event.ID()),
			attribute.Int("messaging.batch.message_count", len(live)),
			attribute.String("butter.deployment", r.e.cfg.Deployment.Name),
			attribute.String("butter.function", r.fn.Name),
		)
		if len(rec.Key) > 0 {
			span.SetAttributes(attribute.String("messaging.kafka.message.key", string(rec.Key)))
		}
	}
	span.End()
	return sctx
}

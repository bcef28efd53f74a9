package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// writeResult writes the one result of the invocation of ds to out and,
// when the input asked for a reply, to its replyto stream, together with
// the emits buffered under exactly-once. Events with replyto are never
// batched (see units), so a reply always answers exactly its request.
func (r *runner) writeResult(ctx, traceCtx context.Context, out *producer, ds []envelope.Delivery, res runtime.Result, recs []*kgo.Record) error {
	d := ds[0]
	// The plain result of one event (the common case) is encoded
	// directly; one that adopts the function's CloudEvent or names a
	// batch is built as an event first.
	result := func(topic string, batchIDs bool) (*kgo.Record, error) {
		o := r.resultOutput(traceCtx, d, obs.TypeResult, res.Data, res.ContentType)
		if res.Event == nil && !batchIDs {
			return envelope.ChildRecord(topic, d.Event, o)
		}
		e := envelope.ChildEvent(d.Event, o)
		if res.Event != nil {
			adoptReply(&e, *res.Event, d.Event)
		}
		if batchIDs {
			ids := make([]string, len(ds))
			for i, d := range ds {
				ids[i] = d.Event.ID()
			}
			b, _ := json.Marshal(ids) // strings always encode
			e.SetExtension(obs.ExtBatchIDs, string(b))
		}
		return envelope.ToRecord(topic, e)
	}
	if o := r.fn.Bindings.Out; o != "" && (res.Data != nil || res.Event != nil) {
		rec, err := result(r.e.ns.Topic(o), len(ds) > 1)
		if err != nil {
			return fmt.Errorf("build result event for %s: %w", d.Event.ID(), err)
		}
		recs = append(recs, rec)
	}
	if replyTo := r.replyTo(d); replyTo != "" && len(ds) == 1 {
		rec, err := result(r.e.ns.Topic(replyTo), false)
		if err != nil {
			return fmt.Errorf("build %s event for %s: %w", obs.TypeResult, d.Event.ID(), err)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil
	}
	// The produce span follows invoke in the event's trace: the time to
	// get the outputs acknowledged (or into the transaction).
	_, span := r.e.tracer().Start(traceCtx, r.produceSpan, producerSpan...)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("butter.deployment", r.e.cfg.Deployment.Name),
			attribute.String("butter.function", r.fn.Name),
			attribute.String("messaging.destination.name", recs[0].Topic),
			attribute.Int("messaging.batch.message_count", len(recs)),
		)
	}
	defer span.End()
	if err := out.sendBounded(ctx, recs...); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("write result of event %s: %w", d.Event.ID(), err)
	}
	return nil
}

// replyTo is the stream the input asks a reply on, "" for none. Anyone
// who may write to an input stream sets it, so it may name the replies
// topic or a user stream, never another internal topic (the deployments,
// the API keys): a reply there would be a forged control record.
func (r *runner) replyTo(d envelope.Delivery) string {
	to := envelope.Extension(d.Event, envelope.ExtReplyTo)
	if to == "" || to == topics.Replies {
		return to
	}
	if topics.IsInternal(to) || topics.ValidateStreamName(to) != nil {
		r.logger(d).Warn("event asks a reply on a stream replies may not go to; not replying", "replyto", to)
		return ""
	}
	return to
}

// resultRecord builds a result (or reply) event caused by the input:
// subject and causationid are the input's id, correlationid and trace are
// carried, and the input's partition key is kept so results of one key
// stay in order.
func (r *runner) resultRecord(traceCtx context.Context, topic string, d envelope.Delivery, typ string, data []byte, contentType string) (*kgo.Record, error) {
	rec, err := envelope.ChildRecord(topic, d.Event, r.resultOutput(traceCtx, d, typ, data, contentType))
	if err != nil {
		return nil, fmt.Errorf("build %s event for %s: %w", typ, d.Event.ID(), err)
	}
	return rec, nil
}

// resultOutput is the event resultRecord encodes, as an envelope.Output
// of the input.
func (r *runner) resultOutput(traceCtx context.Context, d envelope.Delivery, typ string, data []byte, contentType string) envelope.Output {
	return envelope.Output{
		Source:          r.source,
		Type:            typ,
		Subject:         d.Event.ID(),
		PartitionKey:    envelope.Extension(d.Event, envelope.ExtPartitionKey),
		Trace:           traceCtx,
		Data:            data,
		DataContentType: dataContentType(data, contentType),
	}
}

// platformExtensions are the extensions of an output that fnbox sets, not
// the function: the chain, the trace, and where the input sat.
var platformExtensions = map[string]bool{
	envelope.ExtCausationID: true, envelope.ExtCorrelationID: true,
	envelope.ExtTraceparent: true, envelope.ExtTracestate: true,
	"stream": true, "partition": true, "offset": true,
}

// adoptReply makes result the CloudEvent the function answered with: its
// type, source, subject (when it has one), dataschema and extensions,
// except those fnbox sets (platformExtensions) and a replyto or deadline
// merely echoed from the input, which would send the output back to the
// requester. Id, time and data stay as resultOutput made them.
func adoptReply(result *event.Event, reply, in event.Event) {
	if reply.Context == nil {
		return
	}
	result.SetType(reply.Type())
	result.SetSource(reply.Source())
	if s := reply.Subject(); s != "" {
		result.SetSubject(s)
	}
	if s := reply.DataSchema(); s != "" {
		result.SetDataSchema(s)
	}
	for name, v := range reply.Extensions() {
		s, err := types.Format(v)
		if err != nil || platformExtensions[name] {
			continue
		}
		if (name == envelope.ExtReplyTo || name == envelope.ExtDeadline) && s == envelope.Extension(in, name) {
			continue
		}
		result.SetExtension(name, s)
	}
}

// dataContentType is the content type of data: contentType, or a guess
// of JSON or bytes when the runtime said nothing (and no data, none).
func dataContentType(data []byte, contentType string) string {
	if data == nil || contentType != "" {
		return contentType
	}
	if json.Valid(data) {
		return event.ApplicationJSON
	}
	return "application/octet-stream"
}

package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
)

// deadLetter writes the original event, with the failure as extensions, to
// the dead-letter stream, and an error reply when the input asked for a
// reply, so the requester need not wait for its timeout.
func (r *runner) deadLetter(ctx context.Context, out *producer, d envelope.Delivery, rec *kgo.Record, msg string, attempts int) error {
	e := d.Event.Clone()
	e.SetExtension(obs.ExtDLQError, msg)
	e.SetExtension(obs.ExtDLQAttempts, strconv.Itoa(attempts))
	e.SetExtension(obs.ExtDLQStream, d.Stream)
	e.SetExtension(obs.ExtDLQPartition, strconv.Itoa(int(d.Partition)))
	e.SetExtension(obs.ExtDLQOffset, strconv.FormatInt(d.Offset, 10))
	e.SetExtension(obs.ExtDLQFunction, r.e.cfg.Deployment.Name+"/"+r.fn.Name)
	dlq, err := envelope.ToRecord(r.e.ns.Topic(r.fn.Delivery.DeadLetter), e)
	if err != nil {
		return fmt.Errorf("build dead letter of event %s: %w", d.Event.ID(), err)
	}
	dlq.Key = rec.Key // same partitioning as the original
	recs := []*kgo.Record{dlq}
	if replyTo := r.replyTo(d); replyTo != "" {
		data, _ := json.Marshal(obs.ErrorReply{Error: msg, Attempts: attempts})
		reply, err := r.resultRecord(context.Background(), r.e.ns.Topic(replyTo), d, obs.TypeError, data, event.ApplicationJSON)
		if err != nil {
			return err
		}
		recs = append(recs, reply)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outputTimeout)
	defer cancel()
	if err := out.send(pctx, recs...); err != nil {
		return fmt.Errorf("dead-letter event %s: %w", d.Event.ID(), err)
	}
	r.stats.deadLettered()
	r.stats.done(1)
	r.logFailure(d, obs.LevelError, fmt.Sprintf("dead-lettered to %s after %d attempts: %s", r.fn.Delivery.DeadLetter, attempts, msg))
	return nil
}

// logFailure tells the function's log (_butter.logs, so `butter logs` and
// the tracer show it) why an event failed, tagged with the event and its
// trace.
func (r *runner) logFailure(d envelope.Delivery, level, msg string) {
	l := obs.Log{EventID: d.Event.ID(), Level: level, Message: msg, Origin: obs.OriginFnbox}
	if sc := trace.SpanContextFromContext(envelope.ExtractTrace(context.Background(), d.Event)); sc.IsValid() {
		l.TraceID = sc.TraceID().String()
	}
	r.writeLog(l)
}

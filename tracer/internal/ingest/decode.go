package ingest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/tracer/api"
	"github.com/buttercompass/butter/tracer/internal/store"
)

// Span and resource attributes the tracer reads. The platform's services
// set them on their spans (fnbox on "invoke <function>").
const (
	AttrDeployment  = "butter.deployment"
	AttrFunction    = "butter.function"
	AttrServiceName = "service.name"
)

// decoder turns records of the topics the tracer reads into index rows.
type decoder struct {
	ns                                            topics.Namespace
	traces, logs, events, heartbeats, deployments string
	sd                                            spanDecoder
}

func newDecoder(ns topics.Namespace) *decoder {
	return &decoder{
		ns:          ns,
		traces:      ns.Topic(topics.Traces),
		logs:        ns.Topic(topics.Logs),
		events:      ns.Topic(topics.Events),
		heartbeats:  ns.Topic(topics.Heartbeats),
		deployments: ns.Topic(topics.Deployments),
	}
}

// wants reports whether the tracer reads topic: the five internal topics
// it indexes and every user stream of its namespace.
func (d *decoder) wants(topic string) bool {
	switch topic {
	case d.traces, d.logs, d.events, d.heartbeats, d.deployments:
		return true
	}
	stream, ok := d.ns.Stream(topic)
	return ok && !topics.IsInternal(stream) && topics.ValidateStreamName(stream) == nil
}

// add decodes r into b and moves b's offset of its partition past it. A
// record that does not decode is skipped (the topics are open to other
// writers), with the error returned for the log.
func (d *decoder) add(b *store.Batch, r *kgo.Record) error {
	if b.Offsets[r.Topic] == nil {
		b.Offsets[r.Topic] = map[int32]int64{}
	}
	b.Offsets[r.Topic][r.Partition] = r.Offset + 1
	switch r.Topic {
	case d.traces:
		return d.spans(b, r)
	case d.logs:
		l, err := obs.ParseLog(r)
		if err != nil {
			return err
		}
		b.Logs = append(b.Logs, store.LogRow{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Log: l})
	case d.heartbeats:
		h, err := obs.ParseHeartbeat(r)
		if err != nil {
			return err
		}
		b.Heartbeats = append(b.Heartbeats, h)
	case d.deployments:
		return d.deployment(b, r)
	case d.events:
		dl := envelope.FromRecord(r)
		if dl.Raw {
			return fmt.Errorf("platform event at %s/%d/%d is not a CloudEvent", r.Topic, r.Partition, r.Offset)
		}
		e := dl.Event
		pe := api.PlatformEvent{
			Offset: r.Offset, ID: e.ID(), Type: e.Type(), Source: e.Source(), Time: eventTime(e.Time(), r),
			Resource: envelope.Extension(e, control.ExtResource), Actor: envelope.Extension(e, control.ExtActor),
			Category: envelope.Extension(e, control.ExtCategory), Severity: envelope.Extension(e, control.ExtSeverity),
			CausationID: envelope.Extension(e, envelope.ExtCausationID), CorrelationID: envelope.Extension(e, envelope.ExtCorrelationID),
		}
		if data := e.Data(); len(data) > 0 && json.Valid(data) {
			pe.Data = json.RawMessage(data)
		}
		b.PlatformEvents = append(b.PlatformEvents, store.PEventRow{Partition: r.Partition, PlatformEvent: pe})
	default:
		stream, _ := d.ns.Stream(r.Topic)
		dl := envelope.FromRecord(r)
		e := dl.Event
		ev := api.Event{
			Stream: stream, Partition: r.Partition, Offset: r.Offset,
			ID: e.ID(), Type: e.Type(), Source: e.Source(), Subject: e.Subject(), Time: eventTime(e.Time(), r),
		}
		if !dl.Raw {
			ev.CausationID = envelope.Extension(e, envelope.ExtCausationID)
			ev.CorrelationID = envelope.Extension(e, envelope.ExtCorrelationID)
			ev.TraceID = traceID(envelope.Extension(e, envelope.ExtTraceparent))
			if rest, ok := strings.CutPrefix(ev.Source, "butter://"); ok {
				ev.Function = rest
			}
			if ids := envelope.Extension(e, obs.ExtBatchIDs); ids != "" {
				_ = json.Unmarshal([]byte(ids), &ev.BatchIDs)
			}
			ev.DeadLetter = envelope.Extension(e, obs.ExtDLQError)
			if ev.DeadLetter != "" {
				ev.DeadLetterFunction = envelope.Extension(e, obs.ExtDLQFunction)
			}
		}
		b.Events = append(b.Events, ev)
	}
	return nil
}

func eventTime(t time.Time, r *kgo.Record) time.Time {
	if t.IsZero() {
		return r.Timestamp.UTC()
	}
	return t.UTC()
}

// traceID returns the trace id of a W3C traceparent, "" if malformed.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(parts[1]); err != nil {
		return ""
	}
	return parts[1]
}

func (d *decoder) deployment(b *store.Batch, r *kgo.Record) error {
	dep, deleted, err := control.DecodeDeployment(r)
	if err != nil {
		return err
	}
	row := store.DeploymentRow{Name: dep.Name, Deleted: deleted, Version: dep.Version, Actor: dep.Actor, Updated: dep.Updated}
	if !deleted {
		desc, err := dep.Parse()
		if err != nil {
			return err
		}
		for i := range desc.Functions {
			f := &desc.Functions[i]
			fo := api.FunctionOverview{Name: f.Name, Out: f.Bindings.Out, DeadLetter: f.Delivery.DeadLetter}
			for _, in := range f.Inputs() {
				fo.Inputs = append(fo.Inputs, in.Name)
			}
			row.Functions = append(row.Functions, fo)
		}
	}
	b.Deployments = append(b.Deployments, row)
	return nil
}

// spans decodes a span record: an OTLP ExportTraceServiceRequest.
func (d *decoder) spans(b *store.Batch, r *kgo.Record) error {
	var err error
	if b.Spans, err = d.sd.decode(b.Spans, r.Value); err != nil {
		return fmt.Errorf("decode span batch at %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

package envelope

import (
	"context"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// Output describes an event caused by a parent, as services write them
// on the hot path (fnbox's results and emits): see ChildEvent and
// ChildRecord.
type Output struct {
	// Source and Type of the new event, as for Child.
	Source, Type string
	// Subject is set when not empty (after trimming, as SetSubject does).
	Subject string
	// PartitionKey, when not empty, is the partitionkey extension, and so
	// the record key.
	PartitionKey string
	// Trace, when it holds a valid span, is written into traceparent and
	// tracestate as InjectTrace writes it; else the parent's are carried.
	Trace context.Context
	// Data, when not nil, is the data, of media type DataContentType.
	Data            []byte
	DataContentType string
}

// ChildEvent returns Child(parent, o.Source, o.Type) with o's subject,
// partition key, trace (InjectTrace) and data set. It is the event
// ChildRecord encodes; callers that add attributes of their own build it
// and call ToRecord.
func ChildEvent(parent event.Event, o Output) event.Event {
	e := Child(parent, o.Source, o.Type)
	if o.Subject != "" {
		e.SetSubject(o.Subject)
	}
	if o.PartitionKey != "" {
		e.SetExtension(ExtPartitionKey, o.PartitionKey)
	}
	if o.Trace != nil {
		InjectTrace(o.Trace, &e)
	}
	if o.Data != nil {
		e.SetDataContentType(o.DataContentType)
		e.DataEncoded = o.Data
	}
	return e
}

// ChildRecord is ToRecord(topic, ChildEvent(parent, o)) in binary content
// mode, written directly: no event.Event, extension map or second
// validation in between. Whatever it does not handle that way (a source
// that does not parse, an empty type, a content type Validate would
// refuse, a parent without context) goes through ChildEvent and ToRecord,
// so the outcome, errors included, is theirs; only the id and time are
// fresh, as with any new event.
func ChildRecord(topic string, parent event.Event, o Output) (*kgo.Record, error) {
	if !noFastPath && parent.Context != nil {
		if r, ok := encodeChildFast(topic, parent, o); ok {
			return r, nil
		}
	}
	return ToRecord(topic, ChildEvent(parent, o))
}

// traceCapture keeps what the trace propagator injects.
type traceCapture struct{ traceparent, tracestate string }

func (c *traceCapture) Get(string) string { return "" }
func (c *traceCapture) Keys() []string    { return nil }
func (c *traceCapture) Set(key, value string) {
	switch key {
	case ExtTraceparent:
		c.traceparent = value
	case ExtTracestate:
		c.tracestate = value
	}
}

// encodeChildFast writes the record of ChildEvent(parent, o) as
// encodeBinaryFast would, and reports false where it would not.
func encodeChildFast(topic string, parent event.Event, o Output) (*kgo.Record, bool) {
	src := parseSource(o.Source)
	if !src.valid {
		return nil, false
	}
	typ := strings.TrimSpace(o.Type)
	if typ == "" {
		return nil, false
	}
	subject := strings.TrimSpace(o.Subject)
	ct := ""
	if o.Data != nil {
		if ct = strings.TrimSpace(o.DataContentType); ct != "" && !checkContentType(ct).valid {
			return nil, false
		}
	}
	source := src.str

	// The extensions, in the sorted order ToRecord writes them.
	cause := parent.ID()
	correlation := cause
	if v, ok := canonical(parent, ExtCorrelationID); ok {
		correlation = v.(string)
	}
	var tp, ts string
	if o.Trace != nil && trace.SpanContextFromContext(o.Trace).IsValid() {
		var c traceCapture
		traceContext.Inject(o.Trace, &c)
		tp, ts = c.traceparent, c.tracestate
	} else {
		if v, ok := canonical(parent, ExtTraceparent); ok {
			tp = v.(string)
		}
		if v, ok := canonical(parent, ExtTracestate); ok {
			ts = v.(string)
		}
	}
	key := o.PartitionKey
	if key == "" {
		key = subject
	}

	size := len(event.CloudEventsVersionV1) + 36 + len(source) + len(typ) + len(subject) + len(time.RFC3339Nano) + 8 + len(ct) +
		len(cause) + len(correlation) + len(o.PartitionKey) + len(tp) + len(ts) + len(key)
	rh := &recordWithHeaders{}
	r := &rh.r
	r.Topic = topic
	hs := rh.h[:0]
	buf := make([]byte, 0, size)
	add := func(k, v string) {
		i := len(buf)
		buf = append(buf, v...)
		hs = append(hs, kgo.RecordHeader{Key: k, Value: buf[i:len(buf):len(buf)]})
	}
	add(HeaderPrefix+attrSpecVersion, event.CloudEventsVersionV1)
	i := len(buf)
	buf = buf[:i+36]
	newID((*[36]byte)(buf[i:]))
	hs = append(hs, kgo.RecordHeader{Key: HeaderPrefix + attrID, Value: buf[i:len(buf):len(buf)]})
	add(HeaderPrefix+attrSource, source)
	add(HeaderPrefix+attrType, typ)
	if subject != "" {
		add(HeaderPrefix+attrSubject, subject)
	}
	i = len(buf)
	buf = time.Now().UTC().AppendFormat(buf, time.RFC3339Nano)
	hs = append(hs, kgo.RecordHeader{Key: HeaderPrefix + attrTime, Value: buf[i:len(buf):len(buf)]})
	if ct != "" {
		add(HeaderContentType, ct)
	}
	add(HeaderPrefix+ExtCausationID, cause)
	add(HeaderPrefix+ExtCorrelationID, correlation)
	if o.PartitionKey != "" {
		add(HeaderPrefix+ExtPartitionKey, o.PartitionKey)
	}
	if tp != "" {
		add(HeaderPrefix+ExtTraceparent, tp)
	}
	if ts != "" {
		add(HeaderPrefix+ExtTracestate, ts)
	}
	if key != "" {
		i := len(buf)
		buf = append(buf, key...)
		r.Key = buf[i:len(buf):len(buf)]
	}
	r.Headers = hs
	r.Value = o.Data
	return r, true
}

package kit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// ContentTypeHeader is the record header naming the value's encoding.
const ContentTypeHeader = "content-type"

// ContentTypeProtobuf marks a span record's value as a binary protobuf
// collector.trace.v1.ExportTraceServiceRequest, as OTLP/HTTP does.
const ContentTypeProtobuf = "application/x-protobuf"

// maxSpanRecordBytes bounds one span record well under Kafka's default 1 MiB
// max.message.bytes (and franz-go's producer batch limit): a batch of 512
// spans with large attributes would otherwise be rejected whole.
const maxSpanRecordBytes = 512 << 10

// errSpanClientStopped is returned by uploads after Stop.
var errSpanClientStopped = errors.New("kafka span client is stopped")

// KafkaSpanClient returns an otlptrace.Client that produces each span batch
// to topic as one or more ExportTraceServiceRequest records (split so no
// record exceeds 512 KiB), with header content-type: application/x-protobuf.
// Wrap it with otlptrace.New. Records have no key: a batch mixes traces, and
// the tracer indexes spans by trace id whatever the partition.
//
// cl stays the caller's: Stop does not close it. Do not give it a client
// whose produce path is itself traced, or every export makes more spans.
func KafkaSpanClient(cl *kgo.Client, topic string) otlptrace.Client {
	return &kafkaSpanClient{cl: cl, topic: topic}
}

type kafkaSpanClient struct {
	cl      *kgo.Client
	topic   string
	stopped atomic.Bool
}

var _ otlptrace.Client = (*kafkaSpanClient)(nil)

// Start does nothing: the Kafka client connects on its own.
func (c *kafkaSpanClient) Start(context.Context) error { return nil }

// Stop refuses further uploads. Uploads in flight finish: ProduceSync
// returns only once the broker answered.
func (c *kafkaSpanClient) Stop(context.Context) error {
	c.stopped.Store(true)
	return nil
}

// UploadTraces produces rs and waits for the broker's acknowledgement, so
// the batch processor's export timeout bounds it and its errors are real.
func (c *kafkaSpanClient) UploadTraces(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	if c.stopped.Load() {
		return errSpanClientStopped
	}
	var recs []*kgo.Record
	if err := c.appendRecords(&recs, rs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	if err := c.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce spans to %s: %w", c.topic, err)
	}
	return nil
}

// appendRecords encodes rs, halving it until each part fits a record. A
// single span too large on its own is produced anyway, so the broker's error
// names the problem instead of the span vanishing.
func (c *kafkaSpanClient) appendRecords(recs *[]*kgo.Record, rs []*tracepb.ResourceSpans) error {
	if len(rs) == 0 {
		return nil
	}
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		return fmt.Errorf("marshal spans: %w", err)
	}
	if len(b) > maxSpanRecordBytes {
		if halves, ok := splitSpans(rs); ok {
			if err := c.appendRecords(recs, halves[0]); err != nil {
				return err
			}
			return c.appendRecords(recs, halves[1])
		}
	}
	*recs = append(*recs, &kgo.Record{
		Topic:   c.topic,
		Value:   b,
		Headers: []kgo.RecordHeader{{Key: ContentTypeHeader, Value: []byte(ContentTypeProtobuf)}},
	})
	return nil
}

// splitSpans splits rs in two at the outermost level that has more than one
// element, keeping each span under its own resource and scope. It reports
// false when rs holds a single span.
func splitSpans(rs []*tracepb.ResourceSpans) ([2][]*tracepb.ResourceSpans, bool) {
	if len(rs) > 1 {
		m := len(rs) / 2
		return [2][]*tracepb.ResourceSpans{rs[:m], rs[m:]}, true
	}
	r := rs[0]
	withScopes := func(ss []*tracepb.ScopeSpans) []*tracepb.ResourceSpans {
		return []*tracepb.ResourceSpans{{Resource: r.Resource, SchemaUrl: r.SchemaUrl, ScopeSpans: ss}}
	}
	if len(r.ScopeSpans) > 1 {
		m := len(r.ScopeSpans) / 2
		return [2][]*tracepb.ResourceSpans{withScopes(r.ScopeSpans[:m]), withScopes(r.ScopeSpans[m:])}, true
	}
	if len(r.ScopeSpans) == 1 && len(r.ScopeSpans[0].Spans) > 1 {
		s := r.ScopeSpans[0]
		withSpans := func(sp []*tracepb.Span) []*tracepb.ResourceSpans {
			return withScopes([]*tracepb.ScopeSpans{{Scope: s.Scope, SchemaUrl: s.SchemaUrl, Spans: sp}})
		}
		m := len(s.Spans) / 2
		return [2][]*tracepb.ResourceSpans{withSpans(s.Spans[:m]), withSpans(s.Spans[m:])}, true
	}
	return [2][]*tracepb.ResourceSpans{}, false
}

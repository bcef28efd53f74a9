package ingest

import (
	"context"
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/tracer/internal/store"
)

func strKV(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intKV(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// spanRecords returns records of _butter.traces as fnbox's batch exporter
// writes them: n spans, perRecord to an ExportTraceServiceRequest, four
// to a trace (receive → invoke → produce under the gateway's server
// span), with the attributes fnbox and the gateway set.
func spanRecords(topic string, first, n, perRecord int) []*kgo.Record {
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
		strKV("service.name", "fnbox"), strKV("service.instance.id", "shop-hello-7f9c"),
		strKV("telemetry.sdk.language", "go"), strKV("telemetry.sdk.name", "opentelemetry"),
		strKV("telemetry.sdk.version", "1.38.0"), strKV("host.name", "node-1"),
	}}
	t0 := uint64(time.Now().UnixNano())
	id := func(b []byte, v uint64) []byte { binary.BigEndian.PutUint64(b[len(b)-8:], v); return b }
	var recs []*kgo.Record
	for off := first; off < first+n; off += perRecord {
		ss := &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: "github.com/buttercompass/butter/fnbox"}}
		for i := off; i < off+perRecord && i < first+n; i++ {
			// Trace ids are random, as the SDK makes them: their rows
			// land all over the index, not at its end.
			tr, k := mix(uint64(i/4+1)), i%4
			s := &tracepb.Span{
				TraceId: id(make([]byte, 16), tr), SpanId: id(make([]byte, 8), uint64(i+1)),
				StartTimeUnixNano: t0 + uint64(i)*1000, EndTimeUnixNano: t0 + uint64(i)*1000 + 250_000,
				Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
			}
			if k > 0 {
				s.ParentSpanId = id(make([]byte, 8), uint64(i))
			}
			switch k {
			case 0:
				s.Name, s.Kind = "POST /hello", tracepb.Span_SPAN_KIND_SERVER
				s.Attributes = []*commonpb.KeyValue{strKV("http.request.method", "POST"), strKV("http.route", "/hello"),
					strKV("url.path", "/hello"), intKV("http.response.status_code", 200),
					strKV(AttrDeployment, "shop"), strKV(AttrFunction, "hello")}
			case 1:
				s.Name, s.Kind = "receive shop-hello-http", tracepb.Span_SPAN_KIND_CLIENT
				s.Attributes = []*commonpb.KeyValue{strKV("messaging.system", "kafka"), strKV("messaging.operation.type", "receive"),
					strKV("messaging.destination.name", "shop-hello-http"), strKV("messaging.destination.partition.id", "2"),
					intKV("messaging.kafka.offset", int64(i)), strKV("messaging.consumer.group.name", "butter.shop.hello"),
					strKV("messaging.message.id", "c0ffee-42"), strKV(AttrDeployment, "shop"), strKV(AttrFunction, "hello")}
			case 2:
				s.Name, s.Kind = "invoke hello", tracepb.Span_SPAN_KIND_INTERNAL
				s.Attributes = []*commonpb.KeyValue{strKV(AttrDeployment, "shop"), strKV(AttrFunction, "hello"),
					strKV("cloudevents.event_id", "c0ffee-42"), strKV("cloudevents.event_type", "butter.http.request")}
			case 3:
				s.Name, s.Kind = "produce hello", tracepb.Span_SPAN_KIND_PRODUCER
				s.Attributes = []*commonpb.KeyValue{strKV(AttrDeployment, "shop"), strKV(AttrFunction, "hello")}
			}
			ss.Spans = append(ss.Spans, s)
		}
		b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{Resource: res, ScopeSpans: []*tracepb.ScopeSpans{ss}}}})
		if err != nil {
			panic(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Offset: int64(len(recs)), Value: b})
	}
	return recs
}

// mix is splitmix64's finalizer: distinct, random-looking ids.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngest decodes and indexes span records as the ingester does:
// each op is one poll (records of spans from the OTel batch exporter)
// applied in one transaction. It reports spans/s and the process's CPU
// time per span.
func BenchmarkIngest(b *testing.B) {
	for _, c := range []struct {
		name              string
		perRecord, perTxn int
	}{
		{"backlog-512x8", 512, 8}, // catching up: full exporter batches, several per poll
		{"live-64x1", 64, 1},      // under load: small polls as spans arrive
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := store.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			d := newDecoder(topics.Namespace(""))
			per := c.perRecord * c.perTxn
			polls := make([][]*kgo.Record, b.N)
			for i := range b.N {
				polls[i] = spanRecords(d.traces, i*per, per, c.perRecord)
			}
			ctx := context.Background()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := range b.N {
				batch := store.Batch{Offsets: map[string]map[int32]int64{}}
				for _, r := range polls[i] {
					if err := d.add(&batch, r); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Apply(ctx, &batch); err != nil {
					b.Fatal(err)
				}
			}
			spans := float64(b.N * per)
			b.ReportMetric(spans/time.Since(start).Seconds(), "spans/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/spans, "cpu-µs/span")
		})
	}
}

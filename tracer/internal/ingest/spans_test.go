package ingest

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/buttercompass/butter/tracer/api"
)

func anyKV(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

// spanRequests are OTLP requests covering every attribute value type,
// span events, statuses and the resource fallbacks.
func spanRequests() []*coltracepb.ExportTraceServiceRequest {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	tid := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	all := []*commonpb.KeyValue{
		anyKV("s", str("a \"quoted\" \\ line\n\t\x01 é 漢 <&> \u2028")),
		anyKV("b", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}),
		anyKV("i", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -1 << 40}}),
		anyKV("d", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5e300}}),
		anyKV("d0", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: math.SmallestNonzeroFloat64}}),
		anyKV("bytes", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0xde, 0xad}}}),
		anyKV("arr", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			str("x"), {Value: &commonpb.AnyValue_IntValue{IntValue: 3}}, {},
			{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{anyKV("in", str("y"))}}}},
		}}}}),
		anyKV("emptyarr", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{}}}),
		anyKV("emptykv", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{}}}),
		anyKV("unset", &commonpb.AnyValue{}),
		{Key: "novalue"},
		anyKV("s", str("last wins")),
		anyKV(AttrFunction, &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 7}}),
	}
	return []*coltracepb.ExportTraceServiceRequest{
		{ResourceSpans: []*tracepb.ResourceSpans{{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
				anyKV(AttrServiceName, str("fnbox")), anyKV(AttrDeployment, str("shop")), anyKV(AttrFunction, str("from-resource")),
			}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
				{TraceId: tid, SpanId: sid, Name: "invoke hello", Kind: tracepb.Span_SPAN_KIND_CONSUMER,
					StartTimeUnixNano: 1_700_000_000_123_456_789, EndTimeUnixNano: 1_700_000_000_223_456_789,
					Attributes: all,
					Status:     &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom \"x\""},
					Events: []*tracepb.Span_Event{
						{Name: "exception", TimeUnixNano: 1_700_000_000_200_000_000, Attributes: all[:3]},
						{Name: "retry", TimeUnixNano: 1_700_000_000_210_000_001},
					}},
				{TraceId: tid, SpanId: []byte{9, 9, 9, 9, 9, 9, 9, 9}, ParentSpanId: sid, Name: "child",
					StartTimeUnixNano: 10, EndTimeUnixNano: 5, // ends before it starts
					Attributes: []*commonpb.KeyValue{anyKV(AttrDeployment, str("")),
						// bytes are stored as hex, a string to whoever reads them
						anyKV(AttrFunction, &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte("f")}})}},
				{TraceId: tid[:8], SpanId: sid, Name: "bad ids"},
			}}},
		}, {
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
				{TraceId: tid, SpanId: []byte{7, 7, 7, 7, 7, 7, 7, 7}, Kind: tracepb.Span_SPAN_KIND_PRODUCER,
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}},
			}}},
		}}},
		{},
	}
}

// normal is a span as the index answers it: attributes and events
// through their JSON.
func normal(t testing.TB, sp api.Span, attrs, events string) api.Span {
	t.Helper()
	if attrs == "" {
		b, err := json.Marshal(sp.Attributes)
		if err != nil {
			t.Fatal(err)
		}
		attrs = string(b)
	}
	if events == "" {
		b, err := json.Marshal(sp.Events)
		if err != nil {
			t.Fatal(err)
		}
		events = string(b)
	}
	sp.Attributes, sp.Events = nil, nil
	if err := json.Unmarshal([]byte(attrs), &sp.Attributes); err != nil {
		t.Fatalf("attributes %s: %v", attrs, err)
	}
	if err := json.Unmarshal([]byte(events), &sp.Events); err != nil {
		t.Fatalf("events %s: %v", events, err)
	}
	return sp
}

// checkSameSpans holds the wire decoder to proto.Unmarshal on value: where
// that accepts it, both give the same spans.
func checkSameSpans(t testing.TB, value []byte) {
	t.Helper()
	want, err := refSpans(value)
	if err != nil {
		return
	}
	var d spanDecoder
	got, err := d.decode(nil, value)
	if err != nil {
		t.Fatalf("wire decoder refused what proto.Unmarshal accepts: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d spans, want %d", len(got), len(want))
	}
	for i := range want {
		w := normal(t, want[i], "", "")
		g := normal(t, got[i].Span, got[i].AttrsJSON, got[i].EventsJSON)
		if !g.Start.Equal(w.Start) {
			t.Fatalf("span %d start %v, want %v", i, g.Start, w.Start)
		}
		g.Start = w.Start
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("span %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestSpanDecoderMatchesProto(t *testing.T) {
	var n int
	for _, req := range spanRequests() {
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		checkSameSpans(t, b)
		n++
	}
	for _, r := range spanRecords("t", 0, 200, 64) {
		checkSameSpans(t, r.Value)
		n++
	}
	// A message field given twice is merged, as protobuf does.
	b, _ := proto.Marshal(spanRequests()[0])
	checkSameSpans(t, append(b, b...))
	var d spanDecoder
	rows, err := d.decode(nil, b)
	if err != nil || len(rows) != 3 {
		t.Fatalf("%d spans, %v; want 3", len(rows), err)
	}
	if sp := rows[0].Span; sp.Deployment != "shop" || sp.Function != "from-resource" || sp.Service != "fnbox" || sp.Status != api.StatusError {
		t.Fatalf("resource fallbacks or status wrong: %+v", sp)
	}
	if _, err := d.decode(nil, b[:len(b)-3]); err == nil {
		t.Fatal("a truncated batch decoded")
	}
}

func FuzzSpanDecoder(f *testing.F) {
	for _, req := range spanRequests() {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	f.Add(spanRecords("t", 0, 8, 8)[0].Value)
	f.Fuzz(func(t *testing.T, b []byte) { checkSameSpans(t, b) })
}

// TestSpanDecoderMutations runs checkSameSpans on corrupted copies of a
// request (bytes changed, cut short), as the fuzzer does, with a fixed seed.
func TestSpanDecoderMutations(t *testing.T) {
	seed, err := proto.Marshal(spanRequests()[0])
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		b := append([]byte(nil), seed...)
		for range 1 + r.IntN(4) {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		if r.IntN(3) == 0 {
			b = b[:r.IntN(len(b))]
		}
		checkSameSpans(t, b)
	}
}

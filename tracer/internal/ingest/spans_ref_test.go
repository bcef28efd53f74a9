package ingest

import (
	"encoding/hex"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/buttercompass/butter/tracer/api"
)

// refSpans is the span decoding the wire decoder replaced: proto.Unmarshal
// and maps of attributes. The tests hold the wire decoder to it.
func refSpans(value []byte) ([]api.Span, error) {
	var out []api.Span
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(value, &req); err != nil {
		return nil, err
	}
	for _, rs := range req.ResourceSpans {
		res := attrs(rs.GetResource().GetAttributes())
		service, _ := res[AttrServiceName].(string)
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := api.Span{
					TraceID:       hex.EncodeToString(s.TraceId),
					SpanID:        hex.EncodeToString(s.SpanId),
					ParentSpanID:  hex.EncodeToString(s.ParentSpanId),
					Service:       service,
					Name:          s.Name,
					Kind:          kind(s.Kind),
					Start:         time.Unix(0, int64(s.StartTimeUnixNano)).UTC(),
					DurationMs:    float64(int64(s.EndTimeUnixNano)-int64(s.StartTimeUnixNano)) / float64(time.Millisecond),
					Status:        status(s.GetStatus().GetCode()),
					StatusMessage: s.GetStatus().GetMessage(),
					Attributes:    attrs(s.Attributes),
				}
				if sp.DurationMs < 0 {
					sp.DurationMs = 0
				}
				sp.Deployment = firstString(sp.Attributes, res, AttrDeployment)
				sp.Function = firstString(sp.Attributes, res, AttrFunction)
				for _, ev := range s.Events {
					sp.Events = append(sp.Events, api.SpanEvent{
						Name: ev.Name, Time: time.Unix(0, int64(ev.TimeUnixNano)).UTC(), Attributes: attrs(ev.Attributes),
					})
				}
				if len(sp.TraceID) != 32 || len(sp.SpanID) != 16 {
					continue
				}
				out = append(out, sp)
			}
		}
	}
	return out, nil
}

func firstString(a, b map[string]any, key string) string {
	if v, ok := a[key].(string); ok {
		return v
	}
	v, _ := b[key].(string)
	return v
}

func kind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "internal"
	}
	return ""
}

func status(c tracepb.Status_StatusCode) string {
	switch c {
	case tracepb.Status_STATUS_CODE_ERROR:
		return api.StatusError
	case tracepb.Status_STATUS_CODE_OK:
		return api.StatusOK
	}
	return api.StatusUnset
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = value(kv.Value)
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrs(x.KvlistValue.GetValues())
	}
	return nil
}

package kit

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/buttercompass/butter/proto/topics"
)

// consumeAll returns the first n records of topic, polling until they came.
func consumeAll(t *testing.T, cfg KafkaConfig, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := cfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("new consumer: %v", err)
	}
	t.Cleanup(cl.Close)
	var recs []*kgo.Record
	checkFor(t, 20*time.Second, 0, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		fetches := cl.PollFetches(ctx)
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return fe.Err
			}
		}
		recs = append(recs, fetches.Records()...)
		if len(recs) < n {
			return errors.New("records not there yet")
		}
		return nil
	})
	return recs
}

func decodeSpans(t *testing.T, r *kgo.Record) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var ct string
	for _, h := range r.Headers {
		if h.Key == ContentTypeHeader {
			ct = string(h.Value)
		}
	}
	if ct != ContentTypeProtobuf {
		t.Fatalf("content-type header = %q, want %q", ct, ContentTypeProtobuf)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(r.Value, &req); err != nil {
		t.Fatalf("decode ExportTraceServiceRequest: %v", err)
	}
	return &req
}

func serviceName(rs *tracepb.ResourceSpans) string {
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.Key == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func TestStartTelemetryExportsToKafka(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "not-this-one")
	_, cfg := newCluster(t)
	cl := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, cl, topics.Internal()...); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	log, err := NewLogger(&logs, "info")
	if err != nil {
		t.Fatal(err)
	}
	shutdown, err := StartTelemetry(ctx, TelemetryConfig{Service: "kit-test", Kafka: cl, Logger: log})
	if err != nil {
		t.Fatalf("StartTelemetry: %v", err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })

	sctx, span := otel.Tracer("kit").Start(ctx, "handle order")
	traceID := span.SpanContext().TraceID().String()
	log.InfoContext(sctx, "handling", KeyStream, "orders")
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(sctx, carrier)
	span.End()
	if err := shutdown(ctx); err != nil { // flushes the batch
		t.Fatalf("shutdown: %v", err)
	}

	if !strings.Contains(carrier["traceparent"], traceID) {
		t.Errorf("global propagator injected %v, want a traceparent with %s", carrier, traceID)
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", logs.String(), err)
	}
	if line[KeyTraceID] != traceID || line[KeyStream] != "orders" {
		t.Errorf("log line = %v, want trace_id %s", line, traceID)
	}

	recs := consumeAll(t, cfg, topics.Traces, 1)
	req := decodeSpans(t, recs[0])
	rs := req.GetResourceSpans()
	if len(rs) != 1 || serviceName(rs[0]) != "kit-test" {
		t.Fatalf("resource spans = %v, want one with service.name kit-test", rs)
	}
	sp := rs[0].GetScopeSpans()[0].GetSpans()[0]
	if sp.GetName() != "handle order" {
		t.Errorf("span name = %q", sp.GetName())
	}
	if got := hex.EncodeToString(sp.GetTraceId()); got != traceID {
		t.Errorf("span trace id = %s, want %s", got, traceID)
	}
}

func TestKafkaSpanClientSplitsLargeBatches(t *testing.T) {
	_, cfg := newCluster(t)
	cl := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "spans"
	if err := EnsureTopics(ctx, cl, topics.Spec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}

	big := strings.Repeat("x", 300<<10) // three of these exceed one record
	var spans []*tracepb.Span
	for i := range 3 {
		spans = append(spans, &tracepb.Span{
			TraceId: bytes.Repeat([]byte{byte(i + 1)}, 16),
			SpanId:  bytes.Repeat([]byte{byte(i + 1)}, 8),
			Name:    fmt.Sprintf("span-%d", i),
			Attributes: []*commonpb.KeyValue{{
				Key:   "payload",
				Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: big}},
			}},
		})
	}
	rs := []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "big"}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}

	client := KafkaSpanClient(cl, topic)
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := client.UploadTraces(ctx, rs); err != nil {
		t.Fatalf("UploadTraces: %v", err)
	}

	var names []string
	for _, r := range consumeAll(t, cfg, topic, 3) {
		if len(r.Value) > maxSpanRecordBytes {
			t.Errorf("record of %d bytes, limit %d", len(r.Value), maxSpanRecordBytes)
		}
		for _, rs := range decodeSpans(t, r).GetResourceSpans() {
			if serviceName(rs) != "big" {
				t.Errorf("split lost the resource: %v", rs.GetResource())
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					names = append(names, sp.GetName())
				}
			}
		}
	}
	if strings.Join(names, ",") != "span-0,span-1,span-2" {
		t.Errorf("spans = %v, want all three once, in order", names)
	}

	if err := client.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := client.UploadTraces(ctx, rs); err == nil {
		t.Error("UploadTraces after Stop succeeded")
	}
}

func TestTracerProviderExportsOTLPHTTP(t *testing.T) {
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", ContentTypeProtobuf)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tp, err := NewTracerProvider(ctx, TelemetryConfig{Service: "http-test"})
	if err != nil {
		t.Fatalf("NewTracerProvider: %v", err)
	}
	_, span := tp.Tracer("kit").Start(ctx, "via http")
	span.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("collector got %d exports, want 1", len(got))
	}
	rs := got[0].GetResourceSpans()
	if len(rs) != 1 || serviceName(rs[0]) != "http-test" || rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "via http" {
		t.Fatalf("export = %v", got[0])
	}
}

func TestTelemetryNeedsServiceName(t *testing.T) {
	if _, err := StartTelemetry(context.Background(), TelemetryConfig{}); err == nil {
		t.Fatal("StartTelemetry without Service succeeded")
	}
}

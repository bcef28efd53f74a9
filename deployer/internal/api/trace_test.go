package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/topics"
)

// TestCallsAreTraced: every API call is a server span named after its
// route that continues the caller's traceparent and records the status.
func TestCallsAreTraced(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	spans := tracetest.NewSpanRecorder()
	a := New(Config{Kafka: cl, Events: control.NewRecorder(cl, topics.Events, control.SourceDeployer), Token: "tok",
		Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))})
	mux := http.NewServeMux()
	a.Register(mux.Handle)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", srv.URL+"/v1/apikeys", strings.NewReader(`{"name":"traced"}`))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("traceparent", "00-"+trace+"-"+parent+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/apikeys = %d", res.StatusCode)
	}
	ended := spans.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	sp := ended[0]
	if sp.Name() != "POST /v1/apikeys" || sp.SpanContext().TraceID().String() != trace || sp.Parent().SpanID().String() != parent {
		t.Errorf("span %q trace %s parent %s, want \"POST /v1/apikeys\" in trace %s under %s",
			sp.Name(), sp.SpanContext().TraceID(), sp.Parent().SpanID(), trace, parent)
	}
	want := attribute.Int("http.response.status_code", http.StatusCreated)
	found := false
	for _, kv := range sp.Attributes() {
		found = found || kv == want
	}
	if !found {
		t.Errorf("span attributes %v, want %v", sp.Attributes(), want)
	}
}

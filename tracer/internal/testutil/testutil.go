// Package testutil holds what the tracer's tests share: an embedded
// broker, and a seed of real records on it (spans through the exporter
// every service uses, logs, heartbeats, a deployment, platform events and
// CloudEvents chains with causation ids and a dead letter).
package testutil

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// Broker starts an in-memory embedded broker on a random port with the
// internal topics and returns its address.
func Broker(t testing.TB) string {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl := Client(t, b.Addr())
	if err := kit.EnsureTopics(context.Background(), cl, topics.Internal()...); err != nil {
		t.Fatal(err)
	}
	return b.Addr()
}

// Client returns a plain client of brokers.
func Client(t testing.TB, brokers string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Streams are the user streams of the seed.
var Streams = []string{"orders", "priced", "shipped", "priced.dlq"}

// Descriptor is the seed's deployment "shop".
const Descriptor = `name: shop
platform: exec
functions:
  - name: price
    fn: ./price.sh
    bindings: { streams: [orders], out: priced }
  - name: ship
    fn: ./ship.sh
    bindings: { streams: [priced], out: shipped }
    delivery: { deadLetter: priced.dlq }
`

// Seed is what Produce wrote.
type Seed struct {
	// TraceIDs are the traces, in the order made; ErrorTrace failed.
	TraceIDs   []string
	ErrorTrace string
	// Chains are the ids of each chain: orders → priced → shipped; the
	// first chain's priced event is also dead-lettered on priced.dlq.
	Chains [][3]string
	// Logs counts log lines, ErrorLogs those at level error.
	Logs, ErrorLogs int
	// Action is the id of the deployment.create platform event.
	Action string
}

// Sizes says how much Produce writes.
type Sizes struct{ Traces, Chains, Logs int }

// Produce writes a seed of real records to brokers.
func Produce(t testing.TB, brokers string, n Sizes) Seed {
	t.Helper()
	ctx := context.Background()
	cl := Client(t, brokers, kgo.ProducerBatchMaxBytes(control.MaxRecordBytes), kgo.MaxBufferedRecords(100000))
	if err := kit.EnsureTopics(ctx, cl, specs(Streams)...); err != nil {
		t.Fatal(err)
	}
	var seed Seed
	var recs []*kgo.Record
	add := func(r *kgo.Record, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	now := time.Now().UTC()

	// The deployment, its platform events and a heartbeat.
	dep := control.Deployment{Name: "shop", Version: "v1", Descriptor: Descriptor, Created: now, Updated: now, Actor: "alice"}
	add(control.DeploymentRecord(topics.Deployments, dep))
	action, err := control.NewEvent(control.SourceDeployer, control.TypeDeploymentCreate,
		control.Info{Resource: control.Resource(control.KindDeployment, "shop"), Actor: "alice"},
		control.DeploymentChange{Name: "shop", Version: "v1", Functions: []string{"price", "ship"}})
	if err != nil {
		t.Fatal(err)
	}
	seed.Action = action.ID()
	add(envelope.ToRecord(topics.Events, action))
	done, err := control.Outcome(action, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	add(envelope.ToRecord(topics.Events, done))
	for _, fn := range []string{"price", "ship"} {
		add(obs.Heartbeat{Deployment: "shop", Function: fn, Instance: "i-1", Time: now, Processed: 10, Errors: 1,
			P95Ms: 3}.Record(topics.Heartbeats))
	}

	// Chains of events with causation ids; the first is dead-lettered.
	for i := range n.Chains {
		in := envelope.New("/test/client", "order.placed")
		in.SetID(fmt.Sprintf("order-%d", i))
		in.SetTime(now.Add(time.Duration(i) * time.Millisecond))
		in.SetExtension(envelope.ExtCorrelationID, in.ID())
		in.SetExtension(envelope.ExtTraceparent, fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))
		mustData(t, &in)
		priced := envelope.Child(in, obs.Source("shop", "price"), obs.TypeResult)
		priced.SetID(fmt.Sprintf("priced-%d", i))
		priced.SetTime(in.Time().Add(time.Millisecond))
		mustData(t, &priced)
		shipped := envelope.Child(priced, obs.Source("shop", "ship"), obs.TypeResult)
		shipped.SetID(fmt.Sprintf("shipped-%d", i))
		shipped.SetTime(in.Time().Add(2 * time.Millisecond))
		mustData(t, &shipped)
		add(envelope.ToRecord("orders", in))
		add(envelope.ToRecord("priced", priced))
		add(envelope.ToRecord("shipped", shipped))
		if i == 0 {
			dead := priced.Clone()
			dead.SetExtension(obs.ExtDLQError, "TypeError: price is undefined")
			dead.SetExtension(obs.ExtDLQFunction, "shop/ship")
			dead.SetExtension(obs.ExtDLQAttempts, 3)
			add(envelope.ToRecord("priced.dlq", dead))
		}
		seed.Chains = append(seed.Chains, [3]string{in.ID(), priced.ID(), shipped.ID()})
	}

	// Log lines.
	for i := range n.Logs {
		l := obs.Log{Deployment: "shop", Function: "price", Instance: "i-1", Level: obs.LevelInfo,
			Message: fmt.Sprintf("priced order %d", i), Origin: obs.OriginContext, Time: now.Add(time.Duration(i) * time.Microsecond)}
		if i%10 == 9 {
			l.Level, l.Message = obs.LevelError, fmt.Sprintf("TypeError: price is undefined (order %d)", i)
			seed.ErrorLogs++
		}
		add(l.Record(topics.Logs))
	}
	seed.Logs = n.Logs
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	seed.TraceIDs, seed.ErrorTrace = produceSpans(t, cl, n.Traces)
	return seed
}

func specs(streams []string) []topics.Spec {
	out := make([]topics.Spec, len(streams))
	for i, s := range streams {
		out[i] = topics.Stream(s)
	}
	return out
}

func mustData(t testing.TB, e *event.Event) {
	t.Helper()
	if err := e.SetData(event.ApplicationJSON, map[string]string{"id": e.ID()}); err != nil {
		t.Fatal(err)
	}
}

// produceSpans makes n traces gateway → fnbox invoke (→ function's own
// span) through real tracer providers exporting to _butter.traces, as the
// services do; the last trace's invocation fails.
func produceSpans(t testing.TB, cl *kgo.Client, n int) (ids []string, failed string) {
	t.Helper()
	ctx := context.Background()
	gw, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "gateway", Kafka: cl})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "fnbox", Kafka: cl})
	if err != nil {
		t.Fatal(err)
	}
	fn, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "price", Kafka: cl})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		rctx, root := gw.Tracer("test").Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.route", "/orders")))
		ictx, inv := fb.Tracer("test").Start(rctx, "invoke price", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("butter.deployment", "shop"), attribute.String("butter.function", "price"),
				attribute.String("messaging.destination.name", "orders")))
		_, own := fn.Tracer("test").Start(ictx, "compute price")
		if i == n-1 {
			err := fmt.Errorf("TypeError: price is undefined")
			inv.RecordError(err)
			inv.SetStatus(codes.Error, err.Error())
			failed = root.SpanContext().TraceID().String()
		}
		own.End()
		inv.End()
		root.End()
		ids = append(ids, root.SpanContext().TraceID().String())
	}
	for _, tp := range []interface{ Shutdown(context.Context) error }{gw, fb, fn} {
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ids, failed
}

// ProduceLogs writes log lines of deployment "live" to brokers in batches
// until stop is closed, and returns how many it wrote (-1 on error).
func ProduceLogs(brokers string, stop <-chan struct{}) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return -1
	}
	defer cl.Close()
	n := 0
	for {
		select {
		case <-stop:
			return n
		default:
		}
		recs := make([]*kgo.Record, 0, 100)
		for range 100 {
			r, err := obs.Log{Deployment: "live", Level: obs.LevelInfo, Message: fmt.Sprintf("line %d", n+len(recs)),
				Time: time.Now()}.Record(topics.Logs)
			if err != nil {
				return -1
			}
			recs = append(recs, r)
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			return -1
		}
		n += len(recs)
	}
}

// Get fetches url and decodes its JSON into v (when not nil), returning
// the status and body.
func Get(t testing.TB, url string, v any) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, b)
		}
	}
	return resp.StatusCode, b
}

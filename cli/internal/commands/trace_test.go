package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// TestTraceLineageEventsCommands runs butter trace, lineage and events
// against a real tracer indexing real records on the embedded broker.
func TestTraceLineageEventsCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, cl, tracer := tracerOnBroker(t, "orders", "priced")

	// A trace: the gateway's request and fnbox's failed invocation,
	// exported as the services export them.
	gw, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "gateway", Kafka: cl})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "fnbox", Kafka: cl})
	if err != nil {
		t.Fatal(err)
	}
	rctx, root := gw.Tracer("t").Start(ctx, "POST /orders")
	_, inv := fb.Tracer("t").Start(rctx, "invoke price")
	inv.SetStatus(codes.Error, "TypeError: boom")
	inv.End()
	root.End()
	traceID := root.SpanContext().TraceID().String()
	for _, shut := range []func(context.Context) error{gw.Shutdown, fb.Shutdown} {
		if err := shut(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// A chain orders → priced, and a failed deployment.
	placed := envelope.New("/test", "order.placed")
	placed.SetExtension(envelope.ExtCorrelationID, placed.ID())
	priced := envelope.Child(placed, obs.Source("shop", "price"), obs.TypeResult)
	action, err := control.NewEvent(control.SourceDeployer, control.TypeDeploymentCreate,
		control.Info{Resource: "deployment/shop", Actor: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	failed, err := control.Outcome(action, errors.New("descriptor: no functions"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	r1, _ := envelope.ToRecord("orders", placed)
	r2, _ := envelope.ToRecord("priced", priced)
	r3, _ := envelope.ToRecord(topics.Events, action)
	r4, _ := envelope.ToRecord(topics.Events, failed)
	recs = append(recs, r1, r2, r3, r4)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	url := "http://" + tracer

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Execute(ctx, append(args, "--tracer", url), IO{In: strings.NewReader(""), Out: &out, Err: io.Discard})
		return out.String(), err
	}
	kittest.Eventually(t, "butter trace prints the tree", func() error {
		out, err := run("trace", traceID)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[1], "└─ POST /orders  [gateway]") ||
			!strings.Contains(lines[2], "   └─ invoke price  [fnbox]") || !strings.Contains(lines[2], "ERROR: TypeError: boom") {
			return fmt.Errorf("butter trace printed:\n%s", out)
		}
		return nil
	})
	out, err := run("trace", traceID, "-o", "json")
	var js struct {
		TraceID string `json:"traceId"`
		Spans   []any  `json:"spans"`
	}
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || js.TraceID != traceID || len(js.Spans) != 2 {
		t.Errorf("butter trace -o json = %v %s", err, out)
	}
	if _, err := run("trace", strings.Repeat("a", 32)); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("butter trace of an unknown trace: %v, want the tracer's 404", err)
	}

	kittest.Eventually(t, "butter lineage prints the chain", func() error {
		out, err := run("lineage", "priced", priced.ID())
		if err != nil {
			return err
		}
		if !strings.HasPrefix(out, placed.ID()+"  order.placed  orders/") || !strings.Contains(out, "\n  * "+priced.ID()) ||
			!strings.Contains(out, "by shop/price") {
			return fmt.Errorf("butter lineage printed:\n%s", out)
		}
		return nil
	})

	kittest.Eventually(t, "butter events prints the action and its failure", func() error {
		out, err := run("events", "--type", "deployment.create", "--resource", "deployment/shop")
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "deployment.create ") || !strings.Contains(lines[1], "deployment.create.failed") ||
			!strings.Contains(lines[1], "error: descriptor: no functions") || !strings.Contains(lines[0], "alice") {
			return fmt.Errorf("butter events printed:\n%s", out)
		}
		return nil
	})
	// -f prints past events, then follows; the context ends it.
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var fout bytes.Buffer
	if err := Execute(fctx, []string{"events", "-f", "-o", "json", "--tracer", url}, IO{In: strings.NewReader(""), Out: &fout, Err: io.Discard}); err != nil {
		t.Errorf("butter events -f: %v", err)
	}
	if n := strings.Count(fout.String(), `"type":"deployment.create`); n != 2 {
		t.Errorf("butter events -f -o json printed %d events, want 2:\n%s", n, fout.String())
	}
}

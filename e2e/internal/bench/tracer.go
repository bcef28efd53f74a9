package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.opentelemetry.io/otel"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
	tracersvc "github.com/buttercompass/butter/tracer/service"
)

// Rows of the tracer and of tracing's cost.
const (
	RowTracerIngest   = "tracer ingest"
	RowTracerGetP99   = "tracer GET /v1/traces/{id} p99"
	RowTracerPageP50  = "tracer overview page load p50"
	RowTracingOff     = "no-op node, batch 1, tracing sample 0"
	RowTracingOn      = "no-op node, batch 1, tracing sample 1"
	tracerSpansFactor = 5 // spans stored per Config.Events
	spansPerTrace     = 10
	tracerLookups     = 500
)

// Tracer returns the tracer's measurements: ingest and lookup, and what
// tracing costs the pipeline.
func Tracer() []Measurement {
	return []Measurement{
		{Name: RowTracerIngest, Run: measureTracer},
		{Name: "tracing cost", Run: measureTracingCost},
	}
}

// measureTracer stores 5×Config.Events spans (1,000,000 by default), ten
// to a trace, in _butter.traces of a namespace of their own, then starts a
// tracer on it and measures how fast it indexes them, then the p99 of
// fetching a random trace among them.
func measureTracer(ctx context.Context, env *Env, rep *Report) error {
	n := tracerSpansFactor * env.Config.Events
	kcfg := env.Kafka
	kcfg.TopicPrefix = "bench-tracer-" + env.tag + "."
	ns := kcfg.Namespace()
	cl, err := kcfg.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := kit.EnsureTopics(ctx, cl, kit.InNamespace(ns, topics.Internal()...)...); err != nil {
		return fmt.Errorf("create the tracer's topics: %w", err)
	}

	// The batch processor drops spans when its queue (2048) is full: the
	// spans are made in flushed chunks that fit a queue this size.
	const chunk = 10_000
	prevQueue, hadQueue := os.LookupEnv("OTEL_BSP_MAX_QUEUE_SIZE")
	os.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", strconv.Itoa(2*chunk))
	tp, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "bench", Kafka: cl, Topic: ns.Topic(topics.Traces)})
	if hadQueue {
		os.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", prevQueue)
	} else {
		os.Unsetenv("OTEL_BSP_MAX_QUEUE_SIZE")
	}
	if err != nil {
		return err
	}
	tr := tp.Tracer("bench")
	ids := make([]string, 0, n/spansPerTrace)
	for i := range n / spansPerTrace {
		rctx, root := tr.Start(context.Background(), "request")
		ids = append(ids, root.SpanContext().TraceID().String())
		for range spansPerTrace - 1 {
			_, s := tr.Start(rctx, "invoke")
			s.End()
		}
		root.End()
		if (i+1)*spansPerTrace%chunk == 0 {
			if err := tp.ForceFlush(ctx); err != nil {
				return fmt.Errorf("export spans: %w", err)
			}
		}
	}
	if err := tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("export %d spans: %w", n, err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, ns.Topic(topics.Traces))
	if err != nil {
		return err
	}
	var records int64
	ends.Each(func(o kadm.ListedOffset) { records += o.Offset })

	dir, err := os.MkdirTemp(env.work, "tracer-")
	if err != nil {
		return err
	}
	svc, err := tracersvc.New(tracersvc.Config{Addr: "127.0.0.1:0", DataDir: dir, Kafka: kcfg,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer svc.Close()
	start := time.Now()
	if err := svc.Provision(ctx); err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- svc.Serve(sctx) }()
	defer func() { stop(); <-served }()
	base := "http://" + svc.Addr()
	for {
		got, err := metric(ctx, base+"/metrics", "butter_tracer_records_total")
		if err != nil {
			return err
		}
		if int64(got) >= records {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-served:
			return fmt.Errorf("tracer stopped: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	ingest := time.Since(start)

	var lat []time.Duration
	for range tracerLookups {
		id := ids[rand.IntN(len(ids))]
		t0 := time.Now()
		resp, err := http.Get(base + "/v1/traces/" + id)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v1/traces/%s = %d", id, resp.StatusCode)
		}
		lat = append(lat, time.Since(t0))
	}
	// The overview page as a browser loads it: the HTML, its stylesheet
	// and script, then the overview the script asks for.
	var pages []time.Duration
	for range tracerLookups / 5 {
		t0 := time.Now()
		for _, path := range []string{"/", "/app.css", "/app.js", "/v1/overview"} {
			resp, err := http.Get(base + path)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s = %d", path, resp.StatusCode)
			}
		}
		pages = append(pages, time.Since(t0))
	}
	rep.Note(fmt.Sprintf("**%s**: the overview page as a browser loads it (`/`, `/app.css`, `/app.js`, then "+
		"`/v1/overview`), sequentially over loopback, %d times from the same index; no browser rendering.", RowTracerPageP50, len(pages)))
	rep.Note(fmt.Sprintf("**%s**: %d spans (%d to a trace, as the OpenTelemetry SDK's batch exporter writes them to "+
		"`_butter.traces`: %d records) are stored first; the clock runs from starting a tracer (in-process, its SQLite "+
		"index empty) to its having indexed every record. **%s**: then %d sequential `GET /v1/traces/{id}` of random "+
		"traces among them, over HTTP on loopback. No raw limit: the figures are the tracer's own.",
		RowTracerIngest, n, spansPerTrace, records, RowTracerGetP99, tracerLookups))
	return rep.Add(
		Row{Name: RowTracerIngest, Value: rate(n, ingest), Unit: "spans/s", Count: n, NoLimit: true},
		Row{Name: RowTracerGetP99, Value: ms(percentile(lat, 0.99)), Unit: UnitMilliseconds, Count: len(lat), NoLimit: true},
		Row{Name: RowTracerPageP50, Value: ms(percentile(pages, 0.5)), Unit: UnitMilliseconds, Count: len(pages), NoLimit: true},
	)
}

// metric reads one counter or gauge from a Prometheus text page.
func metric(ctx context.Context, url, name string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, nil // not reported yet: nothing counted
}

// measureTracingCost runs the node no-op function at batch 1 twice, each
// invocation's span going to _butter.traces through the OpenTelemetry SDK:
// once recording no trace (sample 0), once every one (sample 1). The
// difference is what tracing costs the pipeline.
func measureTracingCost(ctx context.Context, env *Env, rep *Report) error {
	var rates [2]float64
	var count int
	for i, sample := range []float64{0, 1} {
		n, elapsed, err := withTracing(ctx, env, sample, func() (int, time.Duration, error) {
			return runNoop(ctx, env, fmt.Sprintf("bench-traced%d-node-b1", int(sample)), descriptor.PlatformNode, 1)
		})
		if err != nil {
			return err
		}
		rates[i], count = rate(n, elapsed), n
	}
	cost := fmt.Sprintf("Tracing every event cost %.1f%% of the throughput in this run (goal: at most 10%%)", 100*(1-rates[1]/rates[0]))
	if rates[1] >= rates[0] {
		cost = fmt.Sprintf("Tracing every event cost nothing measurable in this run: the traced run was %.1f%% faster, "+
			"which is the machine's noise (goal: at most 10%%)", 100*(rates[1]/rates[0]-1))
	}
	rep.Note(fmt.Sprintf("**%s / %s**: the no-op node function at batch 1 (as its no-op row) with the OpenTelemetry "+
		"SDK exporting fnbox's spans to `_butter.traces`, parent-based ratio sampling at 0 and at 1 (`--trace-sample`). "+
		"%s. Limit: %s.", RowTracingOff, RowTracingOn, cost, RowPipeline))
	return rep.Add(
		Row{Name: RowTracingOff, Value: rates[0], Unit: UnitEventsPerSecond, Limit: RowPipeline, Count: count},
		Row{Name: RowTracingOn, Value: rates[1], Unit: UnitEventsPerSecond, Limit: RowPipeline, Count: count},
	)
}

// withTracing runs f with a global tracer provider sampling sample of new
// traces and exporting to the run's _butter.traces, as fnbox has under
// butter up; the no-op provider is back afterwards.
func withTracing(ctx context.Context, env *Env, sample float64, f func() (int, time.Duration, error)) (int, time.Duration, error) {
	if err := kit.ApplyTraceSample(sample); err != nil {
		return 0, 0, err
	}
	cl, err := env.Client()
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	tp, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "fnbox", Kafka: cl,
		Topic: env.Kafka.Namespace().Topic(topics.Traces), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, 0, err
	}
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	n, d, err := f()
	otel.SetTracerProvider(prev)
	return n, d, errors.Join(err, tp.Shutdown(context.WithoutCancel(ctx)))
}

package service

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/tracer/api"
	"github.com/buttercompass/butter/tracer/internal/testutil"
)

// start runs a tracer on brokers and returns its base URL.
func start(t *testing.T, brokers string) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Discover = 200 * time.Millisecond
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{brokers}}
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kittest.Serve(t, s)
	return "http://" + s.Addr()
}

// TestAPIAnswersFromRealRecords seeds the broker with spans from the real
// exporter, logs, heartbeats, a deployment, platform events and chains of
// CloudEvents, and checks every endpoint's answer.
func TestAPIAnswersFromRealRecords(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	seed := testutil.Produce(t, brokers, testutil.Sizes{Traces: 5, Chains: 3, Logs: 30})
	url := start(t, brokers)

	var tr api.Trace
	kittest.Eventually(t, "the failed trace is indexed", func() error {
		code, body := testutil.Get(t, url+"/v1/traces/"+seed.ErrorTrace, &tr)
		if code != http.StatusOK || len(tr.Spans) != 3 {
			return fmt.Errorf("GET trace = %d %s", code, body)
		}
		return nil
	})
	byName := map[string]api.Span{}
	for _, sp := range tr.Spans {
		byName[sp.Name] = sp
	}
	root, inv, own := byName["POST /orders"], byName["invoke price"], byName["compute price"]
	if root.Service != "gateway" || root.ParentSpanID != "" || root.Kind != "server" {
		t.Errorf("root span = %+v, want the gateway's server span without a parent", root)
	}
	if inv.Service != "fnbox" || inv.ParentSpanID != root.SpanID || inv.Status != api.StatusError ||
		inv.Deployment != "shop" || inv.Function != "price" || inv.Attributes["messaging.destination.name"] != "orders" {
		t.Errorf("invoke span = %+v, want fnbox's failed child of the root for shop/price", inv)
	}
	if len(inv.Events) == 0 || inv.Events[0].Name != "exception" {
		t.Errorf("invoke span events = %+v, want the recorded exception", inv.Events)
	}
	if own.Service != "price" || own.ParentSpanID != inv.SpanID {
		t.Errorf("function span = %+v, want the function's own child of invoke", own)
	}

	// Lists: all, filtered, paged.
	var traces api.Page[api.TraceSummary]
	kittest.Eventually(t, "every trace is listed", func() error {
		testutil.Get(t, url+"/v1/traces", &traces)
		if len(traces.Items) != len(seed.TraceIDs) {
			return fmt.Errorf("%d traces listed, want %d", len(traces.Items), len(seed.TraceIDs))
		}
		for _, tr := range traces.Items {
			if tr.Spans != 3 {
				return fmt.Errorf("trace %s has %d of its 3 spans", tr.TraceID, tr.Spans)
			}
		}
		return nil
	})
	first := traces.Items[0]
	if first.Spans != 3 || first.Root != "POST /orders" || first.RootService != "gateway" ||
		!slices.Equal(first.Services, []string{"fnbox", "gateway", "price"}) {
		t.Errorf("trace summary = %+v", first)
	}
	testutil.Get(t, url+"/v1/traces?status=error", &traces)
	if len(traces.Items) != 1 || traces.Items[0].TraceID != seed.ErrorTrace || traces.Items[0].Status != api.StatusError {
		t.Errorf("status=error lists %+v, want only %s", traces.Items, seed.ErrorTrace)
	}
	testutil.Get(t, url+"/v1/traces?deployment=shop&function=price", &traces)
	if len(traces.Items) != len(seed.TraceIDs) {
		t.Errorf("deployment=shop&function=price lists %d traces, want %d", len(traces.Items), len(seed.TraceIDs))
	}
	testutil.Get(t, url+"/v1/traces?deployment=other", &traces)
	if len(traces.Items) != 0 {
		t.Errorf("deployment=other lists %d traces, want none", len(traces.Items))
	}
	var seen []string
	for cursor := ""; ; {
		var p api.Page[api.TraceSummary]
		testutil.Get(t, url+"/v1/traces?limit=2&cursor="+cursor, &p)
		for _, it := range p.Items {
			seen = append(seen, it.TraceID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if slices.Sort(seen); !slices.Equal(seen, slices.Sorted(slices.Values(seed.TraceIDs))) {
		t.Errorf("paging by 2 saw %v, want every trace once: %v", seen, seed.TraceIDs)
	}

	// Lineage: the middle event of the first chain has its cause as
	// ancestor, and its dead letter and its result as descendants.
	chain := seed.Chains[0]
	var l api.Lineage
	kittest.Eventually(t, "the first chain's lineage is indexed", func() error {
		code, body := testutil.Get(t, url+"/v1/lineage?stream=priced&id="+chain[1], &l)
		if code != http.StatusOK || len(l.Descendants) != 2 {
			return fmt.Errorf("GET lineage = %d %s", code, body)
		}
		return nil
	})
	if l.Event.Stream != "priced" || l.Event.Function != "shop/price" || l.Event.CausationID != chain[0] || l.Event.CorrelationID != chain[0] {
		t.Errorf("event = %+v", l.Event)
	}
	if len(l.Ancestors) != 1 || l.Ancestors[0].ID != chain[0] || l.Ancestors[0].Stream != "orders" || l.Ancestors[0].TraceID == "" {
		t.Errorf("ancestors = %+v, want %s on orders with its trace id", l.Ancestors, chain[0])
	}
	var dead, shipped api.Event
	for _, e := range l.Descendants {
		switch e.Stream {
		case "priced.dlq":
			dead = e
		case "shipped":
			shipped = e
		}
	}
	if dead.ID != chain[1] || dead.DeadLetter != "TypeError: price is undefined" || dead.DeadLetterFunction != "shop/ship" {
		t.Errorf("dead letter = %+v", dead)
	}
	if shipped.ID != chain[2] || shipped.Function != "shop/ship" {
		t.Errorf("result = %+v", shipped)
	}
	testutil.Get(t, url+"/v1/lineage?stream=orders&id="+chain[0], &l)
	if len(l.Ancestors) != 0 || len(l.Descendants) != 3 {
		t.Errorf("lineage of the root: %d ancestors, %d descendants, want 0 and 3", len(l.Ancestors), len(l.Descendants))
	}

	// Logs: filters, paging, text search.
	var logs api.Page[api.Log]
	kittest.Eventually(t, "every log line is indexed", func() error {
		testutil.Get(t, url+"/v1/logs?limit=1000", &logs)
		if len(logs.Items) != seed.Logs {
			return fmt.Errorf("%d lines, want %d", len(logs.Items), seed.Logs)
		}
		return nil
	})
	testutil.Get(t, url+"/v1/logs?deployment=shop&function=price&level=warn", &logs)
	if len(logs.Items) != seed.ErrorLogs || logs.Items[0].Level != obs.LevelError {
		t.Errorf("level=warn lists %d lines, want the %d errors", len(logs.Items), seed.ErrorLogs)
	}
	testutil.Get(t, url+"/v1/logs?q="+"order%2029", &logs)
	if len(logs.Items) != 1 || !strings.Contains(logs.Items[0].Message, "order 29") {
		t.Errorf("q=order 29 lists %+v", logs.Items)
	}
	testutil.Get(t, url+"/v1/logs?limit=7", &logs)
	var page2 api.Page[api.Log]
	testutil.Get(t, url+"/v1/logs?limit=7&cursor="+logs.Next, &page2)
	if len(logs.Items) != 7 || len(page2.Items) != 7 || !page2.Items[0].Time.Before(logs.Items[6].Time) {
		t.Errorf("pages of 7: %d then %d lines, second not older", len(logs.Items), len(page2.Items))
	}

	// Platform events.
	var pes api.Page[api.PlatformEvent]
	kittest.Eventually(t, "the platform events are indexed", func() error {
		testutil.Get(t, url+"/v1/platform-events?type=deployment.create", &pes)
		if len(pes.Items) != 2 {
			return fmt.Errorf("%d events, want the action and its outcome", len(pes.Items))
		}
		return nil
	})
	if pes.Items[0].Type != "deployment.create.completed" || pes.Items[0].CausationID != seed.Action || pes.Items[1].Actor != "alice" ||
		pes.Items[1].Resource != "deployment/shop" {
		t.Errorf("platform events = %+v", pes.Items)
	}
	testutil.Get(t, url+"/v1/platform-events?correlationid="+seed.Action+"&actor=alice&resource=deployment/shop", &pes)
	if len(pes.Items) != 2 {
		t.Errorf("correlationid filter lists %d events, want 2", len(pes.Items))
	}
	testutil.Get(t, url+"/v1/platform-events?type=deployment.delete", &pes)
	if len(pes.Items) != 0 {
		t.Errorf("type=deployment.delete lists %d events, want none", len(pes.Items))
	}

	// Overview.
	var ov api.Overview
	kittest.Eventually(t, "the overview shows shop", func() error {
		testutil.Get(t, url+"/v1/overview", &ov)
		if len(ov.Deployments) != 1 || len(ov.Deployments[0].Functions) != 2 ||
			ov.Deployments[0].Functions[0].Replicas != 1 || ov.Deployments[0].Functions[1].DeadLetters != 1 {
			return fmt.Errorf("overview = %+v", ov)
		}
		return nil
	})
	d := ov.Deployments[0]
	price, ship := d.Functions[0], d.Functions[1]
	if d.Name != "shop" || d.Version != "v1" || price.Name != "price" || price.Out != "priced" || !slices.Equal(price.Inputs, []string{"orders"}) {
		t.Errorf("deployment = %+v", d)
	}
	if price.Replicas != 1 || price.Errors != 1 || price.P50Ms <= 0 || price.P99Ms < price.P50Ms {
		t.Errorf("price = %+v, want 1 replica, 1 error and invoke percentiles", price)
	}
	if ship.DeadLetters != 1 || ship.LastDeadLetter != "TypeError: price is undefined" {
		t.Errorf("ship = %+v, want its dead letter", ship)
	}

	// Errors are problems.
	for path, want := range map[string]int{
		"/v1/traces/" + strings.Repeat("0", 32): http.StatusNotFound,
		"/v1/traces/nope":                       http.StatusBadRequest,
		"/v1/traces?limit=0":                    http.StatusBadRequest,
		"/v1/traces?status=ok":                  http.StatusBadRequest,
		"/v1/logs?cursor=zzz":                   http.StatusBadRequest,
		"/v1/logs?level=loud":                   http.StatusBadRequest,
		"/v1/logs?since=yesterday":              http.StatusBadRequest,
		"/v1/lineage?stream=orders":             http.StatusBadRequest,
		"/v1/lineage?stream=orders&id=missing":  http.StatusNotFound,
	} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		var p kit.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("Content-Type") != kit.ProblemContentType || p.Detail == "" {
			t.Errorf("GET %s = %d %s %+v, want %d with a problem", path, resp.StatusCode, resp.Header.Get("Content-Type"), p, want)
		}
	}
}

// TestFollowLogsStreamsNewLines follows logs as server-sent events and
// sees a line produced after the stream opened.
func TestFollowLogsStreamsNewLines(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	url := start(t, brokers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/logs?follow=1&deployment=shop&level=error", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("follow Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	cl := testutil.Client(t, brokers)
	for _, l := range []obs.Log{
		{Deployment: "other", Level: obs.LevelError, Message: "not mine", Time: time.Now()},
		{Deployment: "shop", Function: "price", Level: obs.LevelInfo, Message: "too quiet", Time: time.Now()},
		{Deployment: "shop", Function: "price", Level: obs.LevelError, Message: "boom", Time: time.Now()},
	} {
		r, err := l.Record(topics.Logs)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				lines <- data
			}
		}
		close(lines)
	}()
	select {
	case data := <-lines:
		var l api.Log
		if err := json.Unmarshal([]byte(data), &l); err != nil || l.Message != "boom" {
			t.Fatalf("first followed line = %s (%v), want boom", data, err)
		}
	case <-time.After(kittest.Timeout):
		t.Fatal("no line followed")
	}
}

// TestTraceWithRemoteParentIsNamedByItsFirstSpan: a trace whose root is a
// client's (a curl with a traceparent) is listed by its first span here.
func TestTraceWithRemoteParentIsNamedByItsFirstSpan(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	url := start(t, brokers)
	ctx := context.Background()
	tp, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{Service: "gateway", Kafka: testutil.Client(t, brokers)})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	_, sp := tp.Tracer("test").Start(trace.ContextWithRemoteSpanContext(ctx, remote), "POST /hello")
	sp.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "the trace is listed by its first span", func() error {
		var p api.Page[api.TraceSummary]
		testutil.Get(t, url+"/v1/traces", &p)
		if len(p.Items) != 1 || p.Items[0].TraceID != tid.String() || p.Items[0].Root != "POST /hello" || p.Items[0].RootService != "gateway" {
			return fmt.Errorf("traces = %+v", p.Items)
		}
		return nil
	})
}

// TestStreamBrowser lists streams with their offsets and reads events
// with their attributes and data from an offset.
func TestStreamBrowser(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	seed := testutil.Produce(t, brokers, testutil.Sizes{Traces: 1, Chains: 5, Logs: 1})
	url := start(t, brokers)

	var streams api.Page[api.Stream]
	testutil.Get(t, url+"/v1/streams", &streams)
	byName := map[string]api.Stream{}
	for _, s := range streams.Items {
		byName[s.Stream] = s
	}
	if o := byName["orders"]; o.Events != 5 || len(o.Partitions) != int(topics.DefaultPartitions) || o.Internal {
		t.Errorf("orders = %+v, want 5 events in %d partitions", o, topics.DefaultPartitions)
	}
	if e := byName[topics.Events]; !e.Internal {
		t.Errorf("%s = %+v, want it listed as internal", topics.Events, e)
	}
	var page api.Page[api.Stream]
	testutil.Get(t, url+"/v1/streams?limit=1&cursor=orders", &page)
	if len(page.Items) != 1 || page.Items[0].Stream <= "orders" || page.Next != page.Items[0].Stream {
		t.Errorf("the page after orders = %+v", page)
	}

	dlq := byName["priced.dlq"]
	var part int32 = -1
	for _, p := range dlq.Partitions {
		if p.End > p.Start {
			part = p.Partition
		}
	}
	var evs api.Page[api.StreamEvent]
	code, body := testutil.Get(t, fmt.Sprintf("%s/v1/streams/priced.dlq/events?partition=%d&offset=0", url, part), &evs)
	if code != http.StatusOK || len(evs.Items) != 1 {
		t.Fatalf("read priced.dlq = %d %s", code, body)
	}
	e := evs.Items[0]
	if e.Attributes["id"] != seed.Chains[0][1] || e.Attributes[obs.ExtDLQError] != "TypeError: price is undefined" ||
		e.Attributes["causationid"] != seed.Chains[0][0] || string(e.Data) != `{"id":"`+seed.Chains[0][1]+`"}` {
		t.Errorf("dead letter = %+v", e)
	}
	for path, want := range map[string]int{
		"/v1/streams/nope/events":                http.StatusNotFound,
		"/v1/streams/orders/events?partition=99": http.StatusNotFound,
		"/v1/streams/orders/events?offset=x":     http.StatusBadRequest,
		"/v1/streams/orders/events?partition=-1": http.StatusBadRequest,
	} {
		if code, body := testutil.Get(t, url+path, nil); code != want {
			t.Errorf("GET %s = %d %s, want %d", path, code, body, want)
		}
	}
}

// TestLineageOfBatchResults: the result of a batch descends from every
// event of the batch, not only the first its causationid names.
func TestLineageOfBatchResults(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	cl := testutil.Client(t, brokers)
	ctx := context.Background()
	if err := kit.EnsureTopics(ctx, cl, topics.Stream("orders"), topics.Stream("priced")); err != nil {
		t.Fatal(err)
	}
	first, second := envelope.New("/test", "order.placed"), envelope.New("/test", "order.placed")
	result := envelope.Child(first, obs.Source("shop", "price"), obs.TypeResult)
	result.SetExtension(obs.ExtBatchIDs, `["`+first.ID()+`","`+second.ID()+`"]`)
	var recs []*kgo.Record
	for _, x := range []struct {
		stream string
		e      event.Event
	}{{"orders", first}, {"orders", second}, {"priced", result}} {
		r, err := envelope.ToRecord(x.stream, x.e)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	url := start(t, brokers)
	for _, in := range []string{first.ID(), second.ID()} {
		kittest.Eventually(t, "the batch result descends from "+in, func() error {
			var l api.Lineage
			code, body := testutil.Get(t, url+"/v1/lineage?stream=orders&id="+in, &l)
			if code != http.StatusOK || len(l.Descendants) != 1 || l.Descendants[0].ID != result.ID() || len(l.Descendants[0].BatchIDs) != 2 {
				return fmt.Errorf("lineage of %s = %d %s", in, code, body)
			}
			return nil
		})
	}
}

// TestFollowOverview receives the overview again and again as
// server-sent events.
func TestFollowOverview(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	url := start(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), kittest.Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/overview?follow=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var times []time.Time
	for len(times) < 2 && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ov api.Overview
			if err := json.Unmarshal([]byte(data), &ov); err != nil {
				t.Fatalf("followed overview %s: %v", data, err)
			}
			times = append(times, ov.Time)
		}
	}
	if len(times) != 2 || !times[1].After(times[0]) {
		t.Fatalf("followed overviews at %v, want two, the second later", times)
	}
}

package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/timer/internal/testutil"
)

// start runs a timer on brokers and returns its base URL.
func start(t *testing.T, brokers string) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{brokers}}
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kittest.Serve(t, s)
	return "http://" + s.Addr()
}

func call(t *testing.T, method, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestAPITimerFiresTicksWithDeterministicIDs(t *testing.T) {
	brokers := testutil.Broker(t)
	url := start(t, brokers)

	code, _, body := call(t, "POST", url+"/v1/timers", `{"id": "every-second", "schedule": "@every 1s", "stream": "ticks", "data": {"job": "cleanup"}, "catchUp": "all"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST = %d %s", code, body)
	}
	ticks := testutil.ReadTicks(t, brokers, "ticks").WaitFor(t, 3)
	times := testutil.CheckExactlyOnce(t, ticks, "every-second", time.Second)
	for _, tk := range ticks {
		if string(tk.Data.Data) != `{"job":"cleanup"}` {
			t.Errorf("tick %s data = %s, want the timer's data", tk.ID, tk.Data.Data)
		}
	}
	if !strings.HasPrefix(ticks[0].ID, "every-second@") || ticks[0].ID != fmt.Sprintf("every-second@%d", times[0].UnixMilli()) {
		t.Errorf("tick id %s, want every-second@<scheduled unix ms>", ticks[0].ID)
	}

	// The API shows what fired.
	kittest.Eventually(t, "GET shows the last fired tick", func() error {
		code, _, body := call(t, "GET", url+"/v1/timers/every-second", "")
		var v struct {
			LastFired *time.Time `json:"lastFired"`
			FiredBy   string     `json:"firedBy"`
			Source    string     `json:"source"`
		}
		if err := json.Unmarshal(body, &v); code != http.StatusOK || err != nil {
			return fmt.Errorf("GET = %d %s", code, body)
		}
		if v.LastFired == nil || v.FiredBy == "" || v.Source != "api" {
			return fmt.Errorf("GET = %s", body)
		}
		return nil
	})
	if code, _, body := call(t, "GET", url+"/v1/timers", ""); code != http.StatusOK || !bytes.Contains(body, []byte(`"every-second"`)) {
		t.Fatalf("list = %d %s", code, body)
	}
	if code, _, body := call(t, "POST", url+"/v1/timers", `{"id": "every-second", "schedule": "@every 1s", "stream": "ticks"}`); code != http.StatusConflict {
		t.Fatalf("POST of an existing id = %d %s, want 409", code, body)
	}
	if code, _, body := call(t, "DELETE", url+"/v1/timers/every-second", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", code, body)
	}
	if code, _, _ := call(t, "GET", url+"/v1/timers/every-second", ""); code != http.StatusNotFound {
		t.Fatalf("GET after DELETE = %d, want 404", code)
	}
}

func TestDescriptorTimerTicks(t *testing.T) {
	brokers := testutil.Broker(t)
	url := start(t, brokers)

	const src = `name: clock
platform: python
functions:
  - fn: handler.py:tick
    name: tick
    bindings:
      timer: "@every 1s"
`
	d := control.Deployment{Name: "clock", Version: "1", Descriptor: src, Created: time.Now().UTC(), Updated: time.Now().UTC(), Actor: "test"}
	desc, err := d.Parse()
	if err != nil {
		t.Fatal(err)
	}
	stream := desc.Functions[0].Bindings.Timer.Stream
	rec, err := control.DeploymentRecord(topics.Deployments, d)
	if err != nil {
		t.Fatal(err)
	}
	cl := testutil.Client(t, brokers)
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ticks := testutil.ReadTicks(t, brokers, stream).WaitFor(t, 3)
	testutil.CheckExactlyOnce(t, ticks, "clock/tick", time.Second)

	code, _, body := call(t, "GET", url+"/v1/timers/clock/tick", "")
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"source":"deployment"`)) {
		t.Fatalf("GET descriptor timer = %d %s", code, body)
	}
	if code, _, body := call(t, "DELETE", url+"/v1/timers/clock/tick", ""); code != http.StatusConflict {
		t.Fatalf("DELETE of a descriptor timer = %d %s, want 409", code, body)
	}

	// Deleting the deployment stops its timer.
	if err := cl.ProduceSync(context.Background(), control.DeploymentTombstone(topics.Deployments, "clock")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "timer gone with its deployment", func() error {
		if code, _, _ := call(t, "GET", url+"/v1/timers/clock/tick", ""); code != http.StatusNotFound {
			return fmt.Errorf("GET = %d", code)
		}
		return nil
	})
}

func TestAPIValidation(t *testing.T) {
	brokers := testutil.Broker(t)
	url := start(t, brokers)
	cases := []struct {
		name, body, field string
	}{
		{"no schedule", `{"stream": "ticks"}`, "schedule"},
		{"bad schedule", `{"schedule": "every day", "stream": "ticks"}`, "schedule"},
		{"sub-second every", `{"schedule": "@every 500ms", "stream": "ticks"}`, "schedule"},
		{"no stream", `{"schedule": "@every 1s"}`, "stream"},
		{"bad stream", `{"schedule": "@every 1s", "stream": "Ticks!"}`, "stream"},
		{"internal stream", `{"schedule": "@every 1s", "stream": "_butter.events"}`, "stream"},
		{"bad timezone", `{"schedule": "@every 1s", "stream": "ticks", "timezone": "Mars/Olympus"}`, "timezone"},
		{"bad catchUp", `{"schedule": "@every 1s", "stream": "ticks", "catchUp": "some"}`, "catchUp"},
		{"bad id", `{"id": "a/b", "schedule": "@every 1s", "stream": "ticks"}`, "id"},
		{"unknown field", `{"schedule": "@every 1s", "stream": "ticks", "cron": "x"}`, "body"},
		{"not JSON", `schedule=@every 1s`, "body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, h, body := call(t, "POST", url+"/v1/timers", c.body)
			if code != http.StatusBadRequest || h.Get("Content-Type") != kit.ProblemContentType {
				t.Fatalf("POST = %d %s %s, want 400 problem+json", code, h.Get("Content-Type"), body)
			}
			var p kit.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(p.Detail, c.field+":") {
				t.Fatalf("problem %q does not name field %s", p.Detail, c.field)
			}
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		_, _, body := call(t, "POST", url+"/v1/timers", `{"schedule": "nope", "stream": "", "catchUp": "x"}`)
		var p kit.Problem
		_ = json.Unmarshal(body, &p)
		if len(p.Errors) != 3 {
			t.Fatalf("errors = %q, want schedule, stream and catchUp", p.Errors)
		}
	})
	for _, m := range []string{"GET", "DELETE"} {
		code, h, body := call(t, m, url+"/v1/timers/nope", "")
		if code != http.StatusNotFound || h.Get("Content-Type") != kit.ProblemContentType {
			t.Fatalf("%s unknown = %d %s", m, code, body)
		}
	}
	// Ready once the replica has joined the group, which takes a moment
	// after the API answers.
	kittest.Eventually(t, "readyz 200", func() error {
		if code, _, body := call(t, "GET", url+"/readyz", ""); code != http.StatusOK {
			return fmt.Errorf("readyz = %d %s", code, body)
		}
		return nil
	})
	_, _, metrics := call(t, "GET", url+"/metrics", "")
	for _, name := range []string{"butter_timer_owned_schedules", "butter_timer_owned_partitions", "butter_timer_fire_lag_seconds"} {
		if !bytes.Contains(metrics, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestTickIDRoundTrip keeps the tick id contract honest.
func TestTickIDRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_900_000_000_123).UTC()
	id := timers.TickID("orders/tick", at)
	s, got, err := timers.ParseTickID(id)
	if err != nil || s != "orders/tick" || !got.Equal(at) {
		t.Fatalf("ParseTickID(%s) = %s %v %v", id, s, got, err)
	}
}

// TestTickExample keeps examples/tick deployable: it parses, and its
// function is a timer the timer can compile.
func TestTickExample(t *testing.T) {
	desc, err := descriptor.ParseFile("../../examples/tick/butter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tm := desc.Functions[0].Bindings.Timer
	if tm == nil || tm.Schedule != "@every 5s" {
		t.Fatalf("timer = %+v, want @every 5s", tm)
	}
	if _, err := tm.CronSchedule(); err != nil {
		t.Fatal(err)
	}
	t.Logf("ticks of examples/tick go to %s", tm.Stream)
}

// TestConfigMissedAfterCoversHandover: --missed-after must outlast a
// failover, or a crash would skip the ticks due during it.
func TestConfigMissedAfterCoversHandover(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cfg.SessionTimeout = 10 * time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--missed-after") {
		t.Fatalf("session 10s with missed-after 10s: %v, want an error naming --missed-after", err)
	}
	cfg.MissedAfter = 15 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatalf("missed-after 15s: %v", err)
	}
}

// TestTickSpans: every tick is the root span of its own trace, and the
// tick event carries that span as its traceparent, so the functions it
// triggers join the tick's trace.
func TestTickSpans(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	spans := tracetest.NewSpanRecorder()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{brokers}}
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	cfg.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kittest.Serve(t, s)
	if code, _, body := call(t, "POST", "http://"+s.Addr()+"/v1/timers", `{"id": "traced", "schedule": "@every 1s", "stream": "traced-ticks"}`); code != http.StatusCreated {
		t.Fatalf("POST = %d %s", code, body)
	}
	ticks := testutil.ReadTicks(t, brokers, "traced-ticks").WaitFor(t, 2)
	ended := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	kittest.Eventually(t, "a span per tick", func() error {
		for _, sp := range spans.Ended() {
			ended[sp.SpanContext().SpanID()] = sp
		}
		for _, tk := range ticks[:2] {
			if _, ok := ended[tk.Trace.SpanID()]; !ok {
				return fmt.Errorf("no span %s for tick %s", tk.Trace.SpanID(), tk.ID)
			}
		}
		return nil
	})
	if ticks[0].Trace.TraceID() == ticks[1].Trace.TraceID() {
		t.Errorf("two ticks share trace %s, want a trace per tick", ticks[0].Trace.TraceID())
	}
	for _, tk := range ticks[:2] {
		sp := ended[tk.Trace.SpanID()]
		if sp.Name() != "tick traced" || sp.Parent().IsValid() || sp.SpanContext().TraceID() != tk.Trace.TraceID() {
			t.Errorf("tick %s: span %q parent %v trace %s, want root span \"tick traced\" of trace %s",
				tk.ID, sp.Name(), sp.Parent().SpanID(), sp.SpanContext().TraceID(), tk.Trace.TraceID())
		}
	}
}

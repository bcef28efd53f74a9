// Package runtimetest holds what the runtime platforms are tested with: the
// one conformance suite every platform must pass (RunConformance) and an
// in-memory Host (TestHost). It imports testing, so only tests import it:
// cli/cmd/butter/deps_test.go checks that no production binary links it.
package runtimetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// Conformance describes one platform for RunConformance: every platform
// (node, python, go, exec, http, image) must pass the same suite, so a
// function behaves the same whatever language it is written in.
//
// Dir holds the platform's fixture: a butter.yaml with the functions below
// and their code, and a broken/ subdirectory whose butter.yaml names one
// function that fails to load. Fixture functions, by name:
//
//	echo             returns {"echo": event.data}
//	text             returns the string "hello " + event.data.name
//	nothing          returns nothing
//	emit             emits {"seen": event.data} to "audit" with type
//	                 "com.example.audit", subject "s1", key "k1"; returns {"emitted": true}
//	emit-undeclared  emits to "secret" (not declared); returns {"refused": true,
//	                 "error": message} when refused, {"refused": false} if not
//	request          requests on "questions" with event.data; returns {"answer": reply data}
//	fail             throws/fails with message "boom: " + event.data.why
//	slow             sleeps event.data.sleepMs, then returns {"remainingMs": n,
//	                 "deadline": RFC 3339 or ISO time} as seen before sleeping
//	log              context.log("log-line", event.data.tag) (info), prints
//	                 "stdout-line <tag>" to stdout and "stderr-line <tag>" to
//	                 stderr; returns nothing
//	batch            delivery.batch: 3; returns {"items": [each event's data]}
//	trace            returns {"traceparent": the W3C traceparent it was given}
//	                 (context.traceparent, the traceparent header, TRACEPARENT,
//	                 butter.TraceParent)
//
// Bindings must give emit and emit-undeclared emits: [audit], request
// emits: [questions], and every function out: results.
type Conformance struct {
	// Name labels the platform in test names.
	Name string
	// Dir is the fixture directory (see above).
	Dir string
	// Start starts the platform's runtime, e.g. stdio.Start.
	Start func(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error)
	// StdoutIsResult is set for platforms whose stdout carries the result
	// (exec): the suite then does not look for stdout lines in Spec.Stdout.
	StdoutIsResult bool
}

// suiteTimeout bounds each case; generous because -race and a loaded
// machine slow process start-up, and cases return as soon as they can.
const suiteTimeout = 60 * time.Second

// RunConformance runs the runtime conformance suite against c. It starts
// one runtime for the whole suite, plus one for the load-error case.
func RunConformance(t *testing.T, c Conformance) {
	t.Helper()
	s := newSuite(t, c)
	cases := []struct {
		name string
		run  func(t *testing.T, s *suite)
	}{
		{"result", testResult},
		{"text", testText},
		{"nothing", testNothing},
		{"trace", testTrace},
		{"emit", testEmit},
		{"emit-undeclared", testEmitUndeclared},
		{"request", testRequest},
		{"fail", testFail},
		{"deadline", testDeadline},
		{"timeout", testTimeout},
		{"log", testLog},
		{"concurrent", testConcurrent},
		{"batch", testBatch},
		{"unknown-function", testUnknownFunction},
		{"load-error", testLoadError},
	}
	for _, tc := range cases {
		// Every platform passes every case: there is no way to skip one.
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, s)
		})
	}
}

// suite is the state shared by the cases: one runtime and its outputs.
type suite struct {
	c              Conformance
	desc           *descriptor.Descriptor
	rt             runtime.Runtime
	stdout, stderr *SyncBuffer
	seq            int
	mu             sync.Mutex
}

func newSuite(t *testing.T, c Conformance) *suite {
	t.Helper()
	desc, err := descriptor.ParseFile(filepath.Join(c.Dir, "butter.yaml"))
	if err != nil {
		t.Fatalf("parse %s fixture: %v", c.Name, err)
	}
	s := &suite{c: c, desc: desc, stdout: &SyncBuffer{}, stderr: &SyncBuffer{}}
	logs := &SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	rt, err := c.Start(ctx, runtime.Spec{
		Deployment: desc, Dir: c.Dir, Env: map[string]string{"CONFORMANCE": "1"},
		Stdout: s.stdout, Stderr: s.stderr,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("start %s runtime: %v", c.Name, err)
	}
	s.rt = rt
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("close %s runtime: %v", c.Name, err)
		}
		if t.Failed() {
			t.Logf("runtime log:\n%s\nstdout:\n%s\nstderr:\n%s", logs, s.stdout, s.stderr)
		}
	})
	return s
}

// event builds a JSON event for the suite.
func (s *suite) event(data any) envelope.Delivery {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	e := envelope.New("/conformance", "com.example.test")
	e.SetSubject("subj")
	e.SetExtension("tenant", "acme")
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	if err := e.SetData("application/json", b); err != nil {
		panic(err)
	}
	return envelope.Delivery{Event: e, Stream: "input", Partition: 1, Offset: int64(n), Timestamp: time.Now()}
}

// invoke runs fn on events with a deadline d from now and a fresh Host.
func (s *suite) invoke(t *testing.T, fn string, d time.Duration, events ...envelope.Delivery) (runtime.Result, *TestHost, error) {
	t.Helper()
	return s.invokeIn(t, context.Background(), fn, d, events...)
}

// invokeIn is invoke within ctx (which may carry a span).
func (s *suite) invokeIn(t *testing.T, ctx context.Context, fn string, d time.Duration, events ...envelope.Delivery) (runtime.Result, *TestHost, error) {
	t.Helper()
	f := s.function(t, fn)
	h := NewTestHost(f)
	ctx, cancel := context.WithTimeout(ctx, suiteTimeout)
	defer cancel()
	res, err := s.rt.Invoke(ctx, runtime.Invocation{Function: fn, Events: events, Deadline: time.Now().Add(d)}, h)
	return res, h, err
}

func (s *suite) function(t *testing.T, name string) *descriptor.Function {
	t.Helper()
	for i := range s.desc.Functions {
		if s.desc.Functions[i].Name == name {
			return &s.desc.Functions[i]
		}
	}
	t.Fatalf("%s fixture has no function %q", s.c.Name, name)
	return nil
}

// wantJSON checks that res is JSON equal to want.
func wantJSON(t *testing.T, res runtime.Result, err error, want string) {
	t.Helper()
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if !strings.HasPrefix(res.ContentType, "application/json") {
		t.Errorf("content type %q, want application/json (data %s)", res.ContentType, res.Data)
	}
	if !jsonEqual(res.Data, []byte(want)) {
		t.Errorf("result %s, want %s", res.Data, want)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func testResult(t *testing.T, s *suite) {
	res, _, err := s.invoke(t, "echo", 10*time.Second, s.event(map[string]any{"a": 1, "b": []string{"x"}}))
	wantJSON(t, res, err, `{"echo":{"a":1,"b":["x"]}}`)
}

func testText(t *testing.T, s *suite) {
	res, _, err := s.invoke(t, "text", 10*time.Second, s.event(map[string]any{"name": "ada"}))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if string(res.Data) != "hello ada" || !strings.HasPrefix(res.ContentType, "text/plain") {
		t.Errorf("result %q (%s), want \"hello ada\" (text/plain)", res.Data, res.ContentType)
	}
}

func testNothing(t *testing.T, s *suite) {
	res, _, err := s.invoke(t, "nothing", 10*time.Second, s.event(1))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if res.Data != nil {
		t.Errorf("result %q (%s), want no data", res.Data, res.ContentType)
	}
}

// testTrace: the function is given fnbox's invoke span as W3C trace
// context, so spans it makes itself are children of the invocation.
func testTrace(t *testing.T, s *suite) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{runtime.TraceHeader: tp})
	res, _, err := s.invokeIn(t, ctx, "trace", 10*time.Second, s.event(1))
	wantJSON(t, res, err, `{"traceparent": "`+tp+`"}`)
	res, _, err = s.invoke(t, "trace", 10*time.Second, s.event(1))
	if err != nil {
		t.Fatalf("Invoke without a trace: %v", err)
	}
	var got struct{ TraceParent *string }
	if err := json.Unmarshal(res.Data, &got); err != nil || (got.TraceParent != nil && *got.TraceParent != "") {
		t.Errorf("without a trace the function saw %s, want no traceparent", res.Data)
	}
}

func testEmit(t *testing.T, s *suite) {
	res, h, err := s.invoke(t, "emit", 10*time.Second, s.event(map[string]any{"order": 7}))
	wantJSON(t, res, err, `{"emitted":true}`)
	emits := h.Emits()
	if len(emits) != 1 {
		t.Fatalf("got %d emits, want 1: %+v", len(emits), emits)
	}
	e := emits[0]
	if e.Stream != "audit" || e.Type != "com.example.audit" || e.Subject != "s1" || e.Key != "k1" {
		t.Errorf("emit stream %q type %q subject %q key %q, want audit com.example.audit s1 k1", e.Stream, e.Type, e.Subject, e.Key)
	}
	if !jsonEqual(e.Data, []byte(`{"seen":{"order":7}}`)) || !strings.HasPrefix(e.ContentType, "application/json") {
		t.Errorf("emit data %s (%s), want {\"seen\":{\"order\":7}} (application/json)", e.Data, e.ContentType)
	}
}

func testEmitUndeclared(t *testing.T, s *suite) {
	res, h, err := s.invoke(t, "emit-undeclared", 10*time.Second, s.event(1))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var got struct {
		Refused bool   `json:"refused"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(res.Data, &got); err != nil || !got.Refused {
		t.Fatalf("result %s: the function did not see its emit refused", res.Data)
	}
	if !strings.Contains(got.Error, "not declared") {
		t.Errorf("the function saw error %q, want one saying the stream is not declared", got.Error)
	}
	if n := len(h.Emits()); n != 0 {
		t.Errorf("%d events emitted, want none", n)
	}
}

func testRequest(t *testing.T, s *suite) {
	res, h, err := s.invoke(t, "request", 10*time.Second, s.event(map[string]any{"q": "life"}))
	wantJSON(t, res, err, `{"answer":{"reply":{"q":"life"}}}`)
	if r := h.Requests(); len(r) != 1 || r[0].Stream != "questions" {
		t.Errorf("requests %+v, want one on questions", r)
	}
}

func testFail(t *testing.T, s *suite) {
	_, _, err := s.invoke(t, "fail", 10*time.Second, s.event(map[string]any{"why": "bad input"}))
	var fe *runtime.FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T), want a *runtime.FunctionError", err, err)
	}
	if !strings.Contains(fe.Message, "boom: bad input") {
		t.Errorf("message %q, want it to contain \"boom: bad input\"", fe.Message)
	}
	if fe.Permanent {
		t.Error("a thrown error is permanent; it must be retried")
	}
}

func testDeadline(t *testing.T, s *suite) {
	d := 5 * time.Second
	deadline := time.Now().Add(d)
	res, _, err := s.invoke(t, "slow", d, s.event(map[string]any{"sleepMs": 0}))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var got struct {
		RemainingMs float64 `json:"remainingMs"`
		Deadline    string  `json:"deadline"`
	}
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatalf("result %s: %v", res.Data, err)
	}
	if got.RemainingMs <= 0 || got.RemainingMs > float64(d.Milliseconds()) {
		t.Errorf("remainingMs = %v, want in (0, %d]", got.RemainingMs, d.Milliseconds())
	}
	seen, err := time.Parse(time.RFC3339Nano, got.Deadline)
	if err != nil {
		t.Fatalf("deadline %q is not an RFC 3339 time: %v", got.Deadline, err)
	}
	if diff := seen.Sub(deadline); diff < -time.Second || diff > time.Second {
		t.Errorf("function saw deadline %v, want about %v", seen, deadline)
	}
}

func testTimeout(t *testing.T, s *suite) {
	start := time.Now()
	_, _, err := s.invoke(t, "slow", 300*time.Millisecond, s.event(map[string]any{"sleepMs": 3000}))
	if !errors.Is(err, runtime.ErrTimeout) {
		t.Fatalf("error %v, want runtime.ErrTimeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Invoke returned after %v; the deadline was 300ms", el)
	}
	// The runtime must still work after abandoning a call.
	res, _, err := s.invoke(t, "echo", 10*time.Second, s.event("after"))
	wantJSON(t, res, err, `{"echo":"after"}`)
}

func testLog(t *testing.T, s *suite) {
	tag := fmt.Sprintf("t%d", time.Now().UnixNano())
	_, h, err := s.invoke(t, "log", 10*time.Second, s.event(map[string]any{"tag": tag}))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	logs := h.Logs()
	if !slices.ContainsFunc(logs, func(l LogLine) bool { return strings.Contains(l.Msg, "log-line "+tag) && l.Level == slog.LevelInfo }) {
		t.Errorf("Host.Log got %+v, want an info line with \"log-line %s\"", logs, tag)
	}
	// Output streams are copied asynchronously: poll for the lines.
	want := []struct {
		name string
		buf  *SyncBuffer
	}{{"stderr", s.stderr}}
	if !s.c.StdoutIsResult {
		want = append(want, struct {
			name string
			buf  *SyncBuffer
		}{"stdout", s.stdout})
	}
	for _, w := range want {
		line := w.name + "-line " + tag
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := kit.Poll(ctx, 10*time.Millisecond, func() bool { return strings.Contains(w.buf.String(), line) })
		cancel()
		if err != nil {
			t.Errorf("%s never got %q; it has:\n%s", w.name, line, w.buf)
		}
	}
}

func testConcurrent(t *testing.T, s *suite) {
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// A long deadline: this checks that results do not mix, and
			// per-event platforms (exec) start 50 processes at once.
			res, _, err := s.invoke(t, "echo", suiteTimeout, s.event(map[string]any{"n": i}))
			switch {
			case err != nil:
				errs <- fmt.Errorf("invocation %d: %w", i, err)
			case !jsonEqual(res.Data, fmt.Appendf(nil, `{"echo":{"n":%d}}`, i)):
				errs <- fmt.Errorf("invocation %d got %s", i, res.Data)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testBatch(t *testing.T, s *suite) {
	res, _, err := s.invoke(t, "batch", 10*time.Second, s.event(1), s.event("two"), s.event(map[string]int{"three": 3}))
	wantJSON(t, res, err, `{"items":[1,"two",{"three":3}]}`)
}

func testUnknownFunction(t *testing.T, s *suite) {
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	_, err := s.rt.Invoke(ctx, runtime.Invocation{Function: "no-such-function", Events: []envelope.Delivery{s.event(1)}, Deadline: time.Now().Add(time.Second)}, NewTestHost(nil))
	if !errors.Is(err, runtime.ErrUnknownFunction) {
		t.Errorf("error %v, want runtime.ErrUnknownFunction", err)
	}
}

func testLoadError(t *testing.T, s *suite) {
	dir := filepath.Join(s.c.Dir, "broken")
	desc, err := descriptor.ParseFile(filepath.Join(dir, "butter.yaml"))
	if err != nil {
		t.Fatalf("parse broken fixture: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	rt, err := s.c.Start(ctx, runtime.Spec{Deployment: desc, Dir: dir})
	if err == nil {
		rt.Close(ctx)
		t.Fatal("Start succeeded on code that does not load")
	}
	if !errors.Is(err, runtime.ErrLoad) {
		t.Errorf("error %v, want it to wrap runtime.ErrLoad", err)
	}
	// The file is what the user must open: handler.js of handler.js:bad,
	// the command of a command line.
	file := desc.Functions[0].Fn
	if f := strings.Fields(file); len(f) > 0 {
		file = filepath.Base(f[0])
	}
	file, _, _ = strings.Cut(file, ":")
	if !strings.Contains(err.Error(), file) {
		t.Errorf("error %q does not name the file %q", err, file)
	}
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// testTimeout bounds every wait; generous for -race, polling returns early.
var testTimeout = 90 * time.Second

// env is an embedded broker for one test.
type env struct {
	t    testing.TB
	b    *broker.Broker
	kafk kit.KafkaConfig
}

func newEnv(t testing.TB) *env {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	return &env{t: t, b: b, kafk: kit.KafkaConfig{Brokers: []string{b.Addr()}, ClientID: "test"}}
}

func (e *env) stream(name string, partitions int32) {
	e.t.Helper()
	if err := e.b.CreateTopic(topics.Spec{Name: name, Partitions: partitions}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := e.kafk.NewClient(opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// produce writes events to stream; each record goes to partition
// i % partitions when partitions > 0, else by key.
func (e *env) produce(stream string, partitions int32, evs ...event.Event) {
	e.t.Helper()
	opts := []kgo.Opt{}
	if partitions > 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl := e.client(opts...)
	var recs []*kgo.Record
	for i, ev := range evs {
		r, err := envelope.ToRecord(stream, ev)
		if err != nil {
			e.t.Fatal(err)
		}
		if partitions > 0 {
			r.Partition = int32(i) % partitions
		}
		recs = append(recs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// events returns n events of type typ with ids <prefix>-<i> and data i.
func events(prefix, typ string, n int) []event.Event {
	out := make([]event.Event, n)
	for i := range n {
		ev := envelope.New("/test", typ)
		ev.SetID(fmt.Sprintf("%s-%d", prefix, i))
		_ = ev.SetData(event.ApplicationJSON, i)
		out[i] = ev
	}
	return out
}

// read consumes stream from the start until n events arrived (and then a
// short while longer, to catch extras) or testTimeout passed.
func (e *env) read(stream string, n int, readCommitted bool) []envelope.Delivery {
	e.t.Helper()
	opts := []kgo.Opt{kgo.ConsumeTopics(stream), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if readCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := e.client(opts...)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out []envelope.Delivery
	var extra <-chan time.Time
	for {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) { out = append(out, envelope.FromRecord(r)) })
		if len(out) >= n && extra == nil {
			extra = time.After(time.Second)
		}
		select {
		case <-extra:
			return out
		case <-ctx.Done():
			e.t.Fatalf("read %d of %d events from %s before timeout", len(out), n, stream)
		default:
		}
	}
}

// committed returns the group's committed offsets of stream.
func (e *env) committed(group, stream string) map[int32]int64 {
	e.t.Helper()
	adm := kadm.NewClient(e.client())
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	os, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == stream {
			out[o.Partition] = o.At
		}
	})
	return out
}

func parse(t testing.TB, yaml string) *descriptor.Descriptor {
	t.Helper()
	d, err := descriptor.Parse("butter.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse descriptor: %v", err)
	}
	return d
}

// running is an engine started by start.
type running struct {
	eng  *Engine
	stop context.CancelFunc
	done chan error
	once sync.Once
}

// start runs an engine for d with handlers and waits until it is ready.
func (e *env) start(d *descriptor.Descriptor, fns runtime.Funcs, mod ...func(*Config)) *running {
	e.t.Helper()
	cfg := Config{
		Kafka: e.kafk, Deployment: d, Instance: "test-1",
		Logger:            testLogger(),
		HeartbeatInterval: 200 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	eng, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{eng: eng, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- eng.Run(ctx, fns) }()
	e.t.Cleanup(func() { r.shutdown(e.t) })
	waitFor(e.t, "engine ready", func() bool { return eng.Ready(ctx) == nil })
	return r
}

// shutdown cancels the engine and waits for Run; safe to call twice.
func (r *running) shutdown(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.stop()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("engine run: %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("engine did not stop")
		}
	})
}

func testLogger() *slog.Logger {
	if os.Getenv("FNBOX_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// waitFor polls cond until it holds (kittest.Eventually).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	kittest.Eventually(t, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// ids returns the ids of the events, and of the inputs they were caused by.
func causes(ds []envelope.Delivery) map[string]int {
	out := map[string]int{}
	for _, d := range ds {
		out[envelope.Extension(d.Event, envelope.ExtCausationID)]++
	}
	return out
}

// recorder records invocations, safe for concurrent use.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	order map[int32][]int64 // offsets invoked per partition
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, order: map[int32][]int64{}}
}

func (r *recorder) record(d envelope.Delivery) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[d.Event.ID()]++
	r.order[d.Partition] = append(r.order[d.Partition], d.Offset)
	return r.calls[d.Event.ID()]
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

// echo is a handler returning the event's data.
func echo(rec *recorder) runtime.Handler {
	return func(_ context.Context, inv runtime.Invocation, _ runtime.Host) (runtime.Result, error) {
		if rec != nil {
			rec.record(inv.Events[0])
		}
		return runtime.Result{Data: inv.Events[0].Event.Data(), ContentType: "application/json"}, nil
	}
}

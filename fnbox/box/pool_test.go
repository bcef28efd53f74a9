package box

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// funcsPool is a runtime.Pool of Go handlers: Add hands out runtime.Funcs
// and counts what is loaded.
type funcsPool struct {
	mu      sync.Mutex
	specs   []runtime.Spec
	loaded  atomic.Int32
	fail    error
	invoked atomic.Int32
}

func (p *funcsPool) Add(_ context.Context, spec runtime.Spec) (runtime.Runtime, error) {
	if p.fail != nil {
		return nil, p.fail
	}
	p.mu.Lock()
	p.specs = append(p.specs, spec)
	p.mu.Unlock()
	p.loaded.Add(1)
	return &unloading{Funcs: runtime.Funcs{"run": func(context.Context, runtime.Invocation, runtime.Host) (runtime.Result, error) {
		p.invoked.Add(1)
		return runtime.Result{}, nil
	}}, p: p}, nil
}

func (p *funcsPool) Close(context.Context) error { return nil }

type unloading struct {
	runtime.Funcs
	p *funcsPool
}

func (u *unloading) Close(context.Context) error { u.p.loaded.Add(-1); return nil }

// countingProvider counts the tracers asked of it.
type countingProvider struct {
	noop.TracerProvider
	tracers atomic.Int32
}

func (c *countingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	c.tracers.Add(1)
	return c.TracerProvider.Tracer(name, opts...)
}

func TestBoxRunsInPool(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic(topics.Spec{Name: "in", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	d, err := descriptor.Parse("butter.yaml", []byte(desc))
	if err != nil {
		t.Fatal(err)
	}
	kafka := kit.KafkaConfig{Brokers: []string{b.Addr()}}

	// No node platform is registered: the pool alone runs the functions.
	pool := &funcsPool{}
	tp := &countingProvider{}
	bx, err := New(Config{Kafka: kafka, Deployment: d, Instance: "p-1", Pool: pool, TracerProvider: tp})
	if err != nil {
		t.Fatalf("New with a pool and no node platform: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- bx.Run(ctx) }()

	cl, err := kafka.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	const n = 5
	for i := range n {
		r := &kgo.Record{Topic: "in", Value: fmt.Appendf(nil, `{"specversion":"1.0","id":"%d","source":"t","type":"t"}`, i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := kit.Poll(wctx, 20*time.Millisecond, func() bool { return pool.invoked.Load() == n }); err != nil {
		t.Fatalf("invoked %d of %d events: %v", pool.invoked.Load(), n, err)
	}
	if pool.loaded.Load() != 1 || pool.specs[0].Deployment != d || pool.specs[0].Stdout == nil {
		t.Errorf("pool got %d loaded, specs %+v; want one, with the deployment and log writers", pool.loaded.Load(), pool.specs)
	}
	if tp.tracers.Load() == 0 {
		t.Error("no span came from Config.TracerProvider")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if pool.loaded.Load() != 0 {
		t.Error("the deployment was not unloaded from the pool at the end of Run")
	}

	// A load error of the pool ends Run with it.
	bad := &funcsPool{fail: fmt.Errorf("load h.js: %w", runtime.ErrLoad)}
	bx, err = New(Config{Kafka: kafka, Deployment: d, Instance: "p-2", Pool: bad})
	if err != nil {
		t.Fatal(err)
	}
	if err := bx.Run(context.Background()); !errors.Is(err, runtime.ErrLoad) {
		t.Errorf("run with a pool failing to load: %v, want runtime.ErrLoad", err)
	}
}

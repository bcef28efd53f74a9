package runtimetest

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
)

// BenchInvoke measures one invocation round trip of c's runtime: the
// fixture's "nothing" function (a no-op) called with one small JSON event,
// one call after the other, as fnbox does with batch 1 and default
// ordering. It reports ns/op per invocation; the process start is not
// measured.
func BenchInvoke(b *testing.B, c Conformance) { benchInvoke(b, c, "nothing", 1) }

// BenchInvokeBatch is BenchInvoke for the fixture's "batch" function
// (returns every event's data) with n events per invocation: the path of
// batch functions and replays. ns/op is per invocation of n events.
func BenchInvokeBatch(b *testing.B, c Conformance, n int) { benchInvoke(b, c, "batch", n) }

func benchInvoke(b *testing.B, c Conformance, name string, n int) {
	b.Helper()
	desc, err := descriptor.ParseFile(filepath.Join(c.Dir, "butter.yaml"))
	if err != nil {
		b.Fatalf("parse %s fixture: %v", c.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	rt, err := c.Start(ctx, runtime.Spec{
		Deployment: desc, Dir: c.Dir, Functions: []string{name},
		Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatalf("start %s runtime: %v", c.Name, err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			b.Errorf("close %s runtime: %v", c.Name, err)
		}
	})
	var fn *descriptor.Function
	for i := range desc.Functions {
		if desc.Functions[i].Name == name {
			fn = &desc.Functions[i]
		}
	}
	e := envelope.New("/bench", "com.example.bench")
	e.SetSubject("subj")
	data, _ := json.Marshal(map[string]any{"n": 1, "name": "bench"})
	if err := e.SetData("application/json", data); err != nil {
		b.Fatal(err)
	}
	ds := make([]envelope.Delivery, n)
	for i := range ds {
		ds[i] = envelope.Delivery{Event: e, Stream: "input", Partition: 0, Offset: int64(i + 1), Timestamp: time.Now()}
	}
	host := NewTestHost(fn)
	invoke := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := rt.Invoke(ctx, runtime.Invocation{Function: name, Events: ds, Deadline: time.Now().Add(10 * time.Second)}, host)
		if err != nil {
			b.Fatalf("invoke: %v", err)
		}
		if (res.Data != nil) != (name != "nothing") {
			b.Fatalf("%s returned %q", name, res.Data)
		}
	}
	// Warm up: JITs, connections, lazily loaded modules.
	for range 50 {
		invoke()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		invoke()
	}
}

// BenchStart measures starting c's runtime on its fixture's "nothing"
// function and invoking it once: the runtime's share of a cold start.
func BenchStart(b *testing.B, c Conformance) {
	b.Helper()
	desc, err := descriptor.ParseFile(filepath.Join(c.Dir, "butter.yaml"))
	if err != nil {
		b.Fatalf("parse %s fixture: %v", c.Name, err)
	}
	e := envelope.New("/bench", "com.example.bench")
	if err := e.SetData("application/json", []byte(`{"n":1}`)); err != nil {
		b.Fatal(err)
	}
	d := envelope.Delivery{Event: e, Stream: "input", Offset: 1, Timestamp: time.Now()}
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
		rt, err := c.Start(ctx, runtime.Spec{
			Deployment: desc, Dir: c.Dir, Functions: []string{"nothing"},
			Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			cancel()
			b.Fatalf("start %s runtime: %v", c.Name, err)
		}
		if _, err := rt.Invoke(ctx, runtime.Invocation{Function: "nothing", Events: []envelope.Delivery{d}, Deadline: time.Now().Add(10 * time.Second)}, NewTestHost(nil)); err != nil {
			b.Fatalf("invoke: %v", err)
		}
		b.StopTimer()
		if err := rt.Close(ctx); err != nil {
			b.Errorf("close %s runtime: %v", c.Name, err)
		}
		cancel()
		b.StartTimer()
	}
}

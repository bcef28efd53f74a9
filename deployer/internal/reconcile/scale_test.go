package reconcile

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// decisions is a Scale the test sets by hand.
type decisions struct {
	mu      sync.Mutex
	latest  map[string]control.ScaleDecision
	changed chan struct{}
}

func newDecisions() *decisions {
	return &decisions{latest: map[string]control.ScaleDecision{}, changed: make(chan struct{})}
}

func (d *decisions) Decision(dep, fn string) (control.ScaleDecision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.latest[control.ScaleKey(dep, fn)]
	return v, ok
}

func (d *decisions) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

func (d *decisions) set(dec control.ScaleDecision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latest[control.ScaleKey(dec.Deployment, dec.Function)] = dec
	close(d.changed)
	d.changed = make(chan struct{})
}

// scaleToZero has one function with scale {min 0, max 3}.
func scaleToZero(version string) control.Deployment {
	return control.Deployment{Name: "sleepy", Version: version, Descriptor: `name: sleepy
platform: exec
functions:
  - fn: ./a.sh
    name: a
    bindings: { streams: [in] }
    scale: { min: 0, max: 3 }
`}
}

func TestCount(t *testing.T) {
	one, zero := 1, 0
	s := descriptor.Scale{Min: &one, Max: 4}
	for _, tc := range []struct {
		name string
		s    descriptor.Scale
		dec  control.ScaleDecision
		ok   bool
		want int
	}{
		{"no decision: min", s, control.ScaleDecision{}, false, 1},
		{"decision", s, control.ScaleDecision{Version: "v1", To: 3}, true, 3},
		{"clamped to max", s, control.ScaleDecision{Version: "v1", To: 9}, true, 4},
		{"clamped to min", s, control.ScaleDecision{Version: "v1", To: 0}, true, 1},
		{"other version ignored", s, control.ScaleDecision{Version: "v0", To: 3}, true, 1},
		{"to zero", descriptor.Scale{Min: &zero, Max: 2}, control.ScaleDecision{Version: "v1", To: 0}, true, 0},
	} {
		if got := Count(tc.s, "v1", tc.dec, tc.ok); got != tc.want {
			t.Errorf("%s: Count = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestAppliesScaleDecisions: a min-0 function runs nothing until a
// decision wakes it, then as many replicas as decided (capped at max),
// and none again at a decision of 0; decisions for another version are
// ignored.
func TestAppliesScaleDecisions(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	d := scaleToZero("v1")
	src.set(d, false)
	dec := newDecisions()
	r := New(Config{Runtime: rt, Source: src, Scale: dec, BackoffBase: 200 * time.Millisecond, BackoffMax: time.Second,
		Resync: time.Hour}) // only changes drive it: a decision must wake the loop by itself
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	wantReplicas(t, rt, "v1")
	dec.set(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v1", From: 0, To: 2})
	wantReplicas(t, rt, "v1", []string{"a"}, []string{"a"})
	kittest.Eventually(t, "status shows the decision", func() error {
		st := r.Status(d)
		if len(st) != 1 || st[0].Desired != 2 || st[0].Min != 0 || st[0].Max != 3 || st[0].Scaled == nil || st[0].Scaled.To != 2 {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})
	dec.set(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v1", From: 2, To: 7})
	wantReplicas(t, rt, "v1", []string{"a"}, []string{"a"}, []string{"a"})
	dec.set(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v0", From: 3, To: 1})
	dec.set(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v1", From: 3, To: 0})
	wantReplicas(t, rt, "v1")
	dec.set(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v0", From: 0, To: 1})
	// Another version's decision changes nothing.
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := running(t, rt); len(got) != 0 {
		t.Fatalf("running after another version's decision: %+v", got)
	}
}

func startBroker(t *testing.T) (kit.KafkaConfig, *kgo.Client) {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := kit.KafkaConfig{Brokers: []string{b.Addr()}}
	cl, err := kcfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), kittest.Timeout)
	defer cancel()
	if err := kit.EnsureTopics(ctx, cl, topics.Internal()...); err != nil {
		t.Fatal(err)
	}
	return kcfg, cl
}

// TestDecisionsFollowTheTopic: Decisions keeps the latest decision per
// function from _butter.scale and signals each.
func TestDecisionsFollowTheTopic(t *testing.T) {
	t.Parallel()
	kcfg, cl := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), kittest.Timeout)
	defer cancel()
	write := func(d control.ScaleDecision) {
		t.Helper()
		rec, err := control.ScaleRecord(topics.Scale, d)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	write(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v1", From: 0, To: 1})
	write(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v1", From: 1, To: 3})
	dec, err := NewDecisions(kcfg, topics.Scale, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dec.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done; dec.Close() })
	select {
	case <-dec.Ready():
	case <-ctx.Done():
		t.Fatal("decisions never read")
	}
	if d, ok := dec.Decision("sleepy", "a"); !ok || d.To != 3 {
		t.Fatalf("after rebuild: %+v %v, want to 3", d, ok)
	}
	changed := dec.Changed()
	write(control.ScaleDecision{Deployment: "sleepy", Function: "a", Version: "v1", From: 3, To: 0})
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("no change signalled")
	}
	if d, _ := dec.Decision("sleepy", "a"); d.To != 0 {
		t.Fatalf("after a new decision: %+v, want to 0", d)
	}
}

// TestPinsStartOfSleepingFunctions: a function at zero instances gets its
// group's start position committed as its binding says (latest: the end
// at deploy time), so events published while it sleeps are lag and are
// handled once it wakes; a position already committed is left alone.
func TestPinsStartOfSleepingFunctions(t *testing.T) {
	t.Parallel()
	_, cl := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), kittest.Timeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	if err := kit.EnsureTopics(ctx, cl, topics.Stream("in")); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Value: fmt.Appendf(nil, "before %d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	d := scaleToZero("v1")
	rt := newRuntime(t, t.TempDir())
	src := newSource()
	src.set(d, false)
	r := New(Config{Runtime: rt, Source: src, Positions: GroupPositions{Admin: adm}})
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	group := topics.Namespace("").ConsumerGroup("sleepy", "a")
	got, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ends.Each(func(e kadm.ListedOffset) {
		n++
		c, ok := got.Lookup("in", e.Partition)
		if !ok || c.At != e.Offset {
			t.Errorf("partition %d: committed %+v %v, want the end %d", e.Partition, c, ok, e.Offset)
		}
	})
	if n != int(topics.DefaultPartitions) {
		t.Fatalf("%d partitions listed", n)
	}
	// Once pinned, the group's position wins: a new version pins nothing
	// over it.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	src.set(scaleToZero("v2"), false)
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err = adm.ListEndOffsets(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	ends.Each(func(e kadm.ListedOffset) {
		c0, _ := got.Lookup("in", e.Partition)
		a0, _ := again.Lookup("in", e.Partition)
		if a0.At != c0.At {
			t.Errorf("partition %d moved from %d to %d", e.Partition, c0.At, a0.At)
		}
		lag += e.Offset - a0.At
	})
	if lag != 1 {
		t.Fatalf("lag %d, want 1: the event published while asleep", lag)
	}
}

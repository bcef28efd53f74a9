package vcenter

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// startBroker runs an in-memory broker with the checkpoints topic and
// stream.
func startBroker(t *testing.T, stream string) kit.KafkaConfig {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []topics.Spec{{Name: topics.Checkpoints, Partitions: 1, Compact: true, Retention: topics.Forever}, topics.Stream(stream)} {
		if err := b.CreateTopic(s); err != nil {
			t.Fatal(err)
		}
	}
	return b.Kafka()
}

// createModel serialises simulator.Model.Create, which writes
// package-level state of the simulator (its license list).
var createModel sync.Mutex

// startVCSim runs the govmomi simulator's vCenter model over HTTPS.
func startVCSim(t *testing.T) *simulator.Server {
	t.Helper()
	m := simulator.VPX()
	createModel.Lock()
	err := m.Create()
	createModel.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Remove)
	m.Service.TLS = new(tls.Config)
	s := m.Service.NewServer()
	t.Cleanup(s.Close)
	return s
}

// simVM is the simulator's first VM (DC0_H0_VM0) through a client of its
// own, with post writing a user event about it.
type simVM struct {
	c  *govmomi.Client
	vm *object.VirtualMachine
	em *event.Manager
}

func newSimVM(tb testing.TB, s *simulator.Server) simVM {
	tb.Helper()
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, s.URL, true)
	if err != nil {
		tb.Fatal(err)
	}
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, "DC0_H0_VM0")
	if err != nil {
		tb.Fatal(err)
	}
	return simVM{c: c, vm: vm, em: event.NewManager(c.Client)}
}

// post writes a user event with msg about the VM.
func (v simVM) post(ctx context.Context, msg string) error {
	return v.em.PostEvent(ctx, &types.GeneralUserEvent{GeneralEvent: types.GeneralEvent{Event: types.Event{Vm: &types.VmEventArgument{Vm: v.vm.Reference()}}, Message: msg}})
}

// runSource runs a source on the simulator until the test ends.
func runSource(t *testing.T, kcfg kit.KafkaConfig, s *simulator.Server, stream string) {
	t.Helper()
	runSourceWith(t, kcfg, s, stream, 0, nil)
}

func runSourceWith(t *testing.T, kcfg kit.KafkaConfig, s *simulator.Server, stream string, refresh time.Duration, m *Metrics) {
	t.Helper()
	t.Cleanup(startSource(t, kcfg, s, stream, refresh, m))
}

// startSource runs a source on the simulator until the returned stop.
func startSource(t *testing.T, kcfg kit.KafkaConfig, s *simulator.Server, stream string, refresh time.Duration, m *Metrics) (stop func()) {
	t.Helper()
	u := *s.URL
	pass, _ := u.User.Password()
	user := u.User.Username()
	u.User = nil
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := Run(ctx, Config{
			Deployment: "vc", Bridge: "vcenter",
			Spec:     descriptor.VCenterSource{URL: u.String(), Insecure: true, Username: user, PageSize: 100, Poll: descriptor.Duration(50 * time.Millisecond)},
			Password: pass, Stream: stream, Checkpoints: topics.Checkpoints,
			Kafka: kcfg, TransactionalID: bridges.TransactionalID("", "vc", "vcenter"),
			Logger: slog.New(slog.DiscardHandler), Retry: 100 * time.Millisecond, Refresh: refresh, Metrics: m,
		})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// readAll reads stream with read_committed until want events arrived.
func readAll(t *testing.T, kcfg kit.KafkaConfig, stream string, want func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kcfg.NewClient(kgo.ConsumeTopics(stream), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	kittest.Eventually(t, "events on "+stream, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
		if !want(got) {
			return fmt.Errorf("%d records so far", len(got))
		}
		return nil
	})
	return got
}

func TestPowerCycle(t *testing.T) {
	t.Parallel()
	kcfg := startBroker(t, "vc-events")
	s := startVCSim(t)
	runSource(t, kcfg, s, "vc-events")

	ctx := context.Background()
	sv := newSimVM(t, s)
	vm := sv.vm
	// The source reads from the vCenter's clock at its first start, once
	// its collector exists: wait until a probe event reaches the stream.
	readAll(t, kcfg, "vc-events", func(rs []*kgo.Record) bool {
		if len(rs) == 0 {
			_ = sv.post(ctx, "probe")
		}
		return len(rs) > 0
	})
	for _, op := range []func(context.Context) error{
		func(ctx context.Context) error { t, err := vm.PowerOff(ctx); return waitTask(ctx, t, err) },
		func(ctx context.Context) error { t, err := vm.PowerOn(ctx); return waitTask(ctx, t, err) },
	} {
		if err := op(ctx); err != nil {
			t.Fatal(err)
		}
	}
	recs := readAll(t, kcfg, "vc-events", func(rs []*kgo.Record) bool {
		seen := map[string]bool{}
		for _, r := range rs {
			seen[envelope.FromRecord(r).Event.Type()] = true
		}
		return seen["com.vmware.vsphere.VmPoweredOffEvent.v0"] && seen["com.vmware.vsphere.VmPoweredOnEvent.v0"]
	})
	for _, r := range recs {
		e := envelope.FromRecord(r).Event
		if e.Type() != "com.vmware.vsphere.VmPoweredOnEvent.v0" {
			continue
		}
		var data map[string]any
		if err := json.Unmarshal(e.Data(), &data); err != nil {
			t.Fatalf("data: %v", err)
		}
		ext := e.Extensions()
		if e.Source() != s.URL.Scheme+"://"+s.URL.Host+s.URL.Path || e.Subject() != "VmPoweredOnEvent" || ext[bridges.ExtEventClass] != "event" ||
			ext[bridges.ExtAPIVersion] == "" || string(r.Key) != "VirtualMachine:"+vm.Reference().Value || e.Time().IsZero() || data["key"] == nil {
			t.Errorf("event = %s, key %s", e, r.Key)
		}
	}
}

func waitTask(ctx context.Context, t interface {
	Wait(context.Context) error
}, err error) error {
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}

// BenchmarkVCenterToStream posts events to the simulator from 4
// goroutines while a source with full pages (1000) reads them, and reports
// the simulator's generation rate and the rate at which the events were
// committed on the stream. The bridge keeps up when the two are equal.
func BenchmarkVCenterToStream(b *testing.B) {
	const total = 8000
	kcfg := startBrokerB(b, "vc-events")
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		b.Fatal(err)
	}
	defer m.Remove()
	m.Service.TLS = new(tls.Config)
	s := m.Service.NewServer()
	defer s.Close()
	u := *s.URL
	pass, _ := u.User.Password()
	user := u.User.Username()
	u.User = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = Run(ctx, Config{Deployment: "vc", Bridge: "vcenter",
			Spec:     descriptor.VCenterSource{URL: u.String(), Insecure: true, Username: user, PageSize: 1000, Poll: descriptor.Duration(20 * time.Millisecond)},
			Password: pass, Stream: "vc-events", Checkpoints: topics.Checkpoints, Kafka: kcfg,
			TransactionalID: bridges.TransactionalID("", "vc", "vcenter"), Logger: slog.New(slog.DiscardHandler)})
	}()
	sv := newSimVM(b, s)
	post := func() error { return sv.post(ctx, "m") }
	rd, err := kcfg.NewClient(kgo.ConsumeTopics("vc-events"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()
	// Wait until the source reads.
	n := 0
	for n == 0 {
		if err := post(); err != nil {
			b.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		n += rd.PollFetches(pctx).NumRecords()
		pcancel()
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range total / 4 {
				if err := post(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	posted := time.Since(start)
	got := 0
	for got < total {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		got += rd.PollFetches(pctx).NumRecords()
		pcancel()
		if time.Since(start) > time.Minute {
			b.Fatalf("%d of %d events on the stream after a minute", got, total)
		}
	}
	all := time.Since(start)
	b.ReportMetric(total/posted.Seconds(), "posted/s")
	b.ReportMetric(total/all.Seconds(), "streamed/s")
}

func startBrokerB(b *testing.B, stream string) kit.KafkaConfig {
	br, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Close)
	for _, s := range []topics.Spec{{Name: topics.Checkpoints, Partitions: 1, Compact: true, Retention: topics.Forever}, topics.Stream(stream)} {
		if err := br.CreateTopic(s); err != nil {
			b.Fatal(err)
		}
	}
	return br.Kafka()
}

// TestQuietCollectorReplaced: a collector that returned only empty pages
// for Refresh is replaced by one from the checkpoint, and events posted
// around the replacements are each on the stream once.
func TestQuietCollectorReplaced(t *testing.T) {
	t.Parallel()
	kcfg := startBroker(t, "vc-events")
	s := startVCSim(t)
	m := NewMetrics(nil)
	runSourceWith(t, kcfg, s, "vc-events", 100*time.Millisecond, m)
	ctx := context.Background()
	sv := newSimVM(t, s)
	post := func(msg string) {
		if err := sv.post(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, kcfg, "vc-events", func(rs []*kgo.Record) bool {
		if len(rs) == 0 {
			post("probe")
		}
		return len(rs) > 0
	})
	refreshes := func() float64 { return testutil.ToFloat64(m.Refreshes.WithLabelValues("vc", "vcenter")) }
	for burst := range 3 {
		for i := range 5 {
			post(fmt.Sprint("b", burst, "-", i))
		}
		before := refreshes()
		kittest.Eventually(t, "a collector replaced", func() error {
			if refreshes() < before+1 {
				return fmt.Errorf("%v refreshes", refreshes())
			}
			return nil
		})
	}
	ids := map[string]int{}
	readAll(t, kcfg, "vc-events", func(rs []*kgo.Record) bool {
		clear(ids)
		msgs := 0
		for _, r := range rs {
			e := envelope.FromRecord(r).Event
			ids[e.ID()]++
			var d struct {
				Message string `json:"message"`
			}
			_ = e.DataAs(&d)
			if strings.HasPrefix(d.Message, "b") {
				msgs++
			}
		}
		return msgs >= 15
	})
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s on the stream %d times", id, n)
		}
	}
}

// TestKeyGapsCounted: events posted while the bridge is stopped, more than
// the simulator's history keeps (1000), are partly purged before the
// bridge reads on; the keys it never saw are counted as gaps, exactly
// the keys missing from the stream.
func TestKeyGapsCounted(t *testing.T) {
	t.Parallel()
	kcfg := startBroker(t, "vc-gaps")
	s := startVCSim(t)
	m := NewMetrics(nil)
	ctx := context.Background()
	sv := newSimVM(t, s)
	post := func(msg string) {
		if err := sv.post(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	message := func(r *kgo.Record) string {
		var d struct {
			Message string `json:"message"`
		}
		_ = envelope.FromRecord(r).Event.DataAs(&d)
		return d.Message
	}
	stop := startSource(t, kcfg, s, "vc-gaps", 0, m)
	readAll(t, kcfg, "vc-gaps", func(rs []*kgo.Record) bool {
		if len(rs) == 0 || message(rs[len(rs)-1]) != "before" {
			post("before")
			return false
		}
		return true
	})
	stop()
	for i := range 1500 {
		post(fmt.Sprint("while stopped ", i))
	}
	post("after")
	t.Cleanup(startSource(t, kcfg, s, "vc-gaps", 0, m))
	rs := readAll(t, kcfg, "vc-gaps", func(rs []*kgo.Record) bool {
		return len(rs) > 0 && message(rs[len(rs)-1]) == "after"
	})
	keys := map[int64]bool{}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, r := range rs {
		k, err := strconv.ParseInt(envelope.FromRecord(r).Event.ID(), 10, 64)
		if err != nil {
			t.Fatalf("event id %q is not a key", envelope.FromRecord(r).Event.ID())
		}
		keys[k] = true
		lo, hi = min(lo, k), max(hi, k)
	}
	missing := hi - lo + 1 - int64(len(keys))
	gaps := testutil.ToFloat64(m.Gaps.WithLabelValues("vc", "vcenter"))
	if missing < 500 || gaps != float64(missing) {
		t.Fatalf("gaps metric %v, keys missing from the stream %d (of %d..%d); want them equal and at least 500", gaps, missing, lo, hi)
	}
}

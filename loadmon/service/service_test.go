package service

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// env is an embedded broker with the internal topics and a client.
type env struct {
	brokers string
	cl      *kgo.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerBatchMaxBytes(control.MaxRecordBytes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), kittest.Timeout)
	defer cancel()
	if err := kit.EnsureTopics(ctx, cl, append(topics.Internal(), topics.Stream("in"))...); err != nil {
		t.Fatal(err)
	}
	return &env{brokers: b.Addr(), cl: cl}
}

func (e *env) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kittest.Timeout)
	defer cancel()
	if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// deploy stores a deployment "bulk" whose function "fn" reads stream in.
func (e *env) deploy(t *testing.T, scale string) {
	t.Helper()
	d := control.Deployment{Name: "bulk", Version: "v1", Created: time.Now(), Updated: time.Now(), Descriptor: `name: bulk
platform: exec
functions:
  - fn: ./fn.sh
    name: fn
    bindings: { streams: [{ name: in, offset: first }] }
    scale: ` + scale + "\n"}
	rec, err := control.DeploymentRecord(topics.Deployments, d)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(t, rec)
}

// backlog publishes n events spread over the stream's partitions.
func (e *env) backlog(t *testing.T, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: []byte("x")}
	}
	e.produce(t, recs...)
}

func startLoadmon(t *testing.T, brokers, replica string) (*Service, func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Replica = replica
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{brokers}}
	cfg.Interval = 200 * time.Millisecond
	cfg.Cooldown = time.Second
	cfg.Logger, _ = kit.NewLogger(testLog, "info")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, kittest.Serve(t, s)
}

// decisions reads _butter.scale from its start.
type decisions struct {
	cl *kgo.Client
	mu sync.Mutex
	ds []control.ScaleDecision
	at []time.Time // when each was read
}

func readDecisions(t *testing.T, brokers string) *decisions {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topics.Scale),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	d := &decisions{cl: cl}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				dec, err := control.DecodeScale(r)
				if err != nil {
					t.Errorf("decode decision: %v", err)
					return
				}
				d.mu.Lock()
				d.ds, d.at = append(d.ds, dec), append(d.at, time.Now())
				d.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return d
}

func (d *decisions) all() []control.ScaleDecision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]control.ScaleDecision(nil), d.ds...)
}

// latest is the count in force: the last decision's To, else def.
func (d *decisions) latest(def int) int {
	ds := d.all()
	if len(ds) == 0 {
		return def
	}
	return ds[len(ds)-1].To
}

// waitFor polls until a decision satisfying ok has been read and returns
// when it was read.
func (d *decisions) waitFor(t *testing.T, what string, ok func(control.ScaleDecision) bool) time.Time {
	t.Helper()
	var at time.Time
	kittest.Eventually(t, what, func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, dec := range d.ds {
			if ok(dec) {
				at = d.at[i]
				return nil
			}
		}
		return fmt.Errorf("decisions so far: %+v", d.ds)
	})
	return at
}

// fleet plays the deployer and fnbox for function bulk/fn: it runs as
// many consumer-group members as the latest decision says, each handling
// an event every perEvent, committing and heartbeating like fnbox.
type fleet struct {
	t        *testing.T
	brokers  string
	perEvent time.Duration
	handled  atomic.Int64
	first    sync.Map // instance → time of its first handled event

	mu      sync.Mutex
	members []*member
	started int
}

type member struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

func (f *fleet) scaleTo(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.members) < n {
		f.started++
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{id: fmt.Sprintf("i%d", f.started), cancel: cancel, done: make(chan struct{})}
		f.members = append(f.members, m)
		go f.run(ctx, m)
	}
	for len(f.members) > n {
		m := f.members[len(f.members)-1]
		f.members = f.members[:len(f.members)-1]
		m.cancel()
		<-m.done
	}
}

func (f *fleet) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.members)
}

func (f *fleet) run(ctx context.Context, m *member) {
	defer close(m.done)
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers), kgo.ConsumerGroup(topics.Namespace("").ConsumerGroup("bulk", "fn")),
		kgo.ConsumeTopics("in"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		f.t.Errorf("member %s: %v", m.id, err)
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cl.CommitUncommittedOffsets(cctx)
		f.beat(cctx, m.id, 0, 0, true)
		cl.Close()
	}()
	var processed int64
	lastBeat := time.Time{}
	for ctx.Err() == nil {
		fs := cl.PollRecords(ctx, 50)
		n := 0
		fs.EachRecord(func(*kgo.Record) {
			time.Sleep(f.perEvent)
			n++
		})
		if n > 0 {
			if _, ok := f.first.Load(m.id); !ok {
				f.first.Store(m.id, time.Now())
			}
			processed += int64(n)
			f.handled.Add(int64(n))
			_ = cl.CommitUncommittedOffsets(ctx)
		}
		if time.Since(lastBeat) > 300*time.Millisecond {
			f.beat(ctx, m.id, processed, 0, false)
			lastBeat = time.Now()
		}
	}
}

func (f *fleet) beat(ctx context.Context, id string, processed int64, inFlight int, stopping bool) {
	h := obs.Heartbeat{Deployment: "bulk", Function: "fn", Instance: id, Time: time.Now(), Processed: processed,
		InFlight: inFlight, Stopping: stopping}
	rec, err := h.Record(topics.Heartbeats)
	if err != nil {
		f.t.Errorf("heartbeat: %v", err)
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers))
	if err != nil {
		return
	}
	defer cl.Close()
	_ = cl.ProduceSync(ctx, rec).FirstErr()
}

// follow applies the latest decision to the fleet until ctx is done.
func (f *fleet) follow(ctx context.Context, d *decisions, def int) {
	for ctx.Err() == nil {
		if want := d.latest(def); want != f.running() {
			f.scaleTo(want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkChain fails unless every decision starts where the one before
// ended and changes something: one decision per change.
func checkChain(t *testing.T, ds []control.ScaleDecision, start int) {
	t.Helper()
	prev := start
	for i, d := range ds {
		if d.From != prev || d.To == d.From {
			t.Fatalf("decision %d (%d → %d by %s) does not follow %d: %+v", i, d.From, d.To, d.Replica, prev, ds)
		}
		prev = d.To
	}
}

// TestBacklogScalesUpToPartitionsAndBackToZero: a backlog on a
// 4-partition stream for a function with scale {min 0, max 8} wakes it
// to 4 instances (the partition cap, not max), which drain it;
// then the count steps down after the cooldown and goes to zero after
// idleAfter. Every change is one decision and one deployment.scaled event.
func TestBacklogScalesUpToPartitionsAndBackToZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deploy(t, "{ min: 0, max: 8, lagPerReplica: 100, idleAfter: 2s }")
	s, _ := startLoadmon(t, e.brokers, "lm-a")
	d := readDecisions(t, e.brokers)
	f := &fleet{t: t, brokers: e.brokers, perEvent: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); f.follow(ctx, d, 0) }()
	t.Cleanup(func() { cancel(); <-followed; f.scaleTo(0) })

	kittest.Eventually(t, "loadmon owns the decisions", func() error {
		if !s.Owner() {
			return fmt.Errorf("not the owner")
		}
		return nil
	})
	start := time.Now()
	const events = 3000
	e.backlog(t, events)
	up := d.waitFor(t, "scaled to 4", func(dec control.ScaleDecision) bool { return dec.To == 4 })
	t.Logf("backlog of %d → decision of 4 instances: %s", events, up.Sub(start))
	kittest.Eventually(t, "backlog handled", func() error {
		if n := f.handled.Load(); n < events {
			return fmt.Errorf("%d of %d handled", n, events)
		}
		return nil
	})
	d.waitFor(t, "back to zero", func(dec control.ScaleDecision) bool { return dec.To == 0 && dec.Reason == control.ScaleReasonIdle })
	ds := d.all()
	checkChain(t, ds, 0)
	// A tick may see the backlog half written: the first decision is a
	// wake with the lag behind it, not always straight to 4.
	if ds[0].Reason != control.ScaleReasonWake || ds[0].Partitions != 4 || ds[0].Lag == 0 {
		t.Errorf("first decision %+v, want a wake with the lag and 4 partitions", ds[0])
	}
	for _, dec := range ds {
		if dec.To > 4 {
			t.Errorf("decision above the partition count: %+v", dec)
		}
	}
	kittest.Eventually(t, "fleet stopped", func() error {
		if n := f.running(); n != 0 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	// One deployment.scaled event per decision.
	kittest.Eventually(t, "platform events", func() error {
		n := countScaledEvents(t, e.brokers)
		if n != len(ds) {
			return fmt.Errorf("%d deployment.scaled events, %d decisions", n, len(ds))
		}
		return nil
	})
	for i, dec := range ds {
		t.Logf("decision %d: %d → %d (%s) lag %d rate %.0f/s running %d", i, dec.From, dec.To, dec.Reason, dec.Lag, dec.Rate, dec.Running)
	}

	// Metrics are served.
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !containsAll(string(body), "butter_loadmon_decisions_total", "butter_loadmon_owner 1") {
		t.Errorf("/metrics = %d:\n%s", resp.StatusCode, body)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func countScaledEvents(t *testing.T, brokers string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topics.Events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n := 0
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if ev := envelope.FromRecord(r); !ev.Raw && ev.Event.Type() == control.TypeDeploymentScaled &&
				envelope.Extension(ev.Event, control.ExtCategory) == control.CategoryState {
				n++
			}
		})
	}
	return n
}

// TestTwoReplicasMakeOneDecisionPerChange: with two loadmon replicas on
// the same cluster, one decides; each change appears once on
// _butter.scale. When the deciding replica stops, the other takes over
// and goes on from the last decision without repeating it.
func TestTwoReplicasMakeOneDecisionPerChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deploy(t, "{ min: 0, max: 4, lagPerReplica: 100, idleAfter: 1s }")
	a, stopA := startLoadmon(t, e.brokers, "lm-a")
	b, stopB := startLoadmon(t, e.brokers, "lm-b")
	d := readDecisions(t, e.brokers)
	// The standby is ready too: ready means in the group, not deciding.
	kittest.WaitReady(t, "replica a", "http://"+a.Addr())
	kittest.WaitReady(t, "replica b", "http://"+b.Addr())
	kittest.Eventually(t, "exactly one owner", func() error {
		if a.Owner() == b.Owner() {
			return fmt.Errorf("owners: a %v, b %v", a.Owner(), b.Owner())
		}
		return nil
	})
	e.backlog(t, 250)
	d.waitFor(t, "woken", func(dec control.ScaleDecision) bool { return dec.To == 3 })

	// Hand over: the owner leaves, the other takes over from the last
	// decision (3) and repeats nothing.
	stopOwner, other := stopA, b
	if b.Owner() {
		stopOwner, other = stopB, a
	}
	stopOwner() // leaves the group: the other takes over at once
	kittest.Eventually(t, "the other replica decides", func() error {
		if !other.Owner() {
			return fmt.Errorf("no takeover yet")
		}
		return nil
	})
	// The lag never moves (no consumer): the count stays, no decision
	// is repeated. Then the lag goes (a consumer commits at the end) and
	// the new owner takes it down and, after idleAfter, to zero.
	commitEnd(t, e.brokers)
	d.waitFor(t, "to zero", func(dec control.ScaleDecision) bool { return dec.To == 0 })
	ds := d.all()
	checkChain(t, ds, 0)
	replicas := map[string]bool{}
	for _, dec := range ds {
		replicas[dec.Replica] = true
	}
	t.Logf("decisions %+v by %v", ds, replicas)
}

// commitEnd commits the end of every partition of in for bulk/fn, as a
// consumer that read everything would.
func commitEnd(t *testing.T, brokers string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumerGroup(topics.Namespace("").ConsumerGroup("bulk", "fn")),
		kgo.ConsumeTopics("in"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kittest.Timeout)
	defer cancel()
	read := 0
	for read < 250 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 250", read)
		}
		read += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
}

// testLog receives the services' logs; set it to os.Stderr to debug.
var testLog io.Writer = io.Discard

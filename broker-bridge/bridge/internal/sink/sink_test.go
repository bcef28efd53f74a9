package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/egress"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// TestRecoveringReceiver: the receiver fails its first 3 posts, then
// accepts; every event arrives, in order per key (so per partition), and
// nothing is dead-lettered.
func TestRecoveringReceiver(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "out", "out-dlq")
	var mu sync.Mutex
	failures := 0
	got := map[string][]int{} // key → sequence numbers accepted
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Ce-Specversion") != "1.0" || r.Header.Get("Ce-Type") != "t.seq" {
			t.Errorf("not binary mode: %v", r.Header)
		}
		if failures < 3 {
			failures++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		n, _ := strconv.Atoi(r.Header.Get("Ce-Id"))
		got[r.Header.Get("Ce-Partitionkey")] = append(got[r.Header.Get("Ce-Partitionkey")], n)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)

	const events, keys = 200, 8
	cl, err := b.Kafka().NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range events {
		e := envelope.New("/test", "t.seq")
		e.SetID(strconv.Itoa(i))
		e.SetExtension(envelope.ExtPartitionKey, fmt.Sprint("k", i%keys))
		rec, err := envelope.ToRecord("out", e)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Deployment: "d", Bridge: "notify", Topic: "out", DeadLetter: "out-dlq", Group: "butter-bridge.d.notify",
			Spec:  descriptor.HTTPSink{URL: srv.URL, Retries: 5, Backoff: descriptor.Duration(10 * time.Millisecond), MaxBackoff: descriptor.Duration(50 * time.Millisecond), Timeout: descriptor.Duration(5 * time.Second), AllowPrivate: true},
			Kafka: b.Kafka(), Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	kittest.Eventually(t, "every event accepted", func() error {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range got {
			n += len(s)
		}
		if n < events {
			return fmt.Errorf("%d of %d", n, events)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for k, s := range got {
		if len(s) != events/keys {
			t.Errorf("key %s: %d events, want %d: %v", k, len(s), events/keys, s)
		}
		for i := 1; i < len(s); i++ {
			if s[i] <= s[i-1] {
				t.Errorf("key %s out of order: %v", k, s)
				break
			}
		}
	}
	if failures != 3 {
		t.Errorf("failures = %d", failures)
	}
}

// TestDeadLetter: a receiver that always fails gets Retries+1 posts per
// event, then the event is on the dead-letter stream with the failure.
func TestDeadLetter(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "out", "out-dlq")
	var mu sync.Mutex
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	produce(t, b.Kafka(), "out", 3)
	runSink(t, b.Kafka(), descriptor.HTTPSink{URL: srv.URL, Retries: 1, Backoff: descriptor.Duration(time.Millisecond), MaxBackoff: descriptor.Duration(time.Millisecond), Timeout: descriptor.Duration(5 * time.Second), AllowPrivate: true})
	rd, err := b.Kafka().NewClient(kgo.ConsumeTopics("out-dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var dl []envelope.Delivery
	kittest.Eventually(t, "3 dead letters", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) { dl = append(dl, envelope.FromRecord(r)) })
		if len(dl) < 3 {
			return fmt.Errorf("%d", len(dl))
		}
		return nil
	})
	for _, d := range dl {
		x := d.Event.Extensions()
		if x[obs.ExtDLQAttempts] != "2" || x[obs.ExtDLQStream] != "out" || x[obs.ExtDLQError] == nil {
			t.Errorf("dead letter %s", d.Event)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if posts != 6 {
		t.Errorf("posts = %d, want 6", posts)
	}
}

// startBroker runs an in-memory broker with the given streams.
func startBroker(tb testing.TB, streams ...string) *broker.Broker {
	tb.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	for _, s := range streams {
		if err := b.CreateTopic(topics.Stream(s)); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

func produce(t *testing.T, kcfg kit.KafkaConfig, topic string, n int) {
	cl, err := kcfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range n {
		e := envelope.New("/test", "t.seq")
		e.SetID(strconv.Itoa(i))
		rec, _ := envelope.ToRecord(topic, e)
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func runSink(t *testing.T, kcfg kit.KafkaConfig, spec descriptor.HTTPSink) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Deployment: "d", Bridge: "notify", Topic: "out", DeadLetter: "out-dlq", Group: "butter-bridge.d.notify",
			Spec: spec, Kafka: kcfg, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// BenchmarkSink: b.N events on a 4-partition stream posted to a local
// receiver that answers 204 at once.
func BenchmarkSink(b *testing.B) {
	br := startBroker(b, "out", "out-dlq")
	cl, err := br.Kafka().NewClient()
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		e := envelope.New("/bench", "t")
		e.SetID(strconv.Itoa(i))
		e.SetExtension(envelope.ExtPartitionKey, strconv.Itoa(i%16))
		recs[i], _ = envelope.ToRecord("out", e)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		mu.Lock()
		defer mu.Unlock()
		if n++; n == b.N {
			close(done)
		}
	}))
	defer srv.Close()
	b.ResetTimer()
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = Run(ctx, Config{Deployment: "d", Bridge: "b", Topic: "out", DeadLetter: "out-dlq", Group: "bench",
			Spec:  descriptor.HTTPSink{URL: srv.URL, Retries: 1, Backoff: descriptor.Duration(time.Millisecond), MaxBackoff: descriptor.Duration(time.Millisecond), Timeout: descriptor.Duration(5 * time.Second), AllowPrivate: true},
			Kafka: br.Kafka(), Logger: slog.New(slog.DiscardHandler)})
	}()
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// TestGuardRefusesPrivate: a sink whose URL is loopback, private or
// link-local (a cloud metadata endpoint) does not start unless it sets
// allowPrivate, and its receiver gets nothing.
func TestGuardRefusesPrivate(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "out", "out-dlq")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	produce(t, b.Kafka(), "out", 3)
	for _, u := range []string{srv.URL, "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/in", "http://[::1]/in"} {
		err := Run(context.Background(), Config{Deployment: "d", Bridge: "notify", Topic: "out", DeadLetter: "out-dlq", Group: "butter-bridge.d.notify",
			Spec: descriptor.HTTPSink{URL: u, Retries: 0, Timeout: descriptor.Duration(time.Second)}, Kafka: b.Kafka(), Logger: slog.New(slog.DiscardHandler)})
		if !errors.Is(err, ErrRefused) || !errors.Is(err, egress.ErrPrivate) {
			t.Errorf("sink to %s: %v, want refused as private", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the refused sink posted %d times", hits.Load())
	}
	// The same receiver with allowPrivate gets every event.
	runSink(t, b.Kafka(), descriptor.HTTPSink{URL: srv.URL, Timeout: descriptor.Duration(5 * time.Second), AllowPrivate: true})
	kittest.Eventually(t, "the allowed sink posts", func() error {
		if n := hits.Load(); n < 3 {
			return fmt.Errorf("%d of 3 posts", n)
		}
		return nil
	})
}

// TestRateLimit: with rateLimit 40, 20 posts take at least 19/40 s from
// the sink's start (a lower bound, which a slow machine only widens: each
// post's slot is 1/40 s after the previous one's), and every event
// arrives once.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "out", "out-dlq")
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	const n, rate = 20, 40
	produce(t, b.Kafka(), "out", n)
	started := time.Now()
	runSink(t, b.Kafka(), descriptor.HTTPSink{URL: srv.URL, Timeout: descriptor.Duration(5 * time.Second), AllowPrivate: true, RateLimit: rate})
	kittest.Eventually(t, "every event posted", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(at) < n {
			return fmt.Errorf("%d of %d", len(at), n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(at) != n {
		t.Errorf("%d posts, want %d", len(at), n)
	}
	if took, least := at[len(at)-1].Sub(started), (n-1)*time.Second/rate; took < least {
		t.Errorf("%d posts in %s; the limit needs at least %s", len(at), took, least)
	}
}

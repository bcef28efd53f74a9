package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

func startBroker(t *testing.T, specs ...topics.Spec) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range specs {
		if err := b.CreateTopic(s); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func produce(t *testing.T, kcfg kit.KafkaConfig, from, to int) {
	t.Helper()
	cl, err := kcfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := from; i < to; i++ {
		r := &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint("k", i%5)), Value: []byte(fmt.Sprint(i)),
			Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(fmt.Sprint(i))}}}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMirrorResumesExactlyOnce mirrors 100 records, stops, mirrors 100
// more from where it stopped: every record once, headers and keys kept,
// in order per key.
func TestMirrorResumesExactlyOnce(t *testing.T) {
	t.Parallel()
	remote := startBroker(t, topics.Spec{Name: "orders", Partitions: 3})
	local := startBroker(t, topics.Spec{Name: topics.Checkpoints, Partitions: 1, Compact: true, Retention: topics.Forever}, topics.Stream("orders-copy"))
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Config{Deployment: "d", Bridge: "mirror",
				Spec:   descriptor.KafkaSource{Brokers: remote.Kafka().Brokers, Topic: "orders", Offset: "first"},
				Stream: "orders-copy", Checkpoints: topics.Checkpoints, Kafka: local.Kafka(),
				TransactionalID: bridges.TransactionalID("", "d", "mirror"), Logger: slog.New(slog.DiscardHandler)})
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	rd, err := local.Kafka().NewClient(kgo.ConsumeTopics("orders-copy"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	last := map[string]int{}
	wait := func(n int) {
		kittest.Eventually(t, "mirrored records", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				seen[string(r.Value)]++
				var v int
				fmt.Sscan(string(r.Value), &v)
				if len(r.Headers) != 1 || string(r.Headers[0].Value) != string(r.Value) {
					t.Errorf("headers of %s: %v", r.Value, r.Headers)
				}
				if l, ok := last[string(r.Key)]; ok && v <= l {
					t.Errorf("key %s: %d after %d", r.Key, v, l)
				}
				last[string(r.Key)] = v
			})
			if len(seen) < n {
				return fmt.Errorf("%d of %d", len(seen), n)
			}
			return nil
		})
	}
	produce(t, remote.Kafka(), 0, 100)
	stop := run()
	wait(100)
	stop()
	produce(t, remote.Kafka(), 100, 200)
	stop = run()
	defer stop()
	wait(200)
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s mirrored %d times", v, n)
		}
	}
}

package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// TestSinkToAnotherCluster mirrors a stream to a topic of a second
// cluster that requires SASL/SCRAM: 100 records, a stop, 100 more from
// where it stopped; on the other cluster every record once, keys, headers
// and timestamps kept, in order per key. Both modes: positions in a
// group here (at-least-once), and on the other cluster in one transaction
// with the records (checkpointTopic, exactly once), read there
// read-committed.
func TestSinkToAnotherCluster(t *testing.T) {
	t.Parallel()
	for _, checkpoints := range []string{"", "butter-checkpoints"} {
		t.Run("checkpointTopic="+checkpoints, func(t *testing.T) {
			t.Parallel()
			testSink(t, checkpoints)
		})
	}
}

func testSink(t *testing.T, checkpoints string) {
	local := startBroker(t, topics.Spec{Name: "orders", Partitions: 3})
	remote, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remote.Close)
	if err := remote.CreateTopic(topics.Spec{Name: "orders-dr", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if checkpoints != "" {
		if err := remote.CreateTopic(topics.Spec{Name: checkpoints, Partitions: 1, Compact: true, Retention: topics.Forever}); err != nil {
			t.Fatal(err)
		}
	}
	rk := remote.Kafka()
	if rk.SASLMechanism == "" || rk.SASLPassword == "" {
		t.Fatalf("the peer cluster is not secured: %+v", rk)
	}
	fencedOK := false // set once a second instance runs: the first may fail
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- RunSink(ctx, SinkConfig{Deployment: "d", Bridge: "dr",
				Spec: descriptor.KafkaSink{Brokers: rk.Brokers, Topic: "orders-dr", Offset: descriptor.OffsetFirstName,
					SASLMechanism: rk.SASLMechanism, Username: rk.SASLUser, CheckpointTopic: checkpoints},
				Password: rk.SASLPassword, Stream: "orders", Group: "butter-bridge.d.dr", TransactionalID: "butter-bridge.d.dr",
				Kafka: local.Kafka(), Logger: slog.New(slog.DiscardHandler)})
		}()
		return func() {
			cancel()
			// A fenced instance fails its next transaction with
			// ErrFenced.
			if err := <-done; err != nil && !(fencedOK && errors.Is(err, ErrFenced)) {
				t.Errorf("RunSink: %v", err)
			}
		}
	}
	rd, err := rk.NewClient(kgo.ConsumeTopics("orders-dr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	last := map[string]int{}
	base := time.Now().Add(-time.Second).UnixMilli()
	wait := func(n int) {
		kittest.Eventually(t, "records on the other cluster", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				seen[string(r.Value)]++
				var v int
				fmt.Sscan(string(r.Value), &v)
				if len(r.Headers) != 1 || string(r.Headers[0].Value) != string(r.Value) {
					t.Errorf("headers of %s: %v", r.Value, r.Headers)
				}
				if r.Timestamp.UnixMilli() != base+int64(v) {
					t.Errorf("timestamp of %s: %v", r.Value, r.Timestamp)
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
	produceTo := func(from, to int) {
		cl, err := local.Kafka().NewClient()
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for i := from; i < to; i++ {
			r := &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint("k", i%5)), Value: []byte(fmt.Sprint(i)),
				Timestamp: time.UnixMilli(base + int64(i)),
				Headers:   []kgo.RecordHeader{{Key: "ce_id", Value: []byte(fmt.Sprint(i))}}}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produceTo(0, 100)
	stop := run()
	wait(100)
	stop()
	produceTo(100, 200)
	stop = run()
	defer stop()
	wait(200)
	if checkpoints != "" {
		// A second instance while the first runs (two replicas that both
		// believe they own the sink): it fences the first on the other
		// cluster, and nothing is written twice.
		fencedOK = true
		stop2 := run()
		defer stop2()
		produceTo(200, 300)
		wait(300)
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s on the other cluster %d times", v, n)
		}
	}
}

package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/bridge/internal/txn"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// SinkConfig is one Kafka sink: a stream of this cluster mirrored to a
// topic of another.
type SinkConfig struct {
	Deployment, Bridge string
	Spec               descriptor.KafkaSink
	// Password is the opened passwordFrom secret.
	Password string
	// Stream is the topic read here (namespaced); Group is the sink's
	// consumer group here, which holds its positions.
	Stream, Group string
	// TransactionalID is the bridge's; used on the other cluster when
	// Spec.CheckpointTopic makes the sink exactly once.
	TransactionalID string
	Kafka           kit.KafkaConfig
	Logger          *slog.Logger
	Mirrored        *prometheus.CounterVec // by deployment and bridge; may be nil
}

// NewSinkMetrics registers the Kafka sink's record counter on reg.
func NewSinkMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_kafka_sink_records_total", Help: "Records written to another Kafka cluster and acknowledged there."}, []string{"deployment", "bridge"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// RunSink copies the stream to the other cluster until ctx is done or an
// error; the caller starts it again. Each poll's records are written
// there with their keys, values, headers and timestamps (partitioned by
// key, so order per key is kept) and the poll's offsets are committed in
// the sink's group here only after the other cluster acknowledged every
// record: a crash writes again what was not committed, never skips
// (at-least-once; the ce_id and ce_source headers identify a repeat). No
// transaction spans two clusters, so exactly once would need the
// positions kept in the other cluster.
//
// With Spec.CheckpointTopic it is exactly once instead (runExactlyOnce).
func RunSink(ctx context.Context, cfg SinkConfig) error {
	if cfg.Mirrored == nil {
		cfg.Mirrored = NewSinkMetrics(nil)
	}
	if cfg.Spec.CheckpointTopic != "" {
		return runExactlyOnce(ctx, cfg)
	}
	log := cfg.Logger.With("deployment", cfg.Deployment, "bridge", cfg.Bridge)
	start := kgo.NewOffset().AtStart()
	if cfg.Spec.Offset == descriptor.OffsetLatestName {
		start = kgo.NewOffset().AtEnd()
	}
	local, err := cfg.Kafka.NewClient(
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Stream),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return err
	}
	defer local.Close()
	// Runs before Close: a client blocking rebalances waits for this
	// before it can leave the group.
	defer local.AllowRebalance()
	remote, err := cfg.remote().NewClient(kgo.RecordDeliveryTimeout(30*time.Second), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		return fmt.Errorf("configure the other cluster: %w", err)
	}
	defer remote.Close()
	log.Info("kafka sink writing", kit.KeyStream, cfg.Stream, "topic", cfg.Spec.Topic)
	for {
		fs := local.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("fetch", kit.KeyStream, t, kit.KeyPartition, p, kit.KeyError, err)
		})
		var out []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, &kgo.Record{Topic: cfg.Spec.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp})
		})
		if len(out) > 0 {
			// Bounded by the delivery timeout, not by ctx: a stopping sink
			// finishes the poll it wrote so its offsets can commit.
			if err := remote.ProduceSync(context.WithoutCancel(ctx), out...).FirstErr(); err != nil {
				// The fetch position is past records not written: only a
				// new client, from the committed offsets, reads them again.
				return fmt.Errorf("write %s on the other cluster: %w", cfg.Spec.Topic, err)
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err := local.CommitUncommittedOffsets(cctx)
			cancel()
			if err != nil {
				return fmt.Errorf("commit the sink's offsets: %w", err)
			}
			cfg.Mirrored.WithLabelValues(cfg.Deployment, cfg.Bridge).Add(float64(len(out)))
		}
		local.AllowRebalance()
	}
}

// remote is how the sink reaches the other cluster.
func (cfg SinkConfig) remote() kit.KafkaConfig {
	return kit.KafkaConfig{Brokers: cfg.Spec.Brokers, TLS: cfg.Spec.TLS, TLSInsecureSkipVerify: cfg.Spec.Insecure,
		SASLMechanism: cfg.Spec.SASLMechanism, SASLUser: cfg.Spec.Username, SASLPassword: cfg.Password,
		ClientID: "butter-bridge-mirror"}
}

// runExactlyOnce is the mirror source turned around: the positions live
// on the other cluster, on Spec.CheckpointTopic, and each poll's records
// and the stream offsets they cover commit there in one transaction under
// the bridge's transactional id (internal/txn). TakeOver fences an
// earlier instance on the other cluster and reads the last committed
// positions; the stream is read here from them, partition by partition
// (no group: like the sources, one bridge replica runs it).
func runExactlyOnce(ctx context.Context, cfg SinkConfig) error {
	log := cfg.Logger.With("deployment", cfg.Deployment, "bridge", cfg.Bridge)
	w, err := txn.New(cfg.remote(), cfg.TransactionalID, cfg.Spec.CheckpointTopic, cfg.Deployment, cfg.Bridge)
	if err != nil {
		return fmt.Errorf("configure the other cluster: %w", err)
	}
	defer w.Close()
	raw, err := w.TakeOver(ctx)
	if err != nil {
		return fmt.Errorf("take the sink over on the other cluster: %w", err)
	}
	cp := Checkpoint{Topic: cfg.Stream, Offsets: map[string]int64{}}
	if raw != nil {
		var c Checkpoint
		if err := json.Unmarshal(raw, &c); err == nil && c.Topic == cfg.Stream && c.Offsets != nil {
			cp = c
		}
	}
	adm, err := cfg.Kafka.NewClient()
	if err != nil {
		return err
	}
	td, err := kadm.NewClient(adm).ListTopics(ctx, cfg.Stream)
	adm.Close()
	if err == nil {
		err = td.Error()
	}
	if err != nil {
		return fmt.Errorf("describe %s: %w", cfg.Stream, err)
	}
	start := kgo.NewOffset().AtStart()
	if cfg.Spec.Offset == descriptor.OffsetLatestName {
		start = kgo.NewOffset().AtEnd()
	}
	offsets := map[int32]kgo.Offset{}
	for p := range td[cfg.Stream].Partitions {
		if at, ok := cp.Offsets[strconv.Itoa(int(p))]; ok {
			offsets[p] = kgo.NewOffset().At(at)
		} else {
			offsets[p] = start
		}
	}
	local, err := cfg.Kafka.NewClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Stream: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return err
	}
	defer local.Close()
	log.Info("kafka sink writing exactly once", kit.KeyStream, cfg.Stream, "topic", cfg.Spec.Topic, "checkpoints", cfg.Spec.CheckpointTopic)
	for {
		fs := local.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("read %s: %w", cfg.Stream, err)
		}
		next := Checkpoint{Topic: cp.Topic, Offsets: make(map[string]int64, len(cp.Offsets))}
		for k, v := range cp.Offsets {
			next.Offsets[k] = v
		}
		var out []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, &kgo.Record{Topic: cfg.Spec.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp})
			next.Offsets[strconv.Itoa(int(r.Partition))] = r.Offset + 1
		})
		if len(out) == 0 {
			continue
		}
		next.Updated = time.Now().UTC()
		if err := w.Commit(ctx, out, next); err != nil {
			// The reader is past records that did not commit: only a new
			// start, from the checkpoint, reads them again.
			return err
		}
		cp = next
		cfg.Mirrored.WithLabelValues(cfg.Deployment, cfg.Bridge).Add(float64(len(out)))
	}
}

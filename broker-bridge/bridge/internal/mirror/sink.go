package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

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
	Kafka         kit.KafkaConfig
	Logger        *slog.Logger
	Mirrored      *prometheus.CounterVec // by deployment and bridge; may be nil
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
func RunSink(ctx context.Context, cfg SinkConfig) error {
	if cfg.Mirrored == nil {
		cfg.Mirrored = NewSinkMetrics(nil)
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
	remoteCfg := kit.KafkaConfig{Brokers: cfg.Spec.Brokers, TLS: cfg.Spec.TLS, TLSInsecureSkipVerify: cfg.Spec.Insecure,
		SASLMechanism: cfg.Spec.SASLMechanism, SASLUser: cfg.Spec.Username, SASLPassword: cfg.Password,
		ClientID: "butter-bridge-mirror"}
	remote, err := remoteCfg.NewClient(kgo.RecordDeliveryTimeout(30*time.Second), kgo.ProducerBatchMaxBytes(4<<20))
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

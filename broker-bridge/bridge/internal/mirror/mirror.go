// Package mirror is the Kafka mirror source: it reads a topic of another
// Kafka cluster and writes its records to a stream of this one, keys,
// values, headers and timestamps kept, exactly once: each batch and the
// source offsets it covers commit in one transaction of this cluster
// (internal/txn), and a restarted mirror resumes from those offsets.
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

// Checkpoint is a mirror's position: the next offset to read in each
// partition of the source topic.
type Checkpoint struct {
	Topic   string           `json:"topic"`
	Offsets map[string]int64 `json:"offsets"` // partition → next offset
	Updated time.Time        `json:"updated"`
}

// Config is one mirror.
type Config struct {
	Deployment, Bridge string
	Spec               descriptor.KafkaSource
	// Password is the opened passwordFrom secret.
	Password string
	// Stream is the topic written here; Checkpoints is _butter.checkpoints
	// (both namespaced).
	Stream, Checkpoints string
	Kafka               kit.KafkaConfig
	TransactionalID     string
	Logger              *slog.Logger
	Mirrored            *prometheus.CounterVec // by deployment and bridge; may be nil
}

// NewMetrics registers the mirror's record counter on reg.
func NewMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_mirror_records_total", Help: "Records mirrored from another Kafka cluster."}, []string{"deployment", "bridge"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// ErrFenced means another instance of the mirror took it over.
var ErrFenced = txn.ErrFenced

// Run mirrors until ctx is done or an error; the caller starts it again.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Mirrored == nil {
		cfg.Mirrored = NewMetrics(nil)
	}
	log := cfg.Logger.With("deployment", cfg.Deployment, "bridge", cfg.Bridge)
	w, err := txn.New(cfg.Kafka, cfg.TransactionalID, cfg.Checkpoints, cfg.Deployment, cfg.Bridge)
	if err != nil {
		return err
	}
	defer w.Close()
	raw, err := w.TakeOver(ctx)
	if err != nil {
		return err
	}
	cp := Checkpoint{Topic: cfg.Spec.Topic, Offsets: map[string]int64{}}
	if raw != nil {
		var c Checkpoint
		if err := json.Unmarshal(raw, &c); err == nil && c.Topic == cfg.Spec.Topic && c.Offsets != nil {
			cp = c
		}
	}
	remote := kit.KafkaConfig{Brokers: cfg.Spec.Brokers, TLS: cfg.Spec.TLS, TLSInsecureSkipVerify: cfg.Spec.Insecure,
		SASLMechanism: cfg.Spec.SASLMechanism, SASLUser: cfg.Spec.Username, SASLPassword: cfg.Password,
		ClientID: "butter-bridge-mirror"}
	adm, err := remote.NewClient()
	if err != nil {
		return fmt.Errorf("configure the other cluster: %w", err)
	}
	td, err := kadm.NewClient(adm).ListTopics(ctx, cfg.Spec.Topic)
	adm.Close()
	if err == nil {
		err = td.Error()
	}
	if err != nil {
		return fmt.Errorf("describe %s on the other cluster: %w", cfg.Spec.Topic, err)
	}
	start := kgo.NewOffset().AtStart()
	if cfg.Spec.Offset == descriptor.OffsetLatestName {
		start = kgo.NewOffset().AtEnd()
	}
	offsets := map[int32]kgo.Offset{}
	for p := range td[cfg.Spec.Topic].Partitions {
		if at, ok := cp.Offsets[strconv.Itoa(int(p))]; ok {
			offsets[p] = kgo.NewOffset().At(at)
		} else {
			offsets[p] = start
		}
	}
	src, err := remote.NewClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Spec.Topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return err
	}
	defer src.Close()
	log.Info("mirror reading", "topic", cfg.Spec.Topic, "partitions", len(offsets))
	for {
		fs := src.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("read %s on the other cluster: %w", cfg.Spec.Topic, err)
		}
		var recs []*kgo.Record
		next := Checkpoint{Topic: cp.Topic, Offsets: make(map[string]int64, len(cp.Offsets))}
		for k, v := range cp.Offsets {
			next.Offsets[k] = v
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, &kgo.Record{Topic: cfg.Stream, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp})
			next.Offsets[strconv.Itoa(int(r.Partition))] = r.Offset + 1
		})
		if len(recs) == 0 {
			continue
		}
		next.Updated = time.Now().UTC()
		if err := w.Commit(ctx, recs, next); err != nil {
			// The reader is past records that did not commit: only a new
			// start, from the checkpoint, reads them again.
			return err
		}
		cp = next
		cfg.Mirrored.WithLabelValues(cfg.Deployment, cfg.Bridge).Add(float64(len(recs)))
	}
}

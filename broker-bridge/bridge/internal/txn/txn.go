// Package txn is how a source bridge writes exactly once: each batch of
// records commits in one Kafka transaction together with the checkpoint
// that covers it (on _butter.checkpoints), under the bridge's own
// transactional id. TakeOver fences any earlier instance of the bridge
// and returns the last checkpoint it committed.
package txn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/kit"
)

// Timeout bounds one transaction on the broker.
const Timeout = 20 * time.Second

// ErrFenced means another instance of the bridge took it over.
var ErrFenced = errors.New("fenced: another bridge replica runs this source")

// Writer writes a source bridge's batches.
type Writer struct {
	kafka       kit.KafkaConfig
	cl          *kgo.Client
	checkpoints string
	cpKey       string
	ownerKey    string
}

// New returns a writer with transactional id tid for the bridge's
// checkpoints on topic checkpoints (namespaced).
func New(kafka kit.KafkaConfig, tid, checkpoints, deployment, bridge string) (*Writer, error) {
	cl, err := kafka.NewClient(
		kgo.TransactionalID(tid),
		kgo.TransactionTimeout(Timeout),
		kgo.RecordDeliveryTimeout(Timeout),
		kgo.ProducerBatchMaxBytes(4<<20),
	)
	if err != nil {
		return nil, err
	}
	return &Writer{kafka: kafka, cl: cl, checkpoints: checkpoints,
		cpKey: bridges.CheckpointKey(deployment, bridge), ownerKey: bridges.OwnerKey(deployment, bridge)}, nil
}

// Close closes the producer.
func (w *Writer) Close() { w.cl.Close() }

// TakeOver commits an owner marker with the bridge's transactional id,
// which fences an earlier instance and aborts its open transaction, then
// reads the checkpoints topic up to the marker: the value returned is the
// last checkpoint any instance committed, nil if none.
func (w *Writer) TakeOver(ctx context.Context) (json.RawMessage, error) {
	marker, _ := json.Marshal(map[string]any{"since": time.Now().UTC()})
	res, err := w.transact(ctx, []*kgo.Record{{Topic: w.checkpoints, Key: []byte(w.ownerKey), Value: marker}})
	if err != nil {
		return nil, fmt.Errorf("take over: %w", err)
	}
	at := res[0].Record
	rd, err := w.kafka.NewClient(
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{at.Topic: {at.Partition: kgo.NewOffset().AtStart()}}),
	)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var cp json.RawMessage
	for {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == w.cpKey {
				cp = r.Value // nil for a tombstone
			}
			if r.Offset >= at.Offset {
				done = true
			}
		})
		if done {
			return cp, nil
		}
	}
}

// Commit writes recs and checkpoint (JSON) in one transaction. An error
// means neither is visible to read-committed readers.
func (w *Writer) Commit(ctx context.Context, recs []*kgo.Record, checkpoint any) error {
	v, err := json.Marshal(checkpoint)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	all := append(recs[:len(recs):len(recs)], &kgo.Record{Topic: w.checkpoints, Key: []byte(w.cpKey), Value: v})
	_, err = w.transact(ctx, all)
	return err
}

// transact produces recs in one transaction and commits it, ending it
// with a context of its own so a stopping source never leaves one open.
func (w *Writer) transact(ctx context.Context, recs []*kgo.Record) (kgo.ProduceResults, error) {
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	if err := w.cl.BeginTransaction(); err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	res := w.cl.ProduceSync(tctx, recs...)
	if err := res.FirstErr(); err != nil {
		actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
		defer acancel()
		_ = w.cl.AbortBufferedRecords(actx)
		if aerr := w.cl.EndTransaction(actx, kgo.TryAbort); aerr != nil {
			return nil, fenced(fmt.Errorf("produce in transaction: %w; abort it: %w", err, aerr))
		}
		return nil, fenced(fmt.Errorf("produce in transaction: %w", err))
	}
	if err := w.cl.EndTransaction(tctx, kgo.TryCommit); err != nil {
		return nil, fenced(fmt.Errorf("commit transaction: %w", err))
	}
	return res, nil
}

// fenced marks err as ErrFenced when the broker says a newer instance of
// the transactional id exists: PRODUCER_FENCED or INVALID_PRODUCER_EPOCH,
// or INVALID_TXN_STATE, which ends a commit whose transaction the new
// instance's takeover already aborted (also a transaction the
// coordinator timed out: then the wait before starting again is only
// longer, and the new start takes over afresh either way).
func fenced(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}

package firing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/timer/internal/schedule"
)

// PartitionOf is the partition of _butter.timers that owns schedule id:
// FNV-1a of the id modulo the partition count. Its state records are
// written there, and the replica owning the partition fires it.
func PartitionOf(id string, partitions int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int32(h.Sum32() % uint32(partitions))
}

// TransactionalID is the Kafka transactional id of the owner of partition
// p: one per partition, so whoever takes a partition over fences the
// previous owner.
func TransactionalID(prefix string, p int32) string {
	return prefix + "butter-timer-p" + strconv.Itoa(int(p))
}

// maxBatch bounds the ticks of one transaction, so catching up a long
// downtime is many short transactions rather than one huge one.
const maxBatch = 200

// txnTimeout bounds one tick transaction on the broker: a replica dying
// mid-transaction blocks read-committed readers of the partition at most
// this long, unless a new owner fences it sooner (it does, at takeover).
const txnTimeout = 10 * time.Second

// fire is one tick to fire.
type fire struct {
	def *schedule.Def
	at  time.Time
}

// manualTimers partitions records of the timers topic by their Partition
// field (the schedule's owning partition) and every other record by key,
// like Kafka's default partitioner, so ticks of one schedule stay in order.
type manualTimers struct {
	topic string
	byKey kgo.Partitioner
}

func (p manualTimers) ForTopic(t string) kgo.TopicPartitioner {
	if t == p.topic {
		return kgo.ManualPartitioner().ForTopic(t)
	}
	return p.byKey.ForTopic(t)
}

// own runs partition p until stop says to (with the drain deadline) or ctx
// is done. It takes over the partition by committing an owner marker with
// the partition's transactional id, which fences the previous owner and
// aborts its open transaction; it then reads the partition past the marker
// so every state committed before is known, and fires. Any error ends the
// ownership: the caller takes it over again, from the committed state.
func (m *Manager) own(ctx context.Context, p int32, stop <-chan time.Time) error {
	cl, err := m.cfg.Kafka.NewClient(
		kgo.TransactionalID(TransactionalID(m.cfg.Kafka.TopicPrefix, p)),
		kgo.TransactionTimeout(txnTimeout),
		kgo.RecordPartitioner(manualTimers{topic: m.cfg.TimersTopic, byKey: kgo.StickyKeyPartitioner(nil)}),
		kgo.RecordDeliveryTimeout(txnTimeout),
		// Tick streams are made before ticks are written: one still
		// unknown was deleted, and its ticks fail at once rather than
		// after retries that hold every tick of the transaction back.
		kgo.UnknownTopicRetries(1),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	marker, _ := json.Marshal(timers.Owner{Replica: m.cfg.Replica, Since: time.Now().UTC()})
	res, err := m.transact(ctx, cl, []*kgo.Record{{Topic: m.cfg.TimersTopic, Partition: p, Key: []byte(timers.OwnerKey(p)), Value: marker}})
	if err != nil {
		return fmt.Errorf("take over partition %d: %w", p, err)
	}
	if err := m.cfg.Catalog.WaitRead(ctx, p, res[0].Record.Offset); err != nil {
		return err
	}
	m.log.Info("partition owned", kit.KeyPartition, p)
	defer func() {
		m.metrics.setOwned(p, -1)
		m.log.Info("partition released", kit.KeyPartition, p)
	}()

	last := map[string]time.Time{} // what this owner committed
	held := map[string]*hold{}     // schedules whose stream refuses ticks
	var deadline time.Time         // set when stopping
	for {
		changed := m.cfg.Catalog.Changed()
		defs := m.cfg.Catalog.Defs(func(id string) bool { return PartitionOf(id, m.cfg.Partitions) == p })
		m.metrics.setOwned(p, len(defs))
		now := time.Now()
		// Each schedule gets an equal share of a batch, so one catching up
		// a long backlog does not delay the others' ticks.
		share := max(1, maxBatch/max(1, len(defs)))
		var batch []fire
		var wake time.Time
		earliest := func(w time.Time) {
			if !w.IsZero() && (wake.IsZero() || w.Before(wake)) {
				wake = w
			}
		}
		for _, d := range defs {
			if h := held[d.ID]; h != nil && now.Before(h.until) {
				earliest(h.until)
				continue
			}
			after := m.anchor(d, last)
			for _, t := range schedule.Due(d.Sched, after, now, d.CatchUp, m.cfg.MissedAfter, min(share, maxBatch-len(batch))) {
				batch = append(batch, fire{d, t})
			}
			earliest(schedule.Wake(d.Sched, after, now, d.CatchUp, m.cfg.MissedAfter))
		}
		if len(batch) > 0 {
			err := m.fire(ctx, cl, p, now, batch)
			var refused *refusedError
			if errors.As(err, &refused) {
				// Nothing was committed: hold the refused schedules back and
				// fire the others at once.
				for id, cause := range refused.ids {
					if topicGone(cause) {
						// Deleted: forget what is known of it, so the next
						// try makes it again and writes to the new one.
						for _, f := range batch {
							if f.def.ID == id {
								cl.PurgeTopicsFromProducing(m.cfg.Namespace.Topic(f.def.Stream))
								if m.cfg.ForgetStream != nil {
									m.cfg.ForgetStream(f.def.Stream)
								}
							}
						}
					}
					held[id] = held[id].next(now)
					m.metrics.refused.WithLabelValues(id).Inc()
					m.log.Warn("stream refuses ticks; retrying", "schedule", id, "retry_in", held[id].delay.String(), kit.KeyError, cause)
				}
				continue
			}
			if err != nil {
				return err
			}
			for _, f := range batch {
				last[f.def.ID] = f.at
				delete(held, f.def.ID)
			}
			continue
		}
		if !deadline.IsZero() && (wake.IsZero() || wake.After(deadline)) {
			return nil
		}
		wait := time.Hour
		if !wake.IsZero() {
			wait = time.Until(wake)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-changed:
		case d := <-stop:
			deadline = d
			stop = nil
		case <-ctx.Done():
			timer.Stop()
			return nil
		}
		timer.Stop()
	}
}

// anchor is where d's sequence continues: the latest of what this owner
// committed and what the catalog read (committed by an earlier owner).
func (m *Manager) anchor(d *schedule.Def, last map[string]time.Time) time.Time {
	lf := last[d.ID]
	if st, ok := m.cfg.Catalog.State(d.ID); ok && st.LastFired.After(lf) {
		lf = st.LastFired
	}
	return d.Anchor(lf)
}

// tracer is the configured tracer, else the global provider's.
func (m *Manager) tracer() trace.Tracer {
	if m.cfg.Tracer != nil {
		return m.cfg.Tracer
	}
	return otel.Tracer("github.com/buttercompass/butter/timer")
}

// fire writes the ticks of batch and each schedule's new state in one
// transaction: either all become visible to read-committed readers, or
// none and the state still says they are due.
func (m *Manager) fire(ctx context.Context, cl *kgo.Client, p int32, now time.Time, batch []fire) error {
	firedAt := now.UTC()
	recs := make([]*kgo.Record, 0, 2*len(batch))
	states := map[string]timers.State{}
	scheduleOf := make(map[*kgo.Record]string, len(batch))
	spans := make([]trace.Span, 0, len(batch))
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	for _, f := range batch {
		if err := m.cfg.EnsureStream(ctx, f.def.Stream); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return &refusedError{ids: map[string]error{f.def.ID: fmt.Errorf("create stream %s: %w", f.def.Stream, err)}}
		}
		ev := envelope.New(timers.Source, timers.TypeTick)
		ev.SetID(timers.TickID(f.def.ID, f.at))
		// A trace per tick: it starts here, not in whatever fired the batch.
		tctx, span := m.tracer().Start(ctx, "tick "+f.def.ID, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("butter.schedule", f.def.ID),
				attribute.String("messaging.destination.name", f.def.Stream),
				attribute.String("cloudevents.event_id", ev.ID()),
				attribute.String("butter.scheduled_time", f.at.UTC().Format(time.RFC3339Nano)),
			))
		spans = append(spans, span)
		envelope.InjectTrace(tctx, &ev)
		ev.SetSubject(f.def.ID)
		ev.SetTime(f.at.UTC())
		if err := ev.SetData("application/json", timers.Tick{Schedule: f.def.ID, ScheduledTime: f.at.UTC(), FiredTime: firedAt, Data: f.def.Data}); err != nil {
			return fmt.Errorf("encode tick of %s: %w", f.def.ID, err)
		}
		rec, err := envelope.ToRecord(m.cfg.Namespace.Topic(f.def.Stream), ev)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		scheduleOf[rec] = f.def.ID
		states[f.def.ID] = timers.State{Schedule: f.def.ID, LastFired: f.at.UTC(), FiredAt: firedAt, FiredBy: m.cfg.Replica}
	}
	for id, st := range states {
		v, _ := json.Marshal(st)
		recs = append(recs, &kgo.Record{Topic: m.cfg.TimersTopic, Partition: p, Key: []byte(timers.StateKey(id)), Value: v})
	}
	if res, err := m.transact(ctx, cl, recs); err != nil {
		if refused := refusedBy(res, scheduleOf); refused != nil {
			return refused
		}
		m.metrics.txnErrors.Inc()
		for _, s := range spans {
			s.SetStatus(codes.Error, err.Error())
		}
		return fmt.Errorf("fire %d ticks on partition %d: %w", len(batch), p, err)
	}
	for _, f := range batch {
		lag := firedAt.Sub(f.at)
		m.metrics.ticks.WithLabelValues(f.def.ID).Inc()
		m.metrics.lag.Observe(lag.Seconds())
		m.log.Debug("tick fired", "schedule", f.def.ID, kit.KeyStream, f.def.Stream, "scheduled", f.at.UTC(), "lag", lag.String())
	}
	return nil
}

// refusedError says which schedules' streams refused their ticks for good
// (too large, not authorized, a policy): the transaction was aborted, and
// those schedules are retried with backoff while the partition's others go
// on firing.
type refusedError struct {
	ids map[string]error // schedule id → cause
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("streams of %d schedules refuse ticks", len(e.ids))
}

// refusedBy returns the schedules whose tick records (scheduleOf) their
// stream refused: a non-retriable error of the topic (too large, not
// authorized, a policy) or the topic gone (deleted; it is created again on
// the next try). Errors of the producer or its transaction (fenced by a
// new owner, aborted) are not the stream's: nil, and the ownership ends.
func refusedBy(res kgo.ProduceResults, scheduleOf map[*kgo.Record]string) *refusedError {
	ids := map[string]error{}
	for _, r := range res {
		var ke *kerr.Error
		if id, ok := scheduleOf[r.Record]; ok && errors.As(r.Err, &ke) &&
			(topicGone(r.Err) || !ke.Retriable && !producerError(ke)) {
			ids[id] = r.Err
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return &refusedError{ids: ids}
}

// topicGone reports whether err says the topic written to does not exist
// (any more).
func topicGone(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}

// producerError reports whether e is about the producer or its
// transaction rather than the topic written to.
func producerError(e *kerr.Error) bool {
	switch e {
	case kerr.InvalidProducerEpoch, kerr.ProducerFenced, kerr.TransactionAbortable, kerr.InvalidTxnState,
		kerr.InvalidProducerIDMapping, kerr.UnknownProducerID, kerr.TransactionalIDAuthorizationFailed,
		kerr.InvalidTransactionTimeout, kerr.ConcurrentTransactions:
		return true
	}
	return false
}

// hold is the backoff of a schedule whose stream refuses its ticks.
type hold struct {
	until    time.Time
	delay    time.Duration
	refusals int
}

// holdRetry spaces the tries of a refused schedule: 1 s doubling to 1 min,
// each wait drawn from [step/2, step] so the schedules of a stream that
// refused them together are not all tried again at the same moment.
var holdRetry = kit.Backoff{Base: time.Second, Max: time.Minute}

// next is the hold after one more refusal at now.
func (h *hold) next(now time.Time) *hold {
	n := 1
	if h != nil {
		n = h.refusals + 1
	}
	d := holdRetry.Delay(n)
	return &hold{until: now.Add(d), delay: d, refusals: n}
}

// transact produces recs in one transaction and commits it. It finishes an
// in-flight transaction even when ctx is done, so a stopping owner never
// leaves one open for the next owner to abort.
func (m *Manager) transact(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) (kgo.ProduceResults, error) {
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnTimeout)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	res := cl.ProduceSync(tctx, recs...)
	if err := res.FirstErr(); err != nil {
		// A context of its own: the produce may have used up tctx, and a
		// transaction not ended keeps the client from beginning the next.
		actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), txnTimeout)
		defer acancel()
		_ = cl.AbortBufferedRecords(actx)
		if aerr := cl.EndTransaction(actx, kgo.TryAbort); aerr != nil {
			return nil, fmt.Errorf("produce in transaction: %w; abort it: %w", err, aerr)
		}
		return res, fmt.Errorf("produce in transaction: %w", err)
	}
	if err := cl.EndTransaction(tctx, kgo.TryCommit); err != nil {
		return nil, fmt.Errorf("commit transaction: %w", err)
	}
	return res, nil
}

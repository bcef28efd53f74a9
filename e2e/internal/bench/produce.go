package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// measureProduce writes N events to topicEvents with one client on
// franz-go's defaults (10ms linger, acks=all, idempotent) and adds
// RowProduce. The records are built before the clock starts, so the row
// is Kafka's: franz-go producing records that carry the platform's
// headers, whatever made them.
func measureProduce(ctx context.Context, env *Env, rep *Report) error {
	n := env.Config.Events
	recs := make([]*kgo.Record, n)
	size := 0
	for i := range recs {
		r, err := newRecord(topicEvents, i)
		if err != nil {
			return err
		}
		recs[i] = r
		size += recordSize(r)
	}
	elapsed, err := produceAll(ctx, env, n, func(i int) (*kgo.Record, error) { return recs[i], nil })
	if err != nil {
		return err
	}
	rep.RecordBytes = float64(size) / float64(n)
	return rep.Add(Row{Name: RowProduce, Value: rate(n, elapsed), Unit: UnitEventsPerSecond, Count: n})
}

// measureProduceCodec is measureProduce with each event built
// (envelope.New) and encoded (envelope.ToRecord) inside the clock, to
// topicCodec, and adds RowProduceCodec against RowProduce.
func measureProduceCodec(ctx context.Context, env *Env, rep *Report) error {
	n := env.Config.Events
	elapsed, err := produceAll(ctx, env, n, func(i int) (*kgo.Record, error) { return newRecord(topicCodec, i) })
	if err != nil {
		return err
	}
	return rep.Add(Row{Name: RowProduceCodec, Value: rate(n, elapsed), Unit: UnitEventsPerSecond, Limit: RowProduce, Count: n})
}

// produceAll produces record(0) … record(n-1) with a fresh client,
// asynchronously, and returns how long it took until the last was
// acknowledged; connecting and getting a producer id are left out.
func produceAll(ctx context.Context, env *Env, n int, record func(int) (*kgo.Record, error)) (time.Duration, error) {
	cl, err := env.Client()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	warm, err := newRecord(topicWarmup, 0)
	if err != nil {
		return 0, err
	}
	if err := cl.ProduceSync(ctx, warm).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce warm-up event: %w", err)
	}

	var failed promiseErrors
	start := time.Now()
	for i := range n {
		r, err := record(i)
		if err != nil {
			return 0, err
		}
		cl.Produce(ctx, r, failed.promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flush produced events: %w", err)
	}
	elapsed := time.Since(start)
	if err := failed.err(); err != nil {
		return 0, err
	}
	return elapsed, nil
}

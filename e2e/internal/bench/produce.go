package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// measureProduce writes N events to topicEvents with one client on
// franz-go's defaults (10ms linger, acks=all, idempotent) and adds
// RowProduce. Records are built before the clock starts: encoding is the
// platform's cost, not Kafka's.
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

	cl, err := env.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	// Connect and get a producer id outside the clock.
	warm, err := newRecord(topicWarmup, 0)
	if err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, warm).FirstErr(); err != nil {
		return fmt.Errorf("produce warm-up event: %w", err)
	}

	var failed promiseErrors
	start := time.Now()
	for _, r := range recs {
		cl.Produce(ctx, r, failed.promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush produced events: %w", err)
	}
	elapsed := time.Since(start)
	if err := failed.err(); err != nil {
		return err
	}

	rep.RecordBytes = float64(size) / float64(n)
	return rep.Add(Row{Name: RowProduce, Value: rate(n, elapsed), Unit: UnitEventsPerSecond, Count: n})
}

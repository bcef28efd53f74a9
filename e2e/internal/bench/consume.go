package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// measureConsume reads topicEvents from the first offset with a fresh
// client up to the end offsets the broker reports, decoding every record,
// and adds RowConsume. It fails unless it read exactly the N events
// produced, all of them CloudEvents.
func measureConsume(ctx context.Context, env *Env, rep *Report) error {
	// Ask for the end offsets with another client: a consumer starts
	// fetching as soon as it exists, which would be before the clock.
	admin, err := env.Client()
	if err != nil {
		return err
	}
	ends, err := endOffsets(ctx, admin, topicEvents)
	admin.Close()
	if err != nil {
		return err
	}
	pending := map[int32]bool{}
	for p, end := range ends {
		if end > 0 {
			pending[p] = true
		}
	}

	count, raw := 0, 0
	start := time.Now()
	cl, err := env.Client(
		kgo.ConsumeTopics(topicEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume %s: read %d of %d events: %w", topicEvents, count, sum(ends), err)
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("consume %s: %w", topicEvents, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if envelope.FromRecord(r).Raw {
				raw++
			}
			count++
			if r.Offset+1 >= ends[r.Partition] {
				delete(pending, r.Partition)
			}
		})
	}
	elapsed := time.Since(start)

	n := env.Config.Events
	switch {
	case raw > 0:
		return fmt.Errorf("%d of %d records decoded as %s: the envelope codec and the producer disagree", raw, count, envelope.TypeRaw)
	case count != n:
		return fmt.Errorf("consume %s: read %d events, produced %d: %w", topicEvents, count, n, errNotDone)
	}
	return rep.Add(Row{Name: RowConsume, Value: rate(count, elapsed), Unit: UnitEventsPerSecond, Count: count})
}

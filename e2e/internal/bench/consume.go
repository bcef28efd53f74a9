package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// measureConsume reads topicEvents from the first offset with a fresh
// client up to the end offsets the broker reports, after one untimed read,
// and adds RowConsume.
// Records are counted, not decoded: the row is Kafka's. It fails unless it
// read exactly the N events produced, each with its headers.
func measureConsume(ctx context.Context, env *Env, rep *Report) error {
	// An untimed read first: whichever of this row and its "(with codec)"
	// twin ran first would otherwise pay alone for the first read of the
	// segments and the client's warm-up.
	if _, _, err := consumeAll(ctx, env, func(*kgo.Record) {}); err != nil {
		return fmt.Errorf("warm-up read: %w", err)
	}
	bare := 0
	count, elapsed, err := consumeAll(ctx, env, func(r *kgo.Record) {
		if len(r.Headers) == 0 {
			bare++
		}
	})
	if err != nil {
		return err
	}
	if bare > 0 {
		return fmt.Errorf("%d of %d records came back without headers", bare, count)
	}
	return rep.Add(Row{Name: RowConsume, Value: rate(count, elapsed), Unit: UnitEventsPerSecond, Count: count})
}

// measureConsumeCodec is measureConsume decoding each record with
// envelope.FromRecord, and adds RowConsumeCodec against RowConsume. It
// fails unless every record decodes as a CloudEvent.
func measureConsumeCodec(ctx context.Context, env *Env, rep *Report) error {
	raw := 0
	count, elapsed, err := consumeAll(ctx, env, func(r *kgo.Record) {
		if envelope.FromRecord(r).Raw {
			raw++
		}
	})
	if err != nil {
		return err
	}
	if raw > 0 {
		return fmt.Errorf("%d of %d records decoded as %s: the envelope codec and the producer disagree", raw, count, envelope.TypeRaw)
	}
	return rep.Add(Row{Name: RowConsumeCodec, Value: rate(count, elapsed), Unit: UnitEventsPerSecond, Limit: RowConsume, Count: count})
}

// consumeAll reads the N events of topicEvents from the first offset with
// a fresh client, passing each to each, and returns how many it read and
// how long that took from before the client was made.
func consumeAll(ctx context.Context, env *Env, each func(*kgo.Record)) (int, time.Duration, error) {
	// Ask for the end offsets with another client: a consumer starts
	// fetching as soon as it exists, which would be before the clock.
	admin, err := env.Client()
	if err != nil {
		return 0, 0, err
	}
	ends, err := endOffsets(ctx, admin, topicEvents)
	admin.Close()
	if err != nil {
		return 0, 0, err
	}
	pending := map[int32]bool{}
	for p, end := range ends {
		if end > 0 {
			pending[p] = true
		}
	}

	count := 0
	start := time.Now()
	cl, err := env.Client(
		kgo.ConsumeTopics(topicEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("consume %s: read %d of %d events: %w", topicEvents, count, sum(ends), err)
		}
		if err := fs.Err(); err != nil {
			return 0, 0, fmt.Errorf("consume %s: %w", topicEvents, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			each(r)
			count++
			if r.Offset+1 >= ends[r.Partition] {
				delete(pending, r.Partition)
			}
		})
	}
	elapsed := time.Since(start)
	if n := env.Config.Events; count != n {
		return 0, 0, fmt.Errorf("consume %s: read %d events, produced %d: %w", topicEvents, count, n, errNotDone)
	}
	return count, elapsed, nil
}

package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// measurePipeline runs the at-least-once loop of a function instance over
// the N events of topicEvents and adds RowPipeline: one group member with
// auto-commit off polls, produces a child record per input to topicResults,
// flushes so every child is acknowledged, and only then commits. The child
// is a plain franz-go record with the input's key, value and headers (the
// seven ce_* and content-type headers copied, nothing decoded): the row is
// what Kafka and franz-go do, the bound of every platform row.
func measurePipeline(ctx context.Context, env *Env, rep *Report) error {
	n, elapsed, err := pipeline(ctx, env, groupPipeline, func(r *kgo.Record) (*kgo.Record, error) {
		return &kgo.Record{Topic: topicResults, Key: r.Key, Value: r.Value, Headers: slices.Clone(r.Headers)}, nil
	})
	if err != nil {
		return err
	}
	return rep.Add(Row{Name: RowPipeline, Value: rate(n, elapsed), Unit: UnitEventsPerSecond, Count: n})
}

// measurePipelineCodec is measurePipeline with each input decoded
// (envelope.FromRecord) and its child built (envelope.Child) and encoded
// (envelope.ToRecord) to topicResultsCodec, and adds RowPipelineCodec
// against RowPipeline.
func measurePipelineCodec(ctx context.Context, env *Env, rep *Report) error {
	n, elapsed, err := pipeline(ctx, env, groupPipelineCodec, func(r *kgo.Record) (*kgo.Record, error) {
		return child(topicResultsCodec, sourcePipeline, typeResult, envelope.FromRecord(r))
	})
	if err != nil {
		return err
	}
	return rep.Add(Row{Name: RowPipelineCodec, Value: rate(n, elapsed), Unit: UnitEventsPerSecond, Limit: RowPipeline, Count: n})
}

// pipeline runs the loop as group over topicEvents, writing child(r) for
// every input r, and returns how many events it processed and how long it
// took. Rebalances wait for the commit (BlockRebalanceOnPoll), so no input
// is committed unprocessed. The clock starts when the group assigns the
// partitions, leaving out the one-time join but not the first fetch.
func pipeline(ctx context.Context, env *Env, group string, child func(*kgo.Record) (*kgo.Record, error)) (int, time.Duration, error) {
	var assigned atomic.Int64 // unix ns of the first assignment
	cl, err := env.Client(
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assigned.CompareAndSwap(0, time.Now().UnixNano())
		}),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topicEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()

	n := env.Config.Events
	var failed promiseErrors
	var out string
	done := 0
	for done < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("pipeline: processed %d of %d events: %w", done, n, err)
		}
		if err := fs.Err(); err != nil {
			return 0, 0, fmt.Errorf("pipeline: consume %s: %w", topicEvents, err)
		}
		recs := fs.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		for _, r := range recs {
			c, err := child(r)
			if err != nil {
				return 0, 0, err
			}
			out = c.Topic
			cl.Produce(ctx, c, failed.promise)
		}
		if err := cl.Flush(ctx); err != nil {
			return 0, 0, fmt.Errorf("pipeline: flush results: %w", err)
		}
		if err := failed.err(); err != nil {
			return 0, 0, fmt.Errorf("pipeline: %w", err)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return 0, 0, fmt.Errorf("pipeline: commit: %w", err)
		}
		cl.AllowRebalance()
		done += len(recs)
	}
	elapsed := time.Since(time.Unix(0, assigned.Load()))

	if err := checkPipeline(ctx, cl, group, out, n); err != nil {
		return 0, 0, err
	}
	return done, elapsed, nil
}

// checkPipeline checks that group committed every input and that out
// holds one child per input.
func checkPipeline(ctx context.Context, cl *kgo.Client, group, out string, n int) error {
	ins, err := endOffsets(ctx, cl, topicEvents)
	if err != nil {
		return err
	}
	outs, err := endOffsets(ctx, cl, out)
	if err != nil {
		return err
	}
	committed, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("pipeline: fetch offsets of group %s: %w", group, err)
	}
	for p, end := range ins {
		if c, _ := committed.Lookup(topicEvents, p); c.At != end {
			return fmt.Errorf("pipeline: partition %d committed at %d, end offset %d: %w", p, c.At, end, errNotDone)
		}
	}
	if got := sum(outs); got != int64(n) {
		return fmt.Errorf("pipeline: %s holds %d results for %d inputs: %w", out, got, n, errNotDone)
	}
	return nil
}

// UnitNanosecondsPerEvent is a cost per event: lower is better.
const UnitNanosecondsPerEvent = "ns/event"

// codecRecords is how many distinct input records measureCodec cycles
// through: enough for every partition key, few enough to stay in cache
// like a fetched batch does.
const codecRecords = keys

// measureCodec times the codec alone, in process, over N events: decode
// an input record (envelope.FromRecord), build its child (envelope.Child,
// the input's key and data), encode it (envelope.ToRecord); and adds
// RowCodec in ns per event, with the allocations per event in its note.
// No raw row bounds it; it says how much of the gap between a "(with
// codec)" row and its raw row is the codec's CPU time.
func measureCodec(_ context.Context, env *Env, rep *Report) error {
	n := env.Config.Events
	ins := make([]*kgo.Record, codecRecords)
	for i := range ins {
		r, err := newRecord(topicEvents, i)
		if err != nil {
			return err
		}
		ins[i] = r
	}
	// One pass to warm the codec's memo of sources and content types.
	for _, r := range ins {
		if _, err := child(topicResultsCodec, sourcePipeline, typeResult, envelope.FromRecord(r)); err != nil {
			return err
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := range n {
		if _, err := child(topicResultsCodec, sourcePipeline, typeResult, envelope.FromRecord(ins[i%codecRecords])); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	allocs := float64(after.Mallocs-before.Mallocs) / float64(n)
	rep.Note(fmt.Sprintf("**%s**: one goroutine, in process, no Kafka: %d times decode an input record (`envelope.FromRecord`), "+
		"build its child (`envelope.Child` with the input's partition key and data) and encode it (`envelope.ToRecord`); "+
		"%.1f allocations per event in this run. The `go test -bench` figures of the same loop are in docs/events.md.",
		RowCodec, n, allocs))
	return rep.Add(Row{Name: RowCodec, Value: float64(elapsed.Nanoseconds()) / float64(n), Unit: UnitNanosecondsPerEvent, NoLimit: true, Count: n})
}

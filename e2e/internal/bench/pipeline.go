package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// measurePipeline runs the at-least-once loop of a function instance over
// the N events of topicEvents and adds RowPipeline: one group member with
// auto-commit off polls, produces a child event per input to topicResults,
// flushes so every child is acknowledged, and only then commits. Rebalances
// wait for the commit (BlockRebalanceOnPoll), so no input is committed
// unprocessed. The clock starts when the group assigns the partitions,
// leaving out the one-time join but not the first fetch.
func measurePipeline(ctx context.Context, env *Env, rep *Report) error {
	var assigned atomic.Int64 // unix ns of the first assignment
	cl, err := env.Client(
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assigned.CompareAndSwap(0, time.Now().UnixNano())
		}),
		kgo.ConsumerGroup(groupPipeline),
		kgo.ConsumeTopics(topicEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	n := env.Config.Events
	var failed promiseErrors
	done := 0
	for done < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pipeline: processed %d of %d events: %w", done, n, err)
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("pipeline: consume %s: %w", topicEvents, err)
		}
		recs := fs.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		for _, r := range recs {
			out, err := child(topicResults, sourcePipeline, typeResult, envelope.FromRecord(r))
			if err != nil {
				return err
			}
			cl.Produce(ctx, out, failed.promise)
		}
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("pipeline: flush results: %w", err)
		}
		if err := failed.err(); err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return fmt.Errorf("pipeline: commit: %w", err)
		}
		cl.AllowRebalance()
		done += len(recs)
	}
	elapsed := time.Since(time.Unix(0, assigned.Load()))

	if err := checkPipeline(ctx, cl, n); err != nil {
		return err
	}
	return rep.Add(Row{Name: RowPipeline, Value: rate(done, elapsed), Unit: UnitEventsPerSecond, Count: done})
}

// checkPipeline checks that the group committed every input and that the
// output holds one child per input.
func checkPipeline(ctx context.Context, cl *kgo.Client, n int) error {
	ins, err := endOffsets(ctx, cl, topicEvents)
	if err != nil {
		return err
	}
	outs, err := endOffsets(ctx, cl, topicResults)
	if err != nil {
		return err
	}
	committed, err := kadm.NewClient(cl).FetchOffsets(ctx, groupPipeline)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("pipeline: fetch offsets of group %s: %w", groupPipeline, err)
	}
	for p, end := range ins {
		if c, _ := committed.Lookup(topicEvents, p); c.At != end {
			return fmt.Errorf("pipeline: partition %d committed at %d, end offset %d: %w", p, c.At, end, errNotDone)
		}
	}
	if got := sum(outs); got != int64(n) {
		return fmt.Errorf("pipeline: %s holds %d results for %d inputs: %w", topicResults, got, n, errNotDone)
	}
	return nil
}

package engine

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/runtime"
)

// partBatch is one partition's share of a poll and which of its records
// are done. Only the done prefix is ever committed, so with ordering none
// an event finished early never lets an unfinished one before it be skipped.
type partBatch struct {
	topic     string
	partition int32
	recs      []*kgo.Record

	mu   sync.Mutex
	done []bool
}

// batchOf splits a poll by partition, keeping each partition's order.
func batchOf(fs kgo.Fetches) []*partBatch {
	var parts []*partBatch
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		parts = append(parts, &partBatch{
			topic: p.Topic, partition: p.Partition, recs: p.Records,
			done: make([]bool, len(p.Records)),
		})
	})
	return parts
}

func (pb *partBatch) markDone(i int) {
	pb.mu.Lock()
	pb.done[i] = true
	pb.mu.Unlock()
}

// prefix returns the offset to commit: one past the last record of the
// contiguous done run from the start of the batch.
func (pb *partBatch) prefix() (kgo.EpochOffset, bool) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	n := 0
	for n < len(pb.done) && pb.done[n] {
		n++
	}
	if n == 0 {
		return kgo.EpochOffset{}, false
	}
	last := pb.recs[n-1]
	return kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}, true
}

func allDone(parts []*partBatch) bool {
	for _, pb := range parts {
		pb.mu.Lock()
		for _, d := range pb.done {
			if !d {
				pb.mu.Unlock()
				return false
			}
		}
		pb.mu.Unlock()
	}
	return true
}

// runBatch processes a poll: partitions in parallel, each partition's
// events one after another (ordering partition) or concurrently (ordering
// none), all bounded by the function's concurrency. When ctx is done no
// new event starts, and an event waiting for a retry is abandoned undone;
// invocations already running finish. It returns the first error that
// makes the rest of the poll unsafe to commit (an output not acknowledged).
func (r *runner) runBatch(ctx context.Context, rt runtime.Runtime, out *producer, parts []*partBatch) error {
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	stop := make(chan struct{})
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if first == nil {
			first = err
			close(stop)
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return ctx.Err() != nil
		}
	}
	acquire := func() bool {
		select {
		case r.sem <- struct{}{}:
			return true
		case <-ctx.Done():
		case <-stop:
		}
		return false
	}
	release := func() { <-r.sem }
	one := func(pb *partBatch, i int) bool {
		done, err := r.process(ctx, rt, out, pb.recs[i])
		if err != nil {
			fail(err)
			return false
		}
		if done {
			pb.markDone(i)
		}
		return done
	}
	for _, pb := range parts {
		wg.Go(func() {
			if r.ordered() {
				for i := range pb.recs {
					if stopped() || !acquire() {
						return
					}
					ok := one(pb, i)
					release()
					if !ok {
						return // later events wait: order holds
					}
				}
				return
			}
			var inner sync.WaitGroup
			for i := range pb.recs {
				if stopped() || !acquire() {
					break
				}
				inner.Go(func() {
					defer release()
					one(pb, i)
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	return first
}

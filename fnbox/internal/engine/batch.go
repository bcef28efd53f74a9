package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
)

// partBatch is one partition's share of a poll and which of its records
// are done. Only the done prefix is ever committed, so with ordering none
// an event finished early never lets an unfinished one before it be skipped.
type partBatch struct {
	topic     string
	partition int32
	recs      []*kgo.Record
	ds        []envelope.Delivery // recs decoded, same indexes
	polled    time.Time           // when the poll returned the records: fetch spans start there

	mu   sync.Mutex
	done []bool
}

// unit is the work of one invocation: up to delivery.batch events of one
// partition that follow each other once filtered-out events are left out,
// in offset order. idx are indexes into pb.recs.
type unit struct {
	pb  *partBatch
	idx []int
}

// batchOf splits a poll by partition, keeping each partition's order.
func batchOf(fs kgo.Fetches) []*partBatch {
	var parts []*partBatch
	now := time.Now()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		parts = append(parts, &partBatch{
			topic: p.Topic, partition: p.Partition, recs: p.Records,
			done: make([]bool, len(p.Records)), polled: now,
		})
	})
	return parts
}

// units decodes the partition's records and groups them into invocations
// of at most size events. Filtered-out events are marked done here: they
// need no work, and the done prefix still keeps them uncommitted until
// everything before them is done. An event with replyto or a deadline is
// always an invocation of its own: its requester waits for an answer to
// that event alone, and one event's deadline must not cut short (and so
// fail and dead-letter) the invocation of others. So is an event of a
// suspect range (see crashes.go): a crash must pin it, and an invalid
// CloudEvent, which process dead-letters without invoking.
func (r *runner) units(pb *partBatch, size int) []unit {
	size = max(1, size)
	pb.ds = make([]envelope.Delivery, len(pb.recs))
	byKey := r.fn.Delivery.Ordering == descriptor.OrderingKey
	var us []unit
	// cur is the unit being filled, per record key under ordering key
	// (a unit never mixes keys, so a key's invocations stay in order
	// whatever the other keys do), under the one key "" otherwise.
	cur := map[string][]int{}
	var keys []string // of cur, in order of first appearance
	flush := func(k string) {
		if len(cur[k]) > 0 {
			us = append(us, unit{pb: pb, idx: cur[k]})
			cur[k] = nil
		}
	}
	for i, rec := range pb.recs {
		d := envelope.FromRecord(rec)
		if s, ok := r.e.ns.Stream(rec.Topic); ok {
			d.Stream = s
		}
		pb.ds[i] = d
		// An invalid CloudEvent is dead-lettered whatever the filter: its
		// type, the filter's usual subject, is one it may not have.
		if d.Invalid == nil && !matches(r.bindings[rec.Topic].Filter, d.Event) {
			pb.markDone(i)
			r.stats.done(1)
			continue
		}
		k := ""
		if byKey {
			k = string(rec.Key)
		}
		if _, seen := cur[k]; !seen {
			keys = append(keys, k)
			cur[k] = nil
		}
		if d.Invalid != nil || envelope.Extension(d.Event, envelope.ExtReplyTo) != "" || envelope.Extension(d.Event, envelope.ExtDeadline) != "" ||
			r.suspectAt(tp{pb.topic, pb.partition}, rec.Offset) {
			flush(k)
			cur[k] = []int{i}
			flush(k)
			continue
		}
		cur[k] = append(cur[k], i)
		if len(cur[k]) == size {
			flush(k)
		}
	}
	for _, k := range keys {
		flush(k)
	}
	return us
}

// key is the record key a unit's events share under ordering key.
func (u unit) key() string { return string(u.pb.recs[u.idx[0]].Key) }

func (pb *partBatch) markDone(i int) {
	pb.mu.Lock()
	pb.done[i] = true
	pb.mu.Unlock()
}

// doneCount is the length of the contiguous done run from the start of
// the batch.
func (pb *partBatch) doneCount() int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	n := 0
	for n < len(pb.done) && pb.done[n] {
		n++
	}
	return n
}

// prefix returns the offset to commit: one past the last record of the
// contiguous done run from the start of the batch.
func (pb *partBatch) prefix() (kgo.EpochOffset, bool) {
	n := pb.doneCount()
	pb.mu.Lock()
	defer pb.mu.Unlock()
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
// invocations one after another (ordering partition), one after another
// per record key with the keys concurrently (ordering key), or
// concurrently (ordering none), all bounded by the function's concurrency, which counts
// invocations (a batch of delivery.batch events is one). When ctx is done
// no new invocation starts, and one waiting for a retry is abandoned
// undone; invocations already running finish. It returns the first error
// that makes the rest of the poll unsafe to commit (an output not
// acknowledged).
func (r *runner) runBatch(ctx context.Context, rt runtime.Runtime, out *producer, parts []*partBatch) error {
	out.startWriter()
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
	one := func(u unit) bool {
		done, err := r.process(ctx, rt, out, u)
		if err != nil {
			fail(err)
			return false
		}
		return done
	}
	// chain runs units one after the other; a unit not done stops it, so
	// the events after it wait: order holds.
	chain := func(us []unit) {
		for _, u := range us {
			if stopped() || !acquire() {
				return
			}
			ok := one(u)
			release()
			if !ok {
				return
			}
		}
	}
	for _, pb := range parts {
		wg.Go(func() {
			us := r.units(pb, r.fn.Delivery.Batch)
			// A suspect partition goes one event after the other even
			// without ordering: each invocation's marker names it alone.
			suspect := r.suspectAt(tp{pb.topic, pb.partition}, pb.recs[0].Offset)
			switch {
			case suspect || r.ordered() && !r.byKey(): // ordering partition
				chain(us)
			case r.byKey():
				// One chain per record key, the chains concurrently.
				var keys []string
				chains := map[string][]unit{}
				for _, u := range us {
					k := u.key()
					if _, ok := chains[k]; !ok {
						keys = append(keys, k)
					}
					chains[k] = append(chains[k], u)
				}
				var inner sync.WaitGroup
				for _, k := range keys {
					inner.Go(func() { chain(chains[k]) })
				}
				inner.Wait()
			default:
				var inner sync.WaitGroup
				for _, u := range us {
					if stopped() || !acquire() {
						break
					}
					inner.Go(func() {
						defer release()
						one(u)
					})
				}
				inner.Wait()
			}
		})
	}
	wg.Wait()
	if err := out.drain(); err != nil && (first == nil || errors.Is(first, errWriterFailed)) {
		first = err
	}
	return first
}

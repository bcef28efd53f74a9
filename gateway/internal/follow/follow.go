// Package follow tails a topic from its start: the gateway keeps its
// routes, API keys and async requests only as the latest records of
// compacted topics, read whole at start and followed after (DESIGN §6: no
// state outside topics).
package follow

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/kit"
)

// Apply is called for every record, in offset order per partition, from a
// single goroutine.
type Apply func(r *kgo.Record)

// Follower reads one topic from the start with its own consumer (no group:
// every replica reads everything).
type Follower struct {
	topic string
	cl    *kgo.Client
	apply Apply
	log   *slog.Logger

	mu      sync.Mutex
	next    map[int32]int64 // next offset to read per partition
	advance chan struct{}   // closed and replaced whenever next moves
	ready   chan struct{}
}

// New returns a follower of topic calling apply; extra options (fetch
// sizes) go to its consumer. Run reads.
func New(kafka kit.KafkaConfig, topic string, apply Apply, logger *slog.Logger, extra ...kgo.Opt) (*Follower, error) {
	opts := append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, extra...)
	cl, err := kafka.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &Follower{topic: topic, cl: cl, apply: apply, log: logger,
		next: map[int32]int64{}, advance: make(chan struct{}), ready: make(chan struct{})}, nil
}

// Close closes the consumer.
func (f *Follower) Close() { f.cl.Close() }

// Ready is closed once the topic has been read up to the end offsets it
// had when Run started.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// Run reads until ctx is done.
func (f *Follower) Run(ctx context.Context) error {
	target, err := f.ends(ctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	if f.reached(target) {
		close(f.ready)
	}
	f.mu.Unlock()
	for {
		fs := f.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			f.log.Warn("fetch", "topic", t, kit.KeyPartition, p, kit.KeyError, err)
		})
		fs.EachRecord(f.apply)
		f.mu.Lock()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				f.next[p.Partition] = p.Records[n-1].Offset + 1
			}
		})
		close(f.advance)
		f.advance = make(chan struct{})
		select {
		case <-f.ready:
		default:
			if f.reached(target) {
				close(f.ready)
			}
		}
		f.mu.Unlock()
	}
}

// reached reports whether every partition was read up to target; called
// with f.mu held.
func (f *Follower) reached(target map[int32]int64) bool {
	for p, end := range target {
		if f.next[p] < end {
			return false
		}
	}
	return true
}

func (f *Follower) ends(ctx context.Context) (map[int32]int64, error) {
	ends, err := kadm.NewClient(f.cl).ListEndOffsets(ctx, f.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", f.topic, err)
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { target[o.Partition] = o.Offset })
	return target, nil
}

// CatchUp returns once everything written to the topic before the call has
// been applied, so a replica can answer for a record another replica wrote
// a moment ago.
func (f *Follower) CatchUp(ctx context.Context) error {
	target, err := f.ends(ctx)
	if err != nil {
		return err
	}
	for {
		f.mu.Lock()
		done := f.reached(target)
		adv := f.advance
		f.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-adv:
		case <-ctx.Done():
			return fmt.Errorf("catch up with %s: %w", f.topic, ctx.Err())
		}
	}
}

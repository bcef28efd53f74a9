package kit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Follower reads topics from their start with a consumer of its own (no
// group: every replica reads everything) and keeps reading. It is how a
// service keeps state that lives only in compacted topics (DESIGN §6):
// the deployer's desired state, the gateway's routes, keys and async
// requests, the timer's schedules. It reads committed records only, so a
// transactional writer's aborted records are never applied.
type Follower struct {
	topics []string
	cl     *kgo.Client
	apply  func(*kgo.Record)
	log    *slog.Logger

	mu      sync.Mutex
	next    map[string]map[int32]int64 // topic → partition → next offset to read
	advance chan struct{}              // closed and replaced whenever next moves
	ready   chan struct{}
}

// NewFollower returns a follower of topics calling apply for every
// committed record, in offset order per partition, from Run's goroutine.
// extra options (fetch sizes, client id) go to its consumer.
func NewFollower(kafka KafkaConfig, topics []string, apply func(*kgo.Record), logger *slog.Logger, extra ...kgo.Opt) (*Follower, error) {
	opts := append([]kgo.Opt{
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Commit markers take offsets too: without them a partition whose
		// last record is a marker would never look read to its end.
		kgo.KeepControlRecords(),
	}, extra...)
	cl, err := kafka.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	next := map[string]map[int32]int64{}
	for _, t := range topics {
		next[t] = map[int32]int64{}
	}
	return &Follower{topics: topics, cl: cl, apply: apply, log: logger,
		next: next, advance: make(chan struct{}), ready: make(chan struct{})}, nil
}

// Close closes the consumer.
func (f *Follower) Close() { f.cl.Close() }

// Ready is closed once every topic has been read up to the end it had
// when Run started: until then the state is partial, and answering from
// it could lose or resurrect what a later record says.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// Run reads until ctx is done.
func (f *Follower) Run(ctx context.Context) error {
	target, err := f.ends(ctx)
	if err != nil {
		return err
	}
	// Reading starts at each partition's log start: a partition that
	// retention emptied (start = end) has nothing to read and is read.
	starts, err := kadm.NewClient(f.cl).ListStartOffsets(ctx, f.topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("list start offsets of %v: %w", f.topics, err)
	}
	f.mu.Lock()
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset > f.next[o.Topic][o.Partition] {
			f.next[o.Topic][o.Partition] = o.Offset
		}
	})
	if f.reached(target) {
		close(f.ready)
	}
	f.mu.Unlock()
	for {
		fs := f.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			f.log.Warn("fetch", KeyStream, t, KeyPartition, p, KeyError, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				f.apply(r)
			}
		})
		f.mu.Lock()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				f.next[p.Topic][p.Partition] = p.Records[n-1].Offset + 1
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

// CatchUp returns once every record committed before the call has been
// applied, so a replica can answer for what another one wrote a moment
// ago.
func (f *Follower) CatchUp(ctx context.Context) error {
	target, err := f.ends(ctx)
	if err != nil {
		return err
	}
	return f.wait(ctx, func() bool { return f.reached(target) }, func() string { return "catch up with " + fmt.Sprint(f.topics) })
}

// WaitRead returns once the record at offset of topic's partition has been
// applied (or skipped, as a marker): a writer reads its own write.
func (f *Follower) WaitRead(ctx context.Context, topic string, partition int32, offset int64) error {
	return f.wait(ctx, func() bool { return f.next[topic][partition] > offset },
		func() string { return fmt.Sprintf("read %s partition %d past offset %d", topic, partition, offset) })
}

// wait blocks until done (called with f.mu held) or ctx ends.
func (f *Follower) wait(ctx context.Context, done func() bool, what func() string) error {
	for {
		f.mu.Lock()
		ok := done()
		adv := f.advance
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-adv:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what(), ctx.Err())
		}
	}
}

// reached reports whether every partition was read up to target; called
// with f.mu held.
func (f *Follower) reached(target map[string]map[int32]int64) bool {
	for t, parts := range target {
		for p, end := range parts {
			if f.next[t][p] < end {
				return false
			}
		}
	}
	return true
}

// ends returns the last stable offset of every partition: where a
// read-committed consumer stops. The plain end offset may lie behind an
// open transaction that will abort.
func (f *Follower) ends(ctx context.Context) (map[string]map[int32]int64, error) {
	ends, err := kadm.NewClient(f.cl).ListCommittedOffsets(ctx, f.topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", f.topics, err)
	}
	target := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if target[o.Topic] == nil {
			target[o.Topic] = map[int32]int64{}
		}
		target[o.Topic][o.Partition] = o.Offset
	})
	return target, nil
}

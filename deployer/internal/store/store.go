// Package store keeps the deployer's view of the desired state, which
// lives only in the compacted _butter.deployments topic: at start it
// reads the topic from the beginning to its end offset (rebuild), then
// follows it. Writes go to the topic and return once the store's own
// consumer has read them back, so a caller reads its own writes.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
)

// Store is the desired state read from the deployments topic.
type Store struct {
	topic    string
	consumer *kgo.Client
	producer *kgo.Client
	log      *slog.Logger
	ready    chan struct{}

	mu      sync.Mutex
	deps    map[string]control.Deployment
	next    map[int32]int64 // next offset to read per partition
	changed chan struct{}   // closed and replaced on every change
	advance chan struct{}   // closed and replaced whenever next moves
}

// New returns a store of topic. producer writes; a consumer client of its
// own is made from kafka. Run reads.
func New(kafka kit.KafkaConfig, producer *kgo.Client, topic string, logger *slog.Logger) (*Store, error) {
	kafka.ClientID = "butter-deployer-store"
	cl, err := kafka.NewClient(
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes),
		kgo.FetchMaxBytes(2*control.MaxRecordBytes),
	)
	if err != nil {
		return nil, err
	}
	return &Store{
		topic: topic, consumer: cl, producer: producer, log: logger, ready: make(chan struct{}),
		deps: map[string]control.Deployment{}, next: map[int32]int64{},
		changed: make(chan struct{}), advance: make(chan struct{}),
	}, nil
}

// Close closes the consumer.
func (s *Store) Close() { s.consumer.Close() }

// Ready is closed once the store has read the topic up to the end offsets
// it had when Run started.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Run rebuilds the state and follows the topic until ctx is done.
func (s *Store) Run(ctx context.Context) error {
	ends, err := kadm.NewClient(s.consumer).ListEndOffsets(ctx, s.topic)
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", s.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("list end offsets of %s: %w", s.topic, err)
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { target[o.Partition] = o.Offset })
	rebuilt := func() bool {
		for p, end := range target {
			if s.next[p] < end {
				return false
			}
		}
		return true
	}
	s.mu.Lock()
	if rebuilt() {
		close(s.ready)
	}
	s.mu.Unlock()
	for {
		fs := s.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("fetch deployments", "topic", t, kit.KeyPartition, p, kit.KeyError, err)
		})
		s.mu.Lock()
		changed := false
		fs.EachRecord(func(r *kgo.Record) {
			changed = s.apply(r) || changed
			s.next[r.Partition] = r.Offset + 1
		})
		close(s.advance)
		s.advance = make(chan struct{})
		if changed {
			close(s.changed)
			s.changed = make(chan struct{})
		}
		select {
		case <-s.ready:
		default:
			if rebuilt() {
				s.log.Info("desired state rebuilt", "deployments", len(s.deps))
				close(s.ready)
			}
		}
		s.mu.Unlock()
	}
}

// apply applies one record; called with s.mu held.
func (s *Store) apply(r *kgo.Record) bool {
	d, deleted, err := control.DecodeDeployment(r)
	if err != nil {
		s.log.Error("skip bad deployment record", kit.KeyOffset, r.Offset, kit.KeyError, err)
		return false
	}
	if deleted {
		_, had := s.deps[d.Name]
		delete(s.deps, d.Name)
		return had
	}
	s.deps[d.Name] = d
	return true
}

// Get returns deployment name.
func (s *Store) Get(name string) (control.Deployment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deps[name]
	return d, ok
}

// List returns every deployment by name.
func (s *Store) List() []control.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]control.Deployment, 0, len(s.deps))
	for _, d := range s.deps {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b control.Deployment) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Changed returns a channel closed at the next change of the state.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Put stores d and returns once the store has read it back.
func (s *Store) Put(ctx context.Context, d control.Deployment) error {
	rec, err := control.DeploymentRecord(s.topic, d)
	if err != nil {
		return err
	}
	return s.write(ctx, rec)
}

// Delete writes the tombstone of name and returns once read back.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.write(ctx, control.DeploymentTombstone(s.topic, name))
}

// ErrNotReady means a write came before the rebuild finished: answering
// from a half-read topic could lose or resurrect deployments.
var ErrNotReady = errors.New("desired state is still being read from the deployments topic: retry shortly")

func (s *Store) write(ctx context.Context, rec *kgo.Record) error {
	select {
	case <-s.ready:
	default:
		return ErrNotReady
	}
	res := s.producer.ProduceSync(ctx, rec)
	if err := res.FirstErr(); err != nil {
		return fmt.Errorf("store deployment %q: %w", rec.Key, err)
	}
	r := res[0].Record
	for {
		s.mu.Lock()
		seen := s.next[r.Partition] > r.Offset
		adv := s.advance
		s.mu.Unlock()
		if seen {
			return nil
		}
		select {
		case <-adv:
		case <-ctx.Done():
			return fmt.Errorf("wait for deployment %q to be read back: %w", rec.Key, ctx.Err())
		}
	}
}

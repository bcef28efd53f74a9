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

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
)

// Store is the desired state read from the deployments topic.
type Store struct {
	topic    string
	follower *kit.Follower
	producer *kgo.Client
	log      *slog.Logger

	mu      sync.Mutex
	deps    map[string]control.Deployment
	changed chan struct{} // closed and replaced on every change
}

// New returns a store of topic. producer writes; a consumer client of its
// own is made from kafka. Run reads.
func New(kafka kit.KafkaConfig, producer *kgo.Client, topic string, logger *slog.Logger) (*Store, error) {
	kafka.ClientID = "butter-deployer-store"
	s := &Store{topic: topic, producer: producer, log: logger,
		deps: map[string]control.Deployment{}, changed: make(chan struct{})}
	f, err := kit.NewFollower(kafka, []string{topic}, s.apply, logger,
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes),
		kgo.FetchMaxBytes(2*control.MaxRecordBytes),
	)
	if err != nil {
		return nil, err
	}
	s.follower = f
	return s, nil
}

// Close closes the consumer.
func (s *Store) Close() { s.follower.Close() }

// Ready is closed once the store has read the topic up to the end offsets
// it had when Run started.
func (s *Store) Ready() <-chan struct{} { return s.follower.Ready() }

// Run rebuilds the state and follows the topic until ctx is done.
func (s *Store) Run(ctx context.Context) error { return s.follower.Run(ctx) }

// apply applies one record, waking Changed's waiters if it changed the
// state.
func (s *Store) apply(r *kgo.Record) {
	d, deleted, err := control.DecodeDeployment(r)
	if err != nil {
		s.log.Error("skip bad deployment record", kit.KeyOffset, r.Offset, kit.KeyError, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, had := s.deps[d.Name]; deleted && !had {
		return
	}
	if deleted {
		delete(s.deps, d.Name)
	} else {
		s.deps[d.Name] = d
	}
	close(s.changed)
	s.changed = make(chan struct{})
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
	case <-s.follower.Ready():
	default:
		return ErrNotReady
	}
	res := s.producer.ProduceSync(ctx, rec)
	if err := res.FirstErr(); err != nil {
		return fmt.Errorf("store deployment %q: %w", rec.Key, err)
	}
	r := res[0].Record
	if err := s.follower.WaitRead(ctx, r.Topic, r.Partition, r.Offset); err != nil {
		return fmt.Errorf("wait for deployment %q to be read back: %w", rec.Key, err)
	}
	return nil
}

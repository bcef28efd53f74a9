// Package firing fires the ticks of the schedules a replica owns, exactly
// once per scheduled time across any number of replicas.
//
// A schedule belongs to one partition of _butter.timers (PartitionOf).
// Replicas join one consumer group on that topic only to share its
// partitions: a replica fires the schedules of the partitions assigned to
// it. Each owned partition has its own transactional producer
// (TransactionalID), and every batch of ticks is committed in one
// transaction together with the schedules' state records on the owned
// partition. Taking a partition over starts with a transaction of the same
// transactional id, which fences the old owner (its open transaction is
// aborted, its next commit fails), and then reads the partition's
// committed states: a tick is either committed with its state, so the new
// owner skips it, or aborted with it, so the new owner fires it.
package firing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/timer/internal/catalog"
)

// Config configures a Manager.
type Config struct {
	// Kafka reaches the cluster.
	Kafka kit.KafkaConfig
	// Namespace maps stream names to topics.
	Namespace topics.Namespace
	// TimersTopic is the namespaced _butter.timers.
	TimersTopic string
	// Partitions is the partition count of TimersTopic.
	Partitions int32
	// Group is the consumer group the replicas share.
	Group string
	// Replica names this replica in state and owner records.
	Replica string
	// Catalog holds the schedules and their committed states.
	Catalog *catalog.Catalog
	// EnsureStream creates a tick stream that does not exist yet.
	EnsureStream func(ctx context.Context, stream string) error
	// ForgetStream, if set, says a tick stream turned out not to exist
	// (deleted), so the next EnsureStream creates it again.
	ForgetStream func(stream string)
	// MissedAfter is how late a tick may fire before it counts as missed
	// and follows its schedule's catch-up policy.
	MissedAfter time.Duration
	// SessionTimeout is how long a silent replica (killed, partitioned)
	// keeps its partitions; HeartbeatInterval is how often replicas
	// heartbeat.
	SessionTimeout, HeartbeatInterval time.Duration
	// Tracer makes a span per tick, the root of the tick's trace (its
	// traceparent goes on the tick event). Default: the global provider's.
	Tracer trace.Tracer
	// CommitInterval is how often the group commits, for each owned
	// partition, the position the catalog has read and applied, so lag
	// tools see the group caught up; default DefaultCommitInterval.
	CommitInterval time.Duration
	// Metrics receive the firing metrics.
	Metrics *Metrics
	// Logger receives logs.
	Logger *slog.Logger
}

// DefaultCommitInterval is Config.CommitInterval's default.
const DefaultCommitInterval = 5 * time.Second

// Manager keeps this replica in the group and runs an owner per assigned
// partition.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	// hard is canceled when owners must stop at once (Close), not at a
	// drain.
	hard       context.Context
	cancelHard context.CancelFunc

	mu     sync.Mutex
	owners map[int32]*ownerRun
	joined chan struct{}
}

// ownerRun is the goroutine owning one partition.
type ownerRun struct {
	stop chan time.Time // receives the drain deadline once
	quit chan struct{}  // closed with the stop
	done chan struct{}
}

// New returns a manager; Run joins the group.
func New(cfg Config) *Manager {
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	hard, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics, hard: hard, cancelHard: cancel,
		owners: map[int32]*ownerRun{}, joined: make(chan struct{})}
}

// Joined is closed once the replica got its first assignment (possibly
// empty) from the group.
func (m *Manager) Joined() <-chan struct{} { return m.joined }

// Owned returns the partitions this replica owns now.
func (m *Manager) Owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int32, 0, len(m.owners))
	for p := range m.owners {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Run joins the group and fires until ctx is done. Then it drains: owners
// keep firing every tick due within drain (the in-flight transaction is
// always finished), and only then does the replica leave the group, so
// the next owner takes over from committed state with no tick lost or
// doubled and none made late by the handover.
func (m *Manager) Run(ctx context.Context, drain time.Duration) error {
	kcfg := m.cfg.Kafka
	kcfg.ClientID = "butter-timer-group"
	cl, err := kcfg.NewClient(
		kgo.ConsumerGroup(m.cfg.Group),
		kgo.ConsumeTopics(m.cfg.TimersTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(m.cfg.SessionTimeout),
		kgo.HeartbeatInterval(m.cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(m.cfg.SessionTimeout+txnTimeout),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.assigned(a[m.cfg.TimersTopic]) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.release(r[m.cfg.TimersTopic], time.Now())
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.release(l[m.cfg.TimersTopic], time.Now())
		}),
	)
	if err != nil {
		return err
	}
	// The group is for sharing partitions, not for reading them: the
	// catalog reads the topic. Paused, the client only heartbeats.
	cl.PauseFetchTopics(m.cfg.TimersTopic)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for m.hard.Err() == nil {
			if fs := cl.PollFetches(m.hard); fs.IsClientClosed() {
				return
			}
		}
	}()

	commits, stopCommits := context.WithCancel(m.hard)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		m.commitLoop(commits, cl)
	}()

	<-ctx.Done()
	deadline := time.Now().Add(drain)
	owned := m.Owned()
	m.log.Info("draining: firing ticks due before leaving the group", "until", deadline.UTC(), "partitions", owned)
	m.release(owned, deadline)
	stopCommits()
	<-committed
	// The last states are written: commit them while still a member.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if err := m.commitRead(fctx, cl, owned, nil); err != nil {
		m.log.Warn("commit timer group offsets", kit.KeyError, err)
	}
	fcancel()
	cl.Close() // leaves the group: the others take over now, not after a session timeout
	m.cancelHard()
	<-polled
	m.log.Info("left the timer group")
	return nil
}

// Close stops every owner at once. Run calls it when it returns; callers
// that never ran Run call it to release resources.
func (m *Manager) Close() { m.cancelHard() }

// assigned starts an owner for every newly assigned partition.
func (m *Manager) assigned(parts []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.joined:
	default:
		close(m.joined)
	}
	for _, p := range parts {
		if _, ok := m.owners[p]; ok {
			continue
		}
		o := &ownerRun{stop: make(chan time.Time, 1), quit: make(chan struct{}), done: make(chan struct{})}
		m.owners[p] = o
		go m.keep(p, o)
	}
}

// keep owns partition p until told to stop, taking it over again after an
// error (a fence by a replica that still thought it owned p, a broker
// hiccup) for as long as it stays assigned.
func (m *Manager) keep(p int32, o *ownerRun) {
	defer close(o.done)
	failures := 0
	for {
		began := time.Now()
		err := m.own(m.hard, p, o.stop)
		if err == nil || m.hard.Err() != nil {
			return
		}
		select {
		case <-o.quit:
			m.log.Warn("partition released after an error", kit.KeyPartition, p, kit.KeyError, err)
			return
		default:
		}
		// An owner that held p longer than the longest wait failed
		// afresh, not again: its retries start over from the first step.
		if time.Since(began) > takeOverRetry.Max {
			failures = 0
		}
		failures++
		// Jittered, so the owners of a broker hiccup do not all come
		// back at the same moment.
		wait := takeOverRetry.Delay(failures)
		m.log.Warn("lost partition, taking it over again", kit.KeyPartition, p, kit.KeyError, err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-o.quit:
			t.Stop()
			return
		case <-m.hard.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// takeOverRetry spaces the attempts to own a partition again after an
// error: 1 s doubling to 10 s, each wait drawn from [step/2, step].
var takeOverRetry = kit.Backoff{Base: time.Second, Max: 10 * time.Second}

// release stops the owners of parts, letting each fire what is due up to
// deadline, and waits for them.
func (m *Manager) release(parts []int32, deadline time.Time) {
	m.mu.Lock()
	var wait []*ownerRun
	for _, p := range parts {
		o, ok := m.owners[p]
		if !ok {
			continue
		}
		delete(m.owners, p)
		o.stop <- deadline
		close(o.quit)
		wait = append(wait, o)
	}
	m.mu.Unlock()
	for _, o := range wait {
		<-o.done
	}
}

// commitLoop commits the read positions of the owned partitions every
// CommitInterval until ctx is done.
func (m *Manager) commitLoop(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(m.cfg.CommitInterval)
	defer t.Stop()
	done := map[int32]int64{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.commitRead(ctx, cl, m.Owned(), done); err != nil && ctx.Err() == nil {
			m.log.Warn("commit timer group offsets", kit.KeyError, err)
		}
	}
}

// commitRead commits, for each of parts, the partition's last stable
// offset once the catalog has read and applied everything before it. The
// group never fetches (the catalog reads the topic), but without commits
// lag tools would show it ever further behind. done holds what was
// committed already and is updated; nil commits regardless.
func (m *Manager) commitRead(ctx context.Context, cl *kgo.Client, parts []int32, done map[int32]int64) error {
	if len(parts) == 0 {
		return nil
	}
	topic := m.cfg.TimersTopic
	stable, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = stable.Error()
	}
	if err != nil {
		return fmt.Errorf("list stable offsets of %s: %w", topic, err)
	}
	offs := map[int32]kgo.EpochOffset{}
	for _, p := range parts {
		o, ok := stable.Lookup(topic, p)
		if !ok || o.Offset <= 0 || (done != nil && done[p] == o.Offset) {
			continue
		}
		// Only what the catalog applied: a position not read yet waits
		// for the next round.
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := m.cfg.Catalog.WaitRead(wctx, p, o.Offset-1)
		cancel()
		if err != nil {
			continue
		}
		offs[p] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset}
	}
	if len(offs) == 0 {
		return nil
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
						cerr = errors.Join(cerr, fmt.Errorf("partition %d: %w", p.Partition, perr))
					} else if done != nil {
						done[p.Partition] = offs[p.Partition].Offset
					}
				}
			}
		})
	return cerr
}

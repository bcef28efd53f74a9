// Package monitor is loadmon's loop: it follows the deployments, the
// decisions and the heartbeats, reads every function group's lag each
// tick, runs the scaling rule (package decide) and writes each change to
// _butter.scale with a deployment.scaled platform event.
//
// Replicas share the work by leader election: they join one consumer group
// on _butter.scale, which has one partition, and only the member it is
// assigned to decides (the timer shares its partitions the same way). The
// others follow the same topics and take over within a session timeout
// when the owner dies, or at once when it leaves. A new owner first reads
// _butter.scale to its end, and writes a decision only when the latest one
// on the topic differs, so a handover repeats no change.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/loadmon/internal/decide"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// Config configures a Monitor.
type Config struct {
	// Kafka reaches the cluster; its namespace prefixes every topic and
	// group.
	Kafka kit.KafkaConfig
	// Client produces decisions and events and reads offsets.
	Client *kgo.Client
	// Replica names this replica in decisions and logs.
	Replica string
	// Interval is how often lag is read and decisions made.
	Interval time.Duration
	// Rule tunes the scaling rule (cooldown, drain window).
	Rule decide.Config
	// SessionTimeout and HeartbeatInterval are the election group's.
	SessionTimeout, HeartbeatInterval time.Duration
	// HeartbeatHistory is how far back heartbeats are read at start.
	HeartbeatHistory time.Duration
	Metrics          *Metrics
	Logger           *slog.Logger
}

// Monitor is one loadmon replica's loop.
type Monitor struct {
	cfg Config
	log *slog.Logger
	ns  topics.Namespace

	scaleTopic string
	catalog    *catalog
	follower   *kit.Follower // deployments and decisions, from their start
	beats      *kgo.Client   // heartbeats, from a little while ago
	events     *control.Recorder

	owner    atomic.Bool
	joined   chan struct{}
	joinOnce sync.Once

	states map[string]*decide.State // ScaleKey + version → rule memory; loop only
}

// New returns a monitor; call Provision, then Run.
func New(cfg Config) (*Monitor, error) {
	ns := cfg.Kafka.Namespace()
	m := &Monitor{cfg: cfg, log: cfg.Logger, ns: ns, scaleTopic: ns.Topic(topics.Scale),
		joined: make(chan struct{}), states: map[string]*decide.State{}}
	m.catalog = newCatalog(ns.Topic(topics.Deployments), m.scaleTopic, ns.Topic(topics.Heartbeats), cfg.Logger)
	m.events = control.NewRecorder(cfg.Client, ns.Topic(topics.Events), control.SourceLoadmon)
	kcfg := cfg.Kafka
	kcfg.ClientID = "butter-loadmon-follow"
	var err error
	m.follower, err = kit.NewFollower(kcfg, []string{ns.Topic(topics.Deployments), m.scaleTopic}, m.catalog.apply, cfg.Logger,
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes), kgo.FetchMaxBytes(control.MaxRecordBytes))
	if err != nil {
		return nil, err
	}
	kcfg.ClientID = "butter-loadmon-heartbeats"
	m.beats, err = kcfg.NewClient(kgo.ConsumeTopics(ns.Topic(topics.Heartbeats)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-cfg.HeartbeatHistory).UnixMilli())))
	if err != nil {
		m.follower.Close()
		return nil, err
	}
	return m, nil
}

// Close releases the consumers.
func (m *Monitor) Close() {
	m.follower.Close()
	m.beats.Close()
}

// Owner reports whether this replica decides now.
func (m *Monitor) Owner() bool { return m.owner.Load() }

// Joined is closed once the replica is in the election group.
func (m *Monitor) Joined() <-chan struct{} { return m.joined }

// Follow reads deployments, decisions and heartbeats until ctx is done.
// ready is closed once the deployments and decisions are read to the end
// they had at start.
func (m *Monitor) Follow(ctx context.Context) (ready <-chan struct{}, done <-chan error) {
	errs := make(chan error, 2)
	go func() { errs <- m.follower.Run(ctx) }()
	go func() {
		for {
			fs := m.beats.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				errs <- nil
				return
			}
			fs.EachRecord(m.catalog.apply)
		}
	}()
	return m.follower.Ready(), errs
}

// Run joins the election group and decides every Interval while this
// replica owns the scale partition, until ctx is done; then it leaves the
// group so another replica takes over at once.
func (m *Monitor) Run(ctx context.Context) error {
	kcfg := m.cfg.Kafka
	kcfg.ClientID = "butter-loadmon-group"
	var gained atomic.Bool
	var mu sync.Mutex
	owned := map[int32]bool{}
	// Callbacks name only the partitions that move (a cooperative
	// rebalance may revoke nothing and assign nothing), so ownership is
	// the set of partitions held, not the last callback's verdict.
	update := func(parts []int32, hold bool) {
		mu.Lock()
		defer mu.Unlock()
		m.joinOnce.Do(func() { close(m.joined) })
		for _, p := range parts {
			if hold {
				owned[p] = true
			} else {
				delete(owned, p)
			}
		}
		own := len(owned) > 0
		if own == m.owner.Load() {
			return
		}
		if own {
			gained.Store(true)
		}
		m.owner.Store(own)
		m.cfg.Metrics.owner(own)
		m.log.Info("election", "owner", own)
	}
	group, err := kcfg.NewClient(
		kgo.ConsumerGroup(m.ns.Topic("butter-loadmon")),
		kgo.ConsumeTopics(m.scaleTopic),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(m.cfg.SessionTimeout),
		kgo.HeartbeatInterval(m.cfg.HeartbeatInterval),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { update(a[m.scaleTopic], true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { update(r[m.scaleTopic], false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { update(l[m.scaleTopic], false) }),
	)
	if err != nil {
		return err
	}
	// The group is for electing, not reading: the follower reads the
	// topic. Paused, the client only heartbeats.
	group.PauseFetchTopics(m.scaleTopic)
	pctx, stopPoll := context.WithCancel(context.WithoutCancel(ctx))
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pctx.Err() == nil {
			if fs := group.PollFetches(pctx); fs.IsClientClosed() {
				return
			}
		}
	}()
	defer func() {
		m.owner.Store(false)
		group.Close() // leaves the group: another replica takes over now
		stopPoll()
		<-polled
	}()

	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !m.owner.Load() {
			continue
		}
		if gained.Swap(false) {
			// A new owner starts from what the last one wrote, and with a
			// fresh memory: its idle and cooldown clocks start now.
			if err := m.follower.CatchUp(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				m.log.Warn("read decisions before deciding", kit.KeyError, err)
				gained.Store(true)
				continue
			}
			clear(m.states)
		}
		if err := m.tick(ctx, time.Now()); err != nil && ctx.Err() == nil {
			m.log.Warn("decide", kit.KeyError, err)
		}
	}
}

// tick reads the lag of every function and decides each.
func (m *Monitor) tick(ctx context.Context, now time.Time) error {
	start := time.Now()
	fns := m.catalog.Functions()
	lags, err := readLag(ctx, kadm.NewClient(m.cfg.Client), m.ns, fns)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	var errs []error
	for _, f := range fns {
		sk := f.key() + "@" + f.version
		live[sk] = true
		fl := lags[f.key()]
		if fl.err != nil {
			errs = append(errs, fl.err)
			continue // no figure, no decision: never scale down on an error
		}
		min := f.scale.MinReplicas()
		st := m.states[sk]
		if st == nil {
			cur := min
			if d, ok := m.catalog.Decision(f.key()); ok && d.Version == f.version {
				cur = d.To
			}
			st = decide.NewState(cur, now)
			m.states[sk] = st
		}
		rate, running, inFlight := m.catalog.Load(f.key(), now)
		spec := decide.Spec{Min: min, Max: f.scale.Max, LagPerReplica: f.scale.LagPerReplica,
			ActivationLag: f.scale.ActivationLag, IdleAfter: f.scale.IdleAfter.Std(), Partitions: fl.partitions}
		load := decide.Load{Lag: fl.lag, Rate: rate, Running: running, InFlight: inFlight}
		res := decide.Decide(m.cfg.Rule, spec, load, st, now)
		m.cfg.Metrics.function(f.deployment, f.name, fl.lag, st.Current)
		if !res.Changed() {
			continue
		}
		d := control.ScaleDecision{Deployment: f.deployment, Function: f.name, Version: f.version,
			From: res.From, To: res.To, Reason: res.Reason, Lag: fl.lag, Rate: rate, Arrival: res.Arrival,
			InFlight: inFlight, Running: running, Partitions: fl.partitions, Min: min, Max: f.scale.Max,
			LagPerReplica: f.scale.LagPerReplica, Replica: m.cfg.Replica, Time: now.UTC()}
		if err := m.publish(ctx, d); err != nil {
			st.Current = res.From // try again next tick
			errs = append(errs, err)
		}
	}
	for sk := range m.states {
		if !live[sk] {
			delete(m.states, sk)
		}
	}
	m.cfg.Metrics.tick(time.Since(start))
	return errors.Join(errs...)
}

// publish writes d to _butter.scale, unless the latest decision there
// already says the same (another replica's, across a handover), and
// records its deployment.scaled event.
func (m *Monitor) publish(ctx context.Context, d control.ScaleDecision) error {
	if last, ok := m.catalog.Decision(control.ScaleKey(d.Deployment, d.Function)); ok && last.Version == d.Version && last.To == d.To {
		return nil
	}
	rec, err := control.ScaleRecord(m.scaleTopic, d)
	if err != nil {
		return err
	}
	// The decision and its event are written with a context of their
	// own: a shutdown in between must not leave a decision without its
	// audit record.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := m.cfg.Client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("write scale decision of %s: %w", rec.Key, err)
	}
	m.catalog.mu.Lock()
	m.catalog.decisions[string(rec.Key)] = d
	m.catalog.mu.Unlock()
	m.cfg.Metrics.decided(d.Reason)
	m.log.Info("scaled", kit.KeyDeployment, d.Deployment, kit.KeyFn, d.Function, "from", d.From, "to", d.To,
		"reason", d.Reason, "lag", d.Lag, "rate", d.Rate, "in_flight", d.InFlight)
	_, err = m.events.Emit(ctx, control.TypeDeploymentScaled, control.Info{
		Resource: control.Resource(control.KindDeployment, d.Deployment),
		Actor:    control.ActorSystem, Category: control.CategoryState, Severity: control.SeverityInfo,
	}, d)
	if err != nil {
		// The decision stands (the deployer applies it); only its audit
		// record is missing, which the log says.
		m.log.Warn("record deployment.scaled event", kit.KeyDeployment, d.Deployment, kit.KeyFn, d.Function, kit.KeyError, err)
	}
	return nil
}

// heartbeatHistory is how far back heartbeats are read by default: two
// intervals give every live instance's last two beats, hence its rate.
const heartbeatHistory = 2*obs.HeartbeatInterval + time.Second

// DefaultHeartbeatHistory is the default of Config.HeartbeatHistory.
const DefaultHeartbeatHistory = heartbeatHistory

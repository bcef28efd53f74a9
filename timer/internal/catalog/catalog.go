// Package catalog is a timer replica's view of every schedule and its
// firing state. It lives only in two compacted topics: the schedules of
// descriptors come from _butter.deployments, the API's schedules and every
// schedule's last fired time from _butter.timers. Every replica reads both
// whole, read_committed, from the start, then follows them; which
// schedules a replica fires is decided elsewhere (package firing).
package catalog

import (
	"context"
	"encoding/json"
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
	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/timer/internal/schedule"
)

// Catalog is the schedules and states read from the topics.
type Catalog struct {
	deployments, timers string
	consumer            *kgo.Client
	producer            *kgo.Client
	log                 *slog.Logger
	ready               chan struct{}

	mu      sync.Mutex
	api     map[string]timers.Schedule
	deps    map[string][]*schedule.Def // deployment → its timers
	defs    map[string]*schedule.Def   // every schedule by id
	states  map[string]timers.State
	next    map[string]map[int32]int64 // topic → partition → next offset to read
	changed chan struct{}              // closed and replaced on every change of defs
	advance chan struct{}              // closed and replaced whenever next moves
}

// New returns a catalog of the deployments and timers topics. producer
// writes API schedules; a consumer client of its own is made from kafka.
// Run reads.
func New(kafka kit.KafkaConfig, producer *kgo.Client, deployments, timersTopic string, logger *slog.Logger) (*Catalog, error) {
	kafka.ClientID = "butter-timer-catalog"
	cl, err := kafka.NewClient(
		kgo.ConsumeTopics(deployments, timersTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Commit markers are records too: without them a partition whose
		// last record is a marker would never look read to its end.
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes),
		kgo.FetchMaxBytes(2*control.MaxRecordBytes),
	)
	if err != nil {
		return nil, err
	}
	return &Catalog{
		deployments: deployments, timers: timersTopic, consumer: cl, producer: producer, log: logger,
		ready: make(chan struct{}),
		api:   map[string]timers.Schedule{}, deps: map[string][]*schedule.Def{}, defs: map[string]*schedule.Def{},
		states: map[string]timers.State{}, next: map[string]map[int32]int64{deployments: {}, timersTopic: {}},
		changed: make(chan struct{}), advance: make(chan struct{}),
	}, nil
}

// Close closes the consumer.
func (c *Catalog) Close() { c.consumer.Close() }

// Ready is closed once both topics are read up to the end offsets they
// had when Run started.
func (c *Catalog) Ready() <-chan struct{} { return c.ready }

// Run reads both topics until ctx is done.
func (c *Catalog) Run(ctx context.Context) error {
	// Read-committed consumers stop at the last stable offset, so that is
	// the end to reach: the plain end offset may lie behind an open
	// transaction that will abort.
	adm := kadm.NewClient(c.consumer)
	target := map[string]map[int32]int64{}
	for _, topic := range []string{c.deployments, c.timers} {
		ends, err := adm.ListCommittedOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return fmt.Errorf("list end offsets of %s: %w", topic, err)
		}
		target[topic] = map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) { target[topic][o.Partition] = o.Offset })
	}
	caughtUp := func() bool {
		for topic, parts := range target {
			for p, end := range parts {
				if c.next[topic][p] < end {
					return false
				}
			}
		}
		return true
	}
	c.mu.Lock()
	if caughtUp() {
		close(c.ready)
	}
	c.mu.Unlock()
	for {
		fs := c.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			c.log.Warn("fetch timer catalog", kit.KeyStream, t, kit.KeyPartition, p, kit.KeyError, err)
		})
		c.mu.Lock()
		changed := false
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				switch {
				case r.Attrs.IsControl():
				case r.Topic == c.deployments:
					changed = c.applyDeployment(r) || changed
				default:
					changed = c.applyTimer(r) || changed
				}
			}
			if n := len(fp.Records); n > 0 {
				c.next[fp.Topic][fp.Partition] = fp.Records[n-1].Offset + 1
			}
		})
		close(c.advance)
		c.advance = make(chan struct{})
		if changed {
			close(c.changed)
			c.changed = make(chan struct{})
		}
		select {
		case <-c.ready:
		default:
			if caughtUp() {
				c.log.Info("timer catalog read", "schedules", len(c.defs), "states", len(c.states))
				close(c.ready)
			}
		}
		c.mu.Unlock()
	}
}

// applyDeployment replaces the timers of one deployment; called with c.mu
// held.
func (c *Catalog) applyDeployment(r *kgo.Record) bool {
	d, deleted, err := control.DecodeDeployment(r)
	if err != nil {
		c.log.Error("skip bad deployment record", kit.KeyOffset, r.Offset, kit.KeyError, err)
		return false
	}
	for _, def := range c.deps[d.Name] {
		delete(c.defs, def.ID)
	}
	delete(c.deps, d.Name)
	if deleted {
		return true
	}
	desc, err := d.Parse()
	if err != nil {
		c.log.Error("skip deployment with a bad descriptor", kit.KeyDeployment, d.Name, kit.KeyError, err)
		return true
	}
	for _, f := range desc.Functions {
		t := f.Bindings.Timer
		if t == nil {
			continue
		}
		def := &schedule.Def{
			ID: d.Name + "/" + f.Name, Spec: t.Schedule, Timezone: t.Timezone, Stream: t.Stream, CatchUp: t.CatchUp,
			Created: d.Created, Source: schedule.SourceDeployment, Deployment: d.Name, Function: f.Name,
		}
		if err := def.Compile(); err != nil {
			c.log.Error("skip timer", kit.KeyDeployment, d.Name, kit.KeyFn, f.Name, kit.KeyError, err)
			continue
		}
		c.deps[d.Name] = append(c.deps[d.Name], def)
		c.defs[def.ID] = def
	}
	return true
}

// applyTimer applies a _butter.timers record; called with c.mu held.
func (c *Catalog) applyTimer(r *kgo.Record) bool {
	key := string(r.Key)
	switch {
	case strings.HasPrefix(key, timers.KeySchedule):
		id := strings.TrimPrefix(key, timers.KeySchedule)
		if r.Value == nil {
			delete(c.api, id)
			if d := c.defs[id]; d != nil && d.Source == schedule.SourceAPI {
				delete(c.defs, id)
			}
			return true
		}
		var s timers.Schedule
		if err := json.Unmarshal(r.Value, &s); err != nil || s.ID != id {
			c.log.Error("skip bad schedule record", "key", key, kit.KeyOffset, r.Offset, kit.KeyError, err)
			return false
		}
		def := FromAPI(s)
		if err := def.Compile(); err != nil {
			c.log.Error("skip schedule", "schedule", id, kit.KeyError, err)
			return false
		}
		c.api[id] = s
		if old := c.defs[id]; old == nil || old.Source == schedule.SourceAPI {
			c.defs[id] = def
		}
		return true
	case strings.HasPrefix(key, timers.KeyState):
		id := strings.TrimPrefix(key, timers.KeyState)
		if r.Value == nil {
			delete(c.states, id)
			return false
		}
		var st timers.State
		if err := json.Unmarshal(r.Value, &st); err != nil {
			c.log.Error("skip bad state record", "key", key, kit.KeyOffset, r.Offset, kit.KeyError, err)
			return false
		}
		if old, ok := c.states[id]; !ok || st.LastFired.After(old.LastFired) {
			c.states[id] = st
		}
		return false
	}
	return false
}

// FromAPI turns a stored API schedule into a definition (not compiled).
func FromAPI(s timers.Schedule) *schedule.Def {
	return &schedule.Def{ID: s.ID, Spec: s.Schedule, Timezone: s.Timezone, Stream: s.Stream, CatchUp: s.CatchUp,
		Data: s.Data, Created: s.Created, Source: schedule.SourceAPI}
}

// Defs returns every schedule for which keep returns true, by id. The
// definitions are shared: callers must not modify them.
func (c *Catalog) Defs(keep func(id string) bool) []*schedule.Def {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*schedule.Def, 0, len(c.defs))
	for id, d := range c.defs {
		if keep == nil || keep(id) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *schedule.Def) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Def returns schedule id.
func (c *Catalog) Def(id string) (*schedule.Def, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.defs[id]
	return d, ok
}

// State returns the last committed firing state of schedule id.
func (c *Catalog) State(id string) (timers.State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.states[id]
	return s, ok
}

// Changed returns a channel closed at the next change of the schedules.
func (c *Catalog) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// WaitRead returns once partition p of the timers topic is read past
// offset: everything committed before it is then in the catalog.
func (c *Catalog) WaitRead(ctx context.Context, p int32, offset int64) error {
	for {
		c.mu.Lock()
		seen := c.next[c.timers][p] > offset
		adv := c.advance
		c.mu.Unlock()
		if seen {
			return nil
		}
		select {
		case <-adv:
		case <-ctx.Done():
			return fmt.Errorf("wait to read %s partition %d past offset %d: %w", c.timers, p, offset, ctx.Err())
		}
	}
}

// ErrNotReady means a write came before the catalog was read: answering
// from half the topic could resurrect or lose schedules.
var ErrNotReady = errors.New("timer schedules are still being read from the topics: retry shortly")

// Put stores an API schedule and returns once the catalog has read it.
func (c *Catalog) Put(ctx context.Context, s timers.Schedule) error {
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode schedule %s: %w", s.ID, err)
	}
	return c.write(ctx, &kgo.Record{Topic: c.timers, Key: []byte(timers.ScheduleKey(s.ID)), Value: v})
}

// Delete writes the tombstone of API schedule id and returns once read.
func (c *Catalog) Delete(ctx context.Context, id string) error {
	return c.write(ctx, &kgo.Record{Topic: c.timers, Key: []byte(timers.ScheduleKey(id))})
}

// API returns API schedule id as stored.
func (c *Catalog) API(id string) (timers.Schedule, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.api[id]
	return s, ok
}

func (c *Catalog) write(ctx context.Context, rec *kgo.Record) error {
	select {
	case <-c.ready:
	default:
		return ErrNotReady
	}
	res := c.producer.ProduceSync(ctx, rec)
	if err := res.FirstErr(); err != nil {
		return fmt.Errorf("store timer record %s: %w", rec.Key, err)
	}
	r := res[0].Record
	return c.WaitRead(ctx, r.Partition, r.Offset)
}

// Package catalog is a timer replica's view of every schedule and its
// firing state. It lives only in two compacted topics: the schedules of
// descriptors come from _butter.deployments, the API's schedules and every
// schedule's last fired time from _butter.timers. Every replica reads both
// whole, read_committed, from the start, then follows them; which
// schedules a replica fires is decided elsewhere (package firing).
package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/timer/internal/schedule"
)

// Catalog is the schedules and states read from the topics.
type Catalog struct {
	deployments, timers string
	follower            *kit.Follower
	producer            *kgo.Client
	log                 *slog.Logger

	mu      sync.Mutex
	api     map[string]timers.Schedule
	deps    map[string][]*schedule.Def // deployment → its timers
	defs    map[string]*schedule.Def   // every schedule by id
	states  map[string]timers.State
	changed chan struct{} // closed and replaced on every change of defs
}

// New returns a catalog of the deployments and timers topics. producer
// writes API schedules; a consumer client of its own is made from kafka.
// Run reads.
func New(kafka kit.KafkaConfig, producer *kgo.Client, deployments, timersTopic string, logger *slog.Logger) (*Catalog, error) {
	kafka.ClientID = "butter-timer-catalog"
	c := &Catalog{
		deployments: deployments, timers: timersTopic, producer: producer, log: logger,
		api: map[string]timers.Schedule{}, deps: map[string][]*schedule.Def{}, defs: map[string]*schedule.Def{},
		states: map[string]timers.State{}, changed: make(chan struct{}),
	}
	f, err := kit.NewFollower(kafka, []string{deployments, timersTopic}, c.apply, logger,
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes),
		kgo.FetchMaxBytes(2*control.MaxRecordBytes),
	)
	if err != nil {
		return nil, err
	}
	c.follower = f
	return c, nil
}

// Close closes the consumer.
func (c *Catalog) Close() { c.follower.Close() }

// Ready is closed once both topics are read up to the end offsets they
// had when Run started.
func (c *Catalog) Ready() <-chan struct{} { return c.follower.Ready() }

// Run reads both topics until ctx is done.
func (c *Catalog) Run(ctx context.Context) error { return c.follower.Run(ctx) }

// CatchUp returns once every record stored before the call is applied.
func (c *Catalog) CatchUp(ctx context.Context) error { return c.follower.CatchUp(ctx) }

// apply applies one committed record of either topic, waking Changed's
// waiters if the schedules changed.
func (c *Catalog) apply(r *kgo.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var changed bool
	if r.Topic == c.deployments {
		changed = c.applyDeployment(r)
	} else {
		changed = c.applyTimer(r)
	}
	if changed {
		close(c.changed)
		c.changed = make(chan struct{})
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
			// A timer that fired goes on from its last tick through
			// updates of its deployment (an update must not drop due ticks
			// nor move an @every grid); one that never fired starts from
			// when this version was stored: a timer added by a later
			// update must not catch up on times before it existed.
			Created: d.Created, Since: cmp.Or(d.Updated, d.Created),
			Source: schedule.SourceDeployment, Deployment: d.Name, Function: f.Name,
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
	return c.follower.WaitRead(ctx, c.timers, p, offset)
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
	case <-c.follower.Ready():
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

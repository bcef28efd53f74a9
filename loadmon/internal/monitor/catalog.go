package monitor

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
)

// function is one function of a current deployment version, as loadmon
// needs it.
type function struct {
	deployment, name, version string
	scale                     descriptor.Scale
	inputs                    []descriptor.StreamBinding
}

func (f function) key() string { return control.ScaleKey(f.deployment, f.name) }

// catalog holds what loadmon reads from topics: the deployments (compacted
// _butter.deployments), the latest decision per function (_butter.scale)
// and the latest heartbeats per instance (_butter.heartbeats). Records
// arrive from followers' goroutines; the decision loop reads snapshots.
type catalog struct {
	deploymentsTopic, scaleTopic, heartbeatsTopic string
	log                                           *slog.Logger

	mu        sync.Mutex
	functions map[string][]function            // deployment → functions
	decisions map[string]control.ScaleDecision // ScaleKey → latest
	beats     map[string]map[string]*instBeats // ScaleKey → instance → beats
}

// instBeats are an instance's last two heartbeats, for its rate.
type instBeats struct {
	prev, last obs.Heartbeat
	seen       time.Time // local time the last one was read
}

func newCatalog(deployments, scale, heartbeats string, log *slog.Logger) *catalog {
	return &catalog{deploymentsTopic: deployments, scaleTopic: scale, heartbeatsTopic: heartbeats, log: log,
		functions: map[string][]function{}, decisions: map[string]control.ScaleDecision{},
		beats: map[string]map[string]*instBeats{}}
}

// apply is the followers' callback.
func (c *catalog) apply(r *kgo.Record) {
	switch r.Topic {
	case c.deploymentsTopic:
		c.applyDeployment(r)
	case c.scaleTopic:
		d, err := control.DecodeScale(r)
		if err != nil {
			c.log.Warn("skip scale record", kit.KeyOffset, r.Offset, kit.KeyError, err)
			return
		}
		c.mu.Lock()
		c.decisions[control.ScaleKey(d.Deployment, d.Function)] = d
		c.mu.Unlock()
	case c.heartbeatsTopic:
		h, err := obs.ParseHeartbeat(r)
		if err != nil {
			return // the topic is open to other writers
		}
		c.beat(h, time.Now())
	}
}

func (c *catalog) applyDeployment(r *kgo.Record) {
	d, deleted, err := control.DecodeDeployment(r)
	if err != nil {
		c.log.Warn("skip deployment record", kit.KeyOffset, r.Offset, kit.KeyError, err)
		return
	}
	var fns []function
	if !deleted {
		desc, err := d.Parse()
		if err != nil {
			c.log.Warn("skip undeployable deployment", kit.KeyDeployment, d.Name, kit.KeyError, err)
			return
		}
		for i := range desc.Functions {
			f := &desc.Functions[i]
			fns = append(fns, function{deployment: d.Name, name: f.Name, version: d.Version, scale: f.Scale, inputs: f.Inputs()})
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(fns) == 0 {
		delete(c.functions, d.Name)
		return
	}
	c.functions[d.Name] = fns
}

func (c *catalog) beat(h obs.Heartbeat, now time.Time) {
	k := control.ScaleKey(h.Deployment, h.Function)
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.beats[k]
	if m == nil {
		m = map[string]*instBeats{}
		c.beats[k] = m
	}
	b := m[h.Instance]
	if b == nil {
		b = &instBeats{}
		m[h.Instance] = b
	}
	if !h.Time.After(b.last.Time) {
		return
	}
	b.prev, b.last, b.seen = b.last, h, now
}

// Functions returns every function of every deployment, sorted.
func (c *catalog) Functions() []function {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []function
	for _, fns := range c.functions {
		out = append(out, fns...)
	}
	slices.SortFunc(out, func(a, b function) int {
		if a.deployment != b.deployment {
			if a.deployment < b.deployment {
				return -1
			}
			return 1
		}
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return out
}

// Decision returns the latest decision for key.
func (c *catalog) Decision(key string) (control.ScaleDecision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.decisions[key]
	return d, ok
}

// liveFor is how long an instance counts as running after its last
// heartbeat.
const liveFor = 3 * obs.HeartbeatInterval

// Load returns the processing rate (events/s), the running instances and
// their events in flight for key from the heartbeats. Instances silent for
// liveFor, or whose last beat said they stop, are gone and forgotten.
func (c *catalog) Load(key string, now time.Time) (rate float64, running, inFlight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, b := range c.beats[key] {
		if now.Sub(b.seen) > liveFor || b.last.Stopping {
			delete(c.beats[key], id)
			continue
		}
		running++
		inFlight += b.last.InFlight
		if !b.prev.Time.IsZero() {
			if dt := b.last.Time.Sub(b.prev.Time).Seconds(); dt > 0 && b.last.Processed >= b.prev.Processed {
				rate += float64(b.last.Processed-b.prev.Processed) / dt
			}
		}
	}
	return rate, running, inFlight
}

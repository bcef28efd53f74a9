package reconcile

import (
	"context"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// Scale is loadmon's decisions, as the reconciler reads them.
type Scale interface {
	// Decision returns the latest decision for a deployment's function.
	Decision(deployment, function string) (control.ScaleDecision, bool)
	// Changed returns a channel closed at the next decision.
	Changed() <-chan struct{}
}

// Decisions follows _butter.scale and keeps the latest decision per
// function: the Scale a deployer gives its reconciler.
type Decisions struct {
	follower *kit.Follower
	log      *slog.Logger

	mu      sync.Mutex
	latest  map[string]control.ScaleDecision // ScaleKey → decision
	changed chan struct{}
}

var _ Scale = (*Decisions)(nil)

// NewDecisions returns a follower of topic (the namespaced _butter.scale);
// call Run.
func NewDecisions(kafka kit.KafkaConfig, topic string, logger *slog.Logger) (*Decisions, error) {
	kafka.ClientID = "butter-deployer-scale"
	d := &Decisions{log: logger, latest: map[string]control.ScaleDecision{}, changed: make(chan struct{})}
	f, err := kit.NewFollower(kafka, []string{topic}, d.apply, logger)
	if err != nil {
		return nil, err
	}
	d.follower = f
	return d, nil
}

// Run reads the decisions until ctx is done.
func (d *Decisions) Run(ctx context.Context) error { return d.follower.Run(ctx) }

// Ready is closed once the decisions are read up to the end they had when
// Run started.
func (d *Decisions) Ready() <-chan struct{} { return d.follower.Ready() }

// Close closes the consumer.
func (d *Decisions) Close() { d.follower.Close() }

func (d *Decisions) apply(r *kgo.Record) {
	dec, err := control.DecodeScale(r)
	if err != nil {
		d.log.Warn("skip scale record", kit.KeyOffset, r.Offset, kit.KeyError, err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latest[control.ScaleKey(dec.Deployment, dec.Function)] = dec
	close(d.changed)
	d.changed = make(chan struct{})
}

// Decision implements Scale.
func (d *Decisions) Decision(deployment, function string) (control.ScaleDecision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dec, ok := d.latest[control.ScaleKey(deployment, function)]
	return dec, ok
}

// Changed implements Scale.
func (d *Decisions) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// Count is how many instances a function of deployment version version
// runs: the latest decision for that version clamped to [min, max], else
// min. Decisions for other versions are ignored: a new version starts
// from its own min until loadmon decides for it.
func Count(s descriptor.Scale, version string, dec control.ScaleDecision, ok bool) int {
	lo := s.MinReplicas()
	if !ok || dec.Version != version {
		return lo
	}
	hi := max(s.Max, lo)
	return min(max(dec.To, lo), hi)
}

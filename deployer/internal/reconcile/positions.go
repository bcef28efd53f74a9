package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/topics"
)

// Positions pins where a function's consumer group starts.
type Positions interface {
	// Pin commits, for each of d's functions named, the start position
	// its bindings ask for (descriptor offset) on every partition its
	// group has no commit for.
	Pin(ctx context.Context, d control.Deployment, functions []string) error
}

// GroupPositions pins start positions with the Kafka admin API.
//
// Why: a function that runs no instance (scale.min 0) has no consumer
// to resolve "latest" when it is deployed. Left alone, the first
// instance loadmon wakes would resolve it then, after the events that
// woke it, and skip them; and loadmon could not even see them as lag,
// since lag is measured from a commit. Pinned at deploy, "latest" means
// "from when it was deployed", as it does for a running function, and
// every event published while it sleeps is lag that wakes it and is
// handled.
type GroupPositions struct {
	Admin     *kadm.Client
	Namespace topics.Namespace
}

var _ Positions = GroupPositions{}

// Pin implements Positions.
func (p GroupPositions) Pin(ctx context.Context, d control.Deployment, functions []string) error {
	desc, err := d.Parse()
	if err != nil {
		return err
	}
	for i := range desc.Functions {
		f := &desc.Functions[i]
		if !slices.Contains(functions, f.Name) {
			continue
		}
		if err := p.pin(ctx, d.Name, f); err != nil {
			return err
		}
	}
	return nil
}

func (p GroupPositions) pin(ctx context.Context, deployment string, f *descriptor.Function) error {
	group := p.Namespace.ConsumerGroup(deployment, f.Name)
	committed, err := p.Admin.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // never used: nothing committed
	}
	if err != nil {
		return fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	var ts []string
	bindings := map[string]descriptor.StreamBinding{}
	for _, in := range f.Inputs() {
		t := p.Namespace.Topic(in.Name)
		if _, ok := bindings[t]; !ok {
			bindings[t] = in
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return nil
	}
	starts, err := p.Admin.ListStartOffsets(ctx, ts...)
	if err != nil {
		return fmt.Errorf("list start offsets of %v: %w", ts, err)
	}
	ends, err := p.Admin.ListEndOffsets(ctx, ts...)
	if err != nil {
		return fmt.Errorf("list end offsets of %v: %w", ts, err)
	}
	pins := kadm.Offsets{}
	for t, parts := range ends {
		b := bindings[t]
		var after kadm.ListedOffsets
		if b.Offset.Kind == descriptor.OffsetTime {
			if after, err = p.Admin.ListOffsetsAfterMilli(ctx, b.Offset.Time.UnixMilli(), t); err != nil {
				return fmt.Errorf("list offsets of %s after %s: %w", t, b.Offset.Time, err)
			}
		}
		for part, end := range parts {
			if end.Err != nil {
				continue // not created yet: the deployer creates bound streams
			}
			if c, ok := committed.Lookup(t, part); ok && c.Err == nil && c.At >= 0 {
				continue // the group's position wins
			}
			start := end.Offset
			if s, ok := starts.Lookup(t, part); ok && s.Err == nil {
				start = s.Offset
			}
			clamp := func(n int64) int64 { return min(max(n, start), end.Offset) }
			at := end.Offset
			switch b.Offset.Kind {
			case descriptor.OffsetFirst:
				at = start
			case descriptor.OffsetAt:
				at = clamp(b.Offset.At)
			case descriptor.OffsetPartitions:
				if n, ok := b.Offset.Partitions[part]; ok {
					at = clamp(n)
				}
			case descriptor.OffsetTime:
				if a, ok := after.Lookup(t, part); ok && a.Err == nil && a.Offset >= 0 {
					at = clamp(a.Offset)
				}
			}
			pins.Add(kadm.Offset{Topic: t, Partition: part, At: at, LeaderEpoch: -1})
		}
	}
	if len(pins) == 0 {
		return nil
	}
	resp, err := p.Admin.CommitOffsets(ctx, group, pins)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("pin start offsets of group %s: %w", group, err)
	}
	return nil
}

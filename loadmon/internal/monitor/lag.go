package monitor

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/topics"
)

// funcLag is one function's lag and partition count at one tick.
type funcLag struct {
	lag        int64
	partitions int
	err        error
}

// readLag returns the lag of every function's consumer group over its bound
// streams: the end offset minus the group's committed offset, summed over
// partitions. Three requests per tick whatever the number of functions
// (end offsets, start offsets, and the groups' commits, batched by kadm).
//
// A partition the group never committed counts from the log start when
// the binding reads from the first event (routes and timers always do):
// that is what a woken instance will read. Other bindings have no lag
// there: the deployer pins their start position while the function runs
// no instance, and a running instance pins it when it joins.
func readLag(ctx context.Context, adm *kadm.Client, ns topics.Namespace, fns []function) (map[string]funcLag, error) {
	out := make(map[string]funcLag, len(fns))
	if len(fns) == 0 {
		return out, nil
	}
	topicSet := map[string]bool{}
	var groups []string
	for _, f := range fns {
		groups = append(groups, ns.ConsumerGroup(f.deployment, f.name))
		for _, in := range f.inputs {
			topicSet[ns.Topic(in.Name)] = true
		}
	}
	var ts []string
	for t := range topicSet {
		ts = append(ts, t)
	}
	ends, err := adm.ListEndOffsets(ctx, ts...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, ts...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	commits := adm.FetchManyOffsets(ctx, groups...)
	for _, f := range fns {
		group := ns.ConsumerGroup(f.deployment, f.name)
		fl := funcLag{}
		fetched, ok := commits[group]
		if ok && errors.Is(fetched.Err, kerr.GroupIDNotFound) {
			fetched.Err = nil // never used: nothing committed
		}
		if !ok || fetched.Err != nil {
			fl.err = fmt.Errorf("fetch offsets of group %s: %v", group, fetched.Err)
		}
		seen := map[string]bool{}
		for _, in := range f.inputs {
			t := ns.Topic(in.Name)
			if seen[t] {
				continue
			}
			seen[t] = true
			for p, end := range ends[t] {
				if end.Err != nil {
					continue // the stream does not exist (yet)
				}
				fl.partitions++
				if c, ok := fetched.Fetched.Lookup(t, p); ok && c.Err == nil && c.At >= 0 {
					fl.lag += max(0, end.Offset-c.At)
					continue
				}
				if in.Offset.Kind == descriptor.OffsetFirst {
					if s, ok := starts.Lookup(t, p); ok && s.Err == nil {
						fl.lag += max(0, end.Offset-s.Offset)
					}
				}
			}
		}
		out[f.key()] = fl
	}
	return out, nil
}

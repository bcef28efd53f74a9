package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// startOffsets returns the AdjustFetchOffsetsFn that applies each
// binding's offset to the partitions the group has no commit for.
//
// kgo hands the function the committed offset of every assigned partition,
// or the ConsumeResetOffset (AtStart, a negative sentinel) where there is
// none, so "no commit" is told apart by the sign. Doing it here, once the
// group has assigned the partitions and fetched their commits, is what lets
// every binding have its own offset: ConsumeResetOffset is one for all.
//
// Latest is pinned to the end offset listed here rather than left to
// kgo's lazy AtEnd, so events written once the function is ready (Ready)
// are never skipped. Explicit offsets are clamped into [start, end] of their partition, as
// the descriptor promises: past the end starts at the end (the reset
// offset would otherwise send it back to the start), before the start
// (deleted by retention) at the first event.
func (r *runner) startOffsets(cl **kgo.Client) func(context.Context, map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	return func(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
		r.loadSuspects(ctx, *cl, offsets)
		var explicit []string // topics needing their bounds listed
		for topic, parts := range offsets {
			if r.bindings[topic].Offset.Kind == descriptor.OffsetFirst || r.bindings[topic].Offset.Kind == descriptor.OffsetTime {
				continue
			}
			for _, o := range parts {
				if o.EpochOffset().Offset < 0 {
					explicit = append(explicit, topic)
					break
				}
			}
		}
		var starts, ends kadm.ListedOffsets
		if len(explicit) > 0 {
			adm := kadm.NewClient(*cl)
			var err error
			if starts, err = adm.ListStartOffsets(ctx, explicit...); err != nil {
				return nil, fmt.Errorf("list start offsets of %v: %w", explicit, err)
			}
			if ends, err = adm.ListEndOffsets(ctx, explicit...); err != nil {
				return nil, fmt.Errorf("list end offsets of %v: %w", explicit, err)
			}
		}
		pins := map[string]map[int32]kgo.EpochOffset{} // concrete starts to commit
		for topic, parts := range offsets {
			off := r.bindings[topic].Offset
			for p, o := range parts {
				if o.EpochOffset().Offset >= 0 {
					continue // committed: the group's position wins
				}
				clamp := func(n int64) kgo.Offset {
					if s, ok := starts.Lookup(topic, p); ok && s.Err == nil && n < s.Offset {
						n = s.Offset
					}
					e, ok := ends.Lookup(topic, p)
					switch {
					case !ok || e.Err != nil:
						if n == math.MaxInt64 {
							return kgo.NewOffset().AtEnd()
						}
					case n > e.Offset:
						n = e.Offset
					}
					return kgo.NewOffset().At(n)
				}
				switch off.Kind {
				case descriptor.OffsetFirst:
					parts[p] = kgo.NewOffset().AtStart()
				case descriptor.OffsetAt:
					parts[p] = clamp(off.At)
				case descriptor.OffsetTime:
					parts[p] = kgo.NewOffset().AfterMilli(off.Time.UnixMilli())
				case descriptor.OffsetPartitions:
					if n, ok := off.Partitions[p]; ok {
						parts[p] = clamp(n)
					} else {
						parts[p] = clamp(math.MaxInt64)
					}
				default:
					parts[p] = clamp(math.MaxInt64)
				}
				r.log.Info("group has no committed offset; starting from the binding's offset",
					"topic", topic, "partition", p, "offset", off.String())
				if at := parts[p].EpochOffset().Offset; at >= 0 {
					if pins[topic] == nil {
						pins[topic] = map[int32]kgo.EpochOffset{}
					}
					pins[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: at}
				}
			}
		}
		r.commitPins(ctx, *cl, pins)
		r.joined.Store(true)
		return offsets, nil
	}
}

// commitPins commits the start offsets resolved from the bindings (latest
// is the end offset listed at join) before anything is consumed: otherwise
// a crash before the group's first commit would resolve latest again, at a
// later end, and skip what came in between. Best effort: if it fails, the
// first commit after processing sets the position as before.
func (r *runner) commitPins(ctx context.Context, cl *kgo.Client, pins map[string]map[int32]kgo.EpochOffset) {
	if len(pins) == 0 {
		return
	}
	if err := r.commitSync(ctx, cl, pins); err != nil {
		r.log.Warn("commit start offsets", kit.KeyError, err)
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/buttercompass/butter/proto/descriptor"
)

// The function replayed: node, the platform of the examples, taking
// batches as a replay of history would.
const (
	replayPlatform = descriptor.PlatformNode
	replayBatch    = 500
)

// ReplayRow names the replay row.
func ReplayRow() string {
	return fmt.Sprintf("replay from first (%s, batch %d)", replayPlatform, replayBatch)
}

// measureReplay measures how fast a function re-processes its stream after
// a replay from first, compared with RowConsume: reading the stream back is
// the part Kafka does.
//
// The no-op function processes N events; its fnbox is stopped, the group's
// offsets are reset to the start of every partition as the deployer's
// replay does (wait for the group to be empty, commit the start offsets
// with kadm), and a new fnbox is started. The clock runs from that fnbox
// reporting ready to reading the result of the N-th re-processed event.
func measureReplay(ctx context.Context, env *Env, rep *Report) error {
	n := env.Config.FnEvents
	name := fmt.Sprintf("bench-replay-%s-b%d", replayPlatform, replayBatch)
	ctx, cancel := context.WithTimeoutCause(ctx, env.Config.FnTimeout,
		fmt.Errorf("%s took longer than %s (Config.FnTimeout)", name, env.Config.FnTimeout))
	defer cancel()
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)

	f, err := env.newFunction(ctx, name, replayPlatform, replayBatch)
	if err != nil {
		return err
	}
	if err := produceEvents(ctx, env, f.in, n); err != nil {
		return err
	}

	// First pass: process everything, untimed.
	first, err := newResults(env, f.out, nil)
	if err != nil {
		return err
	}
	defer first.close()
	if err := runUntil(ctx, env, f, first, n, cancelCause, nil); err != nil {
		return fmt.Errorf("first pass: %w", err)
	}

	cl, err := env.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	outEnds, err := endOffsets(ctx, cl, f.out)
	if err != nil {
		return err
	}
	if err := resetToFirst(ctx, adm, f.group(env), f.in); err != nil {
		return err
	}

	again, err := newResults(env, f.out, outEnds)
	if err != nil {
		return err
	}
	defer again.close()
	var elapsed time.Duration
	if err := runUntil(ctx, env, f, again, n, cancelCause, &elapsed); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	rep.Note(fmt.Sprintf("**%s**: the no-op function processes %d events; its fnbox is stopped, the group is reset to "+
		"the first offset of every partition as the deployer's replay does (wait until the group is empty, commit "+
		"the start offsets with kadm), and a new fnbox re-processes them; the clock runs from it reporting ready "+
		"to the result of the last event. Limit: %s.", ReplayRow(), n, RowConsume))
	return rep.Add(Row{Name: ReplayRow(), Value: rate(n, elapsed), Unit: UnitEventsPerSecond, Limit: RowConsume, Count: n})
}

// runUntil runs f in an fnbox until res accounts for n events, then stops
// it; if elapsed is not nil it gets the time from ready to the last result.
func runUntil(ctx context.Context, env *Env, f *function, res *results, n int, cancel context.CancelCauseFunc, elapsed *time.Duration) error {
	run, err := startBox(ctx, env, f, cancel)
	if err != nil {
		return err
	}
	end, err := res.wait(ctx, n)
	stopErr := run.stop()
	switch {
	case errors.Is(err, errBoxStopped):
		return err // stopErr says it again
	case err != nil || stopErr != nil:
		return errors.Join(err, stopErr)
	}
	start, err := run.clockStart(end)
	if err != nil {
		return err
	}
	if elapsed != nil {
		*elapsed = end.Sub(start)
	}
	return nil
}

// resetToFirst commits the start offset of every partition of topic for
// group, once the group has no members: what the deployer's replay from
// first does (deployer/internal/api/replay.go).
func resetToFirst(ctx context.Context, adm *kadm.Client, group, topic string) error {
	if err := waitEmpty(ctx, adm, group); err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	resp, err := adm.CommitOffsets(ctx, group, starts.Offsets())
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("commit start offsets of %s for group %s: %w", topic, group, err)
	}
	return nil
}

// waitEmpty polls until group has no members: offsets of a group can be
// committed from outside only while it is empty.
func waitEmpty(ctx context.Context, adm *kadm.Client, group string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		described, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			g := described[group]
			if g.Err != nil || len(g.Members) == 0 || slices.Contains([]string{"Empty", "Dead", ""}, g.State) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer group %s still has members after its fnbox stopped: %w", group, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

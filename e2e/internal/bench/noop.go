package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/buttercompass/butter/proto/descriptor"
)

// NoopRow names the no-op throughput row of platform at delivery.batch
// batch.
func NoopRow(platform string, batch int) string {
	return fmt.Sprintf("no-op %s, batch %d", platform, batch)
}

// noopEvents is how many events the no-op throughput of platform at batch
// is measured over: fewer for exec at batch 1, a process per event.
func noopEvents(cfg Config, platform string, batch int) int {
	if platform == descriptor.PlatformExec && batch == 1 {
		return cfg.ExecEvents
	}
	return cfg.FnEvents
}

// noopMeasurement measures the throughput of fnbox running the no-op
// function of platform with delivery.batch batch, compared with
// RowPipeline: the loop fnbox runs, without a function in it.
//
// The events are produced before fnbox starts; the function consumes them
// from the first. The clock runs from the fnbox reporting ready (runtime
// up, group joined, start offsets chosen; as the raw pipeline's starts at
// the assignment) to reading the result that accounts for the last event
// from out.
func noopMeasurement(platform string, batch int) func(context.Context, *Env, *Report) error {
	return func(ctx context.Context, env *Env, rep *Report) error {
		n, elapsed, err := runNoop(ctx, env, fmt.Sprintf("bench-noop-%s-b%d", platform, batch), platform, batch)
		if err != nil {
			return err
		}
		rep.Note(fmt.Sprintf("**no-op <platform>, batch <b>**: real fnbox (`fnbox/box` in-process, with the platforms of "+
			"`fnbox/runtime/platforms` and their real processes: one node or python host, a minimal Go program per "+
			"invocation for exec, a python `http.server` for http, a program built with the Go SDK for go) runs a function that "+
			"only returns `{\"n\": events handed over}`, with `delivery.batch` 1 or 500 and the other delivery defaults "+
			"(ordering partition, concurrency 1, at-least-once). %d events (%d for exec at batch 1, a process each) "+
			"are produced first and consumed from `first`; the clock runs from the fnbox reporting ready (runtime up, "+
			"group joined) to reading, from `out`, the result that accounts for the last event. Limit: %s, the same "+
			"loop without a function; it writes a child per event where a batch invocation writes one result, so "+
			"at batch 500 a ratio near or above 1 means the function is no longer what limits fnbox.", env.Config.FnEvents, env.Config.ExecEvents, RowPipeline))
		return rep.Add(Row{Name: NoopRow(platform, batch), Value: rate(n, elapsed), Unit: UnitEventsPerSecond, Limit: RowPipeline, Count: n})
	}
}

// runNoop runs the no-op function of platform at batch as deployment name
// over noopEvents events and returns how many and how long they took.
func runNoop(ctx context.Context, env *Env, name, platform string, batch int) (int, time.Duration, error) {
	n := noopEvents(env.Config, platform, batch)
	ctx, cancel := context.WithTimeoutCause(ctx, env.Config.FnTimeout,
		fmt.Errorf("%s took longer than %s (Config.FnTimeout)", name, env.Config.FnTimeout))
	defer cancel()
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)

	f, err := env.newFunction(ctx, name, platform, batch)
	if err != nil {
		return 0, 0, err
	}
	if err := produceEvents(ctx, env, f.in, n); err != nil {
		return 0, 0, err
	}
	res, err := newResults(env, f.out, nil)
	if err != nil {
		return 0, 0, err
	}
	defer res.close()

	var elapsed time.Duration
	err = runUntil(ctx, env, f, res, n, cancelCause, &elapsed)
	return n, elapsed, err
}

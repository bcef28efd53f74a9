package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	deployersvc "github.com/buttercompass/butter/deployer/service"
	"github.com/buttercompass/butter/proto/envelope"
)

// WakeRow names the wake-from-zero row of runtime rt.
func WakeRow(rt string) string { return "wake from zero node (" + rt + ")" }

// BacklogRow names the backlog-to-second-replica row of runtime rt: to
// the first result of a second replica.
func BacklogRow(rt string) string { return "backlog → second replica node (" + rt + ")" }

// BacklogDecisionRow names the row of the same clock stopped when the
// deployer first reports 2 desired instances: loadmon's part.
func BacklogDecisionRow(rt string) string { return "backlog → scale decision node (" + rt + ")" }

// BacklogReadyRow names the row of the same clock stopped when the
// deployer first reports 2 ready instances (the second one has joined the
// group).
func BacklogReadyRow(rt string) string { return "backlog → second replica ready node (" + rt + ")" }

// The scale measurements' settings.
const (
	// wakeIdleAfter is the scale.idleAfter of the woken function: the
	// shortest the descriptor allows, so the function is soon asleep
	// again between two wakes.
	wakeIdleAfter = "1s"
	// backlogEvents is the backlog produced at once; backlogLagPerReplica
	// makes it ask for more than the max of 2 replicas.
	backlogEvents        = 5000
	backlogLagPerReplica = 100
	// backlogDelay is how long the backlog function takes per event, so
	// one replica cannot drain the backlog before a second one comes.
	backlogDelay = 10 * time.Millisecond
)

// whoJS is the backlog function: it takes backlogDelay per event and says
// which replica (host name, for a container, and pid) handled it.
var whoJS = fmt.Sprintf(`// Slow function of the bench: names the replica that handled each event.
const who = require("os").hostname() + "/" + process.pid;
exports.work = async () => {
  await new Promise((resolve) => setTimeout(resolve, %d));
  return { n: 1, who };
};
`, backlogDelay.Milliseconds())

// scaleRig is a deployer with loadmon beside it, and the deployment
// under measurement.
type scaleRig struct {
	p       *platform
	name    string
	in, out string
}

// startScaleRig starts the platform of runtime rt with loadmon and deploys
// name, bound to new streams, with handler (a node file named handler.js,
// function fn) and scale.
func startScaleRig(ctx context.Context, env *Env, rt, name, fn, handler, scale string, cancel context.CancelCauseFunc) (*scaleRig, error) {
	r := &scaleRig{name: name, in: name + "-in", out: name + "-out"}
	if err := env.CreateTopics(r.in, r.out); err != nil {
		return nil, err
	}
	var err error
	if r.p, err = startPlatform(ctx, env, name+"-deployer", rt, true, cancel); err != nil {
		return nil, err
	}
	yaml := fmt.Sprintf(`# Scaled node function of the bench (e2e/internal/bench).
name: %s
platform: node
functions:
  - fn: handler.js:%s
    name: %s
    bindings:
      streams: [{ name: %s, offset: first }]
      out: %s
    scale: %s
`, name, fn, fn, r.in, r.out, scale)
	if err := r.p.deploy(ctx, map[string]string{"handler.js": handler, "butter.yaml": yaml}); err != nil {
		return nil, errors.Join(err, r.p.stop())
	}
	return r, nil
}

// asleep reports nil once the deployment's function is at zero instances
// and every instance has gone.
func (r *scaleRig) asleep(ctx context.Context) error {
	d, err := r.p.status(ctx, r.name)
	if err != nil {
		return err
	}
	if len(d.Functions) != 1 || d.Functions[0].Desired != 0 || d.Functions[0].Running != 0 || len(d.Instances) != 0 {
		return fmt.Errorf("%s: functions %+v, %d instances", r.name, d.Functions, len(d.Instances))
	}
	return nil
}

// describe says what the deployer reports of the deployment, for an
// error.
func (r *scaleRig) describe() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := r.p.status(ctx, r.name)
	if err != nil {
		return "the deployer's status: " + err.Error()
	}
	b, _ := json.Marshal(d)
	return "the deployer reports " + string(b)
}

// dockerReady checks, for rt docker, that the engine answers and the
// images are there; it returns a sweep of the containers of deployments
// starting with prefix, to defer.
func dockerReady(ctx context.Context, rt, prefix string) (func(), error) {
	if rt != deployersvc.RuntimeDocker {
		return func() {}, nil
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	if err := needImages(ctx, cli); err != nil {
		cli.Close()
		return nil, err
	}
	return func() { sweepContainers(cli, prefix); cli.Close() }, nil
}

// wakeMeasurement measures, with loadmon deciding and the deployer of
// runtime rt applying, the time from publishing one event for a node
// function asleep at zero instances to reading its result: Config.ColdStarts
// wakes after an untimed first one, the function going back to sleep
// (scale.idleAfter 1s) before each. The row is the median, compared with
// RowReplyP50.
func wakeMeasurement(rt string) func(context.Context, *Env, *Report) error {
	return func(ctx context.Context, env *Env, rep *Report) (err error) {
		wakes := env.Config.ColdStarts
		limit := env.Config.FnTimeout + time.Duration(wakes)*30*time.Second
		ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("%s took longer than %s", WakeRow(rt), limit))
		defer cancel()
		ctx, cancelCause := context.WithCancelCause(ctx)
		defer cancelCause(nil)

		name := fmt.Sprintf("bench-%s-%.1s-wake", env.tag, rt)
		sweep, err := dockerReady(ctx, rt, env.runPrefix())
		if err != nil {
			return err
		}
		defer sweep()
		r, err := startScaleRig(ctx, env, rt, name, fnName, noopJS, "{ min: 0, max: 2, idleAfter: "+wakeIdleAfter+" }", cancelCause)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, r.p.stop()) }()
		res, err := newResults(env, r.out, nil)
		if err != nil {
			return err
		}
		defer res.close()

		var times []time.Duration
		for i := range wakes + 1 {
			if err := until(ctx, name+" asleep", 20*time.Millisecond, func() error { return r.asleep(ctx) }); err != nil {
				return fmt.Errorf("%w%s", err, r.p.logs())
			}
			start := time.Now()
			if err := produceEvents(ctx, env, r.in, 1); err != nil {
				return err
			}
			end, err := res.wait(ctx, i+1)
			if err != nil {
				return fmt.Errorf("wake %d: %w; %s%s", i, err, r.describe(), r.p.logs())
			}
			if i > 0 { // the first follows the deploy: loadmon may not know the function yet
				times = append(times, end.Sub(start))
			}
		}
		rep.Note(fmt.Sprintf("**wake from zero node (%s)**: a node no-op function deployed through the deployer "+
			"(`deployer/service` in-process, runtime %s) with `scale: {min: 0, max: 2, idleAfter: %s}`, and loadmon "+
			"(`loadmon/service` in-process, its default rule: a decision a second) beside it. Once the deployer reports the "+
			"function at zero instances and no instance left, one event is published; the clock runs from producing it to "+
			"reading its result: loadmon seeing the lag, its decision on `_butter.scale`, the deployer starting an "+
			"instance, its cold start and the invocation. Median of %d wakes, each after the function went back to sleep, "+
			"after an untimed first one. Limit: %s. The issue's goal is ≤ 2 s.",
			rt, rt, wakeIdleAfter, len(times), RowReplyP50))
		return rep.Add(Row{Name: WakeRow(rt), Value: ms(percentile(times, 0.5)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(times)})
	}
}

// backlogMeasurement measures, with loadmon deciding and the deployer of
// runtime rt applying, the time from a backlog appearing on the stream of
// a node function running one replica (scale min 1, max 2) to the first
// result written by a second replica. Config.ColdStarts times, each a new
// deployment; the row is the median, compared with RowReplyP50.
func backlogMeasurement(rt string) func(context.Context, *Env, *Report) error {
	return func(ctx context.Context, env *Env, rep *Report) (err error) {
		runs := env.Config.ColdStarts
		limit := env.Config.FnTimeout + time.Duration(runs)*30*time.Second
		ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("%s took longer than %s", BacklogRow(rt), limit))
		defer cancel()
		ctx, cancelCause := context.WithCancelCause(ctx)
		defer cancelCause(nil)

		prefix := fmt.Sprintf("bench-%s-%.1s-backlog", env.tag, rt)
		sweep, err := dockerReady(ctx, rt, env.runPrefix())
		if err != nil {
			return err
		}
		defer sweep()
		var times, decisions, readies []time.Duration
		for i := range runs {
			d, decided, ready, err := backlogRun(ctx, env, rt, fmt.Sprintf("%s-%d", prefix, i+1), cancelCause)
			if err != nil {
				if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
					err = errors.Join(err, cause)
				}
				return err
			}
			times, decisions, readies = append(times, d), append(decisions, decided), append(readies, ready)
		}
		rep.Note(fmt.Sprintf("**backlog → scale decision, second replica ready, second replica node (%s)**: a node function taking %s an event, deployed through "+
			"the deployer (runtime %s) with `scale: {min: 1, max: 2, lagPerReplica: %d}` on a %d-partition stream, loadmon "+
			"(default rule) beside it. With its one replica ready and warm (one event handled), %d events are produced at "+
			"once; the clock runs from producing them to reading the first result written by another replica (each result "+
			"names its host and pid): loadmon seeing the lag, its decision, the deployer starting the instance, its cold "+
			"start, the group's rebalance and the first invocation there. The same clock, stopped when the deployer's status "+
			"(polled every 10ms) first shows 2 desired instances, is the *scale decision* (loadmon's part), and when it first "+
			"shows 2 ready instances (the second has joined the group) the *second replica ready*. A rebalance waits for "+
			"the poll the first replica is processing (fnbox polls up to 500 records and blocks rebalances while it works "+
			"through them), and the second replica may join with no partition until the first gives some up at the end "+
			"of a poll, so with a slow function most of the figure is spent there, not in loadmon or the start. Median of %d, each a new deployment. "+
			"Limit: %s.",
			rt, backlogDelay, rt, backlogLagPerReplica, benchPartitions, backlogEvents, len(times), RowReplyP50))
		n := len(times)
		return rep.Add(
			Row{Name: BacklogDecisionRow(rt), Value: ms(percentile(decisions, 0.5)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: n},
			Row{Name: BacklogReadyRow(rt), Value: ms(percentile(readies, 0.5)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: n},
			Row{Name: BacklogRow(rt), Value: ms(percentile(times, 0.5)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: n},
		)
	}
}

// backlogRun deploys the backlog function as name on a platform of its
// own, warms its replica up, produces the backlog and returns the time
// until a second replica's first result, and until the deployer reported
// the decision and the second replica ready (each no later than the first
// result: the poll may miss a state that did not last).
func backlogRun(ctx context.Context, env *Env, rt, name string, cancel context.CancelCauseFunc) (d, decided, ready time.Duration, err error) {
	r, err := startScaleRig(ctx, env, rt, name, "work", whoJS,
		fmt.Sprintf("{ min: 1, max: 2, lagPerReplica: %d }", backlogLagPerReplica), cancel)
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { err = errors.Join(err, r.p.stop()) }()
	cl, err := env.Client(kgo.ConsumeTopics(r.out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return 0, 0, 0, err
	}
	defer cl.Close()

	if err := until(ctx, name+" ready", 20*time.Millisecond, func() error { return r.p.ready(ctx, name, 1) }); err != nil {
		return 0, 0, 0, fmt.Errorf("%w%s", err, r.p.logs())
	}
	if err := produceEvents(ctx, env, r.in, 1); err != nil {
		return 0, 0, 0, err
	}
	first, err := nextReplica(ctx, cl, "")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("warm-up: %w%s", err, r.p.logs())
	}
	start := time.Now()
	watch := r.watch(ctx, start)
	if err := produceEvents(ctx, env, r.in, backlogEvents); err != nil {
		return 0, 0, 0, err
	}
	if _, err := nextReplica(ctx, cl, first); err != nil {
		return 0, 0, 0, fmt.Errorf("second replica: %w; %s%s", err, r.describe(), r.p.logs())
	}
	d = time.Since(start)
	decided, ready = watch()
	if decided == 0 || decided > d {
		decided = d
	}
	if ready == 0 || ready > d {
		ready = d
	}
	if env.Config.Progress != nil {
		fmt.Fprintf(env.Config.Progress, "bench:   %s: desired 2 after %s, second instance ready after %s, its first result after %s\n",
			name, decided.Round(time.Millisecond), ready.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	return d, decided, ready, nil
}

// watch polls the deployer's status from start until the returned stop is
// called, which says when it first reported 2 desired instances and 2
// ready ones (0 when it did not).
func (r *scaleRig) watch(ctx context.Context, start time.Time) func() (decided, ready time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var decided, ready time.Duration // written by the poll, read after done
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if d, err := r.p.status(ctx, r.name); err == nil && len(d.Functions) == 1 {
				if d.Functions[0].Desired >= 2 && decided == 0 {
					decided = time.Since(start)
				}
				if d.Functions[0].Running >= 2 && ready == 0 {
					ready = time.Since(start)
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() (time.Duration, time.Duration) {
		cancel()
		<-done
		return decided, ready
	}
}

// nextReplica reads results until one names a replica other than not and
// returns it.
func nextReplica(ctx context.Context, cl *kgo.Client, not string) (string, error) {
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("no result from a replica other than %q: %w", not, context.Cause(ctx))
		}
		if err := fs.Err(); err != nil {
			return "", err
		}
		var who string
		var bad error
		fs.EachRecord(func(rec *kgo.Record) {
			var res struct{ Who string }
			d := envelope.FromRecord(rec)
			if err := json.Unmarshal(d.Event.Data(), &res); err != nil || res.Who == "" {
				bad = fmt.Errorf("result %q is not {\"who\": replica}", d.Event.Data())
			}
			if who == "" && res.Who != not {
				who = res.Who
			}
		})
		if bad != nil {
			return "", bad
		}
		if who != "" {
			return who, nil
		}
	}
}

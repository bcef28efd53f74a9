package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/buttercompass/butter/proto/descriptor"
)

// ColdStartPlatforms are the platforms whose cold start is measured.
var ColdStartPlatforms = []string{descriptor.PlatformNode, descriptor.PlatformPython, descriptor.PlatformGo}

// ColdStartRow names the cold start row of platform.
func ColdStartRow(platform string) string { return "cold start " + platform }

// fnboxPackage is the fnbox command, built once per run for cold starts.
const fnboxPackage = "github.com/buttercompass/butter/fnbox/cmd/fnbox"

// coldStartMeasurement measures the cold start of platform, compared with
// RowReplyP50: the time a request takes when everything is warm.
//
// Cold start is from starting the fnbox process (the binary the deployer
// runs, built before the clock starts, with the no-op function's code and
// descriptor) to reading the result of the one event waiting on its input
// stream: process start, Kafka connection, the runtime's processes, the
// group join, the first fetch, the invocation and its output. It does not
// include the deployer's own work (storing the code, choosing where to run
// it) nor building the function. The row is the median of
// Config.ColdStarts runs, each with a new deployment and group.
func coldStartMeasurement(platform string) func(context.Context, *Env, *Report) error {
	return func(ctx context.Context, env *Env, rep *Report) error {
		bin, err := env.build(ctx, "fnbox", fnboxPackage)
		if err != nil {
			return err
		}
		var times []time.Duration
		for i := range env.Config.ColdStarts {
			d, err := coldStart(ctx, env, bin, platform, fmt.Sprintf("bench-cold-%s-%d", platform, i+1))
			if err != nil {
				return err
			}
			times = append(times, d)
		}
		rep.Note(fmt.Sprintf("**cold start <platform>**: deploy → first event handled, measured as: from starting the "+
			"`fnbox` process (the binary the deployer runs, built before the clock starts) with the no-op function's "+
			"code and descriptor, one event already waiting on its input stream, to reading that event's result from "+
			"`out`. It covers process start, the Kafka connection, the runtime's processes, the group join, the first "+
			"fetch and the invocation; not the deployer's own work (storing the code, scheduling) nor building the "+
			"function. Median of %d, each a new deployment. Limit: %s, the same event's trip when everything is warm.",
			env.Config.ColdStarts, RowReplyP50))
		return rep.Add(Row{Name: ColdStartRow(platform), Value: ms(percentile(times, 0.5)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(times)})
	}
}

// coldStart runs the fnbox binary bin on a new deployment name of the
// no-op function of platform with one event waiting and returns the time
// from starting the process to reading the event's result.
func coldStart(ctx context.Context, env *Env, bin, platform, name string) (time.Duration, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, env.Config.FnTimeout,
		fmt.Errorf("%s took longer than %s (Config.FnTimeout)", name, env.Config.FnTimeout))
	defer cancel()
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)

	f, err := env.newFunction(ctx, name, platform, 1)
	if err != nil {
		return 0, err
	}
	if err := produceEvents(ctx, env, f.in, 1); err != nil {
		return 0, err
	}
	res, err := newResults(env, f.out, nil)
	if err != nil {
		return 0, err
	}
	defer res.close()

	logs := &tailWriter{max: 20}
	cmd := exec.Command(bin,
		"--code", f.dir,
		"--brokers", env.Broker.Addr(),
		"--topic-prefix", env.Kafka.TopicPrefix,
		"--instance", name,
		"--admin", "127.0.0.1:0",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group, so a kill also reaches the runtime's
	// processes if fnbox does not stop them itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start fnbox: %w", err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		exited <- err
		cancelCause(fmt.Errorf("%w: fnbox exited: %v%s", errBoxStopped, err, logs))
	}()
	end, err := res.wait(ctx, 1)
	stopErr := stopProcess(cmd, exited, logs)
	if err != nil {
		return 0, errors.Join(err, stopErr)
	}
	return end.Sub(start), stopErr
}

// stopProcess asks fnbox to drain with SIGTERM, as the deployer does, and
// kills its process group if it has not exited 15s later.
func stopProcess(cmd *exec.Cmd, exited <-chan error, logs *tailWriter) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("fnbox exited badly after SIGTERM: %w%s", err, logs)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("fnbox did not stop within 15s of SIGTERM; killed%s", logs)
	}
}

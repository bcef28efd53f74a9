package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	deployersvc "github.com/buttercompass/butter/deployer/service"
	"github.com/buttercompass/butter/proto/descriptor"
)

// DeployColdStartPlatforms are the platforms whose cold start through the
// deployer is measured, with each runtime.
var DeployColdStartPlatforms = []string{descriptor.PlatformNode, descriptor.PlatformPython}

// DeployColdStartRow names the row of the cold start of platform through
// the deployer with runtime rt (process or docker): "docker cold start
// node".
func DeployColdStartRow(rt, platform string) string { return rt + " cold start " + platform }

// Platform returns the measurements made through an in-process deployer:
// cold start after a deploy with the docker and process runtimes, the
// resident memory of idle node deployments with each, and, with loadmon
// beside the deployer, the wake from zero and the time a backlog takes to
// get a second replica. Those marked Docker need a Docker engine and the
// images of `make images`; the run fails without them. Pass them as
// Config.Extra.
func Platform() []Measurement {
	var ms []Measurement
	for _, p := range DeployColdStartPlatforms {
		ms = append(ms,
			Measurement{Name: DeployColdStartRow(deployersvc.RuntimeDocker, p), Run: deployColdStartMeasurement(deployersvc.RuntimeDocker, p), Docker: true},
			Measurement{Name: DeployColdStartRow(deployersvc.RuntimeProcess, p), Run: deployColdStartMeasurement(deployersvc.RuntimeProcess, p)},
			Measurement{Name: DeployColdStartRow(IdleShared(deployersvc.RuntimeProcess), p), Run: deployColdStartMeasurement(IdleShared(deployersvc.RuntimeProcess), p)})
	}
	for _, rt := range []string{deployersvc.RuntimeProcess, deployersvc.RuntimeDocker} {
		ms = append(ms, Measurement{Name: idleMeasurementName(rt), Run: idleMemoryMeasurement(rt, false), Docker: rt == deployersvc.RuntimeDocker})
	}
	ms = append(ms, Measurement{Name: idleMeasurementName(IdleShared(deployersvc.RuntimeProcess)), Run: idleMemoryMeasurement(deployersvc.RuntimeProcess, true)})
	for _, rt := range []string{deployersvc.RuntimeProcess, deployersvc.RuntimeDocker} {
		ms = append(ms,
			Measurement{Name: WakeRow(rt), Run: wakeMeasurement(rt), Docker: rt == deployersvc.RuntimeDocker},
			Measurement{Name: BacklogRow(rt), Run: backlogMeasurement(rt), Docker: rt == deployersvc.RuntimeDocker})
	}
	return ms
}

// deployColdStartMeasurement measures, Config.ColdStarts times, the time
// from deploying the no-op function of platform through the deployer's API
// (runtime rt, images already built) to reading the result of the one
// event waiting on its input stream. The row is the median, compared with
// RowReplyP50.
func deployColdStartMeasurement(rt, platform string) func(context.Context, *Env, *Report) error {
	return func(ctx context.Context, env *Env, rep *Report) (err error) {
		ctx, cancel := context.WithTimeoutCause(ctx, env.Config.FnTimeout,
			fmt.Errorf("%s took longer than %s (Config.FnTimeout)", DeployColdStartRow(rt, platform), env.Config.FnTimeout))
		defer cancel()
		ctx, cancelCause := context.WithCancelCause(ctx)
		defer cancelCause(nil)

		// rt "process, shared": the process runtime with `isolation:
		// shared`, into a warm pool (one untimed deployment started it).
		shared := rt == IdleShared(deployersvc.RuntimeProcess)
		prefix := fmt.Sprintf("bench-%s-%.1s-cold-%s", env.tag, rt, platform)
		if shared {
			prefix = fmt.Sprintf("bench-%s-s-cold-%s", env.tag, platform)
		}
		if rt == deployersvc.RuntimeDocker {
			cli, err := dockerClient(ctx)
			if err != nil {
				return err
			}
			defer cli.Close()
			if err := needImages(ctx, cli); err != nil {
				return err
			}
			defer sweepContainers(cli, env.runPrefix())
		}
		runtime := rt
		if shared {
			runtime = deployersvc.RuntimeProcess
		}
		p, err := startPlatform(ctx, env, prefix+"-deployer", runtime, false, cancelCause)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, p.stop()) }()

		if shared {
			if _, err := deployColdStart(ctx, env, p, platform, prefix+"-warm", shared); err != nil {
				return fmt.Errorf("start the pool: %w", err)
			}
		}
		var times []time.Duration
		for i := range env.Config.ColdStarts {
			d, err := deployColdStart(ctx, env, p, platform, fmt.Sprintf("%s-%d", prefix, i+1), shared)
			if err != nil {
				if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
					err = errors.Join(err, cause)
				}
				return err
			}
			times = append(times, d)
		}
		goal := " Compare it with *docker cold start <platform>*: the same path with containers."
		how := "`runtime: process`: fnbox (the binary of the run, built before the clock starts) and the function's runtime as host processes"
		if rt == deployersvc.RuntimeDocker {
			how = "`--runtime docker`: a container of the platform's image (built by `make images` before the run: a warm image, " +
				"nothing built or pulled), the code bind-mounted read-only, reaching the broker on the Docker bridge's gateway"
			goal = " The issue's goal is ≤ 1 s with a warm image."
		}
		if shared {
			how = "`runtime: process` with `isolation: shared`: the instance becomes a member of the platform's pool, an fnbox " +
				"already running with its host process warm (an untimed first shared deployment started them), which loads the " +
				"code into that host"
			goal = " Compare it with *process cold start <platform>*: the same deploy into processes of its own."
		}
		rep.Note(fmt.Sprintf("**%s cold start <platform>**: deploy → first event handled through the deployer "+
			"(`deployer/service` in-process, %s): from `POST /v1/deployments` of the no-op function's code (a tar.gz, as "+
			"`butter deploy` sends it), one event already waiting on its input stream, to reading that event's result from "+
			"`out`. It covers the API storing the deployment, the reconciler starting the instance, fnbox and the runtime "+
			"starting, the group join, the first fetch and the invocation. Unlike *cold start <platform>* it includes the "+
			"deployer's work. Median of %d, each a new deployment. Limit: %s, the same event's trip when everything is warm.%s",
			rt, how, env.Config.ColdStarts, RowReplyP50, goal))
		return rep.Add(Row{Name: DeployColdStartRow(rt, platform), Value: ms(percentile(times, 0.5)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(times)})
	}
}

// deployColdStart deploys the no-op function of platform as deployment
// name with one event waiting and returns the time from the deploy call
// to reading its result. The deployment is left running: the platform's
// stop ends it.
func deployColdStart(ctx context.Context, env *Env, p *platform, platform, name string, shared bool) (time.Duration, error) {
	f, err := env.newFunction(ctx, name, platform, 1)
	if err != nil {
		return 0, err
	}
	files, err := codeFiles(f.dir)
	if err != nil {
		return 0, err
	}
	if shared {
		desc := strings.Replace(files["butter.yaml"], "\nplatform: "+platform+"\n", "\nplatform: "+platform+"\nisolation: shared\n", 1)
		if desc == files["butter.yaml"] {
			return 0, fmt.Errorf("%s: no platform line to put isolation: shared after", name)
		}
		files["butter.yaml"] = desc
	}
	if err := produceEvents(ctx, env, f.in, 1); err != nil {
		return 0, err
	}
	res, err := newResults(env, f.out, nil)
	if err != nil {
		return 0, err
	}
	defer res.close()

	start := time.Now()
	if err := p.deploy(ctx, files); err != nil {
		return 0, err
	}
	end, err := res.wait(ctx, 1)
	if err != nil {
		return 0, fmt.Errorf("%s: %w%s", name, err, p.logs())
	}
	return end.Sub(start), nil
}

// codeFiles reads the files of a function's code directory, as deploy
// sends them.
func codeFiles(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read code of %s: %w", dir, err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("code of %s: %s is not a regular file (deploy sends files only)", dir, e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read code of %s: %w", dir, err)
		}
		files[e.Name()] = string(b)
	}
	return files, nil
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	deployersvc "github.com/buttercompass/butter/deployer/service"
	"github.com/buttercompass/butter/proto/descriptor"
)

// UnitMebibytes is a memory size: lower is better.
const UnitMebibytes = "MiB"

// RowIdleNode is the raw row of the idle memory rows: the resident memory
// of a bare node process doing nothing, which a function run as its own
// node process cannot go below.
const RowIdleNode = "idle node process"

// IdleTotalRow names the row of the memory of n idle node deployments
// with runtime rt; kind is "" for resident memory (RSS, or the
// container's usage with docker) or "PSS".
func IdleTotalRow(n int, rt, kind string) string {
	if kind != "" {
		rt += ", " + kind
	}
	return fmt.Sprintf("idle memory %d node functions (%s)", n, rt)
}

// IdlePerFunctionRow names the per-function row of runtime rt.
func IdlePerFunctionRow(rt string) string {
	return fmt.Sprintf("idle memory per node function (%s)", rt)
}

// idleMeasurementName is the name -only matches: every row of it starts
// with "idle memory".
func idleMeasurementName(rt string) string { return fmt.Sprintf("idle memory node functions (%s)", rt) }

// IdleShared is the variant of the idle memory rows whose deployments say
// `isolation: shared`: "process, shared".
func IdleShared(rt string) string { return rt + ", " + descriptor.IsolationShared }

// idleSamples is how many times memory is read, a second apart, once every
// instance is ready and has idled idleSettle; the figure is the median.
const (
	idleSamples = 3
	idleSettle  = 5 * time.Second
)

// idleMemoryMeasurement deploys Config.IdleFunctions node deployments
// (min 1, so each runs one instance) that share one input stream no event
// arrives on, waits until all are ready, lets them idle, and sums their
// memory: with the process runtime the resident memory (VmRSS) and the
// proportional share (Pss) of every fnbox the deployer started and every
// process under it; with docker each container's memory usage as `docker
// stats` shows it (usage less inactive page cache).
//
// With shared (rt "process" only) the deployments say `isolation:
// shared`: their instances run in one pool fnbox and one node host, which
// is counted once; the rows are named with IdleShared(rt).
func idleMemoryMeasurement(rt string, shared bool) func(context.Context, *Env, *Report) error {
	return func(ctx context.Context, env *Env, rep *Report) (err error) {
		n := env.Config.IdleFunctions
		variant := rt
		if shared {
			variant = IdleShared(rt)
		}
		limit := env.Config.FnTimeout + time.Duration(n)*6*time.Second
		ctx, cancel := context.WithTimeoutCause(ctx, limit,
			fmt.Errorf("%s took longer than %s", idleMeasurementName(variant), limit))
		defer cancel()
		ctx, cancelCause := context.WithCancelCause(ctx)
		defer cancelCause(nil)

		if err := measureIdleNode(ctx, rep); err != nil {
			return err
		}
		prefix := fmt.Sprintf("bench-%s-%.1s-idle", env.tag, rt)
		if shared {
			prefix += "-shared"
		}
		var cli *client.Client
		if rt == deployersvc.RuntimeDocker {
			if cli, err = dockerClient(ctx); err != nil {
				return err
			}
			defer cli.Close()
			if err := needImages(ctx, cli); err != nil {
				return err
			}
			defer sweepContainers(cli, env.runPrefix())
		}
		in, out := prefix+"-in", prefix+"-out"
		if err := env.CreateTopics(in, out); err != nil {
			return err
		}
		p, err := startPlatform(ctx, env, prefix+"-deployer", rt, false, cancelCause)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, p.stop()) }()

		names := make([]string, n)
		var slowest time.Duration
		deploying := time.Now()
		for i := range n {
			names[i] = fmt.Sprintf("%s-%03d", prefix, i+1)
			start := time.Now()
			if err := p.deploy(ctx, idleFiles(names[i], in, out, shared)); err != nil {
				return fmt.Errorf("deploy %d of %d: %w", i+1, n, err)
			}
			slowest = max(slowest, time.Since(start))
		}
		deployed := time.Since(deploying)
		for _, name := range names {
			if err := until(ctx, name+" ready", 100*time.Millisecond, func() error { return p.ready(ctx, name, 1) }); err != nil {
				return fmt.Errorf("%w%s", err, p.logs())
			}
		}
		if env.Config.Progress != nil {
			fmt.Fprintf(env.Config.Progress, "bench:   %d deploy calls took %s (the slowest %s), all ready after %s\n",
				n, deployed.Round(time.Millisecond), slowest.Round(time.Millisecond), time.Since(deploying).Round(time.Millisecond))
		}
		if err := pause(ctx, idleSettle); err != nil {
			return err
		}

		var rss, pss []float64
		procs := 0
		for i := range idleSamples {
			if i > 0 {
				if err := pause(ctx, time.Second); err != nil {
					return err
				}
			}
			var r, s float64
			var err error
			if rt == deployersvc.RuntimeDocker {
				r, procs, err = containerMemory(ctx, cli, names)
			} else {
				r, s, procs, err = processMemory(ctx, p, names)
			}
			if err != nil {
				return err
			}
			rss, pss = append(rss, r), append(pss, s)
		}
		total := median(rss)
		rows := []Row{
			{Name: IdleTotalRow(n, variant, ""), Value: total, Unit: UnitMebibytes, NoLimit: true, Count: n},
			{Name: IdlePerFunctionRow(variant), Value: total / float64(n), Unit: UnitMebibytes, Limit: RowIdleNode, Count: n},
		}
		what := fmt.Sprintf("the resident memory (VmRSS of `/proc/<pid>/status`) of every process the deployer started "+
			"(each deployment's fnbox, the binary of the run) and every process under them (the node runtime), %d processes "+
			"in all. RSS counts pages shared between processes (node's and fnbox's code) once per process; the PSS row "+
			"(`/proc/<pid>/smaps_rollup`) splits each shared page between the processes that map it, so it sums to what "+
			"they take together. A process under several instances (the pool fnbox of `isolation: shared` deployments and its "+
			"one node host) is counted once. The issue's goal for the process runtime is ≤ 300 MiB for 100 functions", procs)
		if rt == deployersvc.RuntimeDocker {
			what = fmt.Sprintf("the memory usage of each of the %d containers (labelled `butter.deployment`) as `docker "+
				"stats` shows it: the container's cgroup usage less its inactive page cache (`total_inactive_file`), which "+
				"holds fnbox and node and the files they read", procs)
		} else {
			rows = append(rows, Row{Name: IdleTotalRow(n, variant, "PSS"), Value: median(pss), Unit: UnitMebibytes, NoLimit: true, Count: n})
		}
		isolation := ""
		if shared {
			isolation = " and `isolation: shared`"
		}
		rep.Note(fmt.Sprintf("**idle memory %d node functions (%s), per node function**: %d node deployments of the no-op "+
			"function deployed through the deployer (`deployer/service` in-process, runtime %s) with `scale.min` 1%s, one "+
			"instance each, all bound to one stream no event arrives on; once every instance is ready and has idled %s, %s. "+
			"Median of %d readings a second apart; per function is the total ÷ %d. Limit of the per-function row: %s.",
			n, variant, n, rt, isolation, idleSettle, what, idleSamples, n, RowIdleNode))
		return rep.Add(rows...)
	}
}

// idleFiles is the code of one idle node deployment, shared or not.
func idleFiles(name, in, out string, shared bool) map[string]string {
	isolation := descriptor.IsolationProcess
	if shared {
		isolation = descriptor.IsolationShared
	}
	return map[string]string{
		"handler.js": noopJS,
		"butter.yaml": fmt.Sprintf(`# Idle node function of the bench (e2e/internal/bench).
name: %s
platform: node
isolation: %s
functions:
  - fn: handler.js:%s
    name: %s
    bindings:
      streams: [{ name: %s }]
      out: %s
    scale: { min: 1 }
`, name, isolation, fnName, fnName, in, out),
	}
}

// measureIdleNode adds RowIdleNode, unless an earlier measurement of the
// run did: the resident memory of `node -e` with a timer keeping it alive,
// once it has idled idleSettle.
func measureIdleNode(ctx context.Context, rep *Report) error {
	if _, ok := rep.Row(RowIdleNode); ok {
		return nil
	}
	cmd := exec.CommandContext(ctx, "node", "-e", "setInterval(() => {}, 1 << 30)")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node (the idle memory rows need node on PATH): %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if err := pause(ctx, idleSettle); err != nil {
		return err
	}
	st, err := readMemory(cmd.Process.Pid)
	if err != nil {
		return err
	}
	rep.Note(fmt.Sprintf("**%s**: the resident memory (VmRSS) of a bare `node -e 'setInterval(() => {}, 1 << 30)'` "+
		"%s after it started: what one function run as its own node process cannot go below. It is the limit of "+
		"the per-function idle memory rows (a ratio above 1 is what fnbox and the runtime's host add per function).",
		RowIdleNode, idleSettle))
	return rep.Add(Row{Name: RowIdleNode, Value: st.rss, Unit: UnitMebibytes, Count: 1})
}

// processMemory sums, in MiB, the RSS and PSS of the instances of the
// deployments names (their fnbox, whose pids the deployer reports) and of
// every process under them; procs is how many processes that is.
func processMemory(ctx context.Context, p *platform, names []string) (rss, pss float64, procs int, err error) {
	children, err := childrenOf()
	if err != nil {
		return 0, 0, 0, err
	}
	counted := map[int]bool{}
	for _, name := range names {
		d, err := p.status(ctx, name)
		if err != nil {
			return 0, 0, 0, err
		}
		if len(d.Instances) != 1 || d.Instances[0].PID == 0 {
			return 0, 0, 0, fmt.Errorf("%s has instances %+v, want one with a pid", name, d.Instances)
		}
		for _, pid := range tree(children, d.Instances[0].PID) {
			if counted[pid] {
				continue // a pool's, counted with an earlier deployment
			}
			counted[pid] = true
			m, err := readMemory(pid)
			if err != nil {
				return 0, 0, 0, err
			}
			rss, pss, procs = rss+m.rss, pss+m.pss, procs+1
		}
	}
	return rss, pss, procs, nil
}

// childrenOf maps each process of /proc to its children.
func childrenOf() (map[int][]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes (the process idle memory rows need Linux /proc): %w", err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // it exited since the listing
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := b[bytes.LastIndexByte(b, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	return children, nil
}

// tree returns pid and every process under it.
func tree(children map[int][]int, pid int) []int {
	out := []int{pid}
	for _, c := range children[pid] {
		out = append(out, tree(children, c)...)
	}
	return out
}

// memory is one process's resident and proportional set size, in MiB.
type memory struct{ rss, pss float64 }

// readMemory reads VmRSS from /proc/pid/status and Pss from
// /proc/pid/smaps_rollup.
func readMemory(pid int) (memory, error) {
	var m memory
	for _, f := range []struct {
		file, key string
		into      *float64
	}{{"status", "VmRSS:", &m.rss}, {"smaps_rollup", "Pss:", &m.pss}} {
		kb, err := procField(pid, f.file, f.key)
		if err != nil {
			return memory{}, err
		}
		*f.into = kb / 1024
	}
	return m, nil
}

// procField returns the figure, in kB, of the line starting with key in
// /proc/pid/file.
func procField(pid int, file, key string) (float64, error) {
	path := filepath.Join("/proc", strconv.Itoa(pid), file)
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				return strconv.ParseFloat(fs[0], 64)
			}
		}
	}
	return 0, fmt.Errorf("read memory of process %d: no %s line in %s", pid, key, path)
}

// containerMemory sums, in MiB, the memory usage of the running
// containers of the deployments names, as `docker stats` computes it;
// n is how many containers that is.
func containerMemory(ctx context.Context, cli *client.Client, names []string) (mib float64, n int, err error) {
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("label", labelDeployment)})
	if err != nil {
		return 0, 0, fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, c := range res.Items {
		if slices.Contains(names, c.Labels[labelDeployment]) {
			ids = append(ids, c.ID)
		}
	}
	// A few at a time: one stats call takes the engine a fifth of a
	// second, and a hundred in a row would spread a reading over half a
	// minute.
	used := make([]uint64, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, statsAtOnce)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			used[i], errs[i] = containerUsed(ctx, cli, id)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	for _, u := range used {
		mib += float64(u) / (1 << 20)
	}
	n = len(ids)
	if n != len(names) {
		return 0, 0, fmt.Errorf("%d running containers for %d deployments", n, len(names))
	}
	return mib, n, nil
}

// statsAtOnce is how many stats calls containerMemory makes at once.
const statsAtOnce = 8

// containerUsed reads one sample of a container's stats and returns its
// used memory in bytes.
func containerUsed(ctx context.Context, cli *client.Client, id string) (uint64, error) {
	st, err := cli.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return 0, fmt.Errorf("stats of container %s: %w", id, err)
	}
	defer st.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(st.Body).Decode(&s); err != nil {
		return 0, fmt.Errorf("decode stats of container %s: %w", id, err)
	}
	return usedMemory(s.MemoryStats), nil
}

// usedMemory is the docker CLI's figure: usage less the inactive page
// cache (cgroup v1 total_inactive_file, v2 inactive_file).
func usedMemory(m container.MemoryStats) uint64 {
	for _, key := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := m.Stats[key]; ok && v < m.Usage {
			return m.Usage - v
		}
	}
	return m.Usage
}

// median returns the middle of vs (the mean of the two middle ones for an
// even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pause lets d pass (memory is read after idling, not on a condition), or
// returns why ctx ended first.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Rows of the gateway as a user runs it: `butter up` (a separate process
// with the embedded broker, every service and its fnbox instances) and
// `butter deploy` of the node no-op route.
const (
	// RowUpP50 is the median round trip of one sequential client.
	RowUpP50 = "gateway via butter up p50, 1 client"
	// RowUpP99 is the 99th percentile round trip of one sequential client.
	RowUpP99 = "gateway via butter up p99, 1 client"
)

// UpRateRow names the throughput row of clients concurrent clients
// through butter up.
func UpRateRow(clients int) string { return fmt.Sprintf("gateway via butter up, %d clients", clients) }

// UpLoadP50Row names the p50 row of clients concurrent clients through
// butter up.
func UpLoadP50Row(clients int) string {
	return fmt.Sprintf("gateway via butter up p50, %d clients", clients)
}

// UpLoadP99Row names the p99 row of clients concurrent clients through
// butter up.
func UpLoadP99Row(clients int) string {
	return fmt.Sprintf("gateway via butter up p99, %d clients", clients)
}

// loadFigures are what one load client measured against one server: one
// sequential client, then Config.GatewayClients at once.
type loadFigures struct {
	one, load []time.Duration
	elapsed   time.Duration
}

func (l loadFigures) rate() float64 { return rate(len(l.load), l.elapsed) }

// measureLoad runs the bench's load client against c: Config.Requests
// sequential requests after Config.Warmup, then Config.GatewayLoad from
// Config.GatewayClients clients after two each of warm-up.
func measureLoad(ctx context.Context, cfg Config, c *caller) (loadFigures, error) {
	one, err := c.sequential(ctx, cfg.Warmup, cfg.Requests)
	if err != nil {
		return loadFigures{}, fmt.Errorf("one client: %w", err)
	}
	load, elapsed, err := c.concurrent(ctx, cfg.GatewayClients, 2, cfg.GatewayLoad)
	if err != nil {
		return loadFigures{}, fmt.Errorf("%d clients: %w", cfg.GatewayClients, err)
	}
	return loadFigures{one: one, load: load, elapsed: elapsed}, nil
}

// measureButterUp measures the gateway as a user runs it: the butter
// command (built for the run) runs `butter up` on a data directory of its
// own, with its own embedded broker, on random ports; `butter deploy`
// deploys the node no-op route; the load client of measureGateway calls
// it. Nothing of it shares the run's broker or process.
func measureButterUp(ctx context.Context, env *Env, rep *Report) error {
	cfg := env.Config
	figs, err := runButterUp(ctx, env, "butter-up")
	if err != nil {
		return err
	}
	rep.Note(fmt.Sprintf("**gateway via butter up**: as a user runs it: the `butter` command (built for the run) runs "+
		"`butter up --data <fresh dir>` as its own process, with its own embedded broker and every service on random "+
		"ports and default settings (traces sampled at 1); `butter deploy` deploys the same node no-op route (`%s`, "+
		"`ordering: none`, `concurrency: %d`), which the deployer runs as a fnbox process. The load client is the one "+
		"of the in-process gateway rows: one client, %d sequential requests after %d warm-up, then %d clients making "+
		"%d requests together.", gatewayContext, gatewayConcurrency, cfg.Requests, cfg.Warmup, cfg.GatewayClients, cfg.GatewayLoad))
	return rep.Add(
		Row{Name: RowUpP50, Value: ms(percentile(figs.one, 0.50)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(figs.one)},
		Row{Name: RowUpP99, Value: ms(percentile(figs.one, 0.99)), Unit: UnitMilliseconds, Limit: RowReplyP99, Count: len(figs.one)},
		Row{Name: UpRateRow(cfg.GatewayClients), Value: figs.rate(), Unit: UnitRequestsPerSecond, NoLimit: true, Count: len(figs.load)},
		Row{Name: UpLoadP50Row(cfg.GatewayClients), Value: ms(percentile(figs.load, 0.50)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(figs.load)},
		Row{Name: UpLoadP99Row(cfg.GatewayClients), Value: ms(percentile(figs.load, 0.99)), Unit: UnitMilliseconds, Limit: RowReplyP99, Count: len(figs.load)},
	)
}

// rowUpUntraced prefixes the rows of butter up with --trace-sample 0.
const rowUpUntraced = "gateway via butter up --trace-sample 0"

// measureButterUpUntraced is measureButterUp with traces off: beside it,
// it shows what recording and indexing every request's spans costs.
func measureButterUpUntraced(ctx context.Context, env *Env, rep *Report) error {
	cfg := env.Config
	figs, err := runButterUp(ctx, env, "butter-up-untraced", "--trace-sample", "0")
	if err != nil {
		return err
	}
	rep.Note(fmt.Sprintf("**%s**: the same as gateway via butter up, with `butter up --trace-sample 0`: no request is "+
		"traced, so the tracer indexes no spans of them. The difference from the rows with default settings is what "+
		"tracing every request costs on this machine.", rowUpUntraced))
	return rep.Add(
		Row{Name: rowUpUntraced + " p50, 1 client", Value: ms(percentile(figs.one, 0.50)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(figs.one)},
		Row{Name: rowUpUntraced + " p99, 1 client", Value: ms(percentile(figs.one, 0.99)), Unit: UnitMilliseconds, Limit: RowReplyP99, Count: len(figs.one)},
		Row{Name: fmt.Sprintf("%s, %d clients", rowUpUntraced, cfg.GatewayClients), Value: figs.rate(), Unit: UnitRequestsPerSecond, NoLimit: true, Count: len(figs.load)},
		Row{Name: fmt.Sprintf("%s p99, %d clients", rowUpUntraced, cfg.GatewayClients), Value: ms(percentile(figs.load, 0.99)), Unit: UnitMilliseconds, Limit: RowReplyP99, Count: len(figs.load)},
	)
}

// runButterUp runs `butter up` with upArgs on a fresh data directory
// (work directory name), deploys the route and measures it with the load
// client.
func runButterUp(ctx context.Context, env *Env, name string, upArgs ...string) (loadFigures, error) {
	cfg := env.Config
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.FnTimeout+time.Minute,
		fmt.Errorf("the butter up measurement took longer than %s (Config.FnTimeout and a minute to build)", cfg.FnTimeout+time.Minute))
	defer cancel()
	butter, err := env.build(ctx, "butter", "github.com/buttercompass/butter/cli/cmd/butter")
	if err != nil {
		return loadFigures{}, err
	}
	data, err := env.workDir(name)
	if err != nil {
		return loadFigures{}, err
	}
	code, err := env.workDir(name + "-route")
	if err != nil {
		return loadFigures{}, err
	}
	if _, err := writeRouteFunction(code); err != nil {
		return loadFigures{}, err
	}
	args := append([]string{"up", "--data", data, "--broker-addr", "127.0.0.1:0", "--admin-addr", ""}, upArgs...)
	for _, s := range []string{"deployer", "gateway", "timer", "loadmon", "tracer", "bridge"} {
		args = append(args, "--"+s+"-addr", "127.0.0.1:0")
	}
	up, err := startProcess("butter up", exec.Command(butter, args...), 40)
	if err != nil {
		return loadFigures{}, err
	}
	figs, err := func() (loadFigures, error) {
		ctxFile := filepath.Join(data, "context.json")
		gateway, err := upGateway(ctx, up, ctxFile)
		if err != nil {
			return loadFigures{}, err
		}
		dctx, dcancel := context.WithTimeout(ctx, cfg.FnTimeout)
		defer dcancel()
		deploy := exec.CommandContext(dctx, butter, "deploy", code)
		deploy.Env = append(os.Environ(), "BUTTER_CONTEXT="+ctxFile)
		if out, err := deploy.CombinedOutput(); err != nil {
			return loadFigures{}, fmt.Errorf("butter deploy %s: %w\n%s%s", code, err, out, up.logs)
		}
		c := newCaller(strings.TrimRight(gateway, "/")+gatewayContext, cfg.GatewayClients, cfg.ReplyTimeout, nil)
		defer c.hc.CloseIdleConnections()
		if err := c.waitRoute(ctx, cfg.ReplyTimeout); err != nil {
			return loadFigures{}, fmt.Errorf("%w%s", err, up.logs)
		}
		figs, err := measureLoad(ctx, cfg, c)
		if err != nil {
			return loadFigures{}, fmt.Errorf("%w%s", err, up.logs)
		}
		return figs, nil
	}()
	return figs, errors.Join(err, up.stop())
}

// upGateway waits for butter up to write its context file and returns the
// gateway's base URL from it.
func upGateway(ctx context.Context, up *process, ctxFile string) (string, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(ctxFile); err == nil {
			var c struct {
				Gateway string `json:"gateway"`
			}
			if json.Unmarshal(b, &c) == nil && c.Gateway != "" {
				return c.Gateway, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for butter up to write %s: %w%s", ctxFile, context.Cause(ctx), up.logs)
		case <-up.done:
			return "", fmt.Errorf("butter up stopped before it was up: %v%s", up.err, up.logs)
		case <-t.C:
		}
	}
}

// process is a command the bench started and stops.
type process struct {
	name  string
	cmd   *exec.Cmd
	group bool // it runs in a process group of its own
	logs  *tailWriter
	done  chan struct{} // closed when it exited; err is then set
	err   error
}

// startProcess starts cmd with its output kept in a tail of lines lines.
func startProcess(name string, cmd *exec.Cmd, lines int) (*process, error) {
	return start(&process{name: name, cmd: cmd, logs: &tailWriter{max: lines}, done: make(chan struct{})})
}

// startGroup is startProcess for a command that starts children of its
// own and does not stop them (of-watchdog leaves its function process
// running): it runs in a process group of its own, and stop ends the
// whole group.
func startGroup(name string, cmd *exec.Cmd, lines int) (*process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return start(&process{name: name, cmd: cmd, group: true, logs: &tailWriter{max: lines}, done: make(chan struct{})})
}

func start(p *process) (*process, error) {
	name, cmd := p.name, p.cmd
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop interrupts the process, as Ctrl-C would (a group: terminates
// it), and waits up to 30s for it to exit before killing it. What is left
// of a group is killed.
func (p *process) stop() error {
	if p.group {
		// Whatever happens, no child outlives the bench.
		defer func() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }()
	}
	select {
	case <-p.done:
		return fmt.Errorf("%s exited by itself: %v%s", p.name, p.err, p.logs)
	default:
	}
	if p.group {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	} else {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within 30s of being asked to; killed%s", p.name, p.logs)
	}
}

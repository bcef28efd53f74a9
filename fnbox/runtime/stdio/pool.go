package stdio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/buttercompass/butter/fnbox/runtime"
)

// Pool runs the functions of many node (or python) deployments in one
// shared host process: `isolation: shared`. The host starts at NewPool,
// before any code is known, so adding a deployment costs a load, not an
// interpreter start. Every Add is a set of its own in the host (see
// protocol.go): two deployments, or two versions of one during a rolling
// update, never share a handler.
//
// A host that dies (a crash, process.exit in one function, a kill after a
// stuck invocation) fails the invocations in flight of every deployment;
// the next Invoke starts a new host and loads every deployment added into
// it again.
type Pool struct {
	cfg    hostConfig
	logger *slog.Logger
	tmp    string // holds the host script; the host's working directory
	seq    atomic.Uint64

	startMu sync.Mutex // serialises host starts
	mu      sync.Mutex // guards proc, members and closed
	proc    *hostProc
	members map[string]*member // by set
	closed  bool
}

var _ runtime.Pool = (*Pool)(nil)

// member is one Add: a deployment's functions in the pool's host.
type member struct {
	pool   *Pool
	set    string
	spec   runtime.Spec
	fns    functions
	logger *slog.Logger

	loadMu sync.Mutex // serialises loading the set into a new host
	gate   runtime.Gate
}

var _ runtime.Runtime = (*member)(nil)

// NewPool starts a shared host for platform (descriptor.PlatformNode or
// PlatformPython) and returns the pool that loads deployments into it.
// Output of the host that no invocation or load owns goes to logger.
func NewPool(platform string, logger *slog.Logger) (runtime.Pool, error) {
	plat, ok := platforms[platform]
	if !ok {
		return nil, fmt.Errorf("start stdio pool: platform %q: a shared host runs node or python", platform)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("platform", plat.name, "pool", true)
	tmp, script, err := writeScript(plat)
	if err != nil {
		return nil, fmt.Errorf("start %s pool: %w", plat.name, err)
	}
	// One process has one environment: fnbox's and the platform's, no
	// deployment's (Add refuses a deployment with env).
	env := append(os.Environ(), plat.env...)
	prog, extra := interpreter(plat.command, tmp, env)
	pl := &Pool{logger: logger, tmp: tmp, members: map[string]*member{}}
	pl.cfg = hostConfig{
		plat: plat, prog: prog, script: script, args: []string{"--shared"},
		// Not any deployment's dir: shared functions find their files
		// relative to their module, never to the working directory.
		dir: tmp, env: append(env, extra...),
		stdout: &runtime.LineWriter{Dst: logWriter{logger, slog.LevelInfo, "stdout"}},
		stderr: &runtime.LineWriter{Dst: logWriter{logger, slog.LevelWarn, "stderr"}},
		logger: logger, output: pl.output,
	}
	p, err := startProc(&pl.cfg)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("start %s pool: %w", plat.name, err)
	}
	pl.proc = p
	return pl, nil
}

// HostPID is the process id of the pool's running host, 0 when there is
// none (it died and no Invoke started another yet).
func (pl *Pool) HostPID() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.proc == nil || !pl.proc.alive() {
		return 0
	}
	return pl.proc.cmd.Process.Pid
}

// Add loads spec's functions into the shared host. A deployment with an
// environment of its own (env, secretEnv, Spec.Env) is refused: the host
// has one environment for all. A function that does not load fails Add
// with an error wrapping runtime.ErrLoad; the host and the other
// deployments go on.
func (pl *Pool) Add(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error) {
	plat, fns, err := specFunctions(&spec)
	if err != nil {
		return nil, fmt.Errorf("add to %s pool: %w", pl.cfg.plat.name, err)
	}
	if plat.name != pl.cfg.plat.name {
		return nil, fmt.Errorf("add %q to the %s pool: its platform is %s", spec.Deployment.Name, pl.cfg.plat.name, spec.Deployment.Platform)
	}
	if len(spec.Deployment.Env) > 0 || len(spec.Deployment.SecretEnv) > 0 || len(spec.Env) > 0 {
		return nil, fmt.Errorf("add %q to the %s pool: a shared host has one environment for every deployment in it, so a deployment with env or secretEnv needs isolation: process", spec.Deployment.Name, plat.name)
	}
	m := &member{
		pool: pl, spec: spec, fns: fns,
		// Unique per Add: a rolling update adds the same deployment twice.
		set:    spec.Deployment.Name + "#" + strconv.FormatUint(pl.seq.Add(1), 10),
		logger: pl.logger.With("deployment", spec.Deployment.Name),
	}
	p, err := pl.host(ctx)
	if err != nil {
		return nil, fmt.Errorf("add %q to the %s pool: %w", spec.Deployment.Name, plat.name, err)
	}
	// Registered first, so its output during the load finds it.
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil, fmt.Errorf("add %q to the %s pool: the pool is closed", spec.Deployment.Name, plat.name)
	}
	pl.members[m.set] = m
	pl.mu.Unlock()
	if err := p.load(ctx, m.set, fns.loads, spec.Dir); err != nil {
		pl.remove(m)
		return nil, fmt.Errorf("add %q to the %s pool: %w", spec.Deployment.Name, plat.name, err)
	}
	return m, nil
}

// remove forgets m and unloads it from the running host (and from a host
// being started, which checks members once it loaded them).
func (pl *Pool) remove(m *member) {
	pl.mu.Lock()
	delete(pl.members, m.set)
	p := pl.proc
	pl.mu.Unlock()
	if p != nil && p.alive() {
		p.unload(m.set)
	}
}

// host returns the running host, starting a new one and loading every
// member into it if the last one died.
func (pl *Pool) host(ctx context.Context) (*hostProc, error) {
	pl.mu.Lock()
	p, closed := pl.proc, pl.closed
	pl.mu.Unlock()
	if closed {
		return nil, errors.New("the pool is closed")
	}
	if p != nil && p.alive() {
		return p, nil
	}
	pl.startMu.Lock()
	defer pl.startMu.Unlock()
	pl.mu.Lock()
	p, closed = pl.proc, pl.closed
	members := make([]*member, 0, len(pl.members))
	for _, m := range pl.members {
		members = append(members, m)
	}
	pl.mu.Unlock()
	if closed {
		return nil, errors.New("the pool is closed")
	}
	if p != nil && p.alive() {
		return p, nil // another caller started it
	}
	if p != nil {
		pl.logger.Warn("shared function host exited; starting a new one and loading every deployment again", "err", p.err, "deployments", len(members))
	}
	p, err := startProc(&pl.cfg)
	if err != nil {
		return nil, fmt.Errorf("restart %s host: %w", pl.cfg.plat.name, err)
	}
	// Loaded one by one here, so the others do not wait for the
	// deployments' own first invocations; one that fails now is tried
	// again by its next Invoke (ensure).
	for _, m := range members {
		if err := p.load(ctx, m.set, m.fns.loads, m.spec.Dir); err != nil {
			m.logger.Error("load functions into the new shared host", "err", err)
		}
	}
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		p.kill()
		return nil, errors.New("the pool is closed")
	}
	pl.proc = p
	var gone []string
	for _, m := range members {
		if pl.members[m.set] == nil {
			gone = append(gone, m.set) // closed while it loaded
		}
	}
	pl.mu.Unlock()
	for _, set := range gone {
		p.unload(set)
	}
	return p, nil
}

// output writes a line a set's invocation or load printed to its
// deployment's Stdout or Stderr; a set that is gone (output after its
// Close) goes to the pool's log.
func (pl *Pool) output(msg hostMsg) {
	pl.mu.Lock()
	m := pl.members[msg.Set]
	pl.mu.Unlock()
	var w io.Writer
	if m != nil {
		w = m.spec.Stdout
		if msg.Op == "stderr" {
			w = m.spec.Stderr
		}
		if w != nil {
			w.Write([]byte(msg.Message)) // a failing log sink must not fail the host
		}
		return
	}
	pl.logger.Info("output of a deployment no longer in the pool", "set", msg.Set, "stream", msg.Op, "invocation", msg.ID, "msg", msg.Message)
}

// Close stops the host once the invocations of every deployment in it
// ended, or ctx is done.
func (pl *Pool) Close(ctx context.Context) error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.closed = true
	members := make([]*member, 0, len(pl.members))
	for _, m := range pl.members {
		members = append(members, m)
	}
	pl.mu.Unlock()
	defer os.RemoveAll(pl.tmp)
	var errs []error
	for _, m := range members {
		if _, err := m.gate.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %q: %w", m.spec.Deployment.Name, err))
		}
	}
	// host starts none after closed: this is the last.
	pl.startMu.Lock()
	pl.mu.Lock()
	p := pl.proc
	pl.mu.Unlock()
	pl.startMu.Unlock()
	if p != nil {
		if err := p.stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Invoke runs one invocation of the deployment's function in the shared
// host, with the deadline handling of Runtime.Invoke: a host stuck past a
// deadline is killed, and with it every deployment's invocations in flight.
func (m *member) Invoke(ctx context.Context, inv runtime.Invocation, host runtime.Host) (runtime.Result, error) {
	if !m.fns.has(inv.Function) {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, runtime.ErrUnknownFunction)
	}
	ctx, done, err := m.gate.Enter(ctx, inv)
	if err != nil {
		return runtime.Result{}, err
	}
	defer done()
	p, err := m.ensure(ctx)
	if err != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, err)
	}
	return p.run(ctx, m.set, m.fns.batch[inv.Function], inv, host)
}

// ensure returns the pool's running host with m's functions loaded: a host
// started after a crash loads every member, but one whose load failed
// then is tried again here.
func (m *member) ensure(ctx context.Context) (*hostProc, error) {
	p, err := m.pool.host(ctx)
	if err != nil {
		return nil, err
	}
	if p.loaded(m.set) {
		return p, nil
	}
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	if p.loaded(m.set) {
		return p, nil
	}
	if err := p.load(ctx, m.set, m.fns.loads, m.spec.Dir); err != nil {
		return nil, fmt.Errorf("load into the new shared host: %w", err)
	}
	return p, nil
}

// Close waits for the deployment's invocations in flight until ctx is
// done, then unloads its functions from the shared host, which goes on
// serving the others.
func (m *member) Close(ctx context.Context) error {
	first, err := m.gate.Close(ctx)
	if !first {
		return nil
	}
	m.pool.remove(m)
	return err
}

// logWriter logs each line written to it: a shared host's own output.
type logWriter struct {
	logger *slog.Logger
	level  slog.Level
	stream string
}

func (w logWriter) Write(b []byte) (int, error) {
	line := strings.TrimSuffix(string(b), "\n")
	w.logger.Log(context.Background(), w.level, "output of the shared host outside any invocation", "stream", w.stream, "msg", line)
	return len(b), nil
}

// Package stdio runs node and python functions (DESIGN §5): one long-lived
// host process per Runtime hosts every function of the deployment, and
// fnbox talks to it in JSON lines over two extra file descriptors (see
// protocol.go), so the user's stdout and stderr stay free and go to
// Spec.Stdout and Spec.Stderr.
//
// The host programs are embedded (host.js, host.py) and written to a
// temporary directory at Start. If the host dies, the invocations in flight
// fail and the next Invoke starts a new host.
//
// A Pool (pool.go) runs the functions of many `isolation: shared`
// deployments in one such host, started before any code is known; Start
// and the Pool share the process handling (host.go).
package stdio

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
)

var (
	//go:embed host.js
	hostJS []byte
	//go:embed host.py
	hostPy []byte
)

// loadTimeout bounds how long a host may take to load the functions; code
// that blocks at import time would otherwise hang Start forever.
const loadTimeout = 30 * time.Second

// platform is how to run one language's host.
type platform struct {
	name, command string
	args          []string
	script        []byte
	file          string
	env           []string
	install       string
}

// platforms are the languages this package runs, by descriptor platform.
var platforms = map[string]platform{
	descriptor.PlatformNode: {
		name: "node", command: "node", script: hostJS, file: "host.js",
		install: "install Node.js 20 or later and put node on PATH, e.g. apt-get install -y nodejs",
	},
	descriptor.PlatformPython: {
		name: "python", command: "python3", args: []string{"-u"}, script: hostPy, file: "host.py",
		// Unbuffered, so print() lines reach the logs when printed.
		env:     []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
		install: "install Python 3.9 or later and put python3 on PATH, e.g. apt-get install -y python3",
	},
}

// Runtime runs a deployment's node or python functions in one host process.
type Runtime struct {
	spec   runtime.Spec
	cfg    hostConfig
	logger *slog.Logger
	fns    functions
	tmp    string // holds the host script

	mu   sync.Mutex // guards proc; held while a host starts
	proc *hostProc
	gate runtime.Gate
}

var _ runtime.Runtime = (*Runtime)(nil)

// functions are the functions of a spec a host loads.
type functions struct {
	loads []loadFn
	batch map[string]bool // functions whose handler always gets an array
}

// has reports whether fn is one of them.
func (f functions) has(fn string) bool {
	return slices.ContainsFunc(f.loads, func(l loadFn) bool { return l.Name == fn })
}

// specFunctions checks spec and lists the functions it runs; spec.Dir is
// made absolute.
func specFunctions(spec *runtime.Spec) (platform, functions, error) {
	if spec.Deployment == nil {
		return platform{}, functions{}, errors.New("spec has no deployment")
	}
	plat, ok := platforms[spec.Deployment.Platform]
	if !ok {
		return platform{}, functions{}, fmt.Errorf("platform %q: this runtime runs node and python", spec.Deployment.Platform)
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return plat, functions{}, fmt.Errorf("code dir: %w", err)
	}
	spec.Dir = dir
	fns := functions{batch: map[string]bool{}}
	for _, f := range spec.Deployment.Functions {
		if len(spec.Functions) > 0 && !slices.Contains(spec.Functions, f.Name) {
			continue
		}
		file, export, ok := strings.Cut(f.Fn, ":")
		if !ok || file == "" || export == "" {
			return plat, fns, fmt.Errorf("function %q: fn %q is not <file>:<export>: %w", f.Name, f.Fn, runtime.ErrLoad)
		}
		fns.loads = append(fns.loads, loadFn{Name: f.Name, File: file, Export: export})
		fns.batch[f.Name] = f.Delivery.Batch > 1
	}
	if len(fns.loads) == 0 {
		return plat, fns, fmt.Errorf("none of the functions %v is in deployment %q", spec.Functions, spec.Deployment.Name)
	}
	return plat, fns, nil
}

// writeScript writes plat's host program into a new temporary directory.
func writeScript(plat platform) (tmp, script string, err error) {
	tmp, err = os.MkdirTemp("", "butter-"+plat.name+"-host-")
	if err != nil {
		return "", "", err
	}
	script = filepath.Join(tmp, plat.file)
	if err := os.WriteFile(script, plat.script, 0o600); err != nil {
		os.RemoveAll(tmp)
		return "", "", fmt.Errorf("write host program: %w", err)
	}
	return tmp, script, nil
}

// Start starts the host for spec's node or python deployment and loads its
// functions. A function that does not load (syntax error, missing export,
// exception at import) fails Start with an error wrapping runtime.ErrLoad
// that names the file and line.
func Start(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error) {
	plat, fns, err := specFunctions(&spec)
	if err != nil {
		if plat.name == "" {
			return nil, fmt.Errorf("start stdio runtime: %w", err)
		}
		return nil, fmt.Errorf("start %s runtime: %w", plat.name, err)
	}
	r := &Runtime{spec: spec, logger: spec.Logger, fns: fns}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	r.logger = r.logger.With("deployment", spec.Deployment.Name, "platform", plat.name)
	env := buildEnv(spec, plat.env)
	prog, extra := interpreter(plat.command, spec.Dir, env)
	r.tmp, r.cfg.script, err = writeScript(plat)
	if err != nil {
		return nil, fmt.Errorf("start %s runtime: %w", plat.name, err)
	}
	r.cfg = hostConfig{
		plat: plat, prog: prog, script: r.cfg.script, dir: spec.Dir, env: append(env, extra...),
		stdout: spec.Stdout, stderr: spec.Stderr, logger: r.logger,
	}
	p, err := r.startHost(ctx)
	if err != nil {
		os.RemoveAll(r.tmp)
		return nil, fmt.Errorf("start %s runtime for %q: %w", plat.name, spec.Deployment.Name, err)
	}
	r.proc = p
	return r, nil
}

// startHost starts a host and loads the functions in it.
func (r *Runtime) startHost(ctx context.Context) (*hostProc, error) {
	p, err := startProc(&r.cfg)
	if err != nil {
		return nil, err
	}
	if err := p.load(ctx, "", r.fns.loads, r.spec.Dir); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// buildEnv is the host's environment: fnbox's own (PATH, HOME...), then the
// platform's, the descriptor's env, then Spec.Env, later ones winning.
func buildEnv(spec runtime.Spec, platEnv []string) []string {
	env := append(os.Environ(), platEnv...)
	for _, m := range []map[string]string{spec.Deployment.Env, spec.Env} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			env = append(env, k+"="+m[k])
		}
	}
	return env
}

// host returns the running host, starting a new one if the last one died.
func (r *Runtime) host(ctx context.Context) (*hostProc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gate.Closed() {
		return nil, errors.New("runtime is closed")
	}
	if r.proc != nil && r.proc.alive() {
		return r.proc, nil
	}
	if r.proc != nil {
		r.logger.Warn("function host exited; starting a new one", "err", r.proc.err)
	}
	p, err := r.startHost(ctx)
	if err != nil {
		return nil, fmt.Errorf("restart %s host: %w", r.cfg.plat.name, err)
	}
	r.proc = p
	return p, nil
}

// Invoke runs one invocation in the host. The deadline is enforced here:
// past it Invoke returns runtime.ErrTimeout and ignores the host's late
// reply (a python task is cancelled; node cannot stop a running call), and
// a host that has not finished the call stuckGrace later is killed.
func (r *Runtime) Invoke(ctx context.Context, inv runtime.Invocation, host runtime.Host) (runtime.Result, error) {
	if !r.fns.has(inv.Function) {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, runtime.ErrUnknownFunction)
	}
	ctx, done, err := r.gate.Enter(ctx, inv)
	if err != nil {
		return runtime.Result{}, err
	}
	defer done()
	p, err := r.host(ctx)
	if err != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, err)
	}
	return p.run(ctx, "", r.fns.batch[inv.Function], inv, host)
}

// run runs one invocation of set's function in the host and waits for its
// result, its deadline or the host's end.
func (p *hostProc) run(ctx context.Context, set string, batch bool, inv runtime.Invocation, host runtime.Host) (runtime.Result, error) {
	msg := invokeMsg{Set: set, Fn: inv.Function, Batch: batch}
	msg.TraceParent, msg.TraceState = runtime.TraceParent(ctx)
	if d, ok := ctx.Deadline(); ok {
		msg.Deadline = d.UnixMilli()
	}
	for _, d := range inv.Events {
		msg.Events = append(msg.Events, toWire(d))
	}
	v, err := p.invoke(ctx, host, msg)
	if err != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, err)
	}
	defer v.end()
	select {
	case m := <-v.reply:
		return result(inv.Function, m)
	case <-p.done:
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, p.err)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			p.timedOut(v.id)
			return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, runtime.ErrTimeout)
		}
		p.forget(v.id)
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, ctx.Err())
	}
}

// result turns the host's reply into a Result or FunctionError.
func result(fn string, m hostMsg) (runtime.Result, error) {
	if m.Error != nil {
		return runtime.Result{}, &runtime.FunctionError{Message: m.Error.Message, Stack: m.Error.Stack}
	}
	data, ct, err := decodeData(m.Result, m.ContentType, m.Base64)
	if err != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", fn, err)
	}
	return runtime.Result{Data: data, ContentType: ct}, nil
}

// Close waits for invocations in flight until ctx is done, then asks the
// host to exit, killing it if it does not go before ctx is done.
func (r *Runtime) Close(ctx context.Context) error {
	if first, _ := r.gate.Close(ctx); !first {
		return nil
	}
	defer os.RemoveAll(r.tmp)
	// host refuses to start one after the gate closed, so this is the last.
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(ctx)
}

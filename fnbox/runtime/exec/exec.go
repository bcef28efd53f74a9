// Package exec runs exec-platform functions (DESIGN §5): fn is a command
// line, run once per invocation in the deployment's directory, without a
// shell. The event arrives on stdin as structured-mode CloudEvents JSON (a
// JSON array when delivery.batch > 1), stdout is the result (JSON when it
// parses as JSON, else text; empty is no result), stderr lines are the
// function's log, and a non-zero exit or the deadline is a failure.
//
// The context API is the HTTP endpoint of package ctxhttp. The command's
// environment is fnbox's, then the descriptor's env and Spec.Env, plus:
//
//	BUTTER_CONTEXT_URL   base URL of the context API (POST /emit, /request, /log)
//	BUTTER_INVOCATION    value for the Butter-Invocation header of those calls
//	BUTTER_FUNCTION      the function's name
//	BUTTER_DEADLINE      the deadline, RFC 3339 (empty when none)
//	BUTTER_DEADLINE_MS   the deadline, unix milliseconds (empty when none)
package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/ctxhttp"
	"github.com/buttercompass/butter/proto/descriptor"
)

// Environment variables set for every command, besides ctxhttp's.
const (
	EnvFunction   = "BUTTER_FUNCTION"
	EnvDeadline   = "BUTTER_DEADLINE"
	EnvDeadlineMS = "BUTTER_DEADLINE_MS"
	// EnvTraceParent and EnvTraceState carry the invoke span's W3C trace
	// context (the OpenTelemetry convention for environment carriers).
	EnvTraceParent = "TRACEPARENT"
	EnvTraceState  = "TRACESTATE"
)

// maxStdout bounds a result: a result is one Kafka record, and a runaway
// command must not take fnbox's memory with it.
const maxStdout = 16 << 20

// Runtime runs a deployment's exec functions.
type Runtime struct {
	spec   runtime.Spec
	logger *slog.Logger
	cmds   map[string][]string // function name → argv, argv[0] resolved
	batch  map[string]bool
	env    []string
	api    *ctxhttp.Server

	gate runtime.Gate
}

var _ runtime.Runtime = (*Runtime)(nil)

// Start checks every function's command (it must split and name an
// executable, else the error wraps runtime.ErrLoad) and starts the context
// API server.
func Start(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error) {
	if spec.Deployment == nil {
		return nil, errors.New("start exec runtime: spec has no deployment")
	}
	if p := spec.Deployment.Platform; p != descriptor.PlatformExec {
		return nil, fmt.Errorf("start exec runtime: platform %q: this runtime runs exec", p)
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, fmt.Errorf("start exec runtime: code dir: %w", err)
	}
	spec.Dir = dir
	r := &Runtime{spec: spec, logger: spec.Logger, cmds: map[string][]string{}, batch: map[string]bool{}}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	r.env = os.Environ()
	for _, m := range []map[string]string{spec.Deployment.Env, spec.Env} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			r.env = append(r.env, k+"="+m[k])
		}
	}
	for _, f := range spec.Deployment.Functions {
		if len(spec.Functions) > 0 && !slices.Contains(spec.Functions, f.Name) {
			continue
		}
		argv, err := Resolve(r.spec.Dir, f.Fn)
		if err != nil {
			return nil, fmt.Errorf("function %q: %w", f.Name, err)
		}
		r.cmds[f.Name] = argv
		r.batch[f.Name] = f.Delivery.Batch > 1
	}
	if len(r.cmds) == 0 {
		return nil, fmt.Errorf("start exec runtime: none of the functions %v is in deployment %q", spec.Functions, spec.Deployment.Name)
	}
	r.api, err = ctxhttp.Listen("127.0.0.1:0", r.logger)
	if err != nil {
		return nil, fmt.Errorf("start exec runtime: %w", err)
	}
	return r, nil
}

// Resolve splits fn into argv and finds its program: a path with a slash
// is relative to the code dir and must be executable; a bare name is
// looked up on PATH. Problems wrap runtime.ErrLoad. The http platform
// resolves its server commands the same way.
func Resolve(dir, fn string) ([]string, error) {
	argv, err := Split(fn)
	if err != nil {
		return nil, fmt.Errorf("fn %q: %v: %w", fn, err, runtime.ErrLoad)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("fn is empty: %w", runtime.ErrLoad)
	}
	prog := argv[0]
	if !strings.Contains(prog, "/") {
		path, err := osexec.LookPath(prog)
		if err != nil {
			return nil, fmt.Errorf("%s: command not found on PATH: %w", prog, runtime.ErrLoad)
		}
		argv[0] = path
		return argv, nil
	}
	if !filepath.IsAbs(prog) {
		prog = filepath.Join(dir, prog)
	}
	st, err := os.Stat(prog)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: command not found in the function's code: %w", argv[0], runtime.ErrLoad)
	case st.IsDir() || st.Mode()&0o111 == 0:
		return nil, fmt.Errorf("%s: not an executable file (chmod +x it, and give scripts a #! line): %w", argv[0], runtime.ErrLoad)
	}
	argv[0] = prog
	return argv, nil
}

// Invoke runs the function's command once for inv.
func (r *Runtime) Invoke(ctx context.Context, inv runtime.Invocation, host runtime.Host) (runtime.Result, error) {
	argv, ok := r.cmds[inv.Function]
	if !ok {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, runtime.ErrUnknownFunction)
	}
	ctx, done, err := r.gate.Enter(ctx, inv)
	if err != nil {
		return runtime.Result{}, err
	}
	defer done()
	in, err := payload(inv.Events, r.batch[inv.Function])
	if err != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: encode events: %w", inv.Function, err)
	}
	id, done := r.api.Register(ctx, host)
	defer done()

	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = r.spec.Dir
	var deadline, deadlineMS string
	if d, ok := ctx.Deadline(); ok {
		deadline, deadlineMS = d.UTC().Format(time.RFC3339Nano), strconv.FormatInt(d.UnixMilli(), 10)
	}
	cmd.Env = append(slices.Clip(r.env),
		ctxhttp.EnvURL+"="+r.api.URL(), ctxhttp.EnvInvocation+"="+id,
		EnvFunction+"="+inv.Function, EnvDeadline+"="+deadline, EnvDeadlineMS+"="+deadlineMS)
	if tp, ts := runtime.TraceParent(ctx); tp != "" {
		cmd.Env = append(cmd.Env, EnvTraceParent+"="+tp, EnvTraceState+"="+ts)
	}
	cmd.Stdin = bytes.NewReader(in)
	stdout := &limitedBuffer{max: maxStdout}
	stderr := &runtime.LineWriter{Dst: r.spec.Stderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Own process group, killed whole at the deadline: a script's children
	// must not outlive the invocation.
	cmd.SysProcAttr = runtime.ProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second

	err = cmd.Run()
	stderr.Flush()
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, runtime.ErrTimeout)
		}
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, ctxErr)
	}
	if err != nil {
		var ee *osexec.ExitError
		if !errors.As(err, &ee) {
			return runtime.Result{}, fmt.Errorf("invoke %q: run %s: %w", inv.Function, argv[0], err)
		}
		msg := stderr.Last()
		if msg == "" {
			msg = fmt.Sprintf("%s: %v", filepath.Base(argv[0]), ee)
		}
		return runtime.Result{}, &runtime.FunctionError{Message: msg, Stack: stderr.Tail()}
	}
	if stdout.over {
		return runtime.Result{}, &runtime.FunctionError{Message: fmt.Sprintf("result is larger than %d bytes", maxStdout), Permanent: true}
	}
	return result(stdout.Bytes()), nil
}

// result reads stdout: JSON if it is JSON, else text minus the final line
// break that every shell tool prints, and nothing if empty.
func result(out []byte) runtime.Result {
	trimmed := bytes.TrimSpace(out)
	switch {
	case len(trimmed) == 0:
		return runtime.Result{}
	case json.Valid(trimmed):
		return runtime.Result{Data: trimmed, ContentType: "application/json"}
	}
	out = bytes.TrimSuffix(out, []byte("\n"))
	out = bytes.TrimSuffix(out, []byte("\r"))
	return runtime.Result{Data: out, ContentType: "text/plain; charset=utf-8"}
}

// Close waits for running commands until ctx is done (CommandContext kills
// them when their invocation's ctx ends) and stops the context API.
func (r *Runtime) Close(ctx context.Context) error {
	first, err := r.gate.Close(ctx)
	if !first {
		return nil
	}
	if err != nil {
		err = fmt.Errorf("close exec runtime: %w", err)
	}
	return errors.Join(err, r.api.Close(ctx))
}

// limitedBuffer keeps at most max bytes and notes that more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return len(p), nil
}

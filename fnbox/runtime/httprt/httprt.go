// Package httprt runs http- and go-platform functions (DESIGN §5): fn is a
// command line that serves HTTP on $PORT. Each function gets its own
// long-running server process, started in the deployment's directory when
// the runtime starts and again on the next invocation after it died.
//
// fnbox POSTs each event in CloudEvents HTTP binary mode: ce-* headers
// (extensions included, plus ce-stream, ce-partition and ce-offset saying
// where the event sits), Content-Type the event's datacontenttype, the body
// its data. A function with delivery.batch > 1 gets its events as one
// application/cloudevents-batch+json array of structured events instead,
// the CloudEvents HTTP batch format as sdk-go writes and reads it
// (cehttp.NewEventsFromHTTPRequest), with stream, partition and offset as
// string extensions.
// Every request also has
//
//	Butter-Invocation  id for the context API's Butter-Invocation header
//	Butter-Deadline    the invocation's deadline, RFC 3339
//
// A 2xx answer's body is the result, with its Content-Type (204 or an empty
// body: no result), unless the answer is itself a CloudEvent, in binary
// mode (ce-* headers, as sdk-go's receivers answer) or structured mode
// (application/cloudevents+json): then that event is the result
// (runtime.Result.Event), and one that is not valid is a permanent failure.
// 4xx is a permanent failure (straight to the dead-letter stream), 5xx a
// failure that is retried. The context API is package
// ctxhttp's. The server's environment is fnbox's, then the descriptor's env
// and Spec.Env, plus PORT, BUTTER_CONTEXT_URL and BUTTER_FUNCTION.
package httprt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/ctxhttp"
	"github.com/buttercompass/butter/fnbox/runtime/exec"
	"github.com/buttercompass/butter/proto/descriptor"
)

// Names of the protocol.
const (
	// EnvPort is the variable naming the port the server must listen on.
	EnvPort = "PORT"
	// EnvFunction is the variable holding the function's name.
	EnvFunction = "BUTTER_FUNCTION"
	// HeaderDeadline carries the invocation's deadline, RFC 3339.
	HeaderDeadline = "Butter-Deadline"
	// BatchContentType is the content type of a batch of events.
	BatchContentType = "application/cloudevents-batch+json"
)

// ReadyTimeout bounds how long a server may take to accept connections on
// $PORT after it started: generous, as servers on the JVM or a loaded
// machine take a while, and a server that exits first fails at once.
const ReadyTimeout = 60 * time.Second

// maxResult bounds a result: a result is one Kafka record, and a runaway
// server must not take fnbox's memory with it.
const maxResult = 16 << 20

// Runtime runs a deployment's http or go functions.
type Runtime struct {
	spec   runtime.Spec
	logger *slog.Logger
	env    []string
	api    *ctxhttp.Server
	fns    map[string]*function

	gate runtime.Gate
}

var _ runtime.Runtime = (*Runtime)(nil)

// function is one function and its server process, replaced when it died.
type function struct {
	name  string
	argv  []string
	batch bool

	mu   sync.Mutex
	proc *process
}

// Start checks every function's command, starts the context API and one
// server per function, and returns once every server accepts connections.
// A command that cannot run, or a server that exits before it listens,
// fails Start with an error wrapping runtime.ErrLoad.
func Start(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error) {
	if spec.Deployment == nil {
		return nil, errors.New("start http runtime: spec has no deployment")
	}
	if p := spec.Deployment.Platform; p != descriptor.PlatformHTTP && p != descriptor.PlatformGo {
		return nil, fmt.Errorf("start http runtime: platform %q: this runtime runs http and go", p)
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, fmt.Errorf("start http runtime: code dir: %w", err)
	}
	spec.Dir = dir
	r := &Runtime{
		spec: spec, logger: spec.Logger, fns: map[string]*function{},
	}
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
		argv, err := exec.Resolve(dir, f.Fn)
		if err != nil {
			return nil, fmt.Errorf("function %q: %w", f.Name, err)
		}
		r.fns[f.Name] = &function{name: f.Name, argv: argv, batch: f.Delivery.Batch > 1}
	}
	if len(r.fns) == 0 {
		return nil, fmt.Errorf("start http runtime: none of the functions %v is in deployment %q", spec.Functions, spec.Deployment.Name)
	}
	r.api, err = ctxhttp.Listen("127.0.0.1:0", r.logger)
	if err != nil {
		return nil, fmt.Errorf("start http runtime: %w", err)
	}
	// Start the servers side by side: start-up time adds up otherwise.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, name := range slices.Sorted(maps.Keys(r.fns)) {
		f := r.fns[name]
		wg.Go(func() {
			if _, err := r.server(ctx, f); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Close(cctx)
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// server returns f's running server, starting one if there is none or the
// last one died.
func (r *Runtime) server(ctx context.Context, f *function) (*process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.proc != nil && !f.proc.dead() {
		return f.proc, nil
	}
	if r.gate.Closed() {
		return nil, fmt.Errorf("start %q server: runtime is closed", f.name)
	}
	if f.proc != nil {
		r.logger.Warn("function server died; restarting it", "fn", f.name, "err", f.proc.exitErr(), "stderr", f.proc.stderr.Last())
	}
	env := append(slices.Clip(r.env), ctxhttp.EnvURL+"="+r.api.URL(), EnvFunction+"="+f.name)
	p, err := startProcess(ctx, f.argv, r.spec.Dir, env, r.spec.Stdout, r.spec.Stderr)
	if err != nil {
		return nil, fmt.Errorf("function %q: %w", f.name, err)
	}
	f.proc = p
	return p, nil
}

// Invoke POSTs inv to the function's server.
func (r *Runtime) Invoke(ctx context.Context, inv runtime.Invocation, host runtime.Host) (runtime.Result, error) {
	f, ok := r.fns[inv.Function]
	if !ok {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, runtime.ErrUnknownFunction)
	}
	ctx, done, err := r.gate.Enter(ctx, inv)
	if err != nil {
		return runtime.Result{}, err
	}
	defer done()
	res, err := r.invoke(ctx, f, inv, host)
	if err == nil {
		return res, nil
	}
	// A function that gives up at its own deadline (the Go SDK's ctx ends
	// then) may answer a moment before ctx does: past the deadline, any
	// failure is the timeout.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, runtime.ErrTimeout)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, ctxErr)
	}
	return res, err
}

func (r *Runtime) invoke(ctx context.Context, f *function, inv runtime.Invocation, host runtime.Host) (runtime.Result, error) {
	if len(inv.Events) == 0 {
		return runtime.Result{}, fmt.Errorf("invoke %q: no events", inv.Function)
	}
	p, err := r.server(ctx, f)
	if err != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, err)
	}
	req, err := newRequest(p.url, inv.Events, f.batch || len(inv.Events) > 1)
	if err != nil {
		return runtime.Result{}, fmt.Errorf("invoke %q: encode events: %w", inv.Function, err)
	}
	id, done := r.api.Register(ctx, host)
	defer done()
	req.Header.Set(ctxhttp.HeaderInvocation, id)
	if tp, ts := runtime.TraceParent(ctx); tp != "" {
		req.Header.Set(runtime.TraceHeader, tp)
		if ts != "" {
			req.Header.Set(runtime.TraceStateHeader, ts)
		}
	}
	if d, ok := ctx.Deadline(); ok {
		req.Header.Set(HeaderDeadline, d.UTC().Format(time.RFC3339Nano))
	}

	// A server that dies fails the calls it had: nobody will answer them.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(p.exitCtx, func() { cancel(errServerExited) })
	defer stop()

	// One keep-alive connection per call in flight, written and read on
	// this goroutine (see conns); rctx cancels it.
	resp, body, err := p.conns.do(rctx, req)
	if err != nil {
		if p.exitedSoon(ctx) {
			return runtime.Result{}, p.exitFailure()
		}
		return runtime.Result{}, fmt.Errorf("invoke %q: %w", inv.Function, err)
	}
	return answer(resp, body)
}

// exitGrace is how long a failed call waits to learn whether the server
// died: the connection drops before the process is reaped.
const exitGrace = 500 * time.Millisecond

// errServerExited is the cause of calls cut off by their server's death.
var errServerExited = errors.New("function server exited")

// answer turns the function's HTTP answer into a result or a failure.
func answer(resp *http.Response, body []byte) (runtime.Result, error) {
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		if len(body) > maxResult {
			return runtime.Result{}, &runtime.FunctionError{Message: fmt.Sprintf("result is larger than %d bytes", maxResult), Permanent: true}
		}
		if e, ok, err := replyEvent(resp, body); ok {
			if err != nil {
				return runtime.Result{}, &runtime.FunctionError{Message: "the answer is not a valid CloudEvent: " + err.Error(), Permanent: true}
			}
			res := runtime.Result{Event: e, ContentType: e.DataContentType()}
			if data := e.Data(); len(data) > 0 {
				res.Data = data
			}
			return res, nil
		}
		if s == http.StatusNoContent || len(body) == 0 {
			return runtime.Result{}, nil
		}
		ct := resp.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		return runtime.Result{Data: body, ContentType: ct}, nil
	case s >= 400 && s < 500:
		return runtime.Result{}, &runtime.FunctionError{Message: errorMessage(resp, body), Permanent: true}
	default:
		return runtime.Result{}, &runtime.FunctionError{Message: errorMessage(resp, body)}
	}
}

// errorMessage is the message of an error answer: {"error"|"message": m}
// of a JSON body, else the body's text, else the status.
func errorMessage(resp *http.Response, body []byte) string {
	if len(body) > 4096 {
		body = body[:4096]
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); runtime.IsJSON(mt) || bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		var m struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &m) == nil {
			if m.Error != "" {
				return m.Error
			}
			if m.Message != "" {
				return m.Message
			}
		}
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return s
	}
	return resp.Status
}

// Close waits for invocations in flight until ctx is done, then stops the
// servers (SIGTERM to each process group, SIGKILL when ctx is done) and the
// context API.
func (r *Runtime) Close(ctx context.Context) error {
	first, err := r.gate.Close(ctx)
	if !first {
		return nil
	}
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("close http runtime: %w", err))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, f := range r.fns {
		f.mu.Lock()
		p := f.proc
		f.mu.Unlock()
		if p == nil {
			continue
		}
		wg.Go(func() {
			if err := p.stop(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop %q server: %w", f.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, f := range r.fns {
		f.mu.Lock()
		if f.proc != nil {
			f.proc.conns.close()
		}
		f.mu.Unlock()
	}
	if r.api != nil {
		errs = append(errs, r.api.Close(ctx))
	}
	return errors.Join(errs...)
}

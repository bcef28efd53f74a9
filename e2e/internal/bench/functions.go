package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/runtime/platforms"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
)

// FnPlatforms are the platforms whose no-op function is measured, in table
// order.
var FnPlatforms = []string{
	descriptor.PlatformNode,
	descriptor.PlatformPython,
	descriptor.PlatformExec,
	descriptor.PlatformHTTP,
	descriptor.PlatformGo,
}

// FnBatches are the delivery.batch values each platform is measured with.
var FnBatches = []int{1, 500}

// Functions returns the measurements of real fnbox running a no-op function
// (every platform of FnPlatforms with every batch of FnBatches), replay
// from the first event, and cold start. Pass them as Config.Extra.
func Functions() []Measurement {
	var ms []Measurement
	for _, p := range FnPlatforms {
		for _, b := range FnBatches {
			ms = append(ms, Measurement{Name: NoopRow(p, b), Run: noopMeasurement(p, b)})
		}
	}
	ms = append(ms, Measurement{Name: ReplayRow(), Run: measureReplay})
	for _, p := range ColdStartPlatforms {
		ms = append(ms, Measurement{Name: ColdStartRow(p), Run: coldStartMeasurement(p)})
	}
	return ms
}

// The no-op function of each platform. Every one answers {"n": events
// handed over}, one result per invocation, so the bench counts handled
// events from out whether or not fnbox batches them. Go runs the
// bench-noop command (e2e/cmd/bench-noop, with the Go SDK), exec the
// bench-exec command (e2e/cmd/bench-exec), both built when first needed.
const (
	noopJS = `// No-op function of the bench: counts the events it was handed.
exports.noop = (event) => ({ n: Array.isArray(event) ? event.length : 1 });
`
	noopPy = `"""No-op function of the bench: counts the events it was handed."""


def noop(event, context):
    return {"n": len(event) if isinstance(event, list) else 1}
`
	// noopHTTP is the http platform's no-op: a server on $PORT answering
	// every POST, a batch as application/cloudevents-batch+json.
	noopHTTP = `"""No-op http function of the bench: counts the events POSTed to it."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle on, the second
    # waits for the client's delayed ACK, 40ms an event.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        n = 1
        if self.headers.get("Content-Type", "").startswith("application/cloudevents-batch+json"):
            n = len(json.loads(body))
        out = json.dumps({"n": n}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
`
)

// fnName is the name of the function of every bench deployment.
const fnName = "noop"

// function is a deployment of the no-op function on its own input and
// output streams, with its code written to a directory.
type function struct {
	platform string
	batch    int
	in, out  string // streams, which are also the topics: no prefix
	dir      string // code directory, with butter.yaml
	desc     *descriptor.Descriptor
}

// group is the consumer group of the function.
func (f *function) group(env *Env) string {
	return env.Kafka.Namespace().ConsumerGroup(f.desc.Name, fnName)
}

// newFunction creates the streams of deployment name and writes its code
// and descriptor: the no-op function of platform, delivery.batch batch,
// consuming its input from the first event.
func (e *Env) newFunction(ctx context.Context, name, platform string, batch int) (*function, error) {
	f := &function{platform: platform, batch: batch, in: name + "-in", out: name + "-out"}
	if err := e.CreateTopics(f.in, f.out); err != nil {
		return nil, fmt.Errorf("create streams of %s: %w", name, err)
	}
	dir, err := e.workDir(name)
	if err != nil {
		return nil, err
	}
	f.dir = dir

	var fn string
	files := map[string]string{}
	switch platform {
	case descriptor.PlatformNode:
		fn, files["handler.js"] = "handler.js:"+fnName, noopJS
	case descriptor.PlatformPython:
		fn, files["handler.py"] = "handler.py:"+fnName, noopPy
	case descriptor.PlatformHTTP:
		fn, files["server.py"] = "python3 -u server.py", noopHTTP
	case descriptor.PlatformGo:
		mode := "handle"
		if batch > 1 {
			mode = "batch" // the SDK refuses a batch sent to Handle
		}
		if fn, err = e.linkCommand(ctx, dir, "bench-noop"); err != nil {
			return nil, err
		}
		fn += " " + mode
	case descriptor.PlatformExec:
		if fn, err = e.linkCommand(ctx, dir, "bench-exec"); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("no no-op function for platform %q", platform)
	}
	files["butter.yaml"] = fmt.Sprintf(`# No-op function of the bench (e2e/internal/bench).
name: %s
platform: %s
functions:
  - fn: %s
    name: %s
    bindings:
      streams:
        - name: %s
          offset: first
      out: %s
    delivery:
      batch: %d
`, name, platform, fn, fnName, f.in, f.out, batch)
	for file, text := range files {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write code of %s: %w", name, err)
		}
	}
	f.desc, err = descriptor.ParseFile(filepath.Join(dir, "butter.yaml"))
	if err != nil {
		return nil, fmt.Errorf("bench descriptor of %s: %w", name, err)
	}
	return f, nil
}

// linkCommand builds the bench command e2e/cmd/name (once per run) and
// links it into dir, as a deployment's own program would be there; it
// returns the fn that runs it.
func (e *Env) linkCommand(ctx context.Context, dir, name string) (string, error) {
	bin, err := e.build(ctx, name, "github.com/buttercompass/butter/e2e/cmd/"+name)
	if err != nil {
		return "", err
	}
	if err := os.Symlink(bin, filepath.Join(dir, name)); err != nil {
		return "", fmt.Errorf("link %s into %s: %w", name, dir, err)
	}
	return "./" + name, nil
}

// workDir makes a fresh directory called name in the run's work
// directory.
func (e *Env) workDir(name string) (string, error) {
	dir := filepath.Join(e.work, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("create work directory: %w", err)
	}
	return dir, nil
}

// build builds the command of package pkg into the run's work directory,
// once per run, and returns its path. The go tool resolves pkg in the
// workspace or module of the current directory, which is how `make bench`
// (in e2e/) and the tests (in e2e/internal/bench) run.
func (e *Env) build(ctx context.Context, name, pkg string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if bin, ok := e.built[name]; ok {
		return bin, nil
	}
	bin := filepath.Join(e.work, "bin", name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run the bench inside the butter workspace, with Go on PATH): %w\n%s", pkg, err, out)
	}
	if e.built == nil {
		e.built = map[string]string{}
	}
	e.built[name] = bin
	return bin, nil
}

// produceEvents writes n bench events to topic and waits for their
// acknowledgement.
func produceEvents(ctx context.Context, env *Env, topic string, n int) error {
	cl, err := env.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	var failed promiseErrors
	for i := range n {
		r, err := newRecord(topic, i)
		if err != nil {
			return err
		}
		cl.Produce(ctx, r, failed.promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush events to %s: %w", topic, err)
	}
	return failed.err()
}

// registerPlatforms fills box.Platforms once: it is read without locking,
// so it is written before any Box starts.
var registerPlatforms = sync.OnceFunc(func() {
	for name, start := range platforms.All() {
		if _, ok := box.Platforms[name]; !ok {
			box.Platforms[name] = box.Platform(start)
		}
	}
})

// running is an fnbox running in-process.
type running struct {
	cancel    context.CancelCauseFunc
	done      chan struct{}
	err       error // of Box.Run, set before done closes
	startedAt time.Time
	readyAt   atomic.Int64  // unix ns when Box.Ready was first seen to pass
	polled    chan struct{} // closed when the ready poll ends
	logs      *tailWriter   // fnbox's warnings and errors
}

// errBoxStopped is the cause of a measurement ended because its fnbox
// stopped by itself.
var errBoxStopped = errors.New("fnbox stopped before the measurement ended")

// startBox runs f in an in-process fnbox until stop is called or ctx is
// done. When the fnbox fails on its own, cancel is called with the reason,
// so a measurement waiting on ctx ends with it rather than a timeout.
func startBox(ctx context.Context, env *Env, f *function, cancel context.CancelCauseFunc) (*running, error) {
	registerPlatforms()
	r := &running{done: make(chan struct{}), polled: make(chan struct{}), logs: &tailWriter{max: 20}}
	kafka := env.Kafka
	kafka.ClientID = "butter-bench-fnbox"
	r.startedAt = time.Now()
	b, err := box.New(box.Config{
		Kafka:      kafka,
		Deployment: f.desc,
		Dir:        f.dir,
		Instance:   "bench",
		Logger:     slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	bctx, bcancel := context.WithCancelCause(context.WithoutCancel(ctx))
	r.cancel = bcancel
	go func() {
		defer close(r.done)
		r.err = b.Run(bctx)
		if bctx.Err() == nil {
			cancel(fmt.Errorf("%w: %v%s", errBoxStopped, r.err, r.logs))
		}
	}()
	// Ready does not depend on the box's context, so the poll goes on
	// until it passes or the box ends: stop waits for it, and a short run
	// may well be done before the poll first sees it.
	go func() {
		defer close(r.polled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-t.C:
				if b.Ready(context.WithoutCancel(ctx)) == nil {
					r.readyAt.Store(time.Now().UnixNano())
					return
				}
			}
		}
	}()
	return r, nil
}

// clockStart returns when the fnbox was first seen ready, the start of a
// throughput clock. The poll that sees it may lag under load; if it saw
// ready only after end, the last result, the start of the fnbox is used
// instead: a slower figure, never a faster one.
func (r *running) clockStart(end time.Time) (time.Time, error) {
	ns := r.readyAt.Load()
	if ns == 0 {
		return time.Time{}, fmt.Errorf("fnbox never reported ready%s", r.logs)
	}
	if ready := time.Unix(0, ns); ready.Before(end) {
		return ready, nil
	}
	return r.startedAt, nil
}

// stop drains the fnbox (it commits what it did and leaves the group) and
// returns the error of its Run.
func (r *running) stop() error {
	select {
	case <-r.polled:
	case <-time.After(10 * time.Second):
	}
	r.cancel(nil)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("fnbox did not stop within 30s of being asked to%s", r.logs)
	}
	if r.err != nil {
		return fmt.Errorf("fnbox: %w%s", r.err, r.logs)
	}
	return nil
}

// results counts the events handled by a no-op function from the results
// it writes to out: each says how many events its invocation was handed.
type results struct {
	cl    *kgo.Client
	topic string
	n     int
}

// newResults starts reading topic at the given partition offsets, or from
// its first event when from is nil.
func newResults(env *Env, topic string, from map[int32]int64) (*results, error) {
	opt := kgo.ConsumeTopics(topic)
	if from != nil {
		parts := map[int32]kgo.Offset{}
		for p, o := range from {
			parts[p] = kgo.NewOffset().At(o)
		}
		opt = kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts})
	}
	cl, err := env.Client(opt, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	return &results{cl: cl, topic: topic}, nil
}

func (r *results) close() { r.cl.Close() }

// wait reads results until they account for want events and returns the
// time it read the last one.
func (r *results) wait(ctx context.Context, want int) (time.Time, error) {
	for r.n < want {
		fs := r.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, err) {
				err = cause
			}
			return time.Time{}, fmt.Errorf("results in %s account for %d of %d events: %w", r.topic, r.n, want, err)
		}
		if err := fs.Err(); err != nil {
			return time.Time{}, fmt.Errorf("consume %s: %w", r.topic, err)
		}
		var bad error
		fs.EachRecord(func(rec *kgo.Record) {
			var c struct{ N int }
			d := envelope.FromRecord(rec)
			if err := json.Unmarshal(d.Event.Data(), &c); err != nil || c.N < 1 {
				bad = fmt.Errorf("result %q in %s is not {\"n\": events handled}", d.Event.Data(), r.topic)
			}
			r.n += c.N
		})
		if bad != nil {
			return time.Time{}, bad
		}
	}
	return time.Now(), nil
}

// tailWriter keeps the last max lines written to it, to show what fnbox
// logged when a measurement fails.
type tailWriter struct {
	max   int
	mu    sync.Mutex
	lines []string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		t.lines = append(t.lines, line)
	}
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
	return len(p), nil
}

// String is "" when nothing was logged, else the lines after a colon, to
// be appended to an error message.
func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	var b bytes.Buffer
	b.WriteString("; fnbox logged:")
	for _, l := range t.lines {
		b.WriteString("\n  ")
		b.WriteString(l)
	}
	return b.String()
}

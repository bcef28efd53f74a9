package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buttercompass/butter/gateway/service"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/topics"
)

// Rows of the gateway: HTTP request → function → HTTP response, through
// the real gateway and a real fnbox.
const (
	// RowGatewayP50 is the median round trip of one sequential client.
	RowGatewayP50 = "gateway request→response p50"
	// RowGatewayP99 is the 99th percentile round trip of one sequential
	// client.
	RowGatewayP99 = "gateway request→response p99"
)

// GatewayRateRow names the throughput row of clients concurrent clients.
func GatewayRateRow(clients int) string { return fmt.Sprintf("gateway, %d clients", clients) }

// GatewayLoadP50Row names the p50 row of clients concurrent clients.
func GatewayLoadP50Row(clients int) string {
	return fmt.Sprintf("gateway request→response p50, %d clients", clients)
}

// GatewayLoadP99Row names the p99 row of clients concurrent clients.
func GatewayLoadP99Row(clients int) string {
	return fmt.Sprintf("gateway request→response p99, %d clients", clients)
}

// The route of the bench: a deployment of the node no-op function bound
// to gatewayContext.
const (
	gatewayDeployment = "bench-gateway"
	gatewayContext    = "/bench"
	gatewayPlatform   = descriptor.PlatformNode
	gatewayBody       = `{"bench":true}`
	gatewayAnswer     = `{"n":1}`
	// gatewayConcurrency is the route function's scale.concurrency: as
	// many requests at once as the bench has clients.
	gatewayConcurrency = 64
)

// Services returns the measurements of the gateway and the timer, each
// run in-process on the run's broker. Pass them as Config.Extra.
func Services() []Measurement {
	return []Measurement{
		{Name: "gateway", Run: measureGateway},
		{Name: "gateway via butter up", Run: measureButterUp},
		{Name: "gateway via butter up --trace-sample 0", Run: measureButterUpUntraced},
		{Name: "of-watchdog and direct echo (peers)", Run: measurePeers},
		{Name: "timer", Run: measureTimer},
	}
}

// measureGateway measures HTTP requests through the gateway to a real
// fnbox running the node no-op function on a route, and back:
//
//   - one client making Config.Requests sequential requests after
//     Config.Warmup: p50 and p99, compared with the raw request→reply
//     p50 and p99, the two Kafka trips every such request makes;
//   - Config.GatewayClients clients at once making Config.GatewayLoad
//     requests together after two each of warm-up: requests/s (no raw
//     limit), p50 and p99, compared with the raw request→reply p50 and
//     p99.
//
// Clients are net/http with keep-alive, one pooled connection each.
func measureGateway(ctx context.Context, env *Env, rep *Report) error {
	cfg := env.Config
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.FnTimeout,
		fmt.Errorf("the gateway measurement took longer than %s (Config.FnTimeout)", cfg.FnTimeout))
	defer cancel()
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)

	f, yaml, err := env.newRouteFunction()
	if err != nil {
		return err
	}
	box, err := startBox(ctx, env, f, cancelCause)
	if err != nil {
		return err
	}
	err = gatewayRounds(ctx, env, f, yaml, box, rep, cancelCause)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause // why the requests failed: fnbox or the gateway stopped, or time ran out
	}
	stopErr := box.stop()
	if errors.Is(err, errBoxStopped) {
		return err // stopErr says it again
	}
	return errors.Join(err, stopErr)
}

// gatewayRounds runs the gateway, deploys the route once fnbox is ready
// and measures.
func gatewayRounds(ctx context.Context, env *Env, f *function, yaml string, box *running, rep *Report, cancel context.CancelCauseFunc) (err error) {
	cfg := env.Config
	if err := box.waitReady(ctx); err != nil {
		return err
	}
	gw, err := startGateway(ctx, env, cancel)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, gw.stop()) }()
	if err := deploy(ctx, env, f.desc.Name, yaml); err != nil {
		return err
	}

	c := newCaller("http://"+gw.addr+gatewayContext, cfg.GatewayClients, cfg.ReplyTimeout, nil)
	defer c.hc.CloseIdleConnections()
	if err := c.waitRoute(ctx, cfg.ReplyTimeout); err != nil {
		return fmt.Errorf("%w%s", err, gw.logs)
	}

	one, err := c.sequential(ctx, cfg.Warmup, cfg.Requests)
	if err != nil {
		return fmt.Errorf("one client: %w%s%s", err, gw.logs, box.logs)
	}
	load, elapsed, err := c.concurrent(ctx, cfg.GatewayClients, 2, cfg.GatewayLoad)
	if err != nil {
		return fmt.Errorf("%d clients: %w%s%s", cfg.GatewayClients, err, gw.logs, box.logs)
	}

	rep.Note(fmt.Sprintf("**gateway request→response p50, p99**: the gateway (`gateway/service` in-process) serves a "+
		"route `%s` deployed as the deployer does (a record on `_butter.deployments`), answered by real fnbox running "+
		"the no-op %s function with `ordering: none` and `concurrency: %d`: each request is an HTTP POST of "+
		"`%s` that becomes a request event on the route's stream, fnbox invokes the function and writes its reply on "+
		"`replyto`, the gateway answers `200 %s`. One net/http client with keep-alive makes %d sequential requests "+
		"after %d warm-up; the clock runs from sending the request to reading the whole response. Limit: %s and "+
		"%s, the two Kafka trips inside every such request without HTTP, the gateway or a function.",
		gatewayContext, gatewayPlatform, gatewayConcurrency, gatewayBody, gatewayAnswer, cfg.Requests, cfg.Warmup, RowReplyP50, RowReplyP99))
	rep.Note(fmt.Sprintf("**gateway, %d clients**: the same route, %d clients at once (goroutines sharing one "+
		"keep-alive transport, a connection each) make %d requests together, each sending its next as soon as it "+
		"has the answer, after two each of warm-up. The rate is requests answered ÷ time from the first timed "+
		"request to the last answer; no raw row bounds it (one fnbox runs up to %d requests at once in one %s "+
		"process: compare it with no-op %s, batch 1). Their p50 and p99 are compared with %s and %s; "+
		"with every client waiting, a request mostly queues: the mean is about clients ÷ rate (Little's law).",
		cfg.GatewayClients, cfg.GatewayClients, cfg.GatewayLoad, gatewayConcurrency, gatewayPlatform, gatewayPlatform, RowReplyP50, RowReplyP99))
	return rep.Add(
		Row{Name: RowGatewayP50, Value: ms(percentile(one, 0.50)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(one)},
		Row{Name: RowGatewayP99, Value: ms(percentile(one, 0.99)), Unit: UnitMilliseconds, Limit: RowReplyP99, Count: len(one)},
		Row{Name: GatewayRateRow(cfg.GatewayClients), Value: float64(len(load)) / elapsed.Seconds(), Unit: UnitRequestsPerSecond, NoLimit: true, Count: len(load)},
		Row{Name: GatewayLoadP50Row(cfg.GatewayClients), Value: ms(percentile(load, 0.50)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: len(load)},
		Row{Name: GatewayLoadP99Row(cfg.GatewayClients), Value: ms(percentile(load, 0.99)), Unit: UnitMilliseconds, Limit: RowReplyP99, Count: len(load)},
	)
}

// newRouteFunction writes the no-op function of gatewayPlatform bound to
// the route gatewayContext and creates its route stream; it returns the
// function and its descriptor's text.
func (e *Env) newRouteFunction() (*function, string, error) {
	dir, err := e.workDir(gatewayDeployment)
	if err != nil {
		return nil, "", err
	}
	yaml, err := writeRouteFunction(dir)
	if err != nil {
		return nil, "", err
	}
	desc, err := descriptor.ParseFile(filepath.Join(dir, "butter.yaml"))
	if err != nil {
		return nil, "", fmt.Errorf("bench descriptor of %s: %w", gatewayDeployment, err)
	}
	f := &function{platform: gatewayPlatform, batch: 1, dir: dir, desc: desc}
	for _, s := range desc.Functions[0].StreamNames() {
		if err := e.Broker.CreateTopic(topics.Stream(e.Kafka.Namespace().Topic(s))); err != nil {
			return nil, "", fmt.Errorf("create route stream %s: %w", s, err)
		}
	}
	return f, yaml, nil
}

// writeRouteFunction writes the no-op function of gatewayPlatform bound to
// the route gatewayContext into dir, handler and butter.yaml, and returns
// the descriptor's text.
func writeRouteFunction(dir string) (string, error) {
	yaml := fmt.Sprintf(`# No-op function of the bench (e2e/internal/bench) on a gateway route.
name: %s
platform: %s
functions:
  - fn: handler.js:%s
    name: %s
    bindings:
      route: { context: %s }
    # HTTP requests are independent: run them side by side, as a web
    # server would, rather than one at a time in partition order.
    delivery: { ordering: none }
    scale: { concurrency: %d }
`, gatewayDeployment, gatewayPlatform, fnName, fnName, gatewayContext, gatewayConcurrency)
	for file, text := range map[string]string{"handler.js": noopJS, "butter.yaml": yaml} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			return "", fmt.Errorf("write code of %s: %w", gatewayDeployment, err)
		}
	}
	return yaml, nil
}

// deploy stores deployment name with descriptor yaml on
// _butter.deployments, as the deployer does; gateways follow that topic.
func deploy(ctx context.Context, env *Env, name, yaml string) error {
	now := time.Now()
	rec, err := control.DeploymentRecord(env.Kafka.Namespace().Topic(topics.Deployments),
		control.Deployment{Name: name, Version: "1", Descriptor: yaml, Created: now, Updated: now, Actor: "butter-bench"})
	if err != nil {
		return err
	}
	cl, err := env.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("store deployment %s: %w", name, err)
	}
	return nil
}

// waitReady waits until the fnbox reports ready: it reads its route stream
// from the end, so a request sent before would wait for nothing.
func (r *running) waitReady(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for r.readyAt.Load() == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for fnbox to be ready: %w%s", context.Cause(ctx), r.logs)
		case <-r.polled:
			if r.readyAt.Load() == 0 {
				return fmt.Errorf("fnbox stopped before it was ready%s", r.logs)
			}
		case <-t.C:
		}
	}
	return nil
}

// inProcess is a gateway or timer served in-process.
type inProcess struct {
	addr string
	stop func() error
	logs *tailWriter // its warnings and errors
}

// startGateway provisions a gateway on the run's broker on a random port
// and serves it until stop; if it stops on its own, cancel is called with
// the reason.
func startGateway(ctx context.Context, env *Env, cancel context.CancelCauseFunc) (*inProcess, error) {
	logs := &tailWriter{max: 20}
	cfg := service.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = env.Kafka
	cfg.Grace = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := service.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Provision(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("provision gateway: %w%s", err, logs)
	}
	return serve(ctx, "gateway", s.Addr(), s.Serve, s.Close, logs, cancel), nil
}

// serve runs serveFn until the returned stop is called, which waits for it
// and then calls closeFn.
func serve(ctx context.Context, what, addr string, serveFn func(context.Context) error, closeFn func(), logs *tailWriter, cancel context.CancelCauseFunc) *inProcess {
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() {
		err := serveFn(sctx)
		if sctx.Err() == nil {
			cancel(fmt.Errorf("%s stopped by itself: %v%s", what, err, logs))
		}
		done <- err
	}()
	return &inProcess{addr: addr, logs: logs, stop: sync.OnceValue(func() error {
		stop()
		defer closeFn()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%s: %w%s", what, err, logs)
			}
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("%s did not stop within 30s of being asked to%s", what, logs)
		}
	})}
}

// caller makes requests to the bench route.
type caller struct {
	hc  *http.Client
	url string
	// want is the answer's body; nil means gatewayAnswer.
	want []byte
}

// newCaller returns a caller of url with a keep-alive transport of up to
// clients connections; close it with hc.CloseIdleConnections.
func newCaller(url string, clients int, timeout time.Duration, want []byte) *caller {
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DisableCompression: true}
	return &caller{hc: &http.Client{Transport: tr, Timeout: timeout}, url: url, want: want}
}

// errNotAnswered is wrapped when the gateway answers a request with
// something other than the no-op function's result.
var errNotAnswered = errors.New("the server did not answer with the expected result")

// call makes one request and returns how long it took, from sending to
// reading the whole body.
func (c *caller) call(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader([]byte(gatewayBody)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentTypeJSON)
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	want := c.want
	if want == nil {
		want = []byte(gatewayAnswer)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(bytes.TrimSpace(body), want) {
		return 0, fmt.Errorf("%w: %s %s", errNotAnswered, resp.Status, bytes.TrimSpace(body))
	}
	return d, nil
}

// waitRoute polls until the route answers: the gateway follows
// _butter.deployments, so the route appears moments after the record.
func (c *caller) waitRoute(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, err := c.call(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("route %s did not answer within %s: %w", c.url, timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sequential makes warmup then n requests one after the other and returns
// the times of the n.
func (c *caller) sequential(ctx context.Context, warmup, n int) ([]time.Duration, error) {
	times := make([]time.Duration, 0, n)
	for i := range warmup + n {
		d, err := c.call(ctx)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i+1, err)
		}
		if i >= warmup {
			times = append(times, d)
		}
	}
	return times, nil
}

// concurrent has clients goroutines make warmup requests each, then n
// requests together, each starting its next when it has an answer. It
// returns the times of the n and the time from the first timed request to
// the last answer.
func (c *caller) concurrent(ctx context.Context, clients, warmup, n int) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	run := func(next func() bool, record func(time.Duration)) {
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for next() {
					d, err := c.call(ctx)
					if err != nil {
						cancel(err)
						return
					}
					record(d)
				}
			})
		}
		wg.Wait()
	}
	counter := func(total int) func() bool {
		var left atomic.Int64
		left.Store(int64(total))
		return func() bool { return ctx.Err() == nil && left.Add(-1) >= 0 }
	}

	run(counter(clients*warmup), func(time.Duration) {})
	if err := context.Cause(ctx); err != nil {
		return nil, 0, fmt.Errorf("warm-up: %w", err)
	}
	var mu sync.Mutex
	times := make([]time.Duration, 0, n)
	start := time.Now()
	run(counter(n), func(d time.Duration) {
		mu.Lock()
		times = append(times, d)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, 0, err
	}
	return times, elapsed, nil
}

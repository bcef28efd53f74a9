package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminOpt configures an Admin.
type AdminOpt func(*Admin)

// ShutdownTimeout sets how long Serve waits for in-flight requests once its
// context is done, default 5s.
func ShutdownTimeout(d time.Duration) AdminOpt { return func(a *Admin) { a.shutdownTimeout = d } }

// ReadyCheckTimeout bounds one /readyz answer, default 3s, so a hung
// dependency makes the probe fail rather than time out in the orchestrator.
func ReadyCheckTimeout(d time.Duration) AdminOpt { return func(a *Admin) { a.readyTimeout = d } }

// ServerOptions adjusts the http.Server that Serve builds, after its
// defaults (ReadHeaderTimeout 5s): a service facing the internet sets its
// own timeouts or wraps the handler. Default none.
func ServerOptions(f func(*http.Server)) AdminOpt { return func(a *Admin) { a.server = f } }

// WrapListener wraps the bound listener before Serve accepts on it, to cap
// open connections, say. Default none.
func WrapListener(f func(net.Listener) net.Listener) AdminOpt {
	return func(a *Admin) { a.wrap = f }
}

// Admin is a service's admin HTTP server (STYLE rule 7): /livez, /readyz
// and /metrics, plus whatever the service mounts with Handle. Configure it
// (Handle, AddReadyCheck) before Serve.
type Admin struct {
	addr            string
	shutdownTimeout time.Duration
	readyTimeout    time.Duration
	server          func(*http.Server)
	wrap            func(net.Listener) net.Listener

	mux *http.ServeMux
	reg *prometheus.Registry

	mu     sync.Mutex
	ln     net.Listener
	checks map[string]func(context.Context) error

	draining atomic.Bool
}

// NewAdmin returns an admin server for addr (":8081", or "127.0.0.1:0" for
// a random port) with its own Prometheus registry holding the Go and process
// collectors. Its own registry, not the global one, so two services in one
// process (butter up) do not collide on metric names.
func NewAdmin(addr string, opts ...AdminOpt) *Admin {
	a := &Admin{
		addr:            addr,
		shutdownTimeout: 5 * time.Second,
		readyTimeout:    3 * time.Second,
		mux:             http.NewServeMux(),
		reg:             prometheus.NewRegistry(),
		checks:          map[string]func(context.Context) error{},
	}
	for _, o := range opts {
		o(a)
	}
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Method-qualified patterns, so a service mounting "/{name}" or
	// "GET /{name}" on the same mux does not conflict with them.
	a.mux.HandleFunc("GET /livez", a.livez)
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	return a
}

// Registry returns the registry /metrics serves; register service metrics
// on it.
func (a *Admin) Registry() *prometheus.Registry { return a.reg }

// Handle mounts h on the admin mux (Go 1.22 patterns), for a service that
// serves its API on the admin port.
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// AddReadyCheck adds a named check run on every /readyz; the service is
// ready only while all pass. A check with the same name replaces the old
// one. Checks run concurrently, bounded by the ReadyCheckTimeout option.
func (a *Admin) AddReadyCheck(name string, check func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks[name] = check
}

// SetDraining puts the server in lame-duck mode: /readyz answers 503
// "draining" so load balancers stop sending traffic, while /livez stays 200
// so the orchestrator does not kill the process mid-drain. It cannot be
// undone: a draining service is on its way out.
func (a *Admin) SetDraining() { a.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (a *Admin) Draining() bool { return a.draining.Load() }

// Listen binds the address, so a caller can learn a random port from Addr
// before serving. Serve calls it when the caller did not.
func (a *Admin) Listen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("listen on admin address %s: %w", a.addr, err)
	}
	a.ln = ln
	return nil
}

// Addr returns the bound address once listening, else the configured one.
func (a *Admin) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln != nil {
		return a.ln.Addr().String()
	}
	return a.addr
}

// Serve serves until ctx is done, then shuts down gracefully, giving
// in-flight requests the ShutdownTimeout. To drain, call SetDraining and cancel
// ctx only after the drain: /livez must answer until then. Serve once.
func (a *Admin) Serve(ctx context.Context) error {
	if err := a.Listen(); err != nil {
		return err
	}
	a.mu.Lock()
	ln := a.ln
	a.mu.Unlock()

	srv := &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if a.server != nil {
		a.server(srv)
	}
	fresh := trackFreshConns(srv)
	if a.wrap != nil {
		ln = a.wrap(ln)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve admin on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.shutdownTimeout)
	defer cancel()
	srv.SetKeepAlivesEnabled(false)
	fresh.closeAll()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down admin server: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin on %s: %w", ln.Addr(), err)
	}
	return nil
}

func (a *Admin) livez(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "live"})
}

// readyStatus is the /readyz body: status is "ready", "unready" or
// "draining"; checks maps each check to "ok" or its error.
type readyStatus struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, readyStatus{Status: "draining"})
		return
	}
	a.mu.Lock()
	names := make([]string, 0, len(a.checks))
	for n := range a.checks {
		names = append(names, n)
	}
	checks := make([]func(context.Context) error, len(names))
	sort.Strings(names)
	for i, n := range names {
		checks[i] = a.checks[n]
	}
	a.mu.Unlock()

	errs := runChecks(r.Context(), a.readyTimeout, checks)

	st := readyStatus{Status: "ready"}
	code := http.StatusOK
	if len(names) > 0 {
		st.Checks = make(map[string]string, len(names))
	}
	for i, n := range names {
		st.Checks[n] = "ok"
		if errs[i] != nil {
			st.Checks[n] = errs[i].Error()
			st.Status, code = "unready", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, st)
}

// runChecks runs checks concurrently and returns their errors in order. A
// check still running after timeout counts as failed and is left behind, so
// one that ignores its context cannot hang the probe.
func runChecks(ctx context.Context, timeout time.Duration, checks []func(context.Context) error) []error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(checks)) // buffered: late checks never block
	for i, check := range checks {
		go func() { results <- result{i, check(ctx)} }()
	}
	errs := make([]error, len(checks))
	answered := make([]bool, len(checks))
wait:
	for range checks {
		select {
		case r := <-results:
			errs[r.i], answered[r.i] = r.err, true
		case <-ctx.Done():
			break wait
		}
	}
	for i := range checks {
		if !answered[i] {
			errs[i] = fmt.Errorf("check did not answer within %s: %w", timeout, ctx.Err())
		}
	}
	return errs
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// freshConns are the connections that have not sent a request yet. Shutdown
// waits for them as if they were busy (for up to 5 s, then it treats them
// as idle), but they hold no work: an HTTP client keeps spare connections
// it dialed while another one served its request. Closing them at shutdown
// lets a drain end as soon as the requests in flight are answered.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// trackFreshConns follows srv's connections, keeping srv's own ConnState
// hook.
func trackFreshConns(srv *http.Server) *freshConns {
	f := &freshConns{conns: map[net.Conn]struct{}{}}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		f.mu.Lock()
		if st == http.StateNew {
			f.conns[c] = struct{}{}
		} else {
			delete(f.conns, c)
		}
		f.mu.Unlock()
		if prev != nil {
			prev(c, st)
		}
	}
	return f
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

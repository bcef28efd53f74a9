package butter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Func is a function of one event.
type Func func(ctx context.Context, e Event) (any, error)

// BatchFunc is a function of a batch of events (delivery.batch > 1).
type BatchFunc func(ctx context.Context, events []Event) (any, error)

// shutdownGrace bounds how long calls in flight may finish after SIGTERM;
// fnbox kills the process soon after anyway.
const shutdownGrace = 10 * time.Second

// Handle serves fn on $PORT until SIGTERM or SIGINT, then finishes the calls
// in flight and returns. It exits the program with status 1 when it cannot
// serve (no $PORT, port taken).
func Handle(fn Func) { serveMain(NewHandler(fn)) }

// HandleBatch is Handle for a function with delivery.batch > 1: it gets
// every event of a batch at once (one event arrives as a batch of one).
func HandleBatch(fn BatchFunc) { serveMain(NewBatchHandler(fn)) }

func serveMain(h http.Handler) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Serve(ctx, h); err != nil {
		fmt.Fprintln(os.Stderr, "butter:", err)
		os.Exit(1)
	}
}

// Serve serves h on $PORT until ctx is done, then shuts down gracefully.
func Serve(ctx context.Context, h http.Handler) error {
	port := os.Getenv("PORT")
	if port == "" {
		return errors.New("PORT is not set: fnbox sets it; to run by hand, PORT=8080 ./yourfunction")
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return fmt.Errorf("listen on $PORT: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// NewHandler returns the http.Handler Handle serves, to mount fn on a
// server of your own or to test it with net/http/httptest.
func NewHandler(fn Func) http.Handler {
	return &handler{call: func(ctx context.Context, events []Event, batch bool) (any, error) {
		if batch {
			return nil, Permanent(errors.New("got a batch of events, but the function takes one: use butter.HandleBatch, or remove delivery.batch"))
		}
		return fn(ctx, events[0])
	}}
}

// NewBatchHandler is NewHandler for a BatchFunc.
func NewBatchHandler(fn BatchFunc) http.Handler {
	return &handler{call: func(ctx context.Context, events []Event, _ bool) (any, error) {
		return fn(ctx, events)
	}}
}

type handler struct {
	call func(ctx context.Context, events []Event, batch bool) (any, error)
}

// maxBody bounds an invocation's body: events are Kafka records.
const maxBody = 32 << 20

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a CloudEvent", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusRequestEntityTooLarge)
		return
	}
	events, batch, err := readEvents(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	inv := &invocation{id: r.Header.Get(headerInvocation), url: os.Getenv(EnvContextURL), client: http.DefaultClient,
		traceparent: r.Header.Get("traceparent"), tracestate: r.Header.Get("tracestate")}
	ctx := r.Context()
	if d := r.Header.Get(headerDeadline); d != "" {
		if t, err := time.Parse(time.RFC3339Nano, d); err == nil {
			inv.deadline = t
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, t)
			defer cancel()
		}
	}
	ctx = withInvocation(ctx, inv)
	res, err := h.safeCall(ctx, events, batch)
	if err != nil {
		status := http.StatusInternalServerError
		if IsPermanent(err) {
			status = http.StatusUnprocessableEntity
		}
		http.Error(w, err.Error(), status)
		return
	}
	writeResult(w, res)
}

// safeCall turns a panic into an error, so one bad event is a failure of
// that event, not of the server.
func (h *handler) safeCall(ctx context.Context, events []Event, batch bool) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return h.call(ctx, events, batch)
}

func writeResult(w http.ResponseWriter, res any) {
	var (
		ct   string
		data []byte
	)
	switch v := res.(type) {
	case nil:
		w.WriteHeader(http.StatusNoContent)
		return
	case string:
		ct, data = "text/plain; charset=utf-8", []byte(v)
	case []byte:
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		ct, data = "application/octet-stream", v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			http.Error(w, fmt.Sprintf("encode result as JSON: %v", err), http.StatusInternalServerError)
			return
		}
		ct, data = "application/json", b
	}
	w.Header().Set("Content-Type", ct)
	w.Write(data)
}

// permanent marks an error as not worth retrying.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so fnbox does not retry the event: it goes straight
// to the dead-letter stream (answered 422). Use it for input that can never
// succeed; Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or an error it wraps, was made by
// Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

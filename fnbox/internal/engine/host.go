package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// host serves the context API of one invocation. Under at-least-once an
// emit is written at once and acknowledged before Emit returns; under
// exactly-once it is buffered and written in the transaction only if the
// invocation succeeds, so a failed attempt leaves nothing behind.
type host struct {
	r     *runner
	in    envelope.Delivery
	trace context.Context // carries the invocation's span
	txn   bool

	mu       sync.Mutex
	finished bool
	buffered []*kgo.Record
}

var _ runtime.Host = (*host)(nil)

// finish ends the invocation's use of the host and returns the buffered
// emits.
func (h *host) finish() []*kgo.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.finished = true
	return h.buffered
}

// output describes an event caused by the input for a declared stream.
func (h *host) output(e runtime.Emit, defaultType string) (envelope.Output, error) {
	if !h.r.declared[e.Stream] {
		return envelope.Output{}, fmt.Errorf("emit to %q (declared: %s): %w", e.Stream, h.declaredList(), runtime.ErrUndeclaredStream)
	}
	return envelope.Output{
		Source:  h.r.source,
		Type:    cmp.Or(e.Type, defaultType),
		Subject: e.Subject,
		// Keyed like its input unless the function says otherwise, so
		// events of one key stay in order downstream.
		PartitionKey:    cmp.Or(e.Key, envelope.Extension(h.in.Event, envelope.ExtPartitionKey)),
		Trace:           h.trace,
		Data:            e.Data,
		DataContentType: dataContentType(e.Data, e.ContentType),
	}, nil
}

func (h *host) declaredList() string {
	var names []string
	for n := range h.r.declared {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Emit writes an event to a stream in out or emits.
func (h *host) Emit(ctx context.Context, e runtime.Emit) error {
	o, err := h.output(e, obs.TypeEmit)
	if err != nil {
		return err
	}
	rec, err := envelope.ChildRecord(h.r.e.ns.Topic(e.Stream), h.in.Event, o)
	if err != nil {
		return fmt.Errorf("emit to %s: %w", e.Stream, err)
	}
	h.mu.Lock()
	if h.finished {
		h.mu.Unlock()
		return errEmitAfterReturn
	}
	if h.txn {
		h.buffered = append(h.buffered, rec)
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()
	if err := h.r.e.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("emit to %s: %w", e.Stream, err)
	}
	return nil
}

// Request emits an event with replyto set to _butter.replies and waits
// for the event whose causationid is its id. The request is written at
// once even under exactly-once: held back in the transaction, it could
// never be answered. A TypeError reply is returned as an error.
func (h *host) Request(ctx context.Context, e runtime.Emit) (runtime.Result, error) {
	o, err := h.output(e, obs.TypeRequest)
	if err != nil {
		return runtime.Result{}, err
	}
	ev := envelope.ChildEvent(h.in.Event, o)
	ev.SetExtension(envelope.ExtReplyTo, topics.Replies)
	if dl, ok := ctx.Deadline(); ok {
		envelope.SetDeadline(&ev, dl)
	}
	rec, err := envelope.ToRecord(h.r.e.ns.Topic(e.Stream), ev)
	if err != nil {
		return runtime.Result{}, fmt.Errorf("request to %s: %w", e.Stream, err)
	}
	h.mu.Lock()
	finished := h.finished
	h.mu.Unlock()
	if finished {
		return runtime.Result{}, errEmitAfterReturn
	}
	ch, cancel := h.r.e.replies.wait(ev.ID())
	defer cancel()
	if err := h.r.e.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return runtime.Result{}, fmt.Errorf("request to %s: %w", e.Stream, err)
	}
	select {
	case reply := <-ch:
		if reply.Type() == obs.TypeError {
			return runtime.Result{}, fmt.Errorf("request %s to %s failed: %s", ev.ID(), e.Stream, reply.Data())
		}
		return runtime.Result{Data: reply.Data(), ContentType: reply.DataContentType()}, nil
	case <-ctx.Done():
		return runtime.Result{}, fmt.Errorf("wait for the reply to request %s on %s: %w", ev.ID(), e.Stream, ctx.Err())
	}
}

// Log writes a line to _butter.logs, tagged with the event and its trace.
// Logs are best effort: they never hold up or fail the invocation.
func (h *host) Log(_ context.Context, level slog.Level, msg string) {
	l := obs.Log{
		EventID: h.in.Event.ID(),
		Level:   levelName(level),
		Message: msg,
		Origin:  obs.OriginContext,
	}
	if sc := trace.SpanContextFromContext(h.trace); sc.IsValid() {
		l.TraceID = sc.TraceID().String()
	}
	h.r.writeLog(l)
}

// writeLog sends a log line of the function without waiting.
func (r *runner) writeLog(l obs.Log) {
	l.Deployment, l.Function, l.Instance = r.e.cfg.Deployment.Name, r.fn.Name, r.e.cfg.Instance
	r.e.writeLog(l)
}

// writeLog sends a log line without waiting, within the instance's
// LogLimits (logwriter.go).
func (e *Engine) writeLog(l obs.Log) {
	if !e.logs.admit(&l) {
		return
	}
	e.sendLog(l)
}

// sendLog sends a log line without waiting.
func (e *Engine) sendLog(l obs.Log) {
	if l.Time.IsZero() {
		l.Time = time.Now().UTC()
	}
	if l.Deployment == "" {
		l.Deployment = e.cfg.Deployment.Name
	}
	if l.Instance == "" {
		l.Instance = e.cfg.Instance
	}
	rec, err := l.Record(e.ns.Topic(topics.Logs))
	if err != nil {
		e.log.Warn("encode function log", kit.KeyError, err)
		return
	}
	e.prod.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil && !errors.Is(err, kgo.ErrClientClosed) {
			e.log.Warn("write function log", kit.KeyError, err)
		}
	})
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return obs.LevelDebug
	case l < slog.LevelWarn:
		return obs.LevelInfo
	case l < slog.LevelError:
		return obs.LevelWarn
	default:
		return obs.LevelError
	}
}

var errEmitAfterReturn = errors.New("the invocation has returned: emit and request are only valid during it")

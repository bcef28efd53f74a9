package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// tracer is taken from the global provider at each use, so a provider
// installed by kit.StartTelemetry after package init is the one used.
func tracer() trace.Tracer { return otel.Tracer("github.com/buttercompass/butter/fnbox") }

// The span kinds as start options, made once: a variadic option built at
// the call costs an allocation per span.
var (
	consumerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	producerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
)

// outputTimeout bounds writing an event's outputs once it is done, even
// while shutting down: finishing in-flight work includes its outputs.
const outputTimeout = 30 * time.Second

// producer writes a function's outputs: through the shared producer under
// at-least-once, through the transaction's client under exactly-once.
//
// Under exactly-once (txn) send only buffers: flush writes everything once
// the poll is done, in the transaction begun just before, so that the
// transaction stays open only for that write and not for the invocations.
//
// An async producer does not wait for acknowledgements in send: the poll's
// consume loop waits for all of them (wait) before it commits anything, so
// an event counts as done only once its outputs are acknowledged, without
// a broker round trip per event.
type producer struct {
	cl    *kgo.Client
	txn   bool
	async bool

	wg       sync.WaitGroup
	mu       sync.Mutex
	first    error
	buffered []*kgo.Record // txn: written by flush

	// queue feeds the writer started by startWriter (see later);
	// writeErr is its first failure, read once drain returned.
	queue    chan func() error
	written  chan struct{}
	writeErr error
	failed   atomic.Bool // writeErr is set
}

// startWriter starts the goroutine that runs the work given to later, in
// the order given; drain stops it.
func (p *producer) startWriter() {
	p.queue = make(chan func() error, 256)
	p.written = make(chan struct{})
	go func() {
		defer close(p.written)
		for f := range p.queue {
			if p.writeErr == nil {
				if p.writeErr = f(); p.writeErr != nil {
					p.failed.Store(true)
				}
			}
		}
	}()
}

// later runs f, the writing of an invocation's results, on the writer
// when one runs (in order: a partition's results keep their order), else
// at once. It returns f's error when f ran at once, and errWriterFailed
// once an earlier f failed on the writer, so the poll stops: nothing
// after that may be committed (drain returns the failure itself).
func (p *producer) later(f func() error) error {
	if p.queue == nil {
		return f()
	}
	if p.failed.Load() {
		return errWriterFailed
	}
	p.queue <- f
	return nil
}

// errWriterFailed stops a poll whose results could not be written.
var errWriterFailed = errors.New("an earlier result of the poll could not be written")

// drain waits until the writer ran everything given to later and returns
// its first failure.
func (p *producer) drain() error {
	if p.queue == nil {
		return nil
	}
	close(p.queue)
	<-p.written
	p.queue = nil
	return p.writeErr
}

// send writes recs; unless async it waits for every acknowledgement.
func (p *producer) send(ctx context.Context, recs ...*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if p.txn {
		p.mu.Lock()
		p.buffered = append(p.buffered, recs...)
		p.mu.Unlock()
		return nil
	}
	if p.async {
		for _, rec := range recs {
			p.wg.Add(1)
			p.cl.Produce(context.WithoutCancel(ctx), rec, func(r *kgo.Record, err error) {
				defer p.wg.Done()
				if err != nil {
					p.mu.Lock()
					if p.first == nil {
						p.first = fmt.Errorf("produce to %s: %w", r.Topic, err)
					}
					p.mu.Unlock()
				}
			})
		}
		return nil
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", recs[0].Topic, err)
	}
	return nil
}

// sendBounded is send given outputTimeout, even while shutting down:
// finishing in-flight work includes its outputs. Buffering (txn) and
// async sends do not wait, so they skip making the timeout.
func (p *producer) sendBounded(ctx context.Context, recs ...*kgo.Record) error {
	if p.txn || p.async {
		return p.send(ctx, recs...)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outputTimeout)
	defer cancel()
	return p.send(pctx, recs...)
}

// flush writes what a txn producer buffered, in the open transaction.
func (p *producer) flush(ctx context.Context) error {
	p.mu.Lock()
	recs := p.buffered
	p.buffered = nil
	p.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("write outputs in the transaction: %w", err)
	}
	return nil
}

// wait waits for the acknowledgement of everything sent and returns the
// first failure.
func (p *producer) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("wait for output acknowledgements: %w", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// process delivers one unit: invalid CloudEvents and the events whose
// deadline already passed are dead-lettered one by one without invoking,
// the rest go to one invocation.
// Retries repeat the whole invocation; when they are exhausted every event
// of it is dead-lettered. Each event is marked done in its partBatch once
// it succeeded with its outputs sent, or was dead-lettered, so its offset
// may be committed. process reports whether the whole unit is done; false
// with a nil error means it was abandoned because ctx is done. An error
// means an output could not be written and nothing after this unit may be
// committed.
func (r *runner) process(ctx context.Context, rt runtime.Runtime, out *producer, u unit) (bool, error) {
	var live []int // indexes into u.pb of the events to invoke
	for _, i := range u.idx {
		d := u.pb.ds[i]
		if d.Invalid != nil {
			// It claims to be a CloudEvent but is not one: invoking the
			// function with its raw stand-in would hide the sender's bug,
			// and no retry can fix it.
			r.logger(d).Warn("invalid CloudEvent; dead-lettering without invoking", kit.KeyError, d.Invalid)
			if err := r.deadLetter(ctx, out, d, u.pb.recs[i], d.Invalid.Error(), 0); err != nil {
				return false, err
			}
			u.pb.markDone(i)
			continue
		}
		if dl, ok := envelope.Deadline(d.Event); ok && !time.Now().Before(dl) {
			r.logger(d).Info("event deadline passed; dead-lettering without invoking", "deadline", dl)
			if err := r.deadLetter(ctx, out, d, u.pb.recs[i], obs.ErrDeadlineExpired, 0); err != nil {
				return false, err
			}
			u.pb.markDone(i)
			continue
		}
		live = append(live, i)
	}
	if len(live) == 0 {
		return true, nil
	}
	ds := make([]envelope.Delivery, len(live))
	for j, i := range live {
		ds[j] = u.pb.ds[i]
	}
	markDone := func() {
		for _, i := range live {
			u.pb.markDone(i)
		}
	}
	// The logger is made when something is logged: slog's With costs
	// allocations on every event otherwise.
	log := func() *slog.Logger {
		l := r.logger(ds[0])
		if len(ds) > 1 {
			l = l.With("batch", len(ds))
		}
		return l
	}
	deadLetterAll := func(msg string, attempts int) (bool, error) {
		for _, i := range live {
			if err := r.deadLetter(ctx, out, u.pb.ds[i], u.pb.recs[i], msg, attempts); err != nil {
				return false, err
			}
			u.pb.markDone(i)
		}
		return true, nil
	}
	// Retries go on from where an earlier poll of the same events left
	// them (see retryState), and crashes are counted (see crashes.go).
	key := retryKey{tp{u.pb.topic, u.pb.partition}, u.pb.recs[live[0]].Offset}
	st := r.takeRetry(key)
	crashed := r.crashesAt(key.tp, key.offset)
	if limit := r.crashLimit(); crashed >= limit {
		log().Warn("event crashed fnbox or its runtime as many times as the crash limit; dead-lettering without invoking",
			"crashes", crashed, "limit", limit)
		return deadLetterAll(obs.ErrCrashed, st.attempts)
	}
	if !kit.Sleep(ctx, time.Until(st.notBefore)) {
		r.keepRetry(key, st)
		return false, nil
	}
	r.stats.begin(len(ds))
	defer r.stats.end(len(ds))
	fetched := r.fetchSpan(ctx, u.pb, live)
	for attempt := st.attempts + 1; ; attempt++ {
		if attempt > 1 {
			if dl, ok := envelope.Deadline(ds[0].Event); ok && !time.Now().Before(dl) {
				// An event with a deadline is invoked alone (see units);
				// its requester has given up, so a retry would only be
				// wasted work.
				log().Info("event deadline passed while retrying; dead-lettering", "deadline", dl, "attempts", attempt-1)
				return deadLetterAll(obs.ErrDeadlineExpired, attempt-1)
			}
		}
		leave := r.enterInvoke(ctx, u.pb, key.offset)
		ictx, res, emits, err := r.invoke(ctx, fetched, rt, ds)
		leave()
		if err == nil {
			// Building and handing over the results goes on beside the
			// next invocation (see producer.later); the events count as
			// done once that is through, and the poll commits nothing
			// before every acknowledgement is in.
			if err := out.later(func() error {
				if err := r.writeResult(ctx, ictx, out, ds, res, emits); err != nil {
					return err
				}
				markDone()
				r.stats.done(len(ds))
				return nil
			}); err != nil {
				return false, err
			}
			return true, nil
		}
		r.stats.failure()
		st.attempts = attempt
		if errors.Is(err, runtime.ErrCrashed) {
			st.crashes++
			if limit := r.crashLimit(); crashed+st.crashes >= limit {
				log().Warn("invocation crashed the function's host as many times as the crash limit; dead-lettering",
					"crashes", crashed+st.crashes, "limit", limit, kit.KeyError, err)
				return deadLetterAll(obs.ErrCrashed, attempt)
			}
		}
		if runtime.IsPermanent(err) || attempt > r.fn.Delivery.Retries {
			log().Warn("invocation failed; dead-lettering", "attempts", attempt, kit.KeyError, err)
			msg := err.Error()
			if errors.Is(err, runtime.ErrCrashed) {
				msg = obs.ErrCrashed
			}
			return deadLetterAll(msg, attempt)
		}
		wait := r.backoff(attempt)
		until := time.Now().Add(wait)
		log().Info("invocation failed; retrying", "attempt", attempt, "in", wait, kit.KeyError, err)
		r.logFailure(ds[0], obs.LevelWarn, fmt.Sprintf("invocation failed (attempt %d of %d), retrying in %s: %v",
			attempt, r.fn.Delivery.Retries+1, wait.Round(time.Millisecond), err))
		if !kit.Sleep(ctx, wait) {
			// The poll is over (its time is up, or fnbox is stopping):
			// the backoff goes on outside it.
			st.notBefore = until
			r.keepRetry(key, st)
			return false, nil
		}
	}
}

// logger is the runner's logger with the position of d.
func (r *runner) logger(d envelope.Delivery) *slog.Logger {
	return r.log.With(kit.KeyStream, d.Stream, kit.KeyPartition, d.Partition, kit.KeyOffset, d.Offset)
}

// invoke runs one attempt with the events ds (one, or a batch of one
// partition in offset order). The invocation gets its own context:
// shutting down lets it finish within its deadline, the earliest of now +
// delivery.timeout and the events' deadlines. The returned context carries
// the invocation's span, for the trace of its outputs; its parent is the
// fetch span in parent (see fetchSpan).
func (r *runner) invoke(ctx, parent context.Context, rt runtime.Runtime, ds []envelope.Delivery) (context.Context, runtime.Result, []*kgo.Record, error) {
	deadline := time.Now().Add(r.fn.Delivery.Timeout.Std())
	for _, d := range ds {
		if dl, ok := envelope.Deadline(d.Event); ok && dl.Before(deadline) {
			deadline = dl
		}
	}
	d := ds[0]
	sctx, span := tracer().Start(parent, r.invokeSpan, consumerSpan...)
	if span.IsRecording() { // attributes cost allocations, for nothing when not sampled
		span.SetAttributes(
			attribute.String("butter.deployment", r.e.cfg.Deployment.Name),
			attribute.String("butter.function", r.fn.Name),
			attribute.String("cloudevents.event_id", d.Event.ID()),
			attribute.String("cloudevents.event_type", d.Event.Type()),
			attribute.String("messaging.destination.name", d.Stream),
			attribute.Int("messaging.destination.partition.id", int(d.Partition)),
			attribute.Int64("messaging.kafka.offset", d.Offset),
			attribute.Int("messaging.batch.message_count", len(ds)),
		)
	}
	defer span.End()
	ictx, cancel := context.WithDeadline(sctx, deadline)
	defer cancel()

	h := &host{r: r, in: d, trace: sctx, txn: r.exactlyOnce()}
	start := time.Now()
	res, err := rt.Invoke(ictx, runtime.Invocation{
		Function: r.fn.Name,
		Events:   ds,
		Deadline: deadline,
	}, h)
	r.stats.observe(time.Since(start))
	emits := h.finish()
	if err == nil && ictx.Err() != nil {
		// A handler that ignored its deadline still ran past it.
		err = fmt.Errorf("invoke %s: %w", r.fn.Name, runtime.ErrTimeout)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return sctx, runtime.Result{}, nil, err
	}
	return sctx, res, emits, nil
}

// fetchSpan makes the span of receiving the events live of pb (indexes
// into pb.ds): from the poll returning them to their invocation starting,
// which is now. Its parent is the first event's traceparent (a batch
// continues the trace of its first event); it is named and described
// after OpenTelemetry's messaging conventions ("receive <stream>"). kotel's
// hooks are not used: they set their own trace headers on the records,
// which fight the CloudEvents traceparent extension. The returned context
// carries the span, without ctx's cancellation, for the invoke spans.
func (r *runner) fetchSpan(ctx context.Context, pb *partBatch, live []int) context.Context {
	d, rec := pb.ds[live[0]], pb.recs[live[0]]
	pctx := envelope.ExtractTrace(context.WithoutCancel(ctx), d.Event)
	name, ok := r.receiveSpans[d.Stream]
	if !ok {
		name = "receive " + d.Stream
	}
	sctx, span := tracer().Start(pctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(pb.polled))
	if span.IsRecording() { // attributes cost allocations, for nothing when not sampled
		span.SetAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("messaging.operation.name", "poll"),
			attribute.String("messaging.destination.name", d.Stream),
			attribute.Int("messaging.destination.partition.id", int(d.Partition)),
			attribute.Int64("messaging.kafka.offset", d.Offset),
			attribute.String("messaging.consumer.group.name", r.group),
			attribute.String("messaging.message.id", d.Event.ID()),
			attribute.Int("messaging.batch.message_count", len(live)),
			attribute.String("butter.deployment", r.e.cfg.Deployment.Name),
			attribute.String("butter.function", r.fn.Name),
		)
		if len(rec.Key) > 0 {
			span.SetAttributes(attribute.String("messaging.kafka.message.key", string(rec.Key)))
		}
	}
	span.End()
	return sctx
}

// writeResult writes the one result of the invocation of ds to out and,
// when the input asked for a reply, to its replyto stream, together with
// the emits buffered under exactly-once. Events with replyto are never
// batched (see units), so a reply always answers exactly its request.
func (r *runner) writeResult(ctx, traceCtx context.Context, out *producer, ds []envelope.Delivery, res runtime.Result, recs []*kgo.Record) error {
	d := ds[0]
	// The plain result of one event (the common case) is encoded
	// directly; one that adopts the function's CloudEvent or names a
	// batch is built as an event first.
	result := func(topic string, batchIDs bool) (*kgo.Record, error) {
		o := r.resultOutput(traceCtx, d, obs.TypeResult, res.Data, res.ContentType)
		if res.Event == nil && !batchIDs {
			return envelope.ChildRecord(topic, d.Event, o)
		}
		e := envelope.ChildEvent(d.Event, o)
		if res.Event != nil {
			adoptReply(&e, *res.Event, d.Event)
		}
		if batchIDs {
			ids := make([]string, len(ds))
			for i, d := range ds {
				ids[i] = d.Event.ID()
			}
			b, _ := json.Marshal(ids) // strings always encode
			e.SetExtension(obs.ExtBatchIDs, string(b))
		}
		return envelope.ToRecord(topic, e)
	}
	if o := r.fn.Bindings.Out; o != "" && (res.Data != nil || res.Event != nil) {
		rec, err := result(r.e.ns.Topic(o), len(ds) > 1)
		if err != nil {
			return fmt.Errorf("build result event for %s: %w", d.Event.ID(), err)
		}
		recs = append(recs, rec)
	}
	if replyTo := r.replyTo(d); replyTo != "" && len(ds) == 1 {
		rec, err := result(r.e.ns.Topic(replyTo), false)
		if err != nil {
			return fmt.Errorf("build %s event for %s: %w", obs.TypeResult, d.Event.ID(), err)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil
	}
	// The produce span follows invoke in the event's trace: the time to
	// get the outputs acknowledged (or into the transaction).
	_, span := tracer().Start(traceCtx, r.produceSpan, producerSpan...)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("butter.deployment", r.e.cfg.Deployment.Name),
			attribute.String("butter.function", r.fn.Name),
			attribute.String("messaging.destination.name", recs[0].Topic),
			attribute.Int("messaging.batch.message_count", len(recs)),
		)
	}
	defer span.End()
	if err := out.sendBounded(ctx, recs...); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("write result of event %s: %w", d.Event.ID(), err)
	}
	return nil
}

// replyTo is the stream the input asks a reply on, "" for none. Anyone
// who may write to an input stream sets it, so it may name the replies
// topic or a user stream, never another internal topic (the deployments,
// the API keys): a reply there would be a forged control record.
func (r *runner) replyTo(d envelope.Delivery) string {
	to := envelope.Extension(d.Event, envelope.ExtReplyTo)
	if to == "" || to == topics.Replies {
		return to
	}
	if topics.IsInternal(to) || topics.ValidateStreamName(to) != nil {
		r.logger(d).Warn("event asks a reply on a stream replies may not go to; not replying", "replyto", to)
		return ""
	}
	return to
}

// resultRecord builds a result (or reply) event caused by the input:
// subject and causationid are the input's id, correlationid and trace are
// carried, and the input's partition key is kept so results of one key
// stay in order.
func (r *runner) resultRecord(traceCtx context.Context, topic string, d envelope.Delivery, typ string, data []byte, contentType string) (*kgo.Record, error) {
	rec, err := envelope.ChildRecord(topic, d.Event, r.resultOutput(traceCtx, d, typ, data, contentType))
	if err != nil {
		return nil, fmt.Errorf("build %s event for %s: %w", typ, d.Event.ID(), err)
	}
	return rec, nil
}

// resultOutput is the event resultRecord encodes, as an envelope.Output
// of the input.
func (r *runner) resultOutput(traceCtx context.Context, d envelope.Delivery, typ string, data []byte, contentType string) envelope.Output {
	return envelope.Output{
		Source:          r.source,
		Type:            typ,
		Subject:         d.Event.ID(),
		PartitionKey:    envelope.Extension(d.Event, envelope.ExtPartitionKey),
		Trace:           traceCtx,
		Data:            data,
		DataContentType: dataContentType(data, contentType),
	}
}

// platformExtensions are the extensions of an output that fnbox sets, not
// the function: the chain, the trace, and where the input sat.
var platformExtensions = map[string]bool{
	envelope.ExtCausationID: true, envelope.ExtCorrelationID: true,
	envelope.ExtTraceparent: true, envelope.ExtTracestate: true,
	"stream": true, "partition": true, "offset": true,
}

// adoptReply makes result the CloudEvent the function answered with: its
// type, source, subject (when it has one), dataschema and extensions,
// except those fnbox sets (platformExtensions) and a replyto or deadline
// merely echoed from the input, which would send the output back to the
// requester. Id, time and data stay as resultOutput made them.
func adoptReply(result *event.Event, reply, in event.Event) {
	if reply.Context == nil {
		return
	}
	result.SetType(reply.Type())
	result.SetSource(reply.Source())
	if s := reply.Subject(); s != "" {
		result.SetSubject(s)
	}
	if s := reply.DataSchema(); s != "" {
		result.SetDataSchema(s)
	}
	for name, v := range reply.Extensions() {
		s, err := types.Format(v)
		if err != nil || platformExtensions[name] {
			continue
		}
		if (name == envelope.ExtReplyTo || name == envelope.ExtDeadline) && s == envelope.Extension(in, name) {
			continue
		}
		result.SetExtension(name, s)
	}
}

// deadLetter writes the original event, with the failure as extensions, to
// the dead-letter stream, and an error reply when the input asked for a
// reply, so the requester need not wait for its timeout.
func (r *runner) deadLetter(ctx context.Context, out *producer, d envelope.Delivery, rec *kgo.Record, msg string, attempts int) error {
	e := d.Event.Clone()
	e.SetExtension(obs.ExtDLQError, msg)
	e.SetExtension(obs.ExtDLQAttempts, strconv.Itoa(attempts))
	e.SetExtension(obs.ExtDLQStream, d.Stream)
	e.SetExtension(obs.ExtDLQPartition, strconv.Itoa(int(d.Partition)))
	e.SetExtension(obs.ExtDLQOffset, strconv.FormatInt(d.Offset, 10))
	e.SetExtension(obs.ExtDLQFunction, r.e.cfg.Deployment.Name+"/"+r.fn.Name)
	dlq, err := envelope.ToRecord(r.e.ns.Topic(r.fn.Delivery.DeadLetter), e)
	if err != nil {
		return fmt.Errorf("build dead letter of event %s: %w", d.Event.ID(), err)
	}
	dlq.Key = rec.Key // same partitioning as the original
	recs := []*kgo.Record{dlq}
	if replyTo := r.replyTo(d); replyTo != "" {
		data, _ := json.Marshal(obs.ErrorReply{Error: msg, Attempts: attempts})
		reply, err := r.resultRecord(context.Background(), r.e.ns.Topic(replyTo), d, obs.TypeError, data, event.ApplicationJSON)
		if err != nil {
			return err
		}
		recs = append(recs, reply)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outputTimeout)
	defer cancel()
	if err := out.send(pctx, recs...); err != nil {
		return fmt.Errorf("dead-letter event %s: %w", d.Event.ID(), err)
	}
	r.stats.deadLettered()
	r.stats.done(1)
	r.logFailure(d, obs.LevelError, fmt.Sprintf("dead-lettered to %s after %d attempts: %s", r.fn.Delivery.DeadLetter, attempts, msg))
	return nil
}

// logFailure tells the function's log (_butter.logs, so `butter logs` and
// the tracer show it) why an event failed, tagged with the event and its
// trace.
func (r *runner) logFailure(d envelope.Delivery, level, msg string) {
	l := obs.Log{EventID: d.Event.ID(), Level: level, Message: msg, Origin: obs.OriginFnbox}
	if sc := trace.SpanContextFromContext(envelope.ExtractTrace(context.Background(), d.Event)); sc.IsValid() {
		l.TraceID = sc.TraceID().String()
	}
	r.writeLog(l)
}

// backoff is the wait before retry number attempt: exponential from
// delivery.backoff, capped at maxBackoff, with full jitter so retries of
// many instances do not stampede together.
func (r *runner) backoff(attempt int) time.Duration {
	d := r.fn.Delivery
	return kit.Backoff{Base: d.Backoff.Std(), Max: d.MaxBackoff.Std(), FullJitter: true}.Delay(attempt)
}

// matches reports whether e has every attribute or extension of filter
// with the given value (string forms compared).
func matches(filter map[string]string, e event.Event) bool {
	for name, want := range filter {
		var got string
		switch name {
		case "id":
			got = e.ID()
		case "source":
			got = e.Source()
		case "type":
			got = e.Type()
		case "subject":
			got = e.Subject()
		case "specversion":
			got = e.SpecVersion()
		case "datacontenttype":
			got = e.DataContentType()
		case "dataschema":
			got = e.DataSchema()
		case "time":
			got = types.FormatTime(e.Time())
		default:
			got = envelope.Extension(e, name)
		}
		if got != want {
			return false
		}
	}
	return true
}

// dataContentType is the content type of data: contentType, or a guess
// of JSON or bytes when the runtime said nothing (and no data, none).
func dataContentType(data []byte, contentType string) string {
	if data == nil || contentType != "" {
		return contentType
	}
	if json.Valid(data) {
		return event.ApplicationJSON
	}
	return "application/octet-stream"
}

var errEmitAfterReturn = errors.New("the invocation has returned: emit and request are only valid during it")

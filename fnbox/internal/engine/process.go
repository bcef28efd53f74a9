package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
)

// tracerName names the engine's tracer.
const tracerName = "github.com/buttercompass/butter/fnbox"

// tracer returns Config.TracerProvider's tracer, else the global
// provider's, taken at each use so a provider installed by
// kit.StartTelemetry after package init is the one used.
func (e *Engine) tracer() trace.Tracer {
	if e.cfg.TracerProvider != nil {
		return e.cfg.TracerProvider.Tracer(tracerName)
	}
	return otel.Tracer(tracerName)
}

// The span kinds as start options, made once: a variadic option built at
// the call costs an allocation per span.
var (
	consumerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	producerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
)

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
		leave := r.enterInvoke(ctx, u.pb, key.offset, st.alone)
		before, busy := r.e.hostCalls.Add(1), r.e.hostBusy.Add(1)
		ictx, res, emits, err := r.invoke(ctx, fetched, rt, ds)
		r.e.hostBusy.Add(-1)
		// Alone on the host: none in flight when it started, none started
		// while it ran.
		ranAlone := busy == 1 && r.e.hostCalls.Load() == before
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
		if errors.Is(err, runtime.ErrCrashed) && !ranAlone && st.unpinned < maxUnpinnedCrashes {
			// The host crashed with other invocations in flight: any of
			// them may have crashed it. Not this event's failure: it is
			// retried at once, alone, so that a crash then is its own.
			st.unpinned++
			st.alone = true
			log().Info("the function's host crashed while other invocations ran beside this one; retrying it alone", kit.KeyError, err)
			wait := r.backoff(1)
			if !kit.Sleep(ctx, wait) {
				st.notBefore = time.Now().Add(wait)
				r.keepRetry(key, st)
				return false, nil
			}
			attempt-- // not an attempt of this event's
			continue
		}
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

// maxUnpinnedCrashes bounds the host crashes an event is not blamed for
// (others ran beside it): past it, a crash counts as its own, so that a
// host crashing over and over cannot retry an event forever.
const maxUnpinnedCrashes = 10

// logger is the runner's logger with the position of d.
func (r *runner) logger(d envelope.Delivery) *slog.Logger {
	return r.log.With(kit.KeyStream, d.Stream, kit.KeyPartition, d.Partition, kit.KeyOffset, d.Offset)
}

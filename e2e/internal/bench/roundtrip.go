package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// measureRoundTrip times sequential request→reply round trips and adds
// RowReplyP50, RowReplyP99 and RowReplyMean. Both sides produce with linger
// 0, as a gateway and a function answering a route would. The requester's
// clock starts before it produces the request (already encoded) and stops
// when it has polled the reply.
func measureRoundTrip(ctx context.Context, env *Env, rep *Report) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	responder, err := env.Client(
		kgo.ProducerLinger(0),
		kgo.ConsumeTopics(topicRequests),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer responder.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := respond(ctx, responder); err != nil {
			cancel(fmt.Errorf("responder: %w", err))
		}
	})
	defer wg.Wait()
	defer cancel(nil) // runs before wg.Wait: stops the responder

	requester, err := env.Client(
		kgo.ProducerLinger(0),
		kgo.ConsumeTopics(topicReplies),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer requester.Close()

	cfg := env.Config
	times := make([]time.Duration, 0, cfg.Requests)
	for i := range cfg.Warmup + cfg.Requests {
		d, err := roundTrip(ctx, requester, cfg.ReplyTimeout)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			}
			return fmt.Errorf("request %d: %w", i+1, err)
		}
		if i >= cfg.Warmup {
			times = append(times, d)
		}
	}

	p50, p99, mean := percentile(times, 0.50), percentile(times, 0.99), meanOf(times)
	return rep.Add(
		Row{Name: RowReplyP50, Value: ms(p50), Unit: UnitMilliseconds, Count: len(times)},
		Row{Name: RowReplyP99, Value: ms(p99), Unit: UnitMilliseconds, Count: len(times)},
		Row{Name: RowReplyMean, Value: ms(mean), Unit: UnitMilliseconds, Count: len(times)},
	)
}

// roundTrip produces one request and polls replies until the one caused by
// it arrives.
func roundTrip(ctx context.Context, cl *kgo.Client, timeout time.Duration) (time.Duration, error) {
	req := envelope.New(sourceRequester, typeRequest)
	req.SetExtension(envelope.ExtReplyTo, topicReplies)
	envelope.SetDeadline(&req, time.Now().Add(timeout))
	rec, err := envelope.ToRecord(topicRequests, req)
	if err != nil {
		return 0, err
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce request: %w", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("no reply to %s within %s: %w", req.ID(), timeout, err)
		}
		if err := fs.Err(); err != nil {
			return 0, fmt.Errorf("consume %s: %w", topicReplies, err)
		}
		for r := range fs.RecordsAll() {
			if envelope.Extension(envelope.FromRecord(r).Event, envelope.ExtCausationID) == req.ID() {
				return time.Since(start), nil
			}
		}
	}
}

// respond answers every request on cl's topics on the stream named by its
// replyto extension, until ctx is done.
func respond(ctx context.Context, cl *kgo.Client) error {
	var failed promiseErrors
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("consume %s: %w", topicRequests, err)
		}
		for r := range fs.RecordsAll() {
			d := envelope.FromRecord(r)
			to := envelope.Extension(d.Event, envelope.ExtReplyTo)
			if to == "" {
				return fmt.Errorf("request %s has no %s extension", d.Event.ID(), envelope.ExtReplyTo)
			}
			reply, err := child(to, sourceResponder, typeReply, d)
			if err != nil {
				return err
			}
			cl.Produce(ctx, reply, failed.promise)
		}
		if err := failed.err(); err != nil {
			return err
		}
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(ds))
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// meanOf returns the arithmetic mean of ds.
func meanOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var total time.Duration
	for _, d := range ds {
		total += d
	}
	return total / time.Duration(len(ds))
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

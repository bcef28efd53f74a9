package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/timer/service"
)

// Rows of the timer.
const (
	// RowTimerLagP50 is the median fire lag, firedTime − scheduledTime.
	RowTimerLagP50 = "timer fire lag p50"
	// RowTimerLagP99 is the 99th percentile fire lag.
	RowTimerLagP99 = "timer fire lag p99"
	// RowTimerDeliveryP50 is the median time from a tick's scheduled time
	// to a read_committed consumer having it.
	RowTimerDeliveryP50 = "timer tick delivery p50"
	// RowTimerDeliveryP99 is the 99th percentile tick delivery.
	RowTimerDeliveryP99 = "timer tick delivery p99"
)

// The timer of the bench: every second, on its own stream.
const (
	timerID       = "bench-tick"
	timerSchedule = "* * * * * *"
	timerStream   = "bench-ticks"
)

// measureTimer runs a timer in-process, creates an API timer firing every
// whole second and reads its ticks with a read_committed consumer, as
// fnbox does. For Config.TimerTicks ticks after the first (which may wait
// for the timer's group to settle) it takes the fire lag, firedTime −
// scheduledTime from the tick's data: how late the timer wrote it, with no
// raw limit; and the delivery, from the scheduled time to the consumer
// polling the tick: the lag plus the transaction commit and the fetch,
// compared with the raw request→reply.
func measureTimer(ctx context.Context, env *Env, rep *Report) (err error) {
	cfg := env.Config
	limit := max(cfg.FnTimeout, time.Duration(cfg.TimerTicks)*time.Second+time.Minute)
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("the timer measurement took longer than %s", limit))
	defer cancel()
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)

	tm, err := startTimer(ctx, env, cancelCause)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tm.stop()) }()
	base := "http://" + tm.addr
	if err := waitHTTP(ctx, base+"/readyz", http.StatusOK); err != nil {
		return fmt.Errorf("timer not ready: %w%s", err, tm.logs)
	}
	body, _ := json.Marshal(map[string]string{"id": timerID, "schedule": timerSchedule, "stream": timerStream, "catchUp": "none"})
	if code, answer, err := post(ctx, base+"/v1/timers", body); err != nil || code != http.StatusCreated {
		return fmt.Errorf("create timer: %d %s %v%s", code, answer, err, tm.logs)
	}

	lags, deliveries, err := readTicks(ctx, env, 1, cfg.TimerTicks)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return fmt.Errorf("%w%s", err, tm.logs)
	}
	rep.Note(fmt.Sprintf("**timer fire lag, tick delivery**: the timer (`timer/service` in-process, one replica) "+
		"runs an API timer `%s` (every whole second) created with `POST /v1/timers`; a read_committed consumer, as "+
		"fnbox is, reads its ticks. Over %d ticks after the first: *fire lag* is `firedTime − scheduledTime` from the "+
		"tick's data, how late the timer wrote it (wake-up and scheduling, before Kafka; no raw limit); *delivery* is "+
		"from the scheduled time to the consumer polling the tick: the lag, the tick's transaction and its commit, and "+
		"the fetch. Limit: %s and %s; a tick makes one (transactional) trip through Kafka where a request→reply "+
		"makes two plain ones, so a ratio near 1 means the timer adds about one Kafka trip.",
		timerSchedule, cfg.TimerTicks, RowReplyP50, RowReplyP99))
	n := len(lags)
	return rep.Add(
		Row{Name: RowTimerLagP50, Value: ms(percentile(lags, 0.50)), Unit: UnitMilliseconds, NoLimit: true, Count: n},
		Row{Name: RowTimerLagP99, Value: ms(percentile(lags, 0.99)), Unit: UnitMilliseconds, NoLimit: true, Count: n},
		Row{Name: RowTimerDeliveryP50, Value: ms(percentile(deliveries, 0.50)), Unit: UnitMilliseconds, Limit: RowReplyP50, Count: n},
		Row{Name: RowTimerDeliveryP99, Value: ms(percentile(deliveries, 0.99)), Unit: UnitMilliseconds, Limit: RowReplyP99, Count: n},
	)
}

// startTimer provisions a timer on the run's broker on a random port and
// serves it until stop; if it stops on its own, cancel is called with the
// reason.
func startTimer(ctx context.Context, env *Env, cancel context.CancelCauseFunc) (*inProcess, error) {
	logs := &tailWriter{max: 20}
	cfg := service.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = env.Kafka
	cfg.Replica = "butter-bench"
	cfg.Drain = 0 // nothing reads ticks after the measurement
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := service.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Provision(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("provision timer: %w%s", err, logs)
	}
	return serve(ctx, "timer", s.Addr(), s.Serve, s.Close, logs, cancel), nil
}

// readTicks reads the ticks of timerID from timerStream, read_committed:
// skip untimed ones, then n. It returns the fire lag and the delivery of
// each of the n.
func readTicks(ctx context.Context, env *Env, skip, n int) (lags, deliveries []time.Duration, err error) {
	cl, err := env.Client(
		kgo.ConsumeTopics(timerStream),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	seen := map[string]bool{}
	for len(lags) < n {
		fs := cl.PollFetches(ctx)
		polled := time.Now()
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("read %d of %d ticks from %s: %w", len(lags), skip+n, timerStream, err)
		}
		if err := fs.Err(); err != nil {
			return nil, nil, fmt.Errorf("consume %s: %w", timerStream, err)
		}
		for r := range fs.RecordsAll() {
			e := envelope.FromRecord(r).Event
			var tick timers.Tick
			if err := json.Unmarshal(e.Data(), &tick); err != nil || e.Type() != timers.TypeTick || tick.Schedule != timerID {
				return nil, nil, fmt.Errorf("record at %s/%d@%d is not a tick of %s: %s %s", r.Topic, r.Partition, r.Offset, timerID, e.Type(), e.Data())
			}
			if seen[e.ID()] {
				return nil, nil, fmt.Errorf("tick %s read twice: the timer fires each time once", e.ID())
			}
			seen[e.ID()] = true
			if len(seen) <= skip || len(lags) == n {
				continue
			}
			lags = append(lags, tick.FiredTime.Sub(tick.ScheduledTime))
			deliveries = append(deliveries, polled.Sub(tick.ScheduledTime))
		}
	}
	return lags, deliveries, nil
}

// waitHTTP polls url with GET until it answers code.
func waitHTTP(ctx context.Context, url string, code int) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", context.Cause(ctx), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// post sends body as JSON to url and returns the status and answer.
func post(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentTypeJSON)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(answer), err
}

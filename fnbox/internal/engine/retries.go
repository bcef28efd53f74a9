package engine

import (
	"fmt"
	"time"

	"github.com/buttercompass/butter/proto/kit"
)

// Retries: process (process.go) runs an event's attempts and decides
// between retrying and dead-lettering; here are the wait between attempts
// and the count carried over to the next poll.

// backoff is the wait before retry number attempt: exponential from
// delivery.backoff, capped at maxBackoff, with full jitter so retries of
// many instances do not stampede together.
func (r *runner) backoff(attempt int) time.Duration {
	d := r.fn.Delivery
	return kit.Backoff{Base: d.Backoff.Std(), Max: d.MaxBackoff.Std(), FullJitter: true}.Delay(attempt)
}

// retryKey names the event a retry state belongs to.
type retryKey struct {
	tp
	offset int64
}

// retryState is how far the retries of an event got when its poll ended
// before it was done (at-least-once polls end when their time is up, so
// a rebalance is never held up by a long backoff): the next poll of the
// event goes on from there instead of starting the count again.
type retryState struct {
	attempts  int       // invocations that failed
	notBefore time.Time // end of the backoff before the next
	crashes   int       // failed invocations that crashed the host, alone
	// alone asks the next invocation to run alone: the host crashed
	// while others ran beside it, so which one crashed it is unknown.
	alone    bool
	unpinned int // such crashes, which count neither as crashes nor attempts
}

func (r *runner) takeRetry(k retryKey) retryState {
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	st := r.retries[k]
	delete(r.retries, k)
	return st
}

func (r *runner) keepRetry(k retryKey, st retryState) {
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	r.retries[k] = st
}

// String is for logs.
func (k retryKey) String() string { return fmt.Sprintf("%s/%d@%d", k.topic, k.partition, k.offset) }

package kit

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the platform's one retry policy: the wait before retry number
// n starts at Base and doubles each retry up to Max, and a random share of
// it is taken off (jitter), so the retries of many replicas, instances or
// events spread out instead of all coming back at the same moment. Every
// service retries with it: fnbox's delivery retries and consumer restarts,
// the deployer's replica restarts.
type Backoff struct {
	// Base is the step of the first retry; 0 or less means retry at once.
	Base time.Duration
	// Max caps the step; 0 or less means no cap.
	Max time.Duration
	// FullJitter draws each wait from [0, step] (the retries of events:
	// spread widest, some retried at once); otherwise from [step/2, step]
	// (restarts: never sooner than half the step).
	FullJitter bool
}

// Step is the wait before retry number attempt (1 for the first) before
// jitter: Base·2^(attempt-1), capped at Max.
func (b Backoff) Step(attempt int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	step := b.Base
	for i := 1; i < attempt && (b.Max <= 0 || step < b.Max) && step < 1<<61; i++ {
		step *= 2
	}
	if b.Max > 0 {
		step = min(step, b.Max)
	}
	return step
}

// Delay is the wait before retry number attempt (1 for the first): Step
// with jitter.
func (b Backoff) Delay(attempt int) time.Duration {
	step := b.Step(attempt)
	if step <= 0 {
		return 0
	}
	if b.FullJitter {
		return rand.N(step + 1)
	}
	return step/2 + rand.N(step-step/2+1)
}

// Sleep waits d or until ctx is done, and reports whether the whole wait
// passed (false: ctx ended first; a wait of 0 or less passes at once). It
// is how a retry loop waits.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Poll calls cond every interval until it returns true (Poll returns nil)
// or ctx is done (Poll returns ctx's error). cond is called at once first.
// It is the one polling loop: wait for a condition with it, never with a
// bare sleep; tests use kittest.Eventually, which polls with it.
func Poll(ctx context.Context, every time.Duration, cond func() bool) error {
	for {
		if cond() {
			return nil
		}
		if !Sleep(ctx, every) || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

package sink

import (
	"context"
	"sync"
	"time"
)

// limiter spaces posts at least 1/rate apart, across every partition of
// a sink: each post reserves the next free slot, so waiting posts go in
// the order they asked and a burst after a quiet time is not let through
// at once.
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

// newLimiter returns a limiter of perSecond posts a second; nil (no
// limit) for 0.
func newLimiter(perSecond int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	return &limiter{every: time.Second / time.Duration(perSecond)}
}

// wait blocks until the caller's slot, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.every)
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

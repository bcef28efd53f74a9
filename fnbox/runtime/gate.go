package runtime

import (
	"context"
	"fmt"
	"sync"
)

// Gate admits a runtime's invocations until Close, and lets Close wait for
// those in flight. Every platform needs the same bookkeeping, so it is here.
// The zero value is open.
type Gate struct {
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// Enter admits inv, returning ctx bounded by inv.Deadline and a done func
// to call when the invocation ends. After Close it refuses with an error.
func (g *Gate) Enter(ctx context.Context, inv Invocation) (context.Context, func(), error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ctx, nil, fmt.Errorf("invoke %q: runtime is closed", inv.Function)
	}
	g.inflight.Add(1)
	g.mu.Unlock()
	cancel := context.CancelFunc(func() {})
	// fnbox's ctx usually carries the same deadline already: a second
	// one would start a timer per event for nothing.
	if dl, ok := ctx.Deadline(); !inv.Deadline.IsZero() && (!ok || inv.Deadline.Before(dl)) {
		ctx, cancel = context.WithDeadline(ctx, inv.Deadline)
	}
	return ctx, func() { cancel(); g.inflight.Done() }, nil
}

// Closed reports whether Close was called: a runtime checks it before
// starting a process, so none starts after Close.
func (g *Gate) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close refuses new invocations and waits for those in flight until ctx is
// done, which is the returned error. first is false when the gate was
// already closed, so a runtime's Close runs its cleanup once.
func (g *Gate) Close(ctx context.Context) (first bool, err error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false, nil
	}
	g.closed = true
	g.mu.Unlock()
	idle := make(chan struct{})
	go func() { g.inflight.Wait(); close(idle) }()
	select {
	case <-idle:
		return true, nil
	case <-ctx.Done():
		return true, fmt.Errorf("invocations still running: %w", ctx.Err())
	}
}

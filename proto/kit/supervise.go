package kit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Part is one long-running piece of a service (a consumer, a reconciler, a
// server): Run works until its context is cancelled, then returns nil, or
// returns early with the reason it cannot go on.
type Part struct {
	// Name labels the part in the error that says it stopped.
	Name string
	// Run is the part's work.
	Run func(ctx context.Context) error
}

// Watch is a Part for work already started elsewhere that reports its end
// on done (a follower started by a service's New): it ends when ctx does,
// or with what done delivers.
func Watch(name string, done <-chan error) Part {
	return Part{Name: name, Run: func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			return err
		}
	}}
}

// Supervise runs parts until ctx is done or one of them returns, whatever
// it returns: a part that stops on its own (an error, or nil before ctx
// ended) stops the others, so a service never goes on half alive. Every
// goroutine is owned by an errgroup and waited for; the error names each
// part that failed or stopped early. It is the one supervisor of the
// platform: every service's Serve (through Admin.Supervise) and `butter up`
// use it.
func Supervise(ctx context.Context, parts ...Part) error {
	return supervise(ctx, func() {}, parts, nil)
}

// Supervise runs the admin server and parts (see kit.Supervise), and drains
// in order when ctx is done or any of them stops: /readyz turns 503, the
// parts are cancelled and waited for, and only then does the admin server
// stop, so probes see "draining" throughout. An admin server that stops
// (its listener failed) stops the service too.
func (a *Admin) Supervise(ctx context.Context, parts ...Part) error {
	return supervise(ctx, a.SetDraining, parts, []Part{{Name: "admin server", Run: a.Serve}})
}

// SuperviseBehind is Supervise for a service whose parts serve the admin
// server's requests (the gateway's reply reader): on the end, the admin
// server stops first, with its front parts (it drains, so requests in
// flight finish), and only then are the back parts cancelled, so a
// request answered during the drain still gets what they provide.
func (a *Admin) SuperviseBehind(ctx context.Context, front, back []Part) error {
	return supervise(ctx, a.SetDraining, append([]Part{{Name: "admin server", Run: a.Serve}}, front...), back)
}

// supervise runs parts and then last (each group under its own context)
// until ctx is done or any one returns; then it calls draining, cancels and
// waits for parts, then cancels and waits for last.
func supervise(ctx context.Context, draining func(), parts, last []Part) error {
	// The contexts are cancelled by supervise, not by ctx, so draining
	// happens before any part sees its end.
	pctx, stopParts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopParts()
	lctx, stopLast := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLast()
	var (
		mu    sync.Mutex
		errs  []error
		ended = make(chan struct{})
		once  sync.Once
	)
	start := func(g *errgroup.Group, ctx context.Context, p Part) {
		g.Go(func() error {
			err := p.Run(ctx)
			switch {
			case ctx.Err() == nil && err == nil:
				err = fmt.Errorf("%s stopped on its own", p.Name)
			case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
				err = nil // stopped as asked
			default:
				err = fmt.Errorf("%s: %w", p.Name, err)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			once.Do(func() { close(ended) })
			return err
		})
	}
	var pg, lg errgroup.Group
	for _, p := range last {
		start(&lg, lctx, p)
	}
	for _, p := range parts {
		start(&pg, pctx, p)
	}
	select {
	case <-ctx.Done():
	case <-ended:
	}
	draining()
	stopParts()
	_ = pg.Wait()
	stopLast()
	_ = lg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

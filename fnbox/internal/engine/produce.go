package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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

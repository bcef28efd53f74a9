package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// replies routes reply events on _butter.replies to the context.request
// calls waiting for them, matched by causationid. One per process: every
// request of every function shares it.
//
// The topic is only consumed once the first request is made, from a
// timestamp taken when the engine started, so no reply to a request sent
// after that can be missed however late fetching begins.
type replies struct {
	topic string
	cl    *kgo.Client
	once  sync.Once

	mu      sync.Mutex
	waiters map[string]chan event.Event
}

func newReplies(cfg kit.KafkaConfig, topic string) (*replies, error) {
	// Replies written in the second before start are read too: a clock
	// a little behind the broker's must not lose the first reply.
	start := time.Now().Add(-time.Second).UnixMilli()
	cl, err := cfg.NewClient(
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(start)),
		kgo.FetchMaxWait(100*time.Millisecond),
		// An exactly-once function replies inside a transaction that may
		// abort and be redone: only a committed reply answers.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return nil, fmt.Errorf("create reply consumer: %w", err)
	}
	return &replies{topic: topic, cl: cl, waiters: map[string]chan event.Event{}}, nil
}

// wait registers a waiter for the reply to the event with id; call it before
// sending the request. cancel must be called when done waiting.
func (r *replies) wait(id string) (<-chan event.Event, func()) {
	r.once.Do(func() { r.cl.AddConsumeTopics(r.topic) })
	ch := make(chan event.Event, 1)
	r.mu.Lock()
	r.waiters[id] = ch
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.waiters, id)
		r.mu.Unlock()
	}
}

// run delivers replies until ctx is done.
func (r *replies) run(ctx context.Context) {
	for {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachRecord(func(rec *kgo.Record) {
			d := envelope.FromRecord(rec)
			id := envelope.Extension(d.Event, envelope.ExtCausationID)
			if id == "" {
				return
			}
			r.mu.Lock()
			ch := r.waiters[id]
			delete(r.waiters, id)
			r.mu.Unlock()
			if ch != nil {
				ch <- d.Event
			}
		})
	}
}

func (r *replies) close() { r.cl.Close() }

package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// waiters are the synchronous requests of this replica waiting for their
// reply, by request event id.
type waiters struct {
	mu sync.Mutex
	m  map[string]waiter
}

// waiter is one waiting request: its reply must come from source, the
// function the route names (obs.Source, as fnbox sets it). Every function
// bound to a stream reads every event of it, so another one may answer
// the same request; its reply is not the route's answer.
type waiter struct {
	ch     chan event.Event
	source string
}

func newWaiters() *waiters { return &waiters{m: map[string]waiter{}} }

// add registers id, answered by source, before its request is produced,
// so a fast reply is never missed; cancel unregisters. It reports false,
// registering nothing, when id is already waiting.
func (ws *waiters) add(id, source string) (<-chan event.Event, func(), bool) {
	ch := make(chan event.Event, 1)
	ws.mu.Lock()
	if _, dup := ws.m[id]; dup {
		ws.mu.Unlock()
		return nil, nil, false
	}
	ws.m[id] = waiter{ch: ch, source: source}
	ws.mu.Unlock()
	return ch, func() {
		ws.mu.Lock()
		delete(ws.m, id)
		ws.mu.Unlock()
	}, true
}

// deliver hands e to the waiter of id and reports whether there was one
// expecting a reply from e's source. A second reply to the same request
// (a redelivered invocation) is dropped; a reply from another source
// leaves the waiter waiting.
func (ws *waiters) deliver(id string, e event.Event) bool {
	ws.mu.Lock()
	w, ok := ws.m[id]
	if ok && w.source != e.Source() {
		ok = false
	} else {
		delete(ws.m, id)
	}
	ws.mu.Unlock()
	if ok {
		w.ch <- e
	}
	return ok
}

// ReplyPositions are where the replies consumer starts on each partition,
// and the end offsets when the gateway started: RunReplies reports when
// it has read up to them, and only then are async requests expired.
type ReplyPositions struct {
	Start, End map[int32]int64
}

// Offsets returns the start offsets for kgo.ConsumePartitions.
func (p ReplyPositions) Offsets() map[int32]kgo.Offset {
	out := map[int32]kgo.Offset{}
	for part, o := range p.Start {
		out[part] = kgo.NewOffset().At(o)
	}
	return out
}

// ReplyStart returns where the replies consumer starts on each partition
// of topic: the end, or the first reply after since when since is not
// zero (async requests accepted before a restart may have been answered
// while the gateway was down). Resolving offsets before consuming, rather
// than with a reset policy, means a reply written right after Provision is
// never skipped. The end offsets are returned too.
func ReplyStart(ctx context.Context, adm *kadm.Client, topic string, since time.Time) (ReplyPositions, error) {
	list := func(f func() (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		offs, err := f()
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
		}
		out := map[int32]int64{}
		offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		if len(out) == 0 {
			return nil, fmt.Errorf("list offsets of %s: the topic has no partitions (does it exist?)", topic)
		}
		return out, nil
	}
	// The last stable offset: where a read-committed consumer stops.
	end, err := list(func() (kadm.ListedOffsets, error) { return adm.ListCommittedOffsets(ctx, topic) })
	if err != nil {
		return ReplyPositions{}, err
	}
	start := end
	if !since.IsZero() {
		start, err = list(func() (kadm.ListedOffsets, error) { return adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic) })
		if err != nil {
			return ReplyPositions{}, err
		}
	}
	return ReplyPositions{Start: start, End: end}, nil
}

// RunReplies reads reply events from cl (a consumer assigned every
// partition of the replies topic at pos.Start, keeping control records)
// until ctx is done: a reply completes this replica's waiting request or a
// stored async request, and is ignored otherwise (another replica's
// request, or a reply from a function other than the one the route
// names). Once it has read every partition up to pos.End it closes
// caughtUp: replies written while the gateway was down have been seen, and
// the janitor may expire async requests.
func (s *Server) RunReplies(ctx context.Context, cl *kgo.Client, pos ReplyPositions) error {
	next := map[int32]int64{}
	for p, o := range pos.Start {
		next[p] = o
	}
	done := false
	check := func() {
		if done {
			return
		}
		for p, e := range pos.End {
			if next[p] < e {
				return
			}
		}
		done = true
		close(s.caughtUp)
	}
	for {
		check()
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("fetch replies", "topic", t, kit.KeyPartition, p, kit.KeyError, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 > next[r.Partition] {
				next[r.Partition] = r.Offset + 1
			}
			if r.Attrs.IsControl() {
				return
			}
			d := envelope.FromRecord(r)
			if d.Raw {
				return
			}
			id := envelope.Extension(d.Event, envelope.ExtCausationID)
			if id == "" {
				return
			}
			switch {
			case s.waiters.deliver(id, d.Event):
				s.m.replies.WithLabelValues("sync").Inc()
			case s.async.replied(ctx, id, d.Event):
				s.m.replies.WithLabelValues("async").Inc()
			default:
				s.m.replies.WithLabelValues("other").Inc()
			}
		})
	}
}

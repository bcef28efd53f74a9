package engine

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

func TestOrderingNoneRunsConcurrentlyAndCommits(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.produce("in", 1, events("n", "t", 200)...)
	var now, peak atomic.Int64
	e.start(parse(t, `
name: par
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {ordering: none}
    scale: {concurrency: 8}
`), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		return runtime.Result{Data: []byte(`1`)}, nil
	}})
	if got := causes(e.read("out", 200, false)); len(got) != 200 {
		t.Fatalf("%d distinct results, want 200", len(got))
	}
	if p := peak.Load(); p < 2 || p > 8 {
		t.Errorf("peak concurrency %d, want 2..8", p)
	}
	waitFor(t, "offset 200 committed", func() bool {
		return e.committed(topics.Namespace("").ConsumerGroup("par", "f"), "in")[0] == 200
	})
}

func TestReplyToAndRequest(t *testing.T) {
	e := newEnv(t)
	e.stream("front", 1)
	e.stream("svc", 1)
	e.stream("answers", 1)
	e.stream("my-replies", 1)
	d := parse(t, `
name: rr
platform: go
functions:
  - fn: ./front
    name: front
    bindings:
      streams: [{name: front, offset: first}]
      out: answers
      emits: [svc]
  - fn: ./svc
    name: svc
    bindings:
      streams: [{name: svc, offset: first}]
`)
	e.start(d, runtime.Funcs{
		"front": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
			h.Log(ctx, 0, "asking svc")
			res, err := h.Request(ctx, runtime.Emit{Stream: "svc", Data: inv.Events[0].Event.Data()})
			if err != nil {
				return runtime.Result{}, err
			}
			return runtime.Result{Data: append([]byte(`{"svc":`), append(res.Data, '}')...)}, nil
		},
		"svc": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
			var n int
			_ = json.Unmarshal(inv.Events[0].Event.Data(), &n)
			return runtime.Result{Data: []byte{byte('0' + n*2)}, ContentType: "text/plain"}, nil
		},
	})
	in := events("q", "t", 3)
	in[0].SetExtension(envelope.ExtReplyTo, "my-replies")
	// A reply may not go to an internal topic other than the replies one.
	in[1].SetExtension(envelope.ExtReplyTo, topics.Deployments)
	e.produce("front", 1, in...)

	answers := e.read("answers", 3, false)
	for _, a := range answers {
		var v struct{ Svc int }
		if err := json.Unmarshal(a.Event.Data(), &v); err != nil {
			t.Fatalf("answer %s: %v", a.Event.Data(), err)
		}
	}
	ends, err := kadm.NewClient(e.client()).ListEndOffsets(context.Background(), topics.Deployments)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("a reply was written to %s partition %d", o.Topic, o.Partition)
		}
	})
	replies := e.read("my-replies", 1, false)
	if len(replies) != 1 || envelope.Extension(replies[0].Event, envelope.ExtCausationID) != "q-0" || replies[0].Event.Type() != obs.TypeResult {
		t.Fatalf("replies %v, want one caused by q-0", replies)
	}
	if string(replies[0].Event.Data()) != `{"svc":0}` {
		t.Errorf("reply data %s", replies[0].Event.Data())
	}
	n := 0
	for _, d := range e.read(topics.Logs, 3, false) {
		var l obs.Log
		if d.Event.Type() == obs.TypeLog && json.Unmarshal(d.Event.Data(), &l) == nil &&
			l.Message == "asking svc" && l.Function == "front" && l.EventID != "" && l.Level == obs.LevelInfo {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d log lines of front, want 3", n)
	}
}

// TestRouteAndTimerStreamsAreInputs checks that a function bound only to a
// route or a timer consumes the request or tick stream the gateway or the
// timer writes to, from the first event, and answers requests on replyto.
func TestRouteAndTimerStreamsAreInputs(t *testing.T) {
	e := newEnv(t)
	e.stream("web-hello-http", 1)
	e.stream("web-tick-ticks", 1)
	e.stream(topics.Replies, 1)
	// Written before the function's group exists: must still be handled.
	req := events("req", "butter.http.request", 2)
	for i := range req {
		req[i].SetExtension(envelope.ExtReplyTo, topics.Replies)
	}
	e.produce("web-hello-http", 1, req...)
	e.produce("web-tick-ticks", 1, events("tick", "butter.timer.tick", 3)...)
	var ticks atomic.Int64
	e.start(parse(t, `
name: web
platform: go
functions:
  - fn: ./hello
    name: hello
    bindings: {route: {context: /hello}}
  - fn: ./tick
    name: tick
    bindings: {timer: "@every 1h"}
`), runtime.Funcs{
		"hello": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
			return runtime.Result{Data: []byte(`{"status":201,"body":"hi"}`)}, nil
		},
		"tick": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
			ticks.Add(1)
			return runtime.Result{}, nil
		},
	})
	got := causes(e.read(topics.Replies, 2, false))
	if len(got) != 2 || got["req-0"] != 1 || got["req-1"] != 1 {
		t.Fatalf("replies caused by %v, want req-0 and req-1", got)
	}
	waitFor(t, "3 ticks handled", func() bool { return ticks.Load() == 3 })
}

package service

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// TestReplyFromAnotherFunctionIgnored: every function bound to a stream
// reads every event of it, so another function on the route's stream may
// answer a request too, even first; only the route's function answers.
func TestReplyFromAnotherFunctionIgnored(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	impostor := obs.Source("hello", "other")
	c.RespondAs("hello-hello-http", impostor, "other", func(httpevent.Request, event.Event) (any, error) {
		return map[string]any{"status": 200, "body": "impostor"}, nil
	})

	// The route's function answers only once the impostor's reply to the
	// same request is on the replies topic, so it always comes second.
	seen := make(chan string, 64)
	watch, err := kgo.NewClient(kgo.SeedBrokers(c.Broker.Addr()), kgo.ConsumeTopics(topics.Replies),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	t.Cleanup(func() { wcancel(); <-wdone; watch.Close() })
	go func() {
		defer close(wdone)
		for {
			fs := watch.PollFetches(wctx)
			if wctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				d := envelope.FromRecord(r)
				if d.Event.Source() == impostor {
					id, _ := d.Event.Extensions()[envelope.ExtCausationID].(string)
					seen <- id
				}
			})
		}
	}()
	answered := map[string]bool{}
	c.Respond("hello", "hello", "fn", func(req httpevent.Request, e event.Event) (any, error) {
		deadline := time.After(testutil.Timeout)
		for !answered[e.ID()] {
			select {
			case id := <-seen:
				answered[id] = true
			case <-deadline:
				return nil, nil
			}
		}
		return helloHandler(req, e)
	})
	g := startGateway(t, c)

	r := call(t, "POST", g.url+"/hello", []byte(`{"name":"real"}`), nil)
	if r.code != 201 || !strings.Contains(string(r.body), "hello real") {
		t.Fatalf("sync: got %d %s", r.code, r.body)
	}

	r = call(t, "POST", g.url+"/hello", []byte(`{"name":"later"}`), map[string]string{"Prefer": "respond-async"})
	if r.code != http.StatusAccepted {
		t.Fatalf("accept: got %d %s", r.code, r.body)
	}
	p := pollAsync(t, g.url+r.hdr.Get("Location"))
	var out struct{ Greeting string }
	if err := json.Unmarshal(p.body, &out); err != nil || p.code != 201 || out.Greeting != "hello later" {
		t.Fatalf("async: got %d %s", p.code, p.body)
	}
	m := call(t, "GET", g.url+"/metrics", nil, nil)
	if !strings.Contains(string(m.body), `butter_gateway_replies_total{outcome="other"}`) {
		t.Errorf("impostor replies not counted as other:\n%s", m.body)
	}
}

// TestAbortedReplyIgnored: an exactly-once function writes its reply in
// the poll's transaction, and an aborted poll is redone; the gateway
// answers with the committed reply, never one from an aborted attempt.
func TestAbortedReplyIgnored(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Broker.Addr()), kgo.ProducerLinger(0),
		kgo.TransactionalID("hello-fn"), kgo.ConsumerGroup("fn"),
		kgo.ConsumeTopics(descriptor.RouteStream("hello", "hello")), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	source := obs.Source("hello", "hello")
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				for _, attempt := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
					rec, err := testutil.Reply(r, source, func(req httpevent.Request, e event.Event) (any, error) {
						if attempt == kgo.TryAbort {
							return map[string]any{"status": 200, "body": "aborted attempt"}, nil
						}
						return helloHandler(req, e)
					})
					if err != nil || rec == nil {
						t.Errorf("reply: %v", err)
						return
					}
					if err := cl.BeginTransaction(); err != nil {
						t.Errorf("begin: %v", err)
						return
					}
					perr := cl.ProduceSync(ctx, rec).FirstErr()
					if err := cl.EndTransaction(ctx, attempt); err != nil || perr != nil {
						t.Errorf("transaction: %v %v", perr, err)
						return
					}
				}
			})
		}
	}()
	g := startGateway(t, c)

	r := call(t, "POST", g.url+"/hello", []byte(`{"name":"real"}`), nil)
	if r.code != 201 || !strings.Contains(string(r.body), "hello real") {
		t.Fatalf("sync: got %d %s, want the committed reply", r.code, r.body)
	}
	r = call(t, "POST", g.url+"/hello", []byte(`{"name":"later"}`), map[string]string{"Prefer": "respond-async"})
	if r.code != http.StatusAccepted {
		t.Fatalf("accept: got %d %s", r.code, r.body)
	}
	p := pollAsync(t, g.url+r.hdr.Get("Location"))
	if p.code != 201 || !strings.Contains(string(p.body), "hello later") {
		t.Fatalf("async: got %d %s, want the committed reply", p.code, p.body)
	}
}

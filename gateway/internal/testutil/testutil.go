// Package testutil holds what the gateway's tests share: an embedded
// broker, deployments written as the deployer writes them, an in-test
// responder standing in for fnbox on a route stream, and polling.
package testutil

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// Timeout bounds every wait in tests (kittest.Timeout).
const Timeout = kittest.Timeout

// Cluster is an in-memory embedded broker and a client of it.
type Cluster struct {
	t      testing.TB
	Broker *broker.Broker
	Client *kgo.Client
}

// NewCluster starts a broker on a random port, closed at cleanup. dir, if
// not empty, persists it.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &Cluster{t: t, Broker: b, Client: cl}
}

// Deploy stores a deployment of descriptor yaml, as the deployer does, and
// creates the streams it names.
func (c *Cluster) Deploy(name, yaml string) {
	c.t.Helper()
	d := control.Deployment{Name: name, Version: "1", Descriptor: yaml, Created: time.Now(), Updated: time.Now(), Actor: "test"}
	desc, err := d.Parse()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, f := range desc.Functions {
		for _, s := range f.StreamNames() {
			if err := c.Broker.CreateTopic(topics.Stream(s)); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	rec, err := control.DeploymentRecord(topics.Deployments, d)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.Client.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
}

// Undeploy writes the tombstone of deployment name.
func (c *Cluster) Undeploy(name string) {
	c.t.Helper()
	if err := c.Client.ProduceSync(context.Background(), control.DeploymentTombstone(topics.Deployments, name)).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
}

// Handler answers one request: data is the reply's JSON data; fail makes
// the reply a butter.error.
type Handler func(req httpevent.Request, e event.Event) (data any, fail error)

// Respond stands in for fnbox running function of deployment on its
// default route stream: it consumes request events (as consumer group
// group, so two responders share the work) and writes the handler's
// answer on the event's replyto stream, with causationid set and the
// source obs.Source(deployment, function), as fnbox does. It stops at
// cleanup.
func (c *Cluster) Respond(deployment, function, group string, h Handler) {
	c.t.Helper()
	c.RespondAs(descriptor.RouteStream(deployment, function), obs.Source(deployment, function), group, h)
}

// RespondAs is Respond on any stream with replies from source: another
// function bound to a route's stream, say.
func (c *Cluster) RespondAs(stream, source, group string, h Handler) {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Broker.Addr()), kgo.ProducerLinger(0),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(stream), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c.t.Cleanup(func() {
		cancel()
		wg.Wait()
		cl.Close()
	})
	wg.Go(func() {
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				if rec, err := Reply(r, source, h); err == nil && rec != nil {
					cl.Produce(ctx, rec, nil)
				}
			})
		}
	})
}

// Reply is the reply record a function at source answers request r with
// (nil when r asks for no reply).
func Reply(r *kgo.Record, source string, h Handler) (*kgo.Record, error) {
	d := envelope.FromRecord(r)
	to := envelope.Extension(d.Event, envelope.ExtReplyTo)
	if to == "" {
		return nil, nil
	}
	var req httpevent.Request
	if err := json.Unmarshal(d.Event.Data(), &req); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	data, fail := h(req, d.Event)
	typ := obs.TypeResult
	if fail != nil {
		typ, data = obs.TypeError, obs.ErrorReply{Error: fail.Error(), Attempts: 3}
	}
	e := envelope.Child(d.Event, source, typ)
	e.SetSubject(d.Event.ID())
	if data != nil {
		if err := e.SetData(event.ApplicationJSON, data); err != nil {
			return nil, err
		}
	}
	return envelope.ToRecord(to, e)
}

package box

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

const desc = `
name: hb
platform: node
functions:
  - fn: h.js:run
    name: run
    bindings:
      streams: [{name: in, offset: first}]
`

func TestBoxHeartbeats(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic(topics.Spec{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := descriptor.Parse("butter.yaml", []byte(desc))
	if err != nil {
		t.Fatal(err)
	}
	kafka := kit.KafkaConfig{Brokers: []string{b.Addr()}}
	if _, err := New(Config{Kafka: kafka, Deployment: d}); !errors.Is(err, ErrUnknownPlatform) {
		t.Fatalf("New without a node platform: %v, want ErrUnknownPlatform", err)
	}
	bx, err := New(Config{
		Kafka: kafka, Deployment: d, Instance: "i-1", Admin: "127.0.0.1:9464", HeartbeatInterval: 100 * time.Millisecond,
		Runtime: runtime.Funcs{"run": func(context.Context, runtime.Invocation, runtime.Host) (runtime.Result, error) {
			return runtime.Result{}, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bx.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	cl, err := kafka.NewClient(kgo.ConsumeTopics(topics.Heartbeats), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	for {
		fs := cl.PollFetches(wctx)
		if wctx.Err() != nil {
			t.Fatal("no heartbeat with 2 partitions assigned")
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			h, err := obs.ParseHeartbeat(r)
			if err == nil && h.Deployment == "hb" && h.Function == "run" && h.Instance == "i-1" && len(h.Partitions) == 2 &&
				h.Admin == "127.0.0.1:9464" {
				found = true
			}
		})
		if found {
			break
		}
	}
	if err := bx.Ready(ctx); err != nil {
		t.Errorf("ready: %v", err)
	}
	// The group member is told apart by its client id.
	described, err := kadm.NewClient(cl).DescribeGroups(wctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range described.Sorted() {
		for _, m := range g.Members {
			ids = append(ids, m.ClientID)
		}
	}
	if !slices.Contains(ids, "butter-fnbox-i-1") {
		t.Errorf("group members' client ids %v, want butter-fnbox-i-1", ids)
	}
}

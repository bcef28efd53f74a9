package kit

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/buttercompass/butter/proto/topics"
)

func TestEnsureTopics(t *testing.T) {
	_, cfg := newCluster(t)
	cl := newClient(t, cfg)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	specs := []topics.Spec{
		{Name: "state", Partitions: 2, Compact: true, Retention: topics.Forever},
		topics.Stream("orders"),
	}
	for round := range 2 { // the second round checks "already exists" is fine
		if err := EnsureTopics(ctx, cl, specs...); err != nil {
			t.Fatalf("round %d: EnsureTopics: %v", round, err)
		}
	}

	details, err := adm.ListTopics(ctx, "state", "orders")
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for name, want := range map[string]int{"state": 2, "orders": int(topics.DefaultPartitions)} {
		if got := len(details[name].Partitions); got != want {
			t.Errorf("%s has %d partitions, want %d", name, got, want)
		}
	}

	rcs, err := adm.DescribeTopicConfigs(ctx, "state", "orders")
	if err != nil {
		t.Fatalf("describe topic configs: %v", err)
	}
	want := map[string]map[string]string{
		"state":  {"cleanup.policy": "compact", "retention.ms": "-1"},
		"orders": {"retention.ms": "604800000"},
	}
	for topic, kv := range want {
		rc, err := rcs.On(topic, nil)
		if err != nil {
			t.Fatalf("configs of %s: %v", topic, err)
		}
		got := map[string]string{}
		for _, c := range rc.Configs {
			got[c.Key] = c.MaybeValue()
		}
		for k, v := range kv {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", topic, k, got[k], v)
			}
		}
		if topic == "orders" && got["cleanup.policy"] == "compact" {
			t.Errorf("orders is compacted, want delete")
		}
	}
}

func TestEnsureInternalTopicsInNamespace(t *testing.T) {
	_, cfg := newCluster(t)
	cfg.TopicPrefix = "team1."
	cl := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	internal := topics.Internal()
	specs := InNamespace(cfg.Namespace(), internal...)
	if err := EnsureTopics(ctx, cl, specs...); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for _, s := range internal {
		if !details.Has("team1." + s.Name) {
			t.Errorf("topic team1.%s missing; have %v", s.Name, details.Names())
		}
	}
	if internal[0].Name != topics.Deployments {
		t.Errorf("InNamespace changed its input")
	}
}

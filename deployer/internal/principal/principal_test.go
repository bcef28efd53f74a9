package principal

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

func deployment(name, in, out string) control.Deployment {
	return control.Deployment{Name: name, Version: "1", Descriptor: "name: " + name + `
platform: python
functions:
  - fn: h.py:h
    bindings:
      streams: [` + in + `]
      out: ` + out + "\n"}
}

func write(ctx context.Context, t *testing.T, k kit.KafkaConfig, topic string) error {
	t.Helper()
	cl, err := k.NewClient(kgo.RequestRetries(1), kgo.RecordDeliveryTimeout(5*time.Second), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
}

// TestManager: a deployment's login works for what its descriptor names,
// follows an update (new out stream allowed, old one no longer), and is
// revoked by Sweep, also by a new Manager that never saw it (a deleted
// deployment while no deployer ran).
func TestManager(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []string{"in", "out-1", "out-2"} {
		if err := b.CreateTopic(topics.Stream(s)); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := b.Kafka().NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	secret := func(p string) []byte { return []byte("key-for-" + p) }
	m := New(Config{Kafka: b.Kafka(), Client: cl, Secret: secret, Logger: slog.Default()})

	if err := m.Ensure(ctx, deployment("shop", "in", "out-1")); err != nil {
		t.Fatal(err)
	}
	login := m.Login("shop")
	if login.SASLUser != "butter-fn.shop" || login.SASLPassword == b.Kafka().SASLPassword {
		t.Fatalf("login = %s, want the deployment's own user and password", login.SASLUser)
	}
	if err := write(ctx, t, login, "out-1"); err != nil {
		t.Fatalf("write out-1: %v", err)
	}
	if err := write(ctx, t, login, "out-2"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("write out-2 before the update: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	if err := m.Ensure(ctx, deployment("shop", "in", "out-2")); err != nil {
		t.Fatal(err)
	}
	if err := write(ctx, t, login, "out-2"); err != nil {
		t.Fatalf("write out-2 after the update: %v", err)
	}
	if err := write(ctx, t, login, "out-1"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("write out-1 after the update: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	// A new deployer (nothing in memory) finds the principal by its ACLs
	// and revokes it, since no deployment wants it.
	fresh := New(Config{Kafka: b.Kafka(), Client: cl, Secret: secret, Logger: slog.Default()})
	if err := fresh.Sweep(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if err := write(ctx, t, login, "out-2"); err == nil {
		t.Fatal("a revoked deployment's login still writes")
	}
}

// TestManagerShared: a deployer without a login of its own (an open
// broker) hands its own settings to instances and makes no principals.
func TestManagerShared(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := b.Kafka().NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m := New(Config{Kafka: b.Kafka(), Client: cl, Secret: func(string) []byte { return nil }, Logger: slog.Default()})
	if err := m.Ensure(ctx, deployment("shop", "in", "out-1")); err != nil {
		t.Fatal(err)
	}
	if got := m.Login("shop"); got.SASLUser != "" {
		t.Fatalf("login on an open broker = %q, want none", got.SASLUser)
	}
}

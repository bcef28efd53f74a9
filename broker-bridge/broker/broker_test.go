package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/topics"
)

func TestBadAddr(t *testing.T) {
	for _, addr := range []string{"localhost", "127.0.0.1:x", "127.0.0.1:70000"} {
		if _, err := Start(Config{Addr: addr}); err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("Start(%q) = %v, want an error naming the address", addr, err)
		}
	}
}

// TestDataDirIsLocked: a second broker on a data directory in use fails
// to start instead of overwriting the first one's segments; once the
// first closes, the directory is free.
func TestDataDirIsLocked(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir()}
	a, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := Start(cfg); !errors.Is(err, ErrDataDirInUse) {
		if b != nil {
			b.Close()
		}
		a.Close()
		t.Fatalf("second broker on the same data dir: %v, want ErrDataDirInUse", err)
	}
	a.Close()
	b, err := Start(cfg)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	b.Close()
}

// TestRestartKeepsTopics starts a broker, creates a stream and writes to it,
// closes it and starts it again on the same directory.
func TestRestartKeepsTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir()}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic(topics.Spec{Name: "orders", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic(topics.Spec{Name: "orders", Partitions: 3}); err != nil {
		t.Fatalf("creating an existing topic again: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "no-such-stream", Value: []byte("x")}).FirstErr(); err == nil {
		t.Fatal("produce to a missing topic succeeded: auto-create should be off")
	}
	cl.Close()
	b.Close()

	// The port is free again; a restart may take another one.
	b, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	adm := kadm.NewClient(mustClient(t, b.Addr()))
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tds["orders"].Partitions) != 3 {
		t.Fatalf("orders after restart: %+v", tds["orders"])
	}
	for _, s := range topics.Internal() {
		if !tds.Has(s.Name) || len(tds[s.Name].Partitions) != int(s.PartitionCount()) {
			t.Errorf("internal topic %s: %+v", s.Name, tds[s.Name])
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	if n != 1 {
		t.Fatalf("orders holds %d records after restart, want 1", n)
	}
}

func mustClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

package kit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/topics"
)

// TestFollowerReadsCommittedToTheEnd follows a topic whose last write is a
// committed transaction, with an aborted one before it: the follower gets
// ready (the commit marker counts as read), applies the committed records
// only, and a writer reads its own later write back with WaitRead.
func TestFollowerReadsCommittedToTheEnd(t *testing.T) {
	_, cfg := newCluster(t, kfake.SeedTopics(1, "state"))
	ctx := context.Background()
	plain := newClient(t, cfg)
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn, err := cfg.NewClient(kgo.TransactionalID("follow-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txn.Close)
	for _, c := range []struct {
		value string
		end   kgo.TransactionEndTry
	}{{"aborted", kgo.TryAbort}, {"b", kgo.TryCommit}} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: []byte(c.value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, c.end); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var applied []string
	f, err := NewFollower(cfg, []string{"state"}, func(r *kgo.Record) {
		mu.Lock()
		applied = append(applied, string(r.Value))
		mu.Unlock()
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("run ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready: the trailing commit marker was never counted as read")
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(applied)
	}
	if want := []string{"a", "b"}; !slices.Equal(got(), want) {
		t.Fatalf("applied %q at ready, want %q (committed only, all of them)", got(), want)
	}

	res := plain.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: []byte("c")})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	r := res[0].Record
	if err := f.WaitRead(wctx, r.Topic, r.Partition, r.Offset); err != nil {
		t.Fatal(err)
	}
	if err := f.CatchUp(wctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got(), want) {
		t.Fatalf("applied %q after WaitRead, want %q", got(), want)
	}

	// Nothing more is written: waiting past the end gives up with ctx.
	short, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	if err := f.WaitRead(short, r.Topic, r.Partition, r.Offset+5); err == nil {
		t.Fatal("WaitRead past the end returned nil")
	}
}

// TestFollowerReadyOnAnEmptiedPartition follows a topic whose only record
// retention removed: start = end, nothing to fetch, and the follower is
// still ready (a gateway restarting a day after its last async request).
func TestFollowerReadyOnAnEmptiedPartition(t *testing.T) {
	c, cfg := newCluster(t)
	ctx := context.Background()
	cl := newClient(t, cfg)
	if err := EnsureTopics(ctx, cl, topics.Spec{Name: "old", Partitions: 1, Retention: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "old", Value: []byte("gone")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		c.ApplyRetention()
		starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, "old")
		if err != nil {
			return err
		}
		if o, _ := starts.Lookup("old", 0); o.Offset != 1 {
			return fmt.Errorf("log start %d, want 1", o.Offset)
		}
		return nil
	})

	f, err := NewFollower(cfg, []string{"old"}, func(r *kgo.Record) { t.Errorf("applied %q, which retention removed", r.Value) }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("run ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("never ready on a partition retention emptied")
	}
}

package firing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/timer/internal/catalog"
	"github.com/buttercompass/butter/timer/internal/testutil"
)

// newManager returns a manager with a catalog of its own, as a replica
// has, without joining the group: tests call own directly.
func newManager(t *testing.T, brokers, replica string) *Manager {
	t.Helper()
	kcfg := kit.KafkaConfig{Brokers: []string{brokers}}
	logger, _ := kit.NewLogger(io.Discard, "info")
	cl := testutil.Client(t, brokers)
	cat, err := catalog.New(kcfg, cl, topics.Deployments, topics.Timers, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cat.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; cat.Close() })
	<-cat.Ready()
	m := New(Config{
		Kafka: kcfg, TimersTopic: topics.Timers, Partitions: topics.DefaultPartitions, Group: "butter-timer",
		Replica: replica, Catalog: cat, MissedAfter: 10 * time.Second, Metrics: NewMetrics(prometheus.NewRegistry()), Logger: logger,
		EnsureStream: func(ctx context.Context, s string) error { return kit.EnsureTopics(ctx, cl, topics.Stream(s)) },
	})
	t.Cleanup(m.Close)
	return m
}

// besides returns b with an id ("<b.ID>-N") on the partition of a's, and
// that partition: two schedules one owner fires together.
func besides(a, b timers.Schedule) (timers.Schedule, int32) {
	p := PartitionOf(a.ID, topics.DefaultPartitions)
	prefix := b.ID
	for i := 0; ; i++ {
		if b.ID = fmt.Sprintf("%s-%d", prefix, i); PartitionOf(b.ID, topics.DefaultPartitions) == p {
			return b, p
		}
	}
}

// putSchedules stores API schedules, as the API does.
func putSchedules(t *testing.T, cl *kgo.Client, ss ...timers.Schedule) {
	t.Helper()
	for _, s := range ss {
		v, _ := json.Marshal(s)
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topics.Timers, Key: []byte(timers.ScheduleKey(s.ID)), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// ownFor runs m.own for partition p until stopped, in the background.
func ownFor(m *Manager, p int32) (stop func(), done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.own(ctx, p, nil) }()
	return cancel, errc
}

// TestZombieOwnerIsFenced runs two owners of the same partition at once,
// as two replicas that both believe they own it would during a rebalance
// or a network split: each takeover fences the other, and the stream still
// has every scheduled time exactly once.
func TestZombieOwnerIsFenced(t *testing.T) {
	brokers := testutil.Broker(t)
	a, b := newManager(t, brokers, "a"), newManager(t, brokers, "b")
	s := timers.Schedule{ID: "z", Schedule: "@every 1s", Stream: "z-ticks", CatchUp: "all", Created: time.Now().UTC()}
	putSchedules(t, testutil.Client(t, brokers), s)
	p := PartitionOf(s.ID, topics.DefaultPartitions)
	reader := testutil.ReadTicks(t, brokers, s.Stream)

	stopA, doneA := ownFor(a, p)
	reader.WaitFor(t, 3)
	// b takes over while a still runs: a's next commit is fenced.
	stopB, doneB := ownFor(b, p)
	select {
	case err := <-doneA:
		if err == nil {
			t.Fatal("owner a stopped without error, want fenced")
		}
		t.Logf("a fenced: %v", err)
	case <-time.After(testutil.Timeout):
		t.Fatal("owner a was never fenced")
	}
	stopA()
	n := len(reader.Poll(t))
	reader.WaitFor(t, n+3)
	// a comes back (a zombie returning): now b is fenced.
	stopA, doneA = ownFor(a, p)
	select {
	case err := <-doneB:
		if err == nil {
			t.Fatal("owner b stopped without error, want fenced")
		}
	case <-time.After(testutil.Timeout):
		t.Fatal("owner b was never fenced")
	}
	stopB()
	n = len(reader.Poll(t))
	ticks := reader.WaitFor(t, n+3)
	stopA()
	<-doneA
	testutil.CheckExactlyOnce(t, ticks, s.ID, time.Second)
	t.Logf("%d ticks through two fenced takeovers, none twice, none missing", len(ticks))
}

// TestRefusingStreamDoesNotBlockPartition puts two schedules on one
// partition, one of them on a stream whose max.message.bytes refuses every
// tick: the other fires on, and once the stream accepts ticks again the
// refused schedule catches up with every scheduled time (catchUp all).
func TestRefusingStreamDoesNotBlockPartition(t *testing.T) {
	brokers := testutil.Broker(t)
	m := newManager(t, brokers, "a")
	cl := testutil.Client(t, brokers)
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	small := "100"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &small}, "small-ticks"); err != nil {
		t.Fatal(err)
	}

	bad := timers.Schedule{ID: "refused", Schedule: "@every 1s", Stream: "small-ticks", CatchUp: "all", Created: time.Now().UTC()}
	good, p := besides(bad, timers.Schedule{ID: "good", Schedule: "@every 1s", Stream: "good-ticks", CatchUp: "all", Created: bad.Created})
	putSchedules(t, cl, bad, good)
	goodTicks := testutil.ReadTicks(t, brokers, good.Stream)
	badTicks := testutil.ReadTicks(t, brokers, bad.Stream)

	stop, done := ownFor(m, p)
	goodTicks.WaitFor(t, 5)
	if n := len(badTicks.Poll(t)); n != 0 {
		t.Fatalf("%d ticks passed a stream that refuses them", n)
	}

	large := "1048576"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &large}}, bad.Stream); err != nil {
		t.Fatal(err)
	}
	// The hold backs off to at most a minute; the refused schedule catches
	// up from its creation once the stream takes ticks again.
	got := badTicks.WaitFor(t, 1)
	times := testutil.CheckExactlyOnce(t, got, bad.ID, time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("owner ended with %v, want it to keep the partition through the refusals", err)
	}
	testutil.CheckExactlyOnce(t, goodTicks.Poll(t), good.ID, time.Second)
	if first := times[0]; first.Sub(bad.Created) > time.Second {
		t.Errorf("refused schedule resumed at %v, want its first time after %v (catchUp all)", first, bad.Created)
	}
	t.Logf("good ticks kept firing; refused schedule caught up %d ticks", len(times))
}

// TestDeletedStreamIsRecreated: a tick stream deleted while its schedule
// runs fails that schedule's ticks alone (the others of its partition go
// on firing), and is created again for its next tick, though the replica
// remembered it as existing.
func TestDeletedStreamIsRecreated(t *testing.T) {
	brokers := testutil.Broker(t)
	m := newManager(t, brokers, "a")
	cl := testutil.Client(t, brokers)
	ctx := context.Background()
	var known sync.Map // what the service's ensureStream caches
	m.cfg.EnsureStream = func(ctx context.Context, s string) error {
		if _, ok := known.Load(s); ok {
			return nil
		}
		if err := kit.EnsureTopics(ctx, cl, topics.Stream(s)); err != nil {
			return err
		}
		known.Store(s, true)
		return nil
	}
	m.cfg.ForgetStream = func(s string) { known.Delete(s) }

	gone := timers.Schedule{ID: "gone", Schedule: "@every 1s", Stream: "gone-ticks", CatchUp: "none", Created: time.Now().UTC()}
	stay, p := besides(gone, timers.Schedule{ID: "stay", Schedule: "@every 1s", Stream: "stay-ticks", CatchUp: "all", Created: gone.Created})
	putSchedules(t, cl, gone, stay)
	stayTicks := testutil.ReadTicks(t, brokers, stay.Stream)
	stop, done := ownFor(m, p)
	stayTicks.WaitFor(t, 2)
	if _, ok := known.Load(gone.Stream); !ok {
		t.Fatal("the gone schedule's stream was never ensured")
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopics(ctx, gone.Stream); err != nil {
		t.Fatal(err)
	}
	n := len(stayTicks.Poll(t))
	stayTicks.WaitFor(t, n+4)
	kittest.Eventually(t, "deleted stream made again, with ticks", func() error {
		ends, err := adm.ListEndOffsets(ctx, gone.Stream)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return err
		}
		total := int64(0)
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total == 0 {
			return errors.New("no tick yet")
		}
		return nil
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("owner ended with %v, want it to keep the partition", err)
	}
	testutil.CheckExactlyOnce(t, stayTicks.Poll(t), stay.ID, time.Second)
}

// TestGroupCommitsWhatItRead runs a manager in the group: once it has
// fired and the catalog read its writes, kadm shows the timer group with
// a commit on every partition and no lag, where it used to show a lag
// growing with every tick.
func TestGroupCommitsWhatItRead(t *testing.T) {
	brokers := testutil.Broker(t)
	m := newManager(t, brokers, "a")
	m.cfg.CommitInterval = 100 * time.Millisecond
	m.cfg.SessionTimeout, m.cfg.HeartbeatInterval = 6*time.Second, 500*time.Millisecond
	cl := testutil.Client(t, brokers)
	s := timers.Schedule{ID: "lag", Schedule: "@every 1s", Stream: "lag-ticks", CatchUp: "none", Created: time.Now().UTC()}
	putSchedules(t, cl, s)
	reader := testutil.ReadTicks(t, brokers, s.Stream)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, 0) }()
	t.Cleanup(func() { cancel(); <-done })
	reader.WaitFor(t, 2)

	adm := kadm.NewClient(cl)
	kittest.Eventually(t, "timer group caught up with lag 0", func() error {
		lags, err := adm.Lag(context.Background(), m.cfg.Group)
		if err != nil {
			return err
		}
		l, ok := lags[m.cfg.Group]
		if !ok || l.Error() != nil {
			return fmt.Errorf("group lag: %v", l.Error())
		}
		parts := 0
		for _, pl := range l.Lag[topics.Timers] {
			if pl.Err != nil {
				return pl.Err
			}
			if pl.End.Offset > 0 && pl.Commit.At < 0 {
				return fmt.Errorf("partition %d (end %d) has no commit", pl.Partition, pl.End.Offset)
			}
			parts++
		}
		if parts != int(topics.DefaultPartitions) || l.Lag.Total() != 0 {
			return fmt.Errorf("%d partitions, total lag %d", parts, l.Lag.Total())
		}
		return nil
	})
}

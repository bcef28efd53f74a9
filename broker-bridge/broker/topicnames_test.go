package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTopicNameTooLongIsRefused: the CreateTopics that bricked the
// platform (issue 8) is refused with INVALID_TOPIC_EXCEPTION, through
// kadm, a raw kgo request, auto-creation and kcat, and the broker
// restarts on its data dir afterwards.
func TestTopicNameTooLongIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), AutoCreate: true}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 300)
	adm := kadm.NewClient(mustClient(t, b.Addr()))

	res, err := adm.CreateTopic(ctx, 1, 1, nil, long)
	if !errors.Is(err, kerr.InvalidTopicException) && !errors.Is(res.Err, kerr.InvalidTopicException) {
		t.Errorf("kadm create of a 300-character name: %v / %v, want INVALID_TOPIC_EXCEPTION", err, res.Err)
	}
	if !strings.Contains(res.ErrMessage, "249") {
		t.Errorf("refusal message %q does not give the limit", res.ErrMessage)
	}

	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{long, "..", "a/b", "nul\x00", "", "fine"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, -1, -1
		req.Topics = append(req.Topics, rt)
	}
	for _, rt := range []struct {
		name  string
		parts int32
		repl  int16
	}{{"many", 10001, 1}, {"zero-parts", 0, 1}, {"two-replicas", 1, 2}, {"zero-replicas", 1, 0}} {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = rt.name, rt.parts, rt.repl
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, mustClient(t, b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		if got := kerr.ErrorForCode(rt.ErrorCode); (got == nil) != (rt.Topic == "fine") {
			t.Errorf("create %.20q: %v", rt.Topic, got)
		}
	}

	// Auto-creation by a producer naming the topic.
	prod := newClient(t, b.Addr(), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(2))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: long, Value: []byte("x")}).FirstErr(); err == nil {
		t.Error("producing to a 300-character topic with auto-creation on succeeded")
	}

	if kcat, err := exec.LookPath("kcat"); err == nil {
		cmd := exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-P", "-t", long, "-X", "allow.auto.create.topics=true", "-m", "10")
		cmd.Stdin = strings.NewReader("x\n")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "Invalid topic") {
			t.Errorf("kcat -P -t <300 characters>: %s, want the broker's Invalid topic", out)
		}
	}

	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tds.Names() {
		if len(name) > 249 || name == ".." || strings.ContainsAny(name, "/\x00") {
			t.Errorf("topic %.20q exists", name)
		}
	}
	b.Close()
	b, err = Start(cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	b.Close()
}

// TestRestartAfterRandomRequests: whatever sequence of requests clients
// send — topics with odd names made and deleted, produce, commits,
// transactions committed and left open, deleted records — the broker
// restarts on its data dir and keeps every partition's offsets and every
// group's commits. Seeds are logged; rerun one with BROKER_SEED.
func TestRestartAfterRandomRequests(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BROKER_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir()}

	names := []string{"a", "b.c", "b_c", "d-e", ".", "..", "_butter.x", strings.Repeat("z", 249), strings.Repeat("z", 250), strings.Repeat("z", 300),
		"x/y", "x\x00", "", " ", "%2F", "é", "CON", "a..b", "-", "_"}
	for round := range 3 {
		b, err := Start(cfg)
		if err != nil {
			t.Fatalf("round %d: start: %v", round, err)
		}
		// kadm lists topics from the client's metadata cache: keep it
		// fresh, topics come and go here.
		adm := kadm.NewClient(newClient(t, b.Addr(), kgo.MetadataMinAge(10*time.Millisecond)))
		before := randomRequests(ctx, t, rng, b.Addr(), adm, names)
		b.Close()

		b, err = Start(cfg)
		if err != nil {
			t.Fatalf("round %d: restart after random requests (seed %d): %v", round, seed, err)
		}
		adm = kadm.NewClient(newClient(t, b.Addr(), kgo.MetadataMinAge(10*time.Millisecond)))
		after := snapshot(ctx, t, adm)
		t.Logf("round %d kept:\n%s", round, after)
		if before != after {
			t.Fatalf("round %d (seed %d): state changed across the restart\nbefore:\n%s\nafter:\n%s", round, seed, before, after)
		}
		b.Close()
	}
}

// randomRequests sends 100 random requests and returns the state they
// left, as snapshot describes it.
func randomRequests(ctx context.Context, t *testing.T, rng *rand.Rand, addr string, adm *kadm.Client, names []string) string {
	t.Helper()
	cl := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(3*time.Second), kgo.MetadataMinAge(10*time.Millisecond))
	pick := func() string { return names[rng.IntN(len(names))] }
	var produced int
	ops := map[int]int{}
	defer func() { t.Logf("%d records produced, ops %v", produced, ops) }()
	for range 100 {
		// A request may fail or wait (a transactional ID whose last
		// transaction was left open waits for it to time out): bound
		// each, the test is about what the broker keeps.
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		topic := pick()
		// Producers wait for a topic to exist; odd names reach the
		// broker through the admin requests.
		tds, _ := adm.ListTopics(ctx, topic)
		exists := tds.Has(topic) && tds[topic].Err == nil
		op := rng.IntN(9)
		ops[op]++
		switch op {
		case 0, 1:
			adm.CreateTopic(ctx, int32(rng.IntN(4))-1, -1, nil, topic)
		case 2:
			adm.DeleteTopics(ctx, topic)
		case 3, 7, 8:
			if !exists {
				break
			}
			for range 1 + rng.IntN(5) {
				if cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(topic)}).FirstErr() == nil {
					produced++
				}
			}
		case 4:
			offs := kadm.Offsets{}
			offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: int64(rng.IntN(5)), LeaderEpoch: -1})
			adm.CommitOffsets(ctx, "g"+fmt.Sprint(rng.IntN(3)), offs)
		case 5:
			if !exists {
				break
			}
			txn := newClient(t, addr, kgo.TransactionalID(fmt.Sprintf("tx%d", rng.IntN(3))), kgo.RecordRetries(1),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(2*time.Second))
			if err := txn.BeginTransaction(); err == nil {
				txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("t")})
				switch rng.IntN(3) {
				case 0:
					txn.EndTransaction(ctx, kgo.TryCommit)
				case 1:
					txn.EndTransaction(ctx, kgo.TryAbort)
				} // else left open, as by a crash
			}
			txn.Close()
		case 6:
			offs := kadm.Offsets{}
			offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: int64(rng.IntN(3))})
			adm.DeleteRecords(ctx, offs)
		}
		cancel()
	}
	return snapshot(ctx, t, adm)
}

// snapshot describes what a restart must keep: every topic with its
// partitions' start and end offsets, and every group's commits.
func snapshot(ctx context.Context, t *testing.T, adm *kadm.Client) string {
	t.Helper()
	var s strings.Builder
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(ctx, tds.Names()...)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, tds.Names()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tds.Names() {
		fmt.Fprintf(&s, "topic %.30q:", name)
		for p := range int32(len(tds[name].Partitions)) {
			st, _ := starts.Lookup(name, p)
			en, _ := ends.Lookup(name, p)
			fmt.Fprintf(&s, " %d:[%d,%d)", p, st.Offset, en.Offset)
		}
		s.WriteString("\n")
	}
	for _, g := range []string{"g0", "g1", "g2"} {
		offs, err := adm.FetchOffsets(ctx, g)
		if errors.Is(err, kerr.GroupIDNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range offs.Sorted() {
			fmt.Fprintf(&s, "group %s %.30q/%d=%d\n", g, o.Topic, o.Partition, o.At)
		}
	}
	return s.String()
}

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

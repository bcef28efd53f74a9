package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// The tests here kill Kafka clients with SIGKILL while the broker holds
// state for them (issue 8 item 3, issue 14 item 3): the test binary runs
// itself as the client (crashChild), and the broker must clean up after
// it on its own, within the client's session or transaction timeout.

const (
	crashEnv       = "BROKER_CRASH_CHILD" // "join ADDR" or "txn ADDR"
	crashSession   = 6 * time.Second      // kfake's smallest by default
	crashRebalance = 5 * time.Minute      // far above kittest.Timeout: the session must do it
	crashTopic     = "in"
	crashGroup     = "g"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(crashEnv); v != "" {
		os.Exit(crashChild(v))
	}
	os.Exit(m.Run())
}

// crashChild is the client the tests kill: it prints "ready" once the
// broker holds what the test wants it to hold, then waits to be killed.
func crashChild(v string) int {
	what, addr, _ := strings.Cut(v, " ")
	ctx := context.Background()
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID("doomed")}
	if what == "txn" {
		opts = append(opts, kgo.TransactionalID("doomed"), kgo.TransactionTimeout(5*time.Second))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	switch what {
	case "join":
		join := crashJoinRequest("")
		resp, err := join.RequestWith(ctx, cl)
		if err != nil || !errors.Is(kerr.ErrorForCode(resp.ErrorCode), kerr.MemberIDRequired) {
			fmt.Println("first join:", err, resp)
			return 1
		}
		fmt.Println("ready", resp.MemberID)
		// Parks in the broker until the group's join completes.
		crashJoinRequest(resp.MemberID).RequestWith(ctx, cl)
	case "txn":
		if err := cl.BeginTransaction(); err != nil {
			fmt.Println(err)
			return 1
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: crashTopic, Value: []byte("open")}).FirstErr(); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("ready")
	}
	select {} // until SIGKILL
}

func crashJoinRequest(memberID string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID = crashGroup, memberID
	req.SessionTimeoutMillis = int32(crashSession.Milliseconds())
	req.RebalanceTimeoutMillis = int32(crashRebalance.Milliseconds())
	req.ProtocolType = "consumer"
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{crashTopic}
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", meta.AppendTo(nil)
	req.Protocols = append(req.Protocols, p)
	return req
}

// startChild runs crashChild and returns it with the rest of its
// "ready" line once it printed it.
func startChild(t *testing.T, what, addr string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+what+" "+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "ready") {
		t.Fatalf("%s child: %q, %v", what, line, err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ready"))
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// groupMembers returns the group's state and, per member ID, the
// partitions of crashTopic it holds.
func groupMembers(ctx context.Context, adm *kadm.Client) (string, map[string][]int32, error) {
	gs, err := adm.DescribeGroups(ctx, crashGroup)
	if err != nil {
		return "", nil, err
	}
	g := gs[crashGroup]
	if g.Err != nil {
		return "", nil, g.Err
	}
	held := map[string][]int32{}
	for _, m := range g.Members {
		held[m.MemberID] = nil
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range a.Topics {
				held[m.MemberID] = append(held[m.MemberID], tp.Partitions...)
			}
		}
		sort.Slice(held[m.MemberID], func(i, j int) bool { return held[m.MemberID][i] < held[m.MemberID][j] })
	}
	return g.State, held, nil
}

// TestGroupMembersKilledWhileJoining: three consumers join a stable group
// and are killed (SIGKILL) while their JoinGroup is parked in the broker.
// The dead must leave the group with their sessions, leaving the live
// consumer with every partition — not hold partitions for good, nor keep
// the group waiting for the 5-minute rebalance timeout (issue 8 item 3;
// third_party/kfake/PATCHES.md patch 1).
func TestGroupMembersKilledWhileJoining(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := Start(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic(topics.Spec{Name: crashTopic, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(newClient(t, b.Addr()))

	live, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ClientID("live"),
		kgo.ConsumerGroup(crashGroup), kgo.ConsumeTopics(crashTopic), kgo.Balancers(kgo.RangeBalancer()),
		kgo.SessionTimeout(crashSession), kgo.RebalanceTimeout(crashRebalance), kgo.HeartbeatInterval(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pctx.Err() == nil {
			live.PollFetches(pctx)
		}
	}()
	t.Cleanup(func() {
		pcancel()
		<-polled
		b.Close() // kgo's Close waits for a JoinGroup the broker may still park
		live.Close()
	})
	var liveID string
	kittest.Eventually(t, "live consumer alone in a stable group", func() error {
		state, held, err := groupMembers(ctx, adm)
		if err != nil || state != "Stable" || len(held) != 1 {
			return fmt.Errorf("%s %v %v", state, held, err)
		}
		for id := range held {
			liveID = id
		}
		return nil
	})

	for range 3 {
		cmd, id := startChild(t, "join", b.Addr())
		kittest.Eventually(t, "killed member in the group", func() error {
			_, held, err := groupMembers(ctx, adm)
			if _, ok := held[id]; !ok || err != nil {
				return fmt.Errorf("member %s not in %v (%v)", id, held, err)
			}
			return nil
		})
		kill(t, cmd)
	}
	killed := time.Now()
	kittest.Eventually(t, "the dead members gone and the live consumer holding partitions 0 and 1", func() error {
		state, held, err := groupMembers(ctx, adm)
		if err != nil || state != "Stable" || len(held) != 1 || fmt.Sprint(held[liveID]) != "[0 1]" {
			return fmt.Errorf("group %s, members %v (%v)", state, held, err)
		}
		return nil
	})
	t.Logf("group healed %v after the last kill (session timeout %v)", time.Since(killed).Round(100*time.Millisecond), crashSession)
}

// TestOpenTransactionOfKilledProducerIsAborted: a producer killed with
// its transaction open holds back every read_committed reader of the
// partition; the broker aborts the transaction once its timeout (5 s)
// passes, the reader then sees what was committed after it, and never
// the aborted record (issue 14 item 3).
func TestOpenTransactionOfKilledProducerIsAborted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := Start(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic(topics.Spec{Name: crashTopic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cmd, _ := startChild(t, "txn", b.Addr())
	kill(t, cmd)
	killed := time.Now()

	after := newClient(t, b.Addr())
	if err := after.ProduceSync(ctx, &kgo.Record{Topic: crashTopic, Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reader := newClient(t, b.Addr(), kgo.ConsumeTopics(crashTopic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var seen []string
	kittest.Eventually(t, "read_committed reader sees the record committed after the open transaction", func() error {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		reader.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen = append(seen, string(r.Value)) })
		if len(seen) == 0 {
			return errors.New("nothing yet: the transaction is still open")
		}
		return nil
	})
	if fmt.Sprint(seen) != "[after]" {
		t.Fatalf("read_committed reader saw %q, want only [after]", seen)
	}
	t.Logf("open transaction ended %v after the kill (transaction timeout 5s)", time.Since(killed).Round(100*time.Millisecond))
}

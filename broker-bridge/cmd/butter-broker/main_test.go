package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var brokerBin string

func TestMain(m *testing.M) {
	kittest.MainWithBinaries(m, kittest.Binary{Pkg: ".", Name: "butter-broker", Path: &brokerBin})
}

// brokerProc is a butter-broker process on a fixed address and data dir,
// so that it can be killed and started again on the same state.
type brokerProc struct {
	t    *testing.T
	addr string
	data string
	cmd  *exec.Cmd
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (b *brokerProc) start() {
	b.t.Helper()
	cmd := exec.Command(brokerBin, "--addr", b.addr, "--data", b.data, "--admin", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd = cmd
	b.t.Cleanup(func() { b.kill() })
	rd := bufio.NewReader(stdout)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			b.t.Fatalf("broker did not start: %v", err)
		}
		if strings.Contains(line, "broker listening on "+b.addr) {
			break
		}
	}
	go io.Copy(io.Discard, rd)
}

// kill sends SIGKILL: no shutdown code runs, as in a crash.
func (b *brokerProc) kill() {
	if b.cmd == nil || b.cmd.ProcessState != nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
}

// props is the client.properties the broker wrote: its admin login.
func (b *brokerProc) props() string { return filepath.Join(b.data, kit.ClientPropertiesFile) }

// client logs in to b as its admin, with the login b wrote.
func client(t *testing.T, b *brokerProc, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	p, err := kit.ReadClientProperties(b.props())
	if err != nil {
		t.Fatal(err)
	}
	var k kit.KafkaConfig
	k.UseClientProperties(p)
	cl, err := k.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestSurvivesSIGKILL writes events with franz-go and with kcat, kills the
// broker with SIGKILL, restarts it on the same directory and reads every
// acknowledged event back, in order per partition.
func TestSurvivesSIGKILL(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is needed as the outside Kafka client: apt-get install -y kcat")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	b := &brokerProc{t: t, addr: freeAddr(t), data: t.TempDir()}
	b.start()

	const topic, partitions, nFranz, nKcat, keys = "persist", 4, 10000, 1000, 16
	adm := kadm.NewClient(client(t, b))
	if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	prod := client(t, b, kgo.DefaultProduceTopic(topic))
	for i := range nFranz {
		r := &kgo.Record{Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte("franz-" + strconv.Itoa(i))}
		prod.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce %s: %v", r.Value, err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var lines strings.Builder
	for i := range nKcat {
		fmt.Fprintf(&lines, "k%d:kcat-%d\n", i%keys, i)
	}
	kc := exec.CommandContext(ctx, kcat, "-F", b.props(), "-P", "-t", topic, "-K:")
	kc.Stdin = strings.NewReader(lines.String())
	if out, err := kc.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}

	// A committed consumer-group position must survive too.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 42})
	if _, err := adm.CommitOffsets(ctx, "persist-group", offs); err != nil {
		t.Fatalf("commit offsets: %v", err)
	}

	b.kill()
	b.start()

	cons := client(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	lastIndex := map[string]int{}   // per key, per source: increasing
	nextOffset := map[int32]int64{} // per partition: contiguous from 0
	for len(seen) < nFranz+nKcat {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read back %d of %d events before timeout", len(seen), nFranz+nKcat)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != nextOffset[r.Partition] {
				t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, nextOffset[r.Partition]-1)
			}
			nextOffset[r.Partition]++
			v := string(r.Value)
			if seen[v] {
				t.Fatalf("duplicate %s", v)
			}
			seen[v] = true
			src, idx, _ := strings.Cut(v, "-")
			n, _ := strconv.Atoi(idx)
			k := src + "/" + string(r.Key)
			if last, ok := lastIndex[k]; ok && n <= last {
				t.Fatalf("key %s: %s after index %d: order lost", r.Key, v, last)
			}
			lastIndex[k] = n
		})
	}
	for i := range nFranz {
		if !seen["franz-"+strconv.Itoa(i)] {
			t.Fatalf("franz-%d lost", i)
		}
	}
	for i := range nKcat {
		if !seen["kcat-"+strconv.Itoa(i)] {
			t.Fatalf("kcat-%d lost", i)
		}
	}

	got, err := kadm.NewClient(client(t, b)).FetchOffsets(ctx, "persist-group")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := got.Lookup(topic, 0); !ok || o.At != 42 {
		t.Fatalf("committed offset after restart = %+v, want 42", o)
	}
}

// TestInternalTopicsCreated checks that a fresh broker holds every internal
// topic with its compaction setting.
func TestInternalTopicsCreated(t *testing.T) {
	b := &brokerProc{t: t, addr: freeAddr(t), data: t.TempDir()}
	b.start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(client(t, b))
	rcs, err := adm.DescribeTopicConfigs(ctx, "_butter.deployments", "_butter.events")
	if err != nil {
		t.Fatal(err)
	}
	policy := map[string]string{}
	for _, rc := range rcs {
		if rc.Err != nil {
			t.Fatalf("%s: %v", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" {
				policy[rc.Name] = c.MaybeValue()
			}
		}
	}
	if policy["_butter.deployments"] != "compact" || policy["_butter.events"] != "delete" {
		t.Fatalf("cleanup.policy = %v, want deployments compact and events delete", policy)
	}
}

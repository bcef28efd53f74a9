package envelope

import (
	"bytes"
	"context"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerTimeout bounds every wait on the embedded broker; generous because
// -race and loaded CI machines are slow, and polling returns early anyway.
const brokerTimeout = 60 * time.Second

// newCluster starts an in-process single-broker cluster with topic "t" of
// one partition on a random port.
func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newClient returns a franz-go client of c that consumes topic from the
// start.
func newClient(t *testing.T, c *kfake.Cluster, topic string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("create kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consume polls cl until n records arrived or brokerTimeout passed.
func consume(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records before timeout", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("got %d records, want %d", len(out), n)
	}
	return out
}

func TestBrokerRoundTrip(t *testing.T) {
	c := newCluster(t)
	cl := newClient(t, c, "t")
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()

	cases := roundTripCases(t)
	names := slices.Sorted(maps.Keys(cases))
	before := time.Now().Add(-time.Second)
	for _, name := range names {
		r, err := ToRecord("t", cases[name].event)
		if err != nil {
			t.Fatalf("%s: ToRecord: %v", name, err)
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", name, err)
		}
	}

	for i, r := range consume(t, cl, len(names)) {
		name := names[i]
		t.Run(name, func(t *testing.T) {
			if got, want := string(r.Key), cases[name].key; got != want {
				t.Errorf("key = %q, want %q", got, want)
			}
			d := FromRecord(r)
			if d.Raw {
				t.Fatalf("decoded as raw: %v", d.Event)
			}
			if d.Stream != "t" || d.Partition != 0 || d.Offset != int64(i) {
				t.Errorf("position = %s/%d/%d, want t/0/%d", d.Stream, d.Partition, d.Offset, i)
			}
			if d.Timestamp.Before(before) {
				t.Errorf("timestamp %v is older than the test", d.Timestamp)
			}
			assertSameEvent(t, keyed(cases[name].event, cases[name].key), d.Event)
		})
	}
}

// TestKcatRecords decodes what a non-Go client (librdkafka via kcat) writes:
// a plain record must become butter.raw, a hand-made binary-mode CloudEvent
// a proper event.
func TestKcatRecords(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not on PATH: install kcat: apt-get install -y kcat")
	}
	c := newCluster(t)
	addr := strings.Join(c.ListenAddrs(), ",")

	run := func(stdin string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", addr, "-P", "-t", "t"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	run("hello from kcat\n", "-k", "key")
	run(`{"qty":3}`+"\n", "-k", "order-9",
		"-H", "ce_specversion=1.0",
		"-H", "ce_id=kcat-1",
		"-H", "ce_source=/kcat",
		"-H", "ce_type=com.example.kcat",
		"-H", "ce_subject=order-9",
		"-H", "ce_time=2025-06-07T08:09:10Z",
		"-H", "ce_tenant=acme",
		"-H", "content-type=application/json",
	)

	recs := consume(t, newClient(t, c, "t"), 2)

	raw := FromRecord(recs[0])
	if !raw.Raw {
		t.Fatalf("plain kcat record decoded as CloudEvent: %v", raw.Event)
	}
	e := raw.Event
	if e.Type() != TypeRaw || e.ID() != "t/0/0" || e.Source() != "kafka://t" {
		t.Errorf("raw event type %q id %q source %q, want butter.raw t/0/0 kafka://t", e.Type(), e.ID(), e.Source())
	}
	if string(e.Data()) != "hello from kcat" || e.DataContentType() != "application/octet-stream" {
		t.Errorf("raw data %q (%s)", e.Data(), e.DataContentType())
	}
	if pk := e.Extensions()[ExtPartitionKey]; pk != "key" {
		t.Errorf("raw partitionkey = %#v, want \"key\"", pk)
	}
	if !e.Time().Equal(recs[0].Timestamp) || e.Time().IsZero() {
		t.Errorf("raw time %v, want record timestamp %v", e.Time(), recs[0].Timestamp)
	}

	ce := FromRecord(recs[1])
	if ce.Raw {
		t.Fatalf("kcat CloudEvent decoded as raw; headers %v", recs[1].Headers)
	}
	want := New("/kcat", "com.example.kcat")
	want.SetID("kcat-1")
	want.SetSubject("order-9")
	want.SetTime(time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC))
	want.SetExtension("tenant", "acme")
	want.SetExtension(ExtPartitionKey, "order-9") // the record key
	if err := want.SetData("application/json", []byte(`{"qty":3}`)); err != nil {
		t.Fatal(err)
	}
	assertSameEvent(t, want, ce.Event)
	if ce.Offset != 1 {
		t.Errorf("offset = %d, want 1", ce.Offset)
	}
}

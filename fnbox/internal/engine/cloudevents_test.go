package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// produceRecords writes recs as they are, to partition 0.
func (e *env) produceRecords(recs ...*kgo.Record) {
	e.t.Helper()
	cl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// readRecords consumes stream from the start until n records arrived.
func (e *env) readRecords(stream string, n int) []*kgo.Record {
	e.t.Helper()
	cl := e.client(kgo.ConsumeTopics(stream), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read %d of %d records from %s before timeout", len(out), n, stream)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func header(pairs ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(pairs); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: pairs[i], Value: []byte(pairs[i+1])})
	}
	return hs
}

// TestInvalidCloudEventDeadLettered: a record with ce_ headers that do
// not make a valid CloudEvent is dead-lettered with the reason, without
// invoking, even under a filter; a record without ce_ headers is still a
// butter.raw event; the partition moves on.
func TestInvalidCloudEventDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.stream("fail-f-dlq", 1)
	valid := header("ce_specversion", "1.0", "ce_id", "ok-1", "ce_source", "/s", "ce_type", "t", "content-type", "application/json")
	e.produceRecords(
		&kgo.Record{Topic: "in", Key: []byte("k-bad"), Value: []byte(`1`),
			Headers: header("ce_specversion", "1.0", "ce_id", "bad-1", "ce_source", "/s", "ce_type", "t", "ce_time", "yesterday")},
		&kgo.Record{Topic: "in", Key: []byte("k-raw"), Value: []byte(`2`)},
		&kgo.Record{Topic: "in", Value: []byte(`3`), Headers: header("ce_specversion", "1.0", "ce_id", "bad-2")},
		&kgo.Record{Topic: "in", Value: []byte(`4`), Headers: valid},
	)
	rec := newRecorder()
	e.start(parse(t, failing), runtime.Funcs{"f": echo(rec)})

	dlq := e.readRecords("fail-f-dlq", 2)
	out := e.read("out", 2, false)
	if len(out) != 2 || rec.total() != 2 || rec.count("in/0/1") != 1 || rec.count("ok-1") != 1 {
		t.Errorf("%d results, invocations %v; want the raw record and ok-1 invoked once each", len(out), rec.calls)
	}
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for i, want := range []string{`ce_time: "yesterday"`, "ce_source"} {
		d := envelope.FromRecord(dlq[i])
		if d.Raw {
			t.Fatalf("dead letter %d is not a CloudEvent: %v", i, d.Invalid)
		}
		ev := d.Event
		if msg := envelope.Extension(ev, obs.ExtDLQError); !strings.Contains(msg, want) || !strings.Contains(msg, "invalid CloudEvent") {
			t.Errorf("dead letter %d error %q, want it to name %s", i, msg, want)
		}
		if envelope.Extension(ev, obs.ExtDLQAttempts) != "0" || envelope.Extension(ev, obs.ExtDLQOffset) != []string{"0", "2"}[i] {
			t.Errorf("dead letter %d: attempts %s offset %s", i, envelope.Extension(ev, obs.ExtDLQAttempts), envelope.Extension(ev, obs.ExtDLQOffset))
		}
		if ev.Type() != envelope.TypeRaw || string(ev.Data()) != []string{"1", "3"}[i] {
			t.Errorf("dead letter %d = %v, want the record as butter.raw", i, ev)
		}
	}
	if string(dlq[0].Key) != "k-bad" {
		t.Errorf("dead letter key %q, want the input's k-bad", dlq[0].Key)
	}
	waitFor(t, "every record committed", func() bool {
		return e.committed(topics.Namespace("").ConsumerGroup("fail", "f"), "in")[0] == 4
	})
}

// TestOutputsKeyedByInputKey: a CloudEvent without a partitionkey
// extension, on a keyed record, gets its result and its emits keyed by
// that key, so per-key order survives downstream.
func TestOutputsKeyedByInputKey(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	e.stream("audit", 1)
	in := events("i", "t", 2)
	in[1].SetExtension(envelope.ExtPartitionKey, "own")
	var recs []*kgo.Record
	for i, ev := range in {
		r, err := envelope.ToRecord("in", ev)
		if err != nil {
			t.Fatal(err)
		}
		r.Key = []byte([]string{"cust-1", "cust-2"}[i])
		recs = append(recs, r)
	}
	e.produceRecords(recs...)
	e.start(parse(t, `
name: keyed
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
      emits: [audit]
`), runtime.Funcs{"f": func(ctx context.Context, inv runtime.Invocation, h runtime.Host) (runtime.Result, error) {
		if err := h.Emit(ctx, runtime.Emit{Stream: "audit", Data: []byte(`1`)}); err != nil {
			return runtime.Result{}, err
		}
		return runtime.Result{Data: []byte(`{}`), ContentType: "application/json"}, nil
	}})
	want := map[string]string{"i-0": "cust-1", "i-1": "own"}
	for _, stream := range []string{"out", "audit"} {
		for _, r := range e.readRecords(stream, 2) {
			cause := envelope.Extension(envelope.FromRecord(r).Event, envelope.ExtCausationID)
			if string(r.Key) != want[cause] {
				t.Errorf("%s record caused by %s keyed %q, want %q", stream, cause, r.Key, want[cause])
			}
		}
	}
}

// TestCloudEventReplyIsTheOutput: a function answering with a CloudEvent
// (runtime.Result.Event, as an http function's binary or structured
// reply gives it) has that event written to out with its type, source,
// subject and extensions, while fnbox keeps the chain and the trace; an
// event without data is still written.
func TestCloudEventReplyIsTheOutput(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1)
	e.stream("out", 1)
	in := events("i", "t", 2)
	in[0].SetExtension(envelope.ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in[0].SetExtension(envelope.ExtPartitionKey, "cust-1")
	e.produce("in", 1, in...)
	e.start(parse(t, `
name: ce
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: in, offset: first}]
      out: out
`), runtime.Funcs{"f": func(_ context.Context, inv runtime.Invocation, _ runtime.Host) (runtime.Result, error) {
		reply := envelope.New("/replier", "com.example.reply")
		reply.SetID("constant")
		reply.SetSubject("about-" + inv.Events[0].Event.ID())
		reply.SetExtension("tenant", "acme")
		reply.SetExtension(envelope.ExtCausationID, "forged")
		reply.SetExtension(envelope.ExtCorrelationID, "forged")
		reply.SetExtension(envelope.ExtTraceparent, "00-11111111111111111111111111111111-1111111111111111-01")
		reply.SetExtension("offset", "7")
		if inv.Events[0].Event.ID() == "i-1" {
			return runtime.Result{Event: &reply}, nil
		}
		return runtime.Result{Event: &reply, Data: []byte(`{"ok":true}`), ContentType: "application/json"}, nil
	}})
	out := e.read("out", 2, false)
	if len(out) != 2 {
		t.Fatalf("%d outputs, want 2", len(out))
	}
	for _, d := range out {
		ev := d.Event
		cause := envelope.Extension(ev, envelope.ExtCausationID)
		if ev.Type() != "com.example.reply" || ev.Source() != "/replier" || ev.Subject() != "about-"+cause ||
			envelope.Extension(ev, "tenant") != "acme" || envelope.Extension(ev, "offset") != "" {
			t.Errorf("output %v, want the reply's attributes", ev)
		}
		if ev.ID() == "constant" || envelope.Extension(ev, envelope.ExtCorrelationID) != cause {
			t.Errorf("output id %q correlation %q: fnbox's own, please", ev.ID(), envelope.Extension(ev, envelope.ExtCorrelationID))
		}
		switch cause {
		case "i-0":
			if tp := envelope.Extension(ev, envelope.ExtTraceparent); !strings.Contains(tp, "4bf92f3577b34da6a3ce929d0e0e4736") {
				t.Errorf("traceparent %q, want the input's trace", tp)
			}
			if string(ev.Data()) != `{"ok":true}` || envelope.Extension(ev, envelope.ExtPartitionKey) != "cust-1" {
				t.Errorf("output data %q partitionkey %q", ev.Data(), envelope.Extension(ev, envelope.ExtPartitionKey))
			}
		case "i-1":
			if len(ev.Data()) != 0 {
				t.Errorf("output of a data-less reply has data %q", ev.Data())
			}
		default:
			t.Errorf("output caused by %q", cause)
		}
	}
}

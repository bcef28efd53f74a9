package cloudevents

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/topics"
)

// timeout bounds every wait on the broker; generous for -race on a loaded
// machine, and every wait polls, so it returns as soon as it can.
const timeout = 60 * time.Second

// modes are the Kafka binding's content modes, each with how sdk-go is
// told to send in it and how envelope is told to write it.
var modes = []struct {
	name   string
	sdkCtx func(context.Context) context.Context
	opts   []envelope.RecordOption
}{
	{"binary", cloudevents.WithEncodingBinary, nil},
	{"structured", cloudevents.WithEncodingStructured, []envelope.RecordOption{envelope.Structured()}},
}

// startBroker starts the embedded broker on a random port with the given
// one-partition topics.
func startBroker(t *testing.T, names ...string) []string {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	for _, n := range names {
		if err := b.CreateTopic(topics.Spec{Name: n, Partitions: 1}); err != nil {
			t.Fatalf("create topic %s: %v", n, err)
		}
	}
	return []string{b.Addr()}
}

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_8_0_0
	c.ClientID = "sdk-go-conformance"
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// sample returns events that use every attribute: JSON, text and binary
// data, typed extensions (sdk-go keeps int and bool; Kafka headers carry
// strings), a partitionkey, and one event with none of the optional ones.
func sample(t *testing.T, prefix string) []event.Event {
	t.Helper()
	full := cloudevents.NewEvent()
	full.SetID(prefix + "-full")
	full.SetSource("https://example.com/orders")
	full.SetType("com.example.order.created")
	full.SetSubject("order-1")
	full.SetTime(time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC))
	full.SetDataSchema("https://example.com/schemas/order")
	full.SetExtension("tenant", "acme")
	full.SetExtension("retries", 3)
	full.SetExtension("urgent", true)
	full.SetExtension(envelope.ExtPartitionKey, "cust-9")
	full.SetExtension(envelope.ExtCorrelationID, "root-1")
	full.SetExtension(envelope.ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err := full.SetData(cloudevents.ApplicationJSON, map[string]any{"qty": 2, "sku": "a<b>&c"}); err != nil {
		t.Fatal(err)
	}
	text := cloudevents.NewEvent()
	text.SetID(prefix + "-text")
	text.SetSource("urn:example:text")
	text.SetType("com.example.text")
	text.SetExtension(envelope.ExtPartitionKey, "cust-9")
	if err := text.SetData("text/plain; charset=utf-8", "héllo, wörld"); err != nil {
		t.Fatal(err)
	}
	bin := cloudevents.NewEvent()
	bin.SetID(prefix + "-bin")
	bin.SetSource("/bin")
	bin.SetType("com.example.bin")
	if err := bin.SetData("application/octet-stream", []byte{0, 1, 2, 0xff, 0xfe}); err != nil {
		t.Fatal(err)
	}
	minimal := cloudevents.NewEvent()
	minimal.SetID(prefix + "-min")
	minimal.SetSource("/min")
	minimal.SetType("com.example.min")
	return []event.Event{full, text, bin, minimal}
}

// assertSame fails unless got carries want's attributes, extensions (in
// string form; sdk-go's receiver adds kafkatopic, kafkapartition and
// kafkaoffset, which are ignored; extra allows more) and data.
func assertSame(t *testing.T, want, got event.Event, extra map[string]string) {
	t.Helper()
	if got.ID() != want.ID() || got.Source() != want.Source() || got.Type() != want.Type() || got.Subject() != want.Subject() ||
		!got.Time().Equal(want.Time()) || got.DataSchema() != want.DataSchema() || got.DataContentType() != want.DataContentType() ||
		got.SpecVersion() != want.SpecVersion() {
		t.Errorf("event %s attributes differ:\nwant %v\ngot  %v", want.ID(), want, got)
	}
	if string(got.Data()) != string(want.Data()) {
		t.Errorf("event %s data = %q, want %q", want.ID(), got.Data(), want.Data())
	}
	wantExt := strings(t, want.Extensions())
	maps.Copy(wantExt, extra)
	gotExt := strings(t, got.Extensions())
	for _, k := range []string{"kafkatopic", "kafkapartition", "kafkaoffset"} {
		delete(gotExt, k)
	}
	if !maps.Equal(wantExt, gotExt) {
		t.Errorf("event %s extensions = %v, want %v", want.ID(), gotExt, wantExt)
	}
}

func strings(t *testing.T, exts map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range exts {
		s, err := types.Format(v)
		if err != nil {
			t.Fatalf("extension %s: %v", k, err)
		}
		out[k] = s
	}
	return out
}

// TestSDKSenderToEnvelope: events sent by sdk-go's kafka_sarama sender in
// each mode are read by envelope.FromRecord with every attribute; the
// record key is the partitionkey, and a key set without one becomes it.
func TestSDKSenderToEnvelope(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t, "from-sdk-binary", "from-sdk-structured")
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			topic := "from-sdk-" + m.name
			sender, err := kafka_sarama.NewSender(brokers, saramaConfig(), topic)
			if err != nil {
				t.Fatalf("sdk-go sender: %v", err)
			}
			defer sender.Close(context.Background())
			c, err := cloudevents.NewClient(sender)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			sent := sample(t, m.name)
			for _, e := range sent {
				sctx := m.sdkCtx(ctx)
				if _, ok := e.Extensions()[envelope.ExtPartitionKey]; !ok && e.ID() == m.name+"-min" {
					sctx = kafka_sarama.WithMessageKey(sctx, sarama.StringEncoder("cust-7"))
				}
				if res := c.Send(sctx, e); !cloudevents.IsACK(res) {
					t.Fatalf("sdk-go send %s: %v", e.ID(), res)
				}
			}
			recs := consume(t, brokers, topic, len(sent))
			for i, r := range recs {
				d := envelope.FromRecord(r)
				if d.Raw {
					t.Fatalf("record %d read as raw (invalid: %v); headers %v", i, d.Invalid, r.Headers)
				}
				want := sent[i]
				extra := map[string]string{}
				if want.ID() == m.name+"-min" {
					extra[envelope.ExtPartitionKey] = "cust-7" // the record key
				}
				assertSame(t, want, d.Event, extra)
				if pk, _ := types.ToString(d.Event.Extensions()[envelope.ExtPartitionKey]); string(r.Key) != pk {
					t.Errorf("record %s key %q, partitionkey %q", want.ID(), r.Key, pk)
				}
				if m.name == "structured" && (len(r.Headers) != 1 || string(r.Headers[0].Value) != envelope.ContentTypeStructured) {
					t.Errorf("sdk-go did not send %s in structured mode: headers %v", want.ID(), r.Headers)
				}
			}
		})
	}
}

// TestEnvelopeToSDKReceiver: events envelope.ToRecord writes in each mode
// are read by sdk-go's kafka_sarama consumer (client.StartReceiver)
// exactly as they were built.
func TestEnvelopeToSDKReceiver(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t, "to-sdk-binary", "to-sdk-structured")
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			topic := "to-sdk-" + m.name
			sent := sample(t, m.name)
			for i := range sent {
				// Ours carry extensions as strings: Kafka headers have no type.
				for k, v := range strings(t, sent[i].Extensions()) {
					sent[i].SetExtension(k, v)
				}
			}
			var recs []*kgo.Record
			for _, e := range sent {
				r, err := envelope.ToRecord(topic, e, m.opts...)
				if err != nil {
					t.Fatalf("ToRecord %s: %v", e.ID(), err)
				}
				recs = append(recs, r)
			}
			produce(t, brokers, recs...)

			consumer, err := kafka_sarama.NewConsumer(brokers, saramaConfig(), "sdk-go-"+m.name, topic)
			if err != nil {
				t.Fatalf("sdk-go consumer: %v", err)
			}
			defer consumer.Close(context.Background())
			c, err := cloudevents.NewClient(consumer)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan event.Event, len(sent))
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- c.StartReceiver(ctx, func(e event.Event) { got <- e })
			}()
			byID := map[string]event.Event{}
			for len(byID) < len(sent) {
				select {
				case e := <-got:
					byID[e.ID()] = e
				case err := <-done:
					t.Fatalf("sdk-go receiver stopped after %d of %d events: %v", len(byID), len(sent), err)
				case <-ctx.Done():
					t.Fatalf("sdk-go received %d of %d events before timeout", len(byID), len(sent))
				}
			}
			cancel()
			<-done
			for _, want := range sent {
				e, ok := byID[want.ID()]
				if !ok {
					t.Errorf("sdk-go did not receive %s", want.ID())
					continue
				}
				assertSame(t, want, e, nil)
			}
		})
	}
}

// produce writes recs with franz-go, in order.
func produce(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consume reads n records of topic from the start with franz-go.
func consume(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s before timeout", len(out), n, topic)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("read %d records of %s, want %d", len(out), topic, n)
	}
	return out
}

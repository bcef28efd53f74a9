package envelope

import (
	"strconv"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
)

// benchRecord is a record as the platform writes one on the hot path: a
// small JSON event with a partition key and a trace, in binary mode.
func benchRecord(b *testing.B) *kgo.Record {
	b.Helper()
	e := New("/butter/bench/producer", "com.buttercompass.bench.event")
	e.SetExtension(ExtPartitionKey, "key-42")
	e.SetExtension(ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err := e.SetData(contentTypeJSON, []byte(`{"seq":42,"sku":"b-0042","qty":1}`)); err != nil {
		b.Fatal(err)
	}
	r, err := ToRecord("bench.events", e)
	if err != nil {
		b.Fatal(err)
	}
	r.Partition, r.Offset = 1, 42
	return r
}

// benchChild is what a function writes for d: a child on the input's key
// with the input's data, as the bench's pipeline and fnbox do.
func benchChild(d Delivery) event.Event {
	e := Child(d.Event, "/butter/bench/pipeline", "com.buttercompass.bench.result")
	if k := Extension(d.Event, ExtPartitionKey); k != "" {
		e.SetExtension(ExtPartitionKey, k)
	}
	if data := d.Event.Data(); len(data) > 0 {
		_ = e.SetData(d.Event.DataContentType(), data)
	}
	return e
}

func BenchmarkFromRecord(b *testing.B) {
	r := benchRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		if d := FromRecord(r); d.Raw {
			b.Fatal(d.Invalid)
		}
	}
}

func BenchmarkChild(b *testing.B) {
	d := FromRecord(benchRecord(b))
	b.ReportAllocs()
	for b.Loop() {
		benchChild(d)
	}
}

func BenchmarkToRecord(b *testing.B) {
	e := benchChild(FromRecord(benchRecord(b)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ToRecord("bench.results", e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeChildEncode is the whole per-event cost of the codec in
// a consume→produce loop: decode the input, build its child, encode it.
func BenchmarkDecodeChildEncode(b *testing.B) {
	r := benchRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ToRecord("bench.results", benchChild(FromRecord(r))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewID is the cost of one fresh event id.
func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	var s string
	for b.Loop() {
		s = New("/s", "t").ID()
	}
	_ = strconv.Quote(s)
}

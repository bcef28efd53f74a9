package envelope

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op, the process's CPU time per operation since
// start: on a machine shared with other work, ns/op (wall clock) counts the
// time other processes had the core, cpu-ns/op does not (GC work on other
// threads is in it, as it should be).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

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
	start := cpuTime(b)
	for b.Loop() {
		if d := FromRecord(r); d.Raw {
			b.Fatal(d.Invalid)
		}
	}
	reportCPU(b, start)
}

func BenchmarkChild(b *testing.B) {
	d := FromRecord(benchRecord(b))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		benchChild(d)
	}
	reportCPU(b, start)
}

func BenchmarkToRecord(b *testing.B) {
	e := benchChild(FromRecord(benchRecord(b)))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if _, err := ToRecord("bench.results", e); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkDecodeChildEncode is the whole per-event cost of the codec in
// a consume→produce loop: decode the input, build its child, encode it.
func BenchmarkDecodeChildEncode(b *testing.B) {
	r := benchRecord(b)
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if _, err := ToRecord("bench.results", benchChild(FromRecord(r))); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkNewID is the cost of one fresh event id.
func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	var s string
	start := cpuTime(b)
	for b.Loop() {
		s = New("/s", "t").ID()
	}
	reportCPU(b, start)
	_ = strconv.Quote(s)
}

// BenchmarkDecodeChildRecord is BenchmarkDecodeChildEncode through
// ChildRecord, as fnbox writes its results: no child event.Event built.
func BenchmarkDecodeChildRecord(b *testing.B) {
	r := benchRecord(b)
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		d := FromRecord(r)
		o := Output{Source: "/butter/bench/pipeline", Type: "com.buttercompass.bench.result",
			PartitionKey: Extension(d.Event, ExtPartitionKey), Data: d.Event.Data(), DataContentType: d.Event.DataContentType()}
		if _, err := ChildRecord("bench.results", d.Event, o); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

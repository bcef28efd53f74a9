package envelope

import (
	"maps"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fuzzHeaders parses "key=value" lines into record headers, so the fuzzer
// can shape any header set from one string.
func fuzzHeaders(s string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return hs
}

// FuzzFromRecord checks that no record makes FromRecord panic or return an
// invalid event, and that every CloudEvent it accepts survives being
// re-encoded: a function forwarding what it got must not lose anything.
func FuzzFromRecord(f *testing.F) {
	valid := "ce_specversion=1.0\nce_id=1\nce_source=/s\nce_type=t"
	f.Add("", []byte(nil), []byte(nil))
	f.Add("", []byte("k"), []byte(`{"a":1}`))
	f.Add(valid, []byte(nil), []byte("x"))
	f.Add(valid+"\ncontent-type=application/json\nce_subject=s\nce_time=2025-01-02T03:04:05.5Z", []byte("k"), []byte(`[1]`))
	f.Add(valid+"\nce_time=nope", []byte(nil), []byte{0xff})
	f.Add(valid+"\nce_dataschema=::\nce_Bad=1\nce_=2\nce_partitionkey=pk", []byte("k"), []byte(nil))
	f.Add("content-type=text/plain; charset=\"utf-8\"\nce_id=", []byte{0}, []byte("hi"))

	f.Fuzz(func(t *testing.T, headers string, key, value []byte) {
		r := &kgo.Record{Topic: "fuzz", Partition: 1, Offset: 2, Key: key, Value: value, Headers: fuzzHeaders(headers)}
		d := FromRecord(r)
		e := d.Event
		if err := e.Validate(); err != nil {
			t.Fatalf("FromRecord gave an invalid event (raw %v): %v", d.Raw, err)
		}
		if d.Raw {
			if e.Type() != TypeRaw || e.ID() != "fuzz/1/2" || e.Source() != "kafka://fuzz" {
				t.Fatalf("raw event type %q id %q source %q", e.Type(), e.ID(), e.Source())
			}
			if string(e.Data()) != string(value) {
				t.Fatalf("raw data %q, want %q", e.Data(), value)
			}
		}
		r2, err := ToRecord("fuzz", e)
		if err != nil {
			t.Fatalf("re-encode decoded event: %v", err)
		}
		d2 := FromRecord(r2)
		if !d.Raw && d2.Raw {
			t.Fatalf("re-encoded CloudEvent decodes as raw: %v", r2.Headers)
		}
		e2 := d2.Event
		if e2.ID() != e.ID() || e2.Type() != e.Type() || e2.Source() != e.Source() ||
			e2.Subject() != e.Subject() || !e2.Time().Equal(e.Time()) ||
			e2.DataContentType() != e.DataContentType() || string(e2.Data()) != string(e.Data()) {
			t.Fatalf("re-encoding changed the event:\n%v\n%v", e, e2)
		}
		if !maps.Equal(formatted(t, e), formatted(t, e2)) {
			t.Fatalf("re-encoding changed extensions: %v -> %v", e.Extensions(), e2.Extensions())
		}
	})
}

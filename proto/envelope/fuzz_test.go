package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/cloudevents/sdk-go/v2/event"
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
	// Structured mode.
	st := "content-type=application/cloudevents+json"
	f.Add(st, []byte("k"), []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","x":1,"data":{"a":1}}`))
	f.Add(st+"; charset=utf-8", []byte(nil), []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}`))
	f.Add(st, []byte(nil), []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"//8="}`))
	f.Add(st, []byte(nil), []byte(`{"specversion":"0.3","id":"1","source":"/s","type":"t","time":"x"}`))
	f.Add(st, []byte(nil), []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"image/png","data":"x"}`))
	f.Add(st+"\nce_id=1", []byte(nil), []byte(`[]`))

	f.Fuzz(func(t *testing.T, headers string, key, value []byte) {
		r := &kgo.Record{Topic: "fuzz", Partition: 1, Offset: 2, Key: key, Value: value, Headers: fuzzHeaders(headers)}
		d := FromRecord(r)
		e := d.Event
		if err := e.Validate(); err != nil {
			t.Fatalf("FromRecord gave an invalid event (raw %v): %v", d.Raw, err)
		}
		claims := false
		for _, h := range r.Headers {
			k := strings.ToLower(h.Key)
			claims = claims || strings.HasPrefix(k, HeaderPrefix) || (k == HeaderContentType && isStructured(string(h.Value)))
		}
		if d.Invalid != nil && (!d.Raw || !claims || !errors.Is(d.Invalid, ErrInvalidEvent)) {
			t.Fatalf("Invalid %v with raw %v, claims to be a CloudEvent %v", d.Invalid, d.Raw, claims)
		}
		if d.Raw && claims && d.Invalid == nil {
			t.Fatalf("a record claiming to be a CloudEvent is raw without a reason: %v", r.Headers)
		}
		if !d.Raw && len(key) > 0 {
			if _, ok := e.Extensions()[ExtPartitionKey]; !ok {
				t.Fatalf("keyed record decoded without partitionkey")
			}
		}
		if d.Raw {
			if e.Type() != TypeRaw || e.ID() != "fuzz/1/2" || e.Source() != "kafka://fuzz" {
				t.Fatalf("raw event type %q id %q source %q", e.Type(), e.ID(), e.Source())
			}
			if string(e.Data()) != string(value) {
				t.Fatalf("raw data %q, want %q", e.Data(), value)
			}
		}
		for _, mode := range [][]RecordOption{nil, {Structured()}} {
			roundTrip(t, d, mode)
		}
	})
}

// roundTrip checks that d's event survives re-encoding with opts.
func roundTrip(t *testing.T, d Delivery, opts []RecordOption) {
	e := d.Event
	r2, err := ToRecord("fuzz", e, opts...)
	if err != nil {
		t.Fatalf("re-encode decoded event (%d options): %v", len(opts), err)
	}
	structured := len(opts) > 0
	{
		d2 := FromRecord(r2)
		if d2.Raw {
			t.Fatalf("re-encoded event decodes as raw (%v): %v %q", d2.Invalid, r2.Headers, r2.Value)
		}
		e2 := d2.Event
		if e2.ID() != e.ID() || e2.Type() != e.Type() || e2.Source() != e.Source() ||
			e2.Subject() != e.Subject() || !e2.Time().Equal(e.Time()) ||
			e2.DataContentType() != e.DataContentType() || !sameData(e, e2, structured) {
			t.Fatalf("re-encoding changed the event:\n%v\n%v", e, e2)
		}
		if !maps.Equal(formatted(t, e), formatted(t, e2)) {
			t.Fatalf("re-encoding changed extensions: %v -> %v", e.Extensions(), e2.Extensions())
		}
	}
}

// sameData reports whether e2 carries e's data: byte for byte, except that
// the structured mode embeds JSON data as a JSON value, whose insignificant
// whitespace is not kept.
func sameData(e, e2 event.Event, structured bool) bool {
	if string(e.Data()) == string(e2.Data()) {
		return true
	}
	if !structured || e.DataBase64 || !isJSON(e.DataMediaType()) && e.DataMediaType() != "" {
		return false
	}
	var a, b bytes.Buffer
	return json.Compact(&a, e.Data()) == nil && json.Compact(&b, e2.Data()) == nil && a.String() == b.String()
}

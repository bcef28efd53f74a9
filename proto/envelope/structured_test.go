package envelope

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestStructuredRoundTrip(t *testing.T) {
	for name, tc := range roundTripCases(t) {
		t.Run(name, func(t *testing.T) {
			r, err := ToRecord("orders", tc.event, Structured())
			if err != nil {
				t.Fatalf("ToRecord: %v", err)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != HeaderContentType || string(r.Headers[0].Value) != ContentTypeStructured {
				t.Errorf("headers = %v, want only content-type %s", r.Headers, ContentTypeStructured)
			}
			if got := string(r.Key); got != tc.key {
				t.Errorf("key = %q, want %q", got, tc.key)
			}
			var obj map[string]any
			if err := json.Unmarshal(r.Value, &obj); err != nil || obj["specversion"] != "1.0" || obj["id"] != tc.event.ID() {
				t.Errorf("value is not the event in JSON (%v): %s", err, r.Value)
			}
			d := FromRecord(r)
			if d.Raw || d.Invalid != nil {
				t.Fatalf("decoded as raw (invalid: %v)", d.Invalid)
			}
			assertSameEvent(t, keyed(tc.event, tc.key), d.Event)
		})
	}
}

func TestFromRecordStructured(t *testing.T) {
	// As sdk-go's kafka_sarama writes it: typed extensions, data inline,
	// content-type with a charset.
	value := `{"specversion":"1.0","id":"e-1","source":"https://example.com/orders","type":"com.example.order.created",
		"subject":"order-1","time":"2025-01-02T03:04:05.123Z","datacontenttype":"application/json","dataschema":"https://example.com/s",
		"tenant":"acme","retries":3,"urgent":true,"data":{"qty":2}}`
	r := &kgo.Record{Topic: "t", Key: []byte("order-1"), Value: []byte(value),
		Headers: []kgo.RecordHeader{{Key: "Content-Type", Value: []byte("application/cloudevents+json; charset=UTF-8")}}}
	d := FromRecord(r)
	if d.Raw {
		t.Fatalf("structured event decoded as raw: %v", d.Invalid)
	}
	e := d.Event
	if e.ID() != "e-1" || e.Source() != "https://example.com/orders" || e.Type() != "com.example.order.created" ||
		e.Subject() != "order-1" || e.DataSchema() != "https://example.com/s" || e.DataContentType() != "application/json" {
		t.Errorf("attributes = %v", e)
	}
	if e.Time().UnixMilli() != 1735787045123 {
		t.Errorf("time = %v", e.Time())
	}
	if string(e.Data()) != `{"qty":2}` {
		t.Errorf("data = %s", e.Data())
	}
	want := map[string]string{"tenant": "acme", "retries": "3", "urgent": "true", ExtPartitionKey: "order-1"}
	got := formatted(t, e)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("extension %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	for k, v := range e.Extensions() {
		if _, ok := v.(string); !ok {
			t.Errorf("extension %s is %T, want its canonical string", k, v)
		}
	}

	// Text and base64 data come back as bytes.
	for _, tc := range []struct{ value, data string }{
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"héllo"}`, "héllo"},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAH/"}`, "\x00\x01\xff"},
	} {
		r := &kgo.Record{Topic: "t", Value: []byte(tc.value), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(ContentTypeStructured)}}}
		d := FromRecord(r)
		if d.Raw || string(d.Event.Data()) != tc.data {
			t.Errorf("%s: raw %v (%v), data %q, want %q", tc.value, d.Raw, d.Invalid, d.Event.Data(), tc.data)
		}
		if _, err := d.Event.MarshalJSON(); err != nil {
			t.Errorf("%s: decoded event does not marshal: %v", tc.value, err)
		}
	}
}

func TestFromRecordInvalid(t *testing.T) {
	valid := "ce_specversion=1.0\nce_id=1\nce_source=/s\nce_type=t"
	structured := []kgo.RecordHeader{{Key: "content-type", Value: []byte(ContentTypeStructured)}}
	for name, tc := range map[string]struct {
		headers []kgo.RecordHeader
		value   string
		reason  []string // substrings of Invalid
	}{
		"bad ce_time":         {fuzzHeaders(valid + "\nce_time=yesterday"), "", []string{`ce_time: "yesterday"`}},
		"missing required":    {fuzzHeaders("ce_specversion=1.0\nce_id=1"), "", []string{"ce_source", "ce_type"}},
		"missing specversion": {fuzzHeaders("ce_id=1\nce_source=/s\nce_type=t"), "", []string{"ce_specversion: missing"}},
		"specversion 0.3":     {fuzzHeaders(valid + "\nce_specversion=0.3"), "", []string{`"0.3"`}},
		"bad content-type":    {fuzzHeaders(valid + "\ncontent-type=///"), "x", []string{"content-type"}},
		"several problems":    {fuzzHeaders("ce_specversion=1.0\nce_id=1\nce_source=/s\nce_time=x"), "", []string{"ce_time", "ce_type"}},
		"structured not JSON": {structured, "{nope", []string{"structured"}},
		"structured no id":    {structured, `{"specversion":"1.0","source":"/s","type":"t"}`, []string{"id"}},
		"structured 2.0":      {structured, `{"specversion":"2.0","id":"1","source":"/s","type":"t"}`, []string{"specversion"}},
		"structured bad ext":  {structured, `{"specversion":"1.0","id":"1","source":"/s","type":"t","obj":{"a":1}}`, []string{"structured", "a"}},
	} {
		t.Run(name, func(t *testing.T) {
			d := FromRecord(&kgo.Record{Topic: "t", Partition: 1, Offset: 5, Value: []byte(tc.value), Headers: tc.headers})
			if !d.Raw || d.Invalid == nil {
				t.Fatalf("raw %v, invalid %v; want an invalid event", d.Raw, d.Invalid)
			}
			if !errors.Is(d.Invalid, ErrInvalidEvent) {
				t.Errorf("Invalid %v does not wrap ErrInvalidEvent", d.Invalid)
			}
			for _, want := range tc.reason {
				if !strings.Contains(d.Invalid.Error(), want) {
					t.Errorf("Invalid = %q, want it to name %q", d.Invalid, want)
				}
			}
			if d.Event.Type() != TypeRaw || d.Event.ID() != "t/1/5" || d.Event.Validate() != nil {
				t.Errorf("event of an invalid record = %v, want its raw event", d.Event)
			}
		})
	}
}

func TestFromRecordUpperCase(t *testing.T) {
	// sdk-go lower-cases header names; so do we.
	d := FromRecord(&kgo.Record{Topic: "t", Headers: fuzzHeaders("CE_SpecVersion=1.0\nce_ID=1\nce_Source=/s\nce_type=t\nce_MyExt=v\nContent-Type=text/plain")})
	if d.Raw {
		t.Fatalf("decoded as raw: %v", d.Invalid)
	}
	if d.Event.ID() != "1" || d.Event.Extensions()["myext"] != "v" || d.Event.DataContentType() != "text/plain" {
		t.Errorf("event = %v", d.Event)
	}
}

func TestKeyIsPartitionKey(t *testing.T) {
	hs := fuzzHeaders("ce_specversion=1.0\nce_id=1\nce_source=/s\nce_type=t")
	if pk := FromRecord(&kgo.Record{Key: []byte("k1"), Headers: hs}).Event.Extensions()[ExtPartitionKey]; pk != "k1" {
		t.Errorf("partitionkey of a keyed record = %v, want k1", pk)
	}
	own := append(fuzzHeaders("ce_partitionkey=mine"), hs...)
	if pk := FromRecord(&kgo.Record{Key: []byte("k1"), Headers: own}).Event.Extensions()[ExtPartitionKey]; pk != "mine" {
		t.Errorf("partitionkey = %v, want the extension's own value", pk)
	}
	if _, ok := FromRecord(&kgo.Record{Headers: hs}).Event.Extensions()[ExtPartitionKey]; ok {
		t.Error("partitionkey set for a record without key")
	}
}

func TestStructuredWinsOverStrayHeaders(t *testing.T) {
	// A structured record that picked up a ce_ header on the way (a
	// tracing interceptor) is still structured, as sdk-go reads it; with
	// ce_specversion it is binary mode whose data is a CloudEvent.
	value := `{"specversion":"1.0","id":"inner","source":"/s","type":"t"}`
	hs := []kgo.RecordHeader{{Key: "content-type", Value: []byte(ContentTypeStructured)}, {Key: "ce_traceparent", Value: []byte("x")}}
	if d := FromRecord(&kgo.Record{Value: []byte(value), Headers: hs}); d.Raw || d.Event.ID() != "inner" {
		t.Errorf("structured record with a stray ce_ header: raw %v (%v), id %q", d.Raw, d.Invalid, d.Event.ID())
	}
	outer := New("/outer", "t")
	if err := outer.SetData(ContentTypeStructured, []byte(value)); err != nil {
		t.Fatal(err)
	}
	r, err := ToRecord("t", outer)
	if err != nil {
		t.Fatal(err)
	}
	if d := FromRecord(r); d.Raw || d.Event.ID() != outer.ID() || string(d.Event.Data()) != value {
		t.Errorf("binary event carrying a CloudEvent: raw %v (%v), id %q, data %q", d.Raw, d.Invalid, d.Event.ID(), d.Event.Data())
	}
}

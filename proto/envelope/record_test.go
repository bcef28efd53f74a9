package envelope

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fullEvent returns an event with every attribute and every platform
// extension set, plus a custom one.
func fullEvent(t *testing.T) event.Event {
	t.Helper()
	e := New("https://example.com/orders", "com.example.order.created")
	e.SetTime(time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC))
	e.SetSubject("order-42")
	e.SetDataSchema("https://example.com/schemas/order.json")
	e.SetExtension(ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	e.SetExtension(ExtTracestate, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	e.SetExtension(ExtCausationID, "cause-1")
	e.SetExtension(ExtCorrelationID, "root-1")
	e.SetExtension(ExtReplyTo, "_butter.replies")
	SetDeadline(&e, time.Date(2025, 3, 4, 5, 7, 0, 0, time.UTC))
	e.SetExtension(ExtPartitionKey, "customer-7")
	e.SetExtension("tenant", "acme")
	if err := e.Validate(); err != nil {
		t.Fatalf("fixture invalid: %v", err)
	}
	return e
}

// keyed is e as FromRecord gives it back from a record with key: the key
// becomes the partitionkey when e has none.
func keyed(e event.Event, key string) event.Event {
	if _, ok := e.Extensions()[ExtPartitionKey]; ok || key == "" {
		return e
	}
	e = e.Clone()
	e.SetExtension(ExtPartitionKey, key)
	return e
}

// assertSameEvent fails unless got carries exactly the attributes,
// extensions (canonical string form) and data of want.
func assertSameEvent(t *testing.T, want, got event.Event) {
	t.Helper()
	if got.Context == nil {
		t.Fatalf("got an event without context, want %v", want)
	}
	str := func(name string, w, g string) {
		if w != g {
			t.Errorf("%s = %q, want %q", name, g, w)
		}
	}
	str("specversion", want.SpecVersion(), got.SpecVersion())
	str("id", want.ID(), got.ID())
	str("source", want.Source(), got.Source())
	str("type", want.Type(), got.Type())
	str("subject", want.Subject(), got.Subject())
	str("dataschema", want.DataSchema(), got.DataSchema())
	str("datacontenttype", want.DataContentType(), got.DataContentType())
	if !want.Time().Equal(got.Time()) {
		t.Errorf("time = %v, want %v", got.Time(), want.Time())
	}
	if w, g := formatted(t, want), formatted(t, got); !maps.Equal(w, g) {
		t.Errorf("extensions = %v, want %v", g, w)
	}
	if !bytes.Equal(want.Data(), got.Data()) {
		t.Errorf("data = %q, want %q", got.Data(), want.Data())
	}
}

func formatted(t *testing.T, e event.Event) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range e.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			t.Fatalf("format extension %q: %v", k, err)
		}
		out[k] = s
	}
	return out
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// withData returns a clone of e with data set, failing the test on error.
func withData(t *testing.T, e event.Event, contentType string, data any) event.Event {
	t.Helper()
	e = e.Clone()
	if err := e.SetData(contentType, data); err != nil {
		t.Fatalf("set data: %v", err)
	}
	return e
}

// roundTripCases are the events every round trip test sends.
func roundTripCases(t *testing.T) map[string]struct {
	event event.Event
	key   string // expected record key; "" = nil
} {
	t.Helper()
	full := fullEvent(t)
	bySubject := full.Clone()
	bySubject.SetExtension(ExtPartitionKey, nil)
	minimal := event.New()
	minimal.SetID("m-1")
	minimal.SetSource("/minimal")
	minimal.SetType("t.minimal")
	return map[string]struct {
		event event.Event
		key   string
	}{
		"all attributes, no data":   {full, "customer-7"},
		"JSON data":                 {withData(t, full, "application/json", map[string]any{"qty": 3, "sku": "x"}), "customer-7"},
		"binary data":               {withData(t, full, "application/octet-stream", []byte{0, 1, 2, 0xff, 0xfe}), "customer-7"},
		"text data":                 {withData(t, full, "text/plain; charset=utf-8", "héllo"), "customer-7"},
		"subject as key":            {withData(t, bySubject, "application/json", []byte(`[1,2]`)), "order-42"},
		"minimal, no key, no data":  {minimal, ""},
		"data without content type": {func() event.Event { e := minimal.Clone(); e.DataEncoded = []byte(`{"a":1}`); return e }(), ""},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, tc := range roundTripCases(t) {
		t.Run(name, func(t *testing.T) {
			r, err := ToRecord("orders", tc.event)
			if err != nil {
				t.Fatalf("ToRecord: %v", err)
			}
			if r.Topic != "orders" {
				t.Errorf("topic = %q, want orders", r.Topic)
			}
			if got := string(r.Key); got != tc.key || (tc.key == "" && r.Key != nil) {
				t.Errorf("key = %q (nil: %v), want %q", got, r.Key == nil, tc.key)
			}
			r.Partition, r.Offset = 3, 99
			d := FromRecord(r)
			if d.Raw {
				t.Fatalf("decoded as raw: %v", d.Event)
			}
			if d.Stream != "orders" || d.Partition != 3 || d.Offset != 99 {
				t.Errorf("position = %s/%d/%d, want orders/3/99", d.Stream, d.Partition, d.Offset)
			}
			assertSameEvent(t, keyed(tc.event, tc.key), d.Event)
			if err := d.Event.Validate(); err != nil {
				t.Errorf("decoded event invalid: %v", err)
			}
		})
	}
}

func TestToRecordHeaders(t *testing.T) {
	e := withData(t, fullEvent(t), "application/json", []byte(`{"a":1}`))
	e.SetExtension("count", 42)
	e.SetExtension("flag", true)
	r, err := ToRecord("orders", e)
	if err != nil {
		t.Fatalf("ToRecord: %v", err)
	}
	want := map[string]string{
		"ce_specversion":   "1.0",
		"ce_id":            e.ID(),
		"ce_source":        "https://example.com/orders",
		"ce_type":          "com.example.order.created",
		"ce_subject":       "order-42",
		"ce_time":          "2025-03-04T05:06:07.123456789Z",
		"ce_dataschema":    "https://example.com/schemas/order.json",
		"ce_deadline":      "2025-03-04T05:07:00Z",
		"ce_partitionkey":  "customer-7",
		"ce_count":         "42",
		"ce_flag":          "true",
		"ce_tenant":        "acme",
		"content-type":     "application/json",
		"ce_replyto":       "_butter.replies",
		"ce_causationid":   "cause-1",
		"ce_correlationid": "root-1",
	}
	for k, v := range want {
		if got, ok := header(r, k); !ok || got != v {
			t.Errorf("header %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := header(r, "ce_datacontenttype"); ok {
		t.Error("datacontenttype written as ce_ header; binary mode uses content-type")
	}
	if string(r.Value) != `{"a":1}` {
		t.Errorf("value = %q", r.Value)
	}
	// Typed extensions come back in canonical string form.
	d := FromRecord(r)
	if got := d.Event.Extensions()["count"]; got != "42" {
		t.Errorf("count extension decoded as %#v, want \"42\"", got)
	}
}

func TestToRecordRejectsInvalid(t *testing.T) {
	noSource := event.New()
	noSource.SetID("x")
	noSource.SetType("t")
	empty := event.New()
	badExt := New("/s", "t")
	badExt.Context.(*event.EventContextV1).Extensions = map[string]any{"Bad-Name": "v"}
	v03 := New("/s", "t")
	v03.SetSpecVersion(event.CloudEventsVersionV03)

	for name, tc := range map[string]struct {
		e    event.Event
		want []string
	}{
		"missing source":    {noSource, []string{`topic "orders"`, "source"}},
		"missing all":       {empty, []string{"id", "source", "type"}},
		"no context":        {event.Event{}, []string{"no context"}},
		"bad extension":     {badExt, []string{`"Bad-Name"`, "lower-case"}},
		"wrong specversion": {v03, []string{"specversion", "0.3"}},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := ToRecord("orders", tc.e)
			if err == nil {
				t.Fatalf("ToRecord accepted an invalid event: %v", r)
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("error %v does not wrap ErrInvalidEvent", err)
			}
			if r != nil {
				t.Errorf("record returned with error: %v", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestFromRecordRaw(t *testing.T) {
	ts := time.Date(2025, 1, 2, 3, 4, 5, 6000000, time.UTC)
	valid := []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("id-1")},
		{Key: "ce_source", Value: []byte("/src")},
		{Key: "ce_type", Value: []byte("t")},
	}
	without := func(key string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for _, h := range valid {
			if h.Key != key {
				out = append(out, h)
			}
		}
		return out
	}
	with := func(hs ...kgo.RecordHeader) []kgo.RecordHeader { return append(slices.Clone(valid), hs...) }

	for name, tc := range map[string]struct {
		headers []kgo.RecordHeader
		key     []byte
		value   []byte
		ct      string // expected datacontenttype
	}{
		"no headers, JSON value":   {nil, []byte("k1"), []byte(`{"a":[1,2]}`), "application/json"},
		"no headers, binary value": {nil, nil, []byte{0xff, 0, 1}, "application/octet-stream"},
		"no headers, text value":   {nil, nil, []byte("hello world"), "application/octet-stream"},
		"no headers, no value":     {nil, []byte("k"), nil, ""},
		"content-type kept":        {[]kgo.RecordHeader{{Key: "Content-Type", Value: []byte("text/csv")}}, nil, []byte("a,b"), "text/csv"},
		"bad content-type ignored": {[]kgo.RecordHeader{{Key: "content-type", Value: []byte("///")}}, nil, []byte(`1`), "application/json"},
		"junk headers": {[]kgo.RecordHeader{
			{Key: "", Value: nil}, {Key: "ce_", Value: []byte("x")}, {Key: "x-trace", Value: []byte{0xff}},
			{Key: "ce_id", Value: []byte("only-an-id")},
		}, []byte("k"), []byte("v"), "application/octet-stream"},
		"missing ce_id":          {without("ce_id"), nil, []byte("v"), "application/octet-stream"},
		"missing ce_specversion": {without("ce_specversion"), nil, nil, ""},
		"missing ce_source":      {without("ce_source"), nil, nil, ""},
		"empty ce_type":          {with(kgo.RecordHeader{Key: "ce_type", Value: []byte("  ")}), nil, nil, ""},
		"specversion 0.3":        {with(kgo.RecordHeader{Key: "ce_specversion", Value: []byte("0.3")}), nil, nil, ""},
		"bad ce_time":            {with(kgo.RecordHeader{Key: "ce_time", Value: []byte("yesterday")}), nil, []byte(`{}`), "application/json"},
		"bad ce_dataschema":      {with(kgo.RecordHeader{Key: "ce_dataschema", Value: []byte("::nope")}), nil, nil, ""},
		"bad ce_source":          {with(kgo.RecordHeader{Key: "ce_source", Value: []byte("%zz")}), nil, nil, ""},
		"bad content-type on CE": {with(kgo.RecordHeader{Key: "content-type", Value: []byte("///")}), nil, []byte("x"), "application/octet-stream"},
	} {
		t.Run(name, func(t *testing.T) {
			r := &kgo.Record{Topic: "legacy.orders", Partition: 2, Offset: 17, Timestamp: ts, Key: tc.key, Value: tc.value, Headers: tc.headers}
			d := FromRecord(r)
			if !d.Raw {
				t.Fatalf("not raw: %v", d.Event)
			}
			claims := slices.ContainsFunc(tc.headers, func(h kgo.RecordHeader) bool { return strings.HasPrefix(h.Key, HeaderPrefix) })
			if claims != (d.Invalid != nil) {
				t.Errorf("Invalid = %v; the record has ce_ headers: %v", d.Invalid, claims)
			}
			if d.Invalid != nil && !errors.Is(d.Invalid, ErrInvalidEvent) {
				t.Errorf("Invalid = %v, does not wrap ErrInvalidEvent", d.Invalid)
			}
			e := d.Event
			if err := e.Validate(); err != nil {
				t.Errorf("raw event invalid: %v", err)
			}
			if e.Type() != TypeRaw || e.ID() != "legacy.orders/2/17" || e.Source() != "kafka://legacy.orders" || e.SpecVersion() != "1.0" {
				t.Errorf("raw event = type %q id %q source %q specversion %q", e.Type(), e.ID(), e.Source(), e.SpecVersion())
			}
			if !e.Time().Equal(ts) || !d.Timestamp.Equal(ts) {
				t.Errorf("time = %v, timestamp = %v, want %v", e.Time(), d.Timestamp, ts)
			}
			if !bytes.Equal(e.Data(), tc.value) {
				t.Errorf("data = %q, want %q", e.Data(), tc.value)
			}
			if e.DataContentType() != tc.ct {
				t.Errorf("datacontenttype = %q, want %q", e.DataContentType(), tc.ct)
			}
			pk, ok := e.Extensions()[ExtPartitionKey]
			if len(tc.key) > 0 && pk != string(tc.key) {
				t.Errorf("partitionkey = %v, want %q", pk, tc.key)
			}
			if len(tc.key) == 0 && ok {
				t.Errorf("partitionkey %v set for a record without key", pk)
			}
			if len(e.Extensions()) > 1 || (len(e.Extensions()) == 1 && !ok) {
				t.Errorf("raw event has extensions %v beyond partitionkey", e.Extensions())
			}
		})
	}
}

func TestFromRecordNil(t *testing.T) {
	d := FromRecord(nil)
	if !d.Raw || d.Event.Type() != TypeRaw {
		t.Fatalf("FromRecord(nil) = %+v, want a raw event", d)
	}
}

func TestFromRecordLenient(t *testing.T) {
	// Foreign producers: last duplicate wins, names are lower-cased, invalid
	// extension names and a ce_datacontenttype copy are ignored,
	// content-type matches any case,
	// an offset time is accepted.
	r := &kgo.Record{Topic: "t", Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("first")},
		{Key: "ce_id", Value: []byte("second")},
		{Key: "ce_source", Value: []byte("urn:x")},
		{Key: "ce_type", Value: []byte("t")},
		{Key: "ce_time", Value: []byte("2025-01-02T03:04:05+02:00")},
		{Key: "ce_Upper", Value: []byte("x")},
		{Key: "ce_with-dash", Value: []byte("x")},
		{Key: "ce_datacontenttype", Value: []byte("text/plain")},
		{Key: "Content-Type", Value: []byte("application/json")},
		{Key: "ce_ok1", Value: []byte("yes")},
		{Key: "other", Value: []byte("ignored")},
	}, Value: []byte(`"s"`)}
	d := FromRecord(r)
	if d.Raw {
		t.Fatalf("decoded as raw")
	}
	e := d.Event
	if e.ID() != "second" {
		t.Errorf("id = %q, want the last header's", e.ID())
	}
	if want := time.Date(2025, 1, 2, 1, 4, 5, 0, time.UTC); !e.Time().Equal(want) {
		t.Errorf("time = %v, want %v", e.Time(), want)
	}
	if !maps.Equal(formatted(t, e), map[string]string{"ok1": "yes", "upper": "x"}) {
		t.Errorf("extensions = %v, want ok1 and upper (lower-cased)", e.Extensions())
	}
	if e.DataContentType() != "application/json" {
		t.Errorf("datacontenttype = %q", e.DataContentType())
	}
}

func TestDecodedDataBase64(t *testing.T) {
	// A structured JSON rendering must not mangle binary data.
	for ct, want := range map[string]bool{
		"application/json":             false,
		"application/cloudevents+json": false,
		"text/plain":                   false,
		"application/octet-stream":     true,
		"image/png":                    true,
	} {
		e := New("/s", "t")
		e.SetDataContentType(ct)
		e.DataEncoded = []byte(`{"a":1}`)
		r, err := ToRecord("t", e)
		if err != nil {
			t.Fatalf("ToRecord: %v", err)
		}
		if got := FromRecord(r).Event.DataBase64; got != want {
			t.Errorf("%s: DataBase64 = %v, want %v", ct, got, want)
		}
	}
	r := &kgo.Record{Topic: "t", Value: []byte{0xff, 0xfe}}
	if e := FromRecord(r).Event; !e.DataBase64 {
		t.Error("raw binary value not marked base64")
	}
	if _, err := FromRecord(r).Event.MarshalJSON(); err != nil {
		t.Errorf("raw binary event does not marshal: %v", err)
	}
}

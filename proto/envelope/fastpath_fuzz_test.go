package envelope

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sdkMessage reads a kgo record as sdk-go's Kafka binding
// (protocol/kafka_sarama) reads a sarama record: header names lower-cased
// into a map (the last of repeated names wins), structured mode when the
// content-type is a known event format, binary mode when ce_specversion
// names a known version. It lets the fuzz target ask sdk-go's own decoder
// (binding.ToEvent) what a record means without a dependency on sarama.
type sdkMessage struct {
	value       []byte
	headers     map[string][]byte
	contentType string
	format      format.Format
	version     spec.Version
}

var sdkSpecs = spec.WithPrefix(HeaderPrefix)

func newSDKMessage(r *kgo.Record) *sdkMessage {
	m := &sdkMessage{value: r.Value, headers: map[string][]byte{}}
	for _, h := range r.Headers {
		m.headers[strings.ToLower(h.Key)] = h.Value
	}
	m.contentType = string(m.headers[HeaderContentType])
	if ft := format.Lookup(m.contentType); ft != nil {
		m.format = ft
	} else if v := sdkSpecs.Version(string(m.headers[sdkSpecs.PrefixedSpecVersionName()])); v != nil {
		m.version = v
	}
	return m
}

func (m *sdkMessage) ReadEncoding() binding.Encoding {
	switch {
	case m.version != nil:
		return binding.EncodingBinary
	case m.format != nil:
		return binding.EncodingStructured
	}
	return binding.EncodingUnknown
}

func (m *sdkMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	if m.format == nil {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, m.format, bytes.NewReader(m.value))
}

func (m *sdkMessage) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	if m.version == nil {
		return binding.ErrNotBinary
	}
	for k, v := range m.headers {
		var err error
		switch {
		case strings.HasPrefix(k, HeaderPrefix):
			if attr := m.version.Attribute(k); attr != nil {
				err = w.SetAttribute(attr, string(v))
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, HeaderPrefix), string(v))
			}
		case k == HeaderContentType:
			err = w.SetAttribute(m.version.AttributeFromKind(spec.DataContentType), string(v))
		}
		if err != nil {
			return err
		}
	}
	if m.value != nil {
		return w.SetData(bytes.NewReader(m.value))
	}
	return nil
}

func (m *sdkMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	attr := m.version.AttributeFromKind(k)
	if attr == nil {
		return nil, nil
	}
	if v, ok := m.headers[attr.PrefixedName()]; ok {
		return attr, string(v)
	}
	return attr, nil
}

func (m *sdkMessage) GetExtension(name string) any {
	if v, ok := m.headers[HeaderPrefix+name]; ok {
		return string(v)
	}
	return nil
}

func (m *sdkMessage) Finish(error) error { return nil }

var (
	_ binding.Message               = (*sdkMessage)(nil)
	_ binding.MessageMetadataReader = (*sdkMessage)(nil)
)

// sdkDecode is sdk-go's reading of binary-mode record r, validated, with
// the record key as partitionkey as FromRecord adds it.
func sdkDecode(r *kgo.Record) (event.Event, bool) {
	m := newSDKMessage(r)
	if m.ReadEncoding() != binding.EncodingBinary {
		return event.Event{}, false
	}
	e, err := binding.ToEvent(context.Background(), m)
	if err != nil || e.SpecVersion() != event.CloudEventsVersionV1 || e.Validate() != nil {
		return event.Event{}, false
	}
	if _, ok := e.Extensions()[ExtPartitionKey]; !ok && len(r.Key) > 0 {
		e.SetExtension(ExtPartitionKey, string(r.Key))
	}
	return *e, true
}

// sameAttrs reports whether a and b carry the same attributes, extensions
// and data bytes.
func sameAttrs(a, b event.Event) bool {
	if a.ID() != b.ID() || a.Source() != b.Source() || a.Type() != b.Type() || a.Subject() != b.Subject() ||
		!a.Time().Equal(b.Time()) || a.DataSchema() != b.DataSchema() || a.DataContentType() != b.DataContentType() ||
		!bytes.Equal(a.Data(), b.Data()) {
		return false
	}
	return maps.EqualFunc(a.Extensions(), b.Extensions(), func(x, y any) bool { return x == y })
}

// FuzzFastPath holds the binary-mode fast paths to the general code and to
// sdk-go's Kafka binding: whatever the headers, the fast decoder either
// declines or gives exactly the event the general decoder gives, which is
// exactly the event sdk-go decodes and validates; and a record the general
// decoder accepts is one sdk-go accepts, with every attribute equal, except
// where FromRecord is documented to be stricter or more lenient (see the
// skips below). The fast encoders (encodeBinaryFast, ChildRecord's) give
// the same record as the general one.
func FuzzFastPath(f *testing.F) {
	valid := "ce_specversion=1.0\nce_id=1\nce_source=/s\nce_type=t"
	f.Add(valid, []byte(nil), []byte("x"))
	f.Add(valid+"\ncontent-type=application/json\nce_traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nce_partitionkey=k", []byte("k"), []byte(`{"a":1}`))
	f.Add(valid+"\nce_subject= s \nce_time=2025-01-02T03:04:05.5Z\nce_x=", []byte("key"), []byte(`[1]`))
	f.Add(valid+"\nce_time=0001-01-01T00:00:00Z\ncontent-type= text/plain ; charset=utf-8", []byte(nil), []byte{0xff})
	f.Add(valid+"\nce_id= \nce_source=http://[::1\nce_dataschema=x", []byte(nil), []byte(nil))
	f.Add(valid+"\nce_ID=2\nCE_type=u\nContent-Type=application/json\nce_\u212Aey=1", []byte(nil), []byte("1"))
	f.Add(valid+"\nce_specversion=0.3\ncontent-type=application/cloudevents+json", []byte(nil), []byte("{}"))
	f.Add(valid+"\ncontent-type=\nce_datacontenttype=text/plain\nce_id=3", []byte("k"), []byte("x"))

	f.Fuzz(func(t *testing.T, headers string, key, value []byte) {
		r := &kgo.Record{Topic: "fuzz", Partition: 1, Offset: 2, Key: key, Value: value, Headers: fuzzHeaders(headers)}
		fast, fastOK := decodeBinaryFast(r)
		general := fromRecordGeneral(r)
		if fastOK {
			if general.Raw {
				t.Fatalf("fast path accepted what the general path refuses (%v): %v", general.Invalid, r.Headers)
			}
			if !sameAttrs(fast, general.Event) || fast.DataBase64 != general.Event.DataBase64 {
				t.Fatalf("fast and general decoding disagree:\n%v\n%v", fast, general.Event)
			}
			sdk, ok := sdkDecode(r)
			if !ok {
				t.Fatalf("fast path accepted what sdk-go refuses: %v", r.Headers)
			}
			if !sameAttrs(fast, sdk) {
				t.Fatalf("fast path and sdk-go disagree:\n%v\n%v", fast, sdk)
			}
		}
		if !general.Raw {
			checkFastEncode(t, general.Event)
			checkChildRecord(t, general.Event, Output{
				Source: "/fnbox/d/f", Type: general.Event.Type(), Subject: general.Event.ID(),
				PartitionKey: string(key), Data: value, DataContentType: general.Event.DataContentType(),
			})
		}

		// The general path against sdk-go, binary mode only, leaving out
		// the documented differences.
		names := map[string]bool{}
		for _, h := range r.Headers {
			k := strings.ToLower(h.Key)
			if strings.HasPrefix(k, HeaderPrefix) {
				names[k[len(HeaderPrefix):]] = true
			}
		}
		m := newSDKMessage(r)
		switch {
		case m.ReadEncoding() != binding.EncodingBinary:
			return // structured or not a CloudEvent: sdk-go's binary decoder has no say
		case string(m.headers[HeaderPrefix+attrSpecVersion]) != event.CloudEventsVersionV1:
			return // 0.3 is read by sdk-go, refused by FromRecord
		case names[attrDataContentType]:
			return // sdk-go reads ce_datacontenttype too, in map order; FromRecord only content-type
		case general.Raw && general.Invalid == nil:
			return
		}
		for n := range names {
			if !validName(n) {
				return // FromRecord ignores such headers, sdk-go refuses the record
			}
		}
		if ct, ok := m.headers[HeaderContentType]; ok && !checkContentType(string(ct)).parses {
			return // FromRecord refuses a content-type that is no media type, sdk-go ignores an empty one
		}
		sdk, sdkOK := sdkDecode(r)
		if sdkOK == general.Raw {
			t.Fatalf("FromRecord raw %v (%v), sdk-go accepts %v: %v", general.Raw, general.Invalid, sdkOK, r.Headers)
		}
		if sdkOK && !sameAttrs(general.Event, sdk) {
			t.Fatalf("FromRecord and sdk-go disagree:\n%v\n%v", general.Event, sdk)
		}
	})
}

// fromRecordGeneral is FromRecord without the fast path.
func fromRecordGeneral(r *kgo.Record) Delivery {
	noFastPath = true
	defer func() { noFastPath = false }()
	return FromRecord(r)
}

// checkFastEncode checks that the fast encoder, when it takes e, writes
// the record the general encoder writes.
func checkFastEncode(t *testing.T, e event.Event) {
	t.Helper()
	fast, ok := encodeBinaryFast("fuzz", e)
	noFastPath = true
	general, err := ToRecord("fuzz", e)
	noFastPath = false
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("fast encoder took an event the general one refuses: %v", err)
	}
	if !bytes.Equal(fast.Key, general.Key) || !bytes.Equal(fast.Value, general.Value) || len(fast.Headers) != len(general.Headers) {
		t.Fatalf("fast and general records differ:\n%+v\n%+v", fast, general)
	}
	for i, h := range fast.Headers {
		if g := general.Headers[i]; h.Key != g.Key || !bytes.Equal(h.Value, g.Value) {
			t.Fatalf("header %d: fast %s=%q, general %s=%q", i, h.Key, h.Value, g.Key, g.Value)
		}
	}
}

// TestFastPathTaken checks that the events the platform writes take the
// fast paths, so that they cannot silently fall back for good.
func TestFastPathTaken(t *testing.T) {
	e := fullEvent(t)
	e.SetDataSchema("") // the one attribute the fast paths leave to the general code
	if err := e.SetData(contentTypeJSON, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	r, ok := encodeBinaryFast("t", e)
	if !ok {
		t.Fatal("encodeBinaryFast declined a valid event")
	}
	got, ok := decodeBinaryFast(r)
	if !ok {
		t.Fatalf("decodeBinaryFast declined the record of a valid event: %v", r.Headers)
	}
	assertSameEvent(t, e, got)
	c := Child(got, "/c", "t.child")
	if _, ok := encodeBinaryFast("t", c); !ok {
		t.Fatal("encodeBinaryFast declined a child event")
	}
}

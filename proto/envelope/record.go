package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrInvalidEvent is wrapped by ToRecord when the event breaks the
// CloudEvents 1.0 spec; the message names every offending attribute.
var ErrInvalidEvent = errors.New("invalid CloudEvent")

// Attribute names with a fixed meaning in the binding: they are never
// written or read as extensions.
const (
	attrSpecVersion     = "specversion"
	attrID              = "id"
	attrSource          = "source"
	attrType            = "type"
	attrSubject         = "subject"
	attrTime            = "time"
	attrDataSchema      = "dataschema"
	attrDataContentType = "datacontenttype"
)

// Content types FromRecord gives raw values.
const (
	contentTypeJSON   = "application/json"
	contentTypeBinary = "application/octet-stream"
)

// ToRecord encodes e for topic in binary content mode: specversion, id,
// source, type, subject, time (RFC 3339, nanoseconds, UTC), dataschema and
// every extension (canonical string form) as ce_<name> headers,
// datacontenttype as the content-type header, data as the value. The record
// key is the partitionkey extension, else the subject, else nil, so events
// about one subject stay in order without the producer having to say so.
// The record timestamp is left for the producer to set.
func ToRecord(topic string, e event.Event) (*kgo.Record, error) {
	if err := validate(e); err != nil {
		return nil, fmt.Errorf("encode event for topic %q: %w", topic, err)
	}
	ec := e.Context
	r := &kgo.Record{Topic: topic}
	add := func(name, value string) {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderPrefix + name, Value: []byte(value)})
	}
	add(attrSpecVersion, event.CloudEventsVersionV1)
	add(attrID, ec.GetID())
	add(attrSource, ec.GetSource())
	add(attrType, ec.GetType())
	if s := ec.GetSubject(); s != "" {
		add(attrSubject, s)
	}
	if t := ec.GetTime(); !t.IsZero() {
		add(attrTime, types.FormatTime(t))
	}
	if s := ec.GetDataSchema(); s != "" {
		add(attrDataSchema, s)
	}
	if ct := ec.GetDataContentType(); ct != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(ct)})
	}
	exts := ec.GetExtensions()
	for _, name := range slices.Sorted(maps.Keys(exts)) {
		if exts[name] == nil {
			continue
		}
		v, err := types.Format(exts[name])
		if err != nil {
			return nil, fmt.Errorf("encode extension %q of event %q: %w", name, ec.GetID(), err)
		}
		add(name, v)
	}
	if k, ok := stringExtension(e, ExtPartitionKey); ok && k != "" {
		r.Key = []byte(k)
	} else if s := ec.GetSubject(); s != "" {
		r.Key = []byte(s)
	}
	r.Value = e.Data()
	return r, nil
}

// validate checks e against the spec plus what the binding needs, and
// says everything that is wrong at once so one fix is enough.
func validate(e event.Event) error {
	if e.Context == nil {
		return fmt.Errorf("%w: no context: build events with envelope.New or event.New", ErrInvalidEvent)
	}
	if v := e.SpecVersion(); v != event.CloudEventsVersionV1 {
		return fmt.Errorf("%w: specversion %q: only %s is supported", ErrInvalidEvent, v, event.CloudEventsVersionV1)
	}
	problems := map[string]string{}
	if err := e.Validate(); err != nil {
		var ve event.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
		}
		for k, v := range ve {
			problems[k] = v.Error()
		}
	}
	for name := range e.Context.GetExtensions() {
		if !validName(name) {
			problems["extension "+strconv.Quote(name)] = "names are lower-case a-z and 0-9 only"
		}
	}
	if len(problems) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(problems))
	for _, k := range slices.Sorted(maps.Keys(problems)) {
		msgs = append(msgs, k+": "+problems[k])
	}
	return fmt.Errorf("%w: %s", ErrInvalidEvent, strings.Join(msgs, "; "))
}

// FromRecord decodes r. It never fails: a record that is not a valid
// binary-mode CloudEvent 1.0 (no headers, a missing or empty ce_id,
// ce_source or ce_type, a ce_specversion other than 1.0, an unparsable
// ce_time, ce_dataschema or content-type) becomes a TypeRaw event as
// documented there, with Raw set; its headers are dropped. Header names
// after ce_ that are not valid extension names (lower-case a-z, 0-9) are
// ignored, and of repeated headers the last wins.
func FromRecord(r *kgo.Record) Delivery {
	if r == nil {
		r = &kgo.Record{}
	}
	d := Delivery{Stream: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
	if e, ok := decodeBinary(r); ok {
		d.Event = e
		return d
	}
	d.Event = rawEvent(r)
	d.Raw = true
	return d
}

// decodeBinary reads r as a binary-mode CloudEvent, and reports false when
// it is not a valid one.
func decodeBinary(r *kgo.Record) (event.Event, bool) {
	attrs := map[string]string{}
	contentType, hasContentType := "", false
	for _, h := range r.Headers {
		switch {
		case strings.EqualFold(h.Key, HeaderContentType):
			contentType, hasContentType = string(h.Value), true
		case strings.HasPrefix(h.Key, HeaderPrefix):
			if name := h.Key[len(HeaderPrefix):]; validName(name) {
				attrs[name] = string(h.Value)
			}
		}
	}
	if attrs[attrSpecVersion] != event.CloudEventsVersionV1 {
		return event.Event{}, false
	}
	e := event.New(event.CloudEventsVersionV1)
	// Required attributes may be absent from attrs; setting them empty makes
	// Validate catch it.
	e.SetID(attrs[attrID])
	e.SetSource(attrs[attrSource])
	e.SetType(attrs[attrType])
	for name, v := range attrs {
		switch name {
		case attrSpecVersion, attrID, attrSource, attrType:
		case attrDataContentType:
			// Binary mode carries it in content-type; a ce_ copy is noise.
		case attrSubject:
			e.SetSubject(v)
		case attrTime:
			t, err := types.ParseTime(v)
			if err != nil {
				return event.Event{}, false
			}
			e.SetTime(t)
		case attrDataSchema:
			e.SetDataSchema(v)
		default:
			e.SetExtension(name, v)
		}
	}
	if hasContentType {
		e.SetDataContentType(contentType)
	}
	setData(&e, r.Value)
	if e.Validate() != nil {
		return event.Event{}, false
	}
	return e, true
}

// rawEvent synthesises the TypeRaw event of a record that is not a
// CloudEvent. Its source is built, not parsed, so no topic name can make it
// fail.
func rawEvent(r *kgo.Record) event.Event {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(r.Topic + "/" + strconv.FormatInt(int64(r.Partition), 10) + "/" + strconv.FormatInt(r.Offset, 10))
	e.SetType(TypeRaw)
	e.Context.(*event.EventContextV1).Source = types.URIRef{URL: url.URL{Scheme: "kafka", Host: r.Topic}}
	e.SetTime(r.Timestamp)
	if len(r.Key) > 0 {
		// Kept byte for byte even when not UTF-8, so re-producing the event
		// keeps it on the same partition.
		e.SetExtension(ExtPartitionKey, string(r.Key))
	}
	if len(r.Value) > 0 {
		e.SetDataContentType(rawContentType(r))
		setData(&e, r.Value)
	}
	return e
}

// rawContentType is the content-type header when it parses, else a guess
// from the value: functions in JSON-speaking runtimes get JSON as JSON.
func rawContentType(r *kgo.Record) string {
	ct := ""
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, HeaderContentType) {
			ct = strings.TrimSpace(string(h.Value))
		}
	}
	if ct != "" {
		if _, _, err := mime.ParseMediaType(ct); err == nil {
			return ct
		}
	}
	if json.Valid(r.Value) {
		return contentTypeJSON
	}
	return contentTypeBinary
}

// setData sets value as the data of e. DataBase64 is set when the data is
// not text its media type promises, so that a structured JSON rendering of
// the event (what runtimes receive) keeps binary data intact.
func setData(e *event.Event, value []byte) {
	if len(value) == 0 {
		return
	}
	e.DataEncoded = value
	mt := e.DataMediaType()
	switch {
	case mt == "" || isJSON(mt):
		e.DataBase64 = !json.Valid(value)
	case strings.HasPrefix(mt, "text/"):
		e.DataBase64 = !utf8.Valid(value)
	default:
		e.DataBase64 = true
	}
}

// isJSON reports whether media type mt is JSON, structured suffix included.
func isJSON(mt string) bool {
	return mt == contentTypeJSON || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// validName reports whether name is a valid CloudEvents 1.0 attribute name.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

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

// RecordOption changes how ToRecord encodes an event.
type RecordOption func(*recordConfig)

type recordConfig struct {
	structured bool
}

// Structured makes ToRecord write the Kafka binding's structured content
// mode: the whole event in the JSON format as the value, content-type
// application/cloudevents+json, no ce_ headers. Default: binary content
// mode, which every CloudEvents Kafka consumer reads and which keeps data
// byte for byte.
func Structured() RecordOption { return func(c *recordConfig) { c.structured = true } }

// ToRecord encodes e for topic, by default in binary content mode:
// specversion, id, source, type, subject, time (RFC 3339, nanoseconds,
// UTC), dataschema and every extension (canonical string form) as
// ce_<name> headers, datacontenttype as the content-type header, data as
// the value (see Structured for the other mode). The record key is the
// partitionkey extension, else the subject, else nil, so events about one
// subject stay in order without the producer having to say so. The record
// timestamp is left for the producer to set.
func ToRecord(topic string, e event.Event, opts ...RecordOption) (*kgo.Record, error) {
	if len(opts) == 0 && !noFastPath {
		// Checked before cfg exists: the options' pointer moves it to the
		// heap, an allocation the hot path does not need.
		if r, ok := encodeBinaryFast(topic, e); ok {
			return r, nil
		}
	}
	var cfg recordConfig
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.structured && len(opts) > 0 && !noFastPath {
		if r, ok := encodeBinaryFast(topic, e); ok {
			return r, nil
		}
	}
	if err := validate(e); err != nil {
		return nil, fmt.Errorf("encode event for topic %q: %w", topic, err)
	}
	ec := e.Context
	r := &kgo.Record{Topic: topic}
	if k := Extension(e, ExtPartitionKey); k != "" {
		r.Key = []byte(k)
	} else if s := ec.GetSubject(); s != "" {
		r.Key = []byte(s)
	}
	if cfg.structured {
		if ct := ec.GetDataContentType(); !e.DataBase64 && ct != strings.ToLower(ct) {
			// sdk-go writes data of a mixed-case JSON media type inline
			// but reads it back as a string; base64 survives any case.
			e = e.Clone()
			e.DataBase64 = true
		}
		// MarshalJSON rather than json.Marshal, which would re-compact the
		// data and escape HTML in it.
		v, err := e.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode event %q for topic %q in structured mode: %w", ec.GetID(), topic, err)
		}
		r.Headers = []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte(ContentTypeStructured)}}
		r.Value = v
		return r, nil
	}
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

// FromRecord decodes r. It never fails: what it cannot read as a
// CloudEvent becomes a TypeRaw event as documented there, with Raw set.
//
// A record is read in the Kafka binding's structured content mode when
// its content-type is application/cloudevents+json and it has no
// ce_specversion header (the value is then the event in the JSON format),
// in binary content mode when it has any other ce_ header, and as a plain
// record otherwise. Header names
// match in any case and are lower-cased, as sdk-go does (ce_MyExt is
// extension myext); names that are still not valid attribute names
// (ce_with-dash) are ignored, and of repeated headers the last wins.
//
// A record that claims to be a CloudEvent but is not a valid one (a
// missing or empty ce_id, ce_source or ce_type, a ce_specversion other
// than 1.0, an unparsable ce_time, ce_dataschema or content-type, a
// structured value that is not a CloudEvent) also becomes a TypeRaw event,
// but with Invalid saying why, so that consumers can refuse it instead of
// mistaking it for a plain record.
//
// When the event has no partitionkey extension and the record has a key,
// the key becomes its partitionkey: the key is what Kafka orders by, and
// outputs keyed by their input's partition key stay in that order.
func FromRecord(r *kgo.Record) Delivery {
	if r == nil {
		r = &kgo.Record{}
	}
	d := Delivery{Stream: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
	e, err := decode(r)
	if err == nil {
		if _, ok := extension(e, ExtPartitionKey); !ok && len(r.Key) > 0 {
			e.SetExtension(ExtPartitionKey, string(r.Key))
		}
		d.Event = e
		return d
	}
	d.Event = rawEvent(r)
	d.Raw = true
	if !errors.Is(err, errNotCloudEvent) {
		d.Invalid = err
	}
	return d
}

// errNotCloudEvent is what decode says of a record that does not claim
// to be a CloudEvent at all.
var errNotCloudEvent = errors.New("not a CloudEvent")

// decode reads r in the content mode its headers say (see FromRecord).
func decode(r *kgo.Record) (event.Event, error) {
	if !noFastPath {
		if e, ok := decodeBinaryFast(r); ok {
			return e, nil
		}
	}
	attrs := map[string]string{}
	contentType, hasContentType, hasCE := "", false, false
	for _, h := range r.Headers {
		key := strings.ToLower(h.Key)
		switch {
		case key == HeaderContentType:
			contentType, hasContentType = string(h.Value), true
		case strings.HasPrefix(key, HeaderPrefix):
			hasCE = true
			if name := key[len(HeaderPrefix):]; validName(name) {
				attrs[name] = string(h.Value)
			}
		}
	}
	_, hasSpecVersion := attrs[attrSpecVersion]
	switch {
	case hasContentType && isStructured(contentType) && !hasSpecVersion:
		// sdk-go reads the content type first too; ce_specversion is
		// what our binary mode writes for an event whose data is itself
		// a structured CloudEvent.
		return decodeStructured(r.Value)
	case hasCE:
		return decodeBinary(attrs, contentType, hasContentType, r.Value)
	}
	return event.Event{}, errNotCloudEvent
}

// isStructured reports whether content type ct is the structured JSON
// format's. Parameters (charset) and case do not matter, as in sdk-go.
func isStructured(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), ContentTypeStructured)
}

// decodeBinary builds the binary-mode event of the ce_ attributes attrs,
// and says everything that is wrong with it at once.
func decodeBinary(attrs map[string]string, contentType string, hasContentType bool, value []byte) (event.Event, error) {
	problems := map[string]string{}
	if v, ok := attrs[attrSpecVersion]; !ok {
		problems[HeaderPrefix+attrSpecVersion] = "missing"
	} else if v != event.CloudEventsVersionV1 {
		problems[HeaderPrefix+attrSpecVersion] = strconv.Quote(v) + ": only " + event.CloudEventsVersionV1 + " is supported"
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
				problems[HeaderPrefix+attrTime] = strconv.Quote(v) + ": not an RFC 3339 time"
				continue
			}
			e.SetTime(t)
		case attrDataSchema:
			e.SetDataSchema(v)
		default:
			e.SetExtension(name, v)
		}
	}
	if hasContentType {
		if _, _, err := mime.ParseMediaType(contentType); err != nil {
			problems[HeaderContentType] = strconv.Quote(contentType) + ": " + err.Error()
		}
		e.SetDataContentType(contentType)
	}
	setData(&e, value)
	addValidation(problems, e, HeaderPrefix)
	if err := problemsError(problems); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// decodeStructured reads value as an event in the JSON format. Extensions
// are kept in their canonical string form, as binary mode gives them, so
// an event reads the same in either mode.
func decodeStructured(value []byte) (event.Event, error) {
	var e event.Event
	if err := json.Unmarshal(value, &e); err != nil {
		return event.Event{}, fmt.Errorf("%w: structured mode value: %w", ErrInvalidEvent, err)
	}
	if e.Context == nil {
		return event.Event{}, fmt.Errorf("%w: structured mode value has no specversion", ErrInvalidEvent)
	}
	if v := e.SpecVersion(); v != event.CloudEventsVersionV1 {
		return event.Event{}, fmt.Errorf("%w: specversion %q: only %s is supported", ErrInvalidEvent, v, event.CloudEventsVersionV1)
	}
	problems := map[string]string{}
	for name, v := range e.Extensions() {
		s, err := types.Format(v)
		if err != nil || !validName(name) {
			problems["extension "+strconv.Quote(name)] = "names are lower-case a-z and 0-9 only, values scalars"
			continue
		}
		e.SetExtension(name, s)
	}
	if ct := e.DataContentType(); ct != "" {
		if _, _, err := mime.ParseMediaType(ct); err != nil {
			problems[attrDataContentType] = strconv.Quote(ct) + ": " + err.Error()
		}
	}
	setData(&e, e.DataEncoded)
	addValidation(problems, e, "")
	if err := problemsError(problems); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// addValidation adds what e.Validate finds to problems, each attribute
// named with prefix as a record header names it.
func addValidation(problems map[string]string, e event.Event, prefix string) {
	err := e.Validate()
	if err == nil {
		return
	}
	var ve event.ValidationError
	if !errors.As(err, &ve) {
		problems["event"] = err.Error()
		return
	}
	for k, v := range ve {
		if _, ok := problems[prefix+k]; !ok {
			problems[prefix+k] = v.Error()
		}
	}
}

// problemsError is nil for no problems, else ErrInvalidEvent with every
// problem in a stable order.
func problemsError(problems map[string]string) error {
	if len(problems) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(problems))
	for _, k := range slices.Sorted(maps.Keys(problems)) {
		msgs = append(msgs, k+": "+problems[k])
	}
	return fmt.Errorf("%w: %s", ErrInvalidEvent, strings.Join(msgs, "; "))
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

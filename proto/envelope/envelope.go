// Package envelope carries CloudEvents 1.0 on Kafka records (DESIGN §3).
//
// Every record is a CloudEvent in the Kafka protocol binding, binary content
// mode by default: attributes in ce_* headers, datacontenttype in the
// content-type header, data in the value, and the record key taken from the
// partitionkey extension (else the subject). Structured content mode is
// read too, and written on request (Structured). Records written by plain
// Kafka clients are not rejected: they reach functions as events of type
// TypeRaw, so any existing topic can feed a function.
package envelope

import (
	"strings"
	"time"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Extensions the platform sets and reads (DESIGN §3). Values travel as
// strings: Kafka headers carry no type, so a decoded extension is always the
// canonical string form of what was encoded.
const (
	// ExtTraceparent is the W3C traceparent (CloudEvents distributed tracing extension).
	ExtTraceparent = "traceparent"
	// ExtTracestate is the W3C tracestate that goes with ExtTraceparent.
	ExtTracestate = "tracestate"
	// ExtCausationID is the id of the event that caused this one (its parent).
	ExtCausationID = "causationid"
	// ExtCorrelationID is the id of the first event of the chain (its root).
	ExtCorrelationID = "correlationid"
	// ExtReplyTo is the stream on which the sender expects a reply.
	ExtReplyTo = "replyto"
	// ExtDeadline is the RFC 3339 time after which the event is worthless and
	// the requester has given up.
	ExtDeadline = "deadline"
	// ExtPartitionKey is the ordering key; it becomes the record key.
	ExtPartitionKey = "partitionkey"
)

// TypeRaw is the type of events decoded from records that are not
// CloudEvents. Such an event has id "<topic>/<partition>/<offset>", source
// "kafka://<topic>", the record timestamp as time, the value as data and the
// record key (when non-empty) as the partitionkey extension.
const TypeRaw = "butter.raw"

// Header names of the Kafka protocol binding.
const (
	// HeaderPrefix starts the header of every attribute but datacontenttype:
	// ce_id, ce_source, ce_myextension...
	HeaderPrefix = "ce_"
	// HeaderContentType holds datacontenttype, as the binding requires.
	HeaderContentType = "content-type"
	// ContentTypeStructured is the content-type of a record in structured
	// content mode: its value is the whole event in the JSON format.
	ContentTypeStructured = "application/cloudevents+json"
)

// Delivery is an event as a function sees it: the event plus where it sits.
type Delivery struct {
	// Event is the decoded event; of type TypeRaw when Raw is set.
	Event event.Event
	// Stream is the topic the record was read from. Callers running under a
	// topic prefix map it back with topics.Namespace.Stream.
	Stream string
	// Partition is the record's partition.
	Partition int32
	// Offset is the record's offset in its partition.
	Offset int64
	// Timestamp is the record's timestamp, which may differ from the event
	// time: it says when Kafka got the record, not when the thing happened.
	Timestamp time.Time
	// Raw reports that the record was not a valid CloudEvent and Event was
	// synthesised from it.
	Raw bool
	// Invalid, when set, says why a record that claims to be a CloudEvent
	// (it has ce_ headers, or the structured mode's content-type) is not a
	// valid one; Raw is then set too. Consumers that act on events (fnbox)
	// dead-letter such a delivery with this reason rather than pass it on
	// as a plain record. It wraps ErrInvalidEvent.
	Invalid error
}

// New returns an event with a fresh id (uuid), the given source and type,
// time now (UTC, so it survives encoding unchanged) and specversion 1.0.
func New(source, typ string) event.Event {
	// The context, its time and its id share one allocation.
	blk := &newContext{time: types.Timestamp{Time: time.Now().UTC()}}
	newID(&blk.id)
	ec := &blk.ec
	ec.ID = unsafe.String(&blk.id[0], len(blk.id)) // blk.id is never written again
	ec.Type = strings.TrimSpace(typ)
	ec.Time = &blk.time
	e := event.Event{Context: ec}
	if p := parseSource(source); p.parsed {
		ec.Source = p.ref
	} else {
		e.SetSource(source) // records why, for Validate
	}
	return e
}

// newContext is what New allocates in one go.
type newContext struct {
	ec   event.EventContextV1
	time types.Timestamp
	id   [36]byte
}

// Deadline returns the deadline extension of e, and false when e has none or
// it is not an RFC 3339 time: an unreadable deadline is treated as none
// rather than as already past.
func Deadline(e event.Event) (time.Time, bool) {
	v, ok := extension(e, ExtDeadline)
	if !ok {
		return time.Time{}, false
	}
	t, err := types.ToTime(v)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// SetDeadline sets the deadline extension of e to t as an RFC 3339 string
// (UTC, nanoseconds). A zero t removes the deadline.
func SetDeadline(e *event.Event, t time.Time) {
	if t.IsZero() {
		e.SetExtension(ExtDeadline, nil)
		return
	}
	e.SetExtension(ExtDeadline, types.FormatTime(t))
}

// Child returns a new event caused by parent: causationid = parent.ID(),
// correlationid = parent's correlationid or parent.ID() if none, and the
// parent's traceparent/tracestate carried over so the trace continues even
// when the caller has no span of its own (InjectTrace overrides them).
func Child(parent event.Event, source, typ string) event.Event {
	e := New(source, typ)
	if parent.Context == nil {
		return e
	}
	// The extensions are set directly rather than through SetExtension:
	// their names are known to be valid, and a parent's string value is
	// shared rather than converted again.
	ext := make(map[string]any, 5)
	var cause any = parent.ID()
	ext[ExtCausationID] = cause
	ext[ExtCorrelationID] = cause
	for _, name := range []string{ExtCorrelationID, ExtTraceparent, ExtTracestate} {
		if v, ok := canonical(parent, name); ok {
			ext[name] = v
		}
	}
	e.Context.(*event.EventContextV1).Extensions = ext
	return e
}

// canonical returns extension name of e in its canonical string form, as
// an any holding a non-empty string, and false when it has none or it is
// empty. A string value is returned as it is, without a new allocation.
func canonical(e event.Event, name string) (any, bool) {
	v, ok := extension(e, name)
	if !ok {
		return nil, false
	}
	if s, isString := v.(string); isString {
		return v, s != ""
	}
	s, err := types.Format(v)
	if err != nil || s == "" {
		return nil, false
	}
	return s, true
}

// extension returns the extension name of e; it tolerates a zero Event,
// whose methods would panic on the nil context.
func extension(e event.Event, name string) (any, bool) {
	return extensionValue(e, name)
}

// Extension returns extension name of e in its canonical string form (the
// CloudEvents type system's: a string as is, an integer in decimal, a time
// in RFC 3339, a binary in base64), or "" when e has no such extension or
// is a zero Event. Attribute names are lower-case in CloudEvents, so name is
// matched case-insensitively. It is the one extension lookup of the
// platform: services use it rather than indexing Extensions() themselves.
func Extension(e event.Event, name string) string {
	v, ok := extension(e, strings.ToLower(name))
	if !ok {
		return ""
	}
	s, err := types.Format(v)
	if err != nil {
		return ""
	}
	return s
}

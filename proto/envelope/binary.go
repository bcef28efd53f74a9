package envelope

import (
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The fast path of the binary content mode. Nearly every record the
// platform reads was written by ToRecord and is a valid event; decoding it
// through sdk-go's setters, a map of attributes and a full Validate cost
// several microseconds and dozens of allocations per event, more than the
// Kafka round trip. decodeBinaryFast and encodeBinaryFast build the same
// event.Event and the same record directly, checking exactly what Validate
// would, and give up (ok false) on anything unusual: a missing, empty or
// unparsable attribute, a dataschema, a ce_datacontenttype, a non-string
// extension, too many headers. The general code then runs and says what is wrong, so the fast
// path never changes an outcome, only its cost; FuzzFastPath holds it to
// that, against the general code and against sdk-go's own Kafka binding.

// noFastPath turns the fast paths off, for tests that compare them with
// the general code.
var noFastPath bool

// maxFastAttrs is how many ce_ headers the fast paths handle; records with
// more take the general path.
const maxFastAttrs = 16

// fastAttr is a ce_ header as the fast decoder found it.
type fastAttr struct {
	name  string
	value []byte
}

// decodedContext is an event context with the values its pointer fields
// point to, allocated together.
type decodedContext struct {
	ec          event.EventContextV1
	time        types.Timestamp
	contentType string
	subject     string
}

// decodeBinaryFast decodes r when it is a well-formed binary-mode event,
// exactly as decodeBinary would.
func decodeBinaryFast(r *kgo.Record) (event.Event, bool) {
	var (
		attrs          [maxFastAttrs]fastAttr
		n              int
		ct             []byte
		hasCT, hasSpec bool
	)
	for i := range r.Headers {
		h := &r.Headers[i]
		key := h.Key
		if !isASCII(key) {
			// Lower-casing may turn it into a name; the general path
			// lower-cases.
			return event.Event{}, false
		}
		if len(key) < len(HeaderPrefix) {
			continue
		}
		switch {
		case key == HeaderContentType:
			ct, hasCT = h.Value, true
			continue
		case strings.HasPrefix(key, HeaderPrefix):
		default:
			// Upper-case names and other headers: leave them to the
			// general path, which lower-cases.
			if strings.EqualFold(key, HeaderContentType) || strings.EqualFold(key[:len(HeaderPrefix)], HeaderPrefix) {
				return event.Event{}, false
			}
			continue
		}
		name := key[len(HeaderPrefix):]
		if !validName(name) {
			return event.Event{}, false
		}
		j := 0
		for j < n && attrs[j].name != name {
			j++
		}
		if j == n {
			if n == maxFastAttrs {
				return event.Event{}, false
			}
			n++
		}
		attrs[j] = fastAttr{name, h.Value}
		hasSpec = hasSpec || name == attrSpecVersion
	}
	if !hasSpec || (hasCT && isStructured(string(ct))) {
		return event.Event{}, false
	}

	// One string holds every attribute value and the key.
	size := len(ct) + len(r.Key)
	for _, a := range attrs[:n] {
		size += len(a.value)
	}
	var b strings.Builder
	b.Grow(size)
	for _, a := range attrs[:n] {
		b.Write(a.value)
	}
	b.Write(ct)
	b.Write(r.Key)
	all := b.String()
	next := func(l int) string {
		s := all[:l]
		all = all[l:]
		return s
	}

	// The context, its time and its content type share one allocation.
	blk := &decodedContext{}
	ec := &blk.ec
	// Extension names and values, put in the map at the end, their values
	// boxed together (see boxStrings).
	var (
		extNames [maxFastAttrs + 1]string
		extVals  [maxFastAttrs + 1]string
		ne       int
		hasKey   bool
	)
	for _, a := range attrs[:n] {
		v := next(len(a.value))
		switch a.name {
		case attrSpecVersion:
			if v != event.CloudEventsVersionV1 {
				return event.Event{}, false
			}
		case attrID:
			if ec.ID = strings.TrimSpace(v); ec.ID == "" {
				return event.Event{}, false
			}
		case attrSource:
			p := parseSource(v)
			if !p.valid {
				return event.Event{}, false
			}
			ec.Source = p.ref
		case attrType:
			if ec.Type = strings.TrimSpace(v); ec.Type == "" {
				return event.Event{}, false
			}
		case attrDataContentType:
			// The general path ignores it (binary mode carries it in
			// content-type), sdk-go reads it: leave the odd case there.
			return event.Event{}, false
		case attrSubject:
			if blk.subject = strings.TrimSpace(v); blk.subject != "" {
				ec.Subject = &blk.subject
			}
		case attrTime:
			t, err := types.ParseTime(v)
			if err != nil {
				return event.Event{}, false
			}
			if !t.IsZero() {
				blk.time.Time = t
				ec.Time = &blk.time
			}
		case attrDataSchema:
			return event.Event{}, false
		default:
			if event.MaxExtensionNameLength > 0 && len(a.name) > event.MaxExtensionNameLength {
				return event.Event{}, false
			}
			extNames[ne], extVals[ne] = a.name, v
			ne++
			hasKey = hasKey || a.name == ExtPartitionKey
		}
	}
	if ec.ID == "" || ec.Type == "" || ec.Source.URL == (types.URIRef{}).URL {
		return event.Event{}, false
	}
	if hasCT {
		v := next(len(ct))
		if c := checkContentType(v); !c.parses || !c.valid {
			return event.Event{}, false
		}
		blk.contentType = strings.TrimSpace(v)
		ec.DataContentType = &blk.contentType
	}
	e := event.Event{Context: ec}
	if len(r.Key) > 0 && !hasKey {
		extNames[ne], extVals[ne] = ExtPartitionKey, next(len(r.Key))
		ne++
	}
	if ne > 0 {
		var boxed [maxFastAttrs + 1]any
		boxStrings(extVals[:ne], boxed[:ne])
		ec.Extensions = make(map[string]any, ne)
		for i, name := range extNames[:ne] {
			ec.Extensions[name] = boxed[i]
		}
	}
	setData(&e, r.Value)
	return e, true
}

// boxStrings sets out[i] to vals[i] as an any, the strings sharing one
// allocation instead of one each: an array value boxed once, whose
// elements reflect hands out without copying them (an element of a boxed
// array is not addressable, so Interface points at it). Whatever reflect
// does, the values are the same strings.
func boxStrings(vals []string, out []any) {
	var arr reflect.Value
	switch {
	case len(vals) <= 4:
		var a [4]string
		copy(a[:], vals)
		arr = reflect.ValueOf(a)
	case len(vals) <= 8:
		var a [8]string
		copy(a[:], vals)
		arr = reflect.ValueOf(a)
	default:
		var a [maxFastAttrs + 1]string
		copy(a[:], vals)
		arr = reflect.ValueOf(a)
	}
	for i := range vals {
		out[i] = arr.Index(i).Interface()
	}
}

// extensionHeader returns the header name of extension name without
// allocating for the platform's own extensions.
func extensionHeader(name string) string {
	switch name {
	case ExtTraceparent:
		return HeaderPrefix + ExtTraceparent
	case ExtTracestate:
		return HeaderPrefix + ExtTracestate
	case ExtCausationID:
		return HeaderPrefix + ExtCausationID
	case ExtCorrelationID:
		return HeaderPrefix + ExtCorrelationID
	case ExtReplyTo:
		return HeaderPrefix + ExtReplyTo
	case ExtDeadline:
		return HeaderPrefix + ExtDeadline
	case ExtPartitionKey:
		return HeaderPrefix + ExtPartitionKey
	}
	return HeaderPrefix + name
}

// fastHeaders is how many headers a record made by encodeBinaryFast has
// room for in the same allocation.
const fastHeaders = 12

// recordWithHeaders puts a record and its headers in one allocation.
type recordWithHeaders struct {
	r kgo.Record
	h [fastHeaders]kgo.RecordHeader
}

// encodeBinaryFast encodes a valid event e in binary mode exactly as
// ToRecord's general path does, and reports false for anything it does
// not handle or that Validate might refuse.
func encodeBinaryFast(topic string, e event.Event) (*kgo.Record, bool) {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok || ec == nil || len(e.FieldErrors) > 0 || ec.DataSchema != nil || len(ec.Extensions) > maxFastAttrs {
		return nil, false
	}
	if strings.TrimSpace(ec.ID) == "" || strings.TrimSpace(ec.Type) == "" {
		return nil, false
	}
	source := sourceString(ec.Source)
	if strings.TrimSpace(source) == "" {
		return nil, false
	}
	subject := ""
	if ec.Subject != nil {
		if subject = *ec.Subject; strings.TrimSpace(subject) == "" {
			return nil, false
		}
	}
	ct := ""
	if ec.DataContentType != nil {
		if ct = *ec.DataContentType; !checkContentType(ct).valid {
			return nil, false
		}
	}
	var names [maxFastAttrs]string
	nn := 0
	size := len(event.CloudEventsVersionV1) + len(ec.ID) + len(source) + len(ec.Type) + len(subject) + len(ct) + len(time.RFC3339Nano) + 8
	key := ""
	for name, v := range ec.Extensions {
		if !validName(name) {
			return nil, false
		}
		if v == nil {
			continue
		}
		s, isString := v.(string)
		if !isString {
			return nil, false
		}
		names[nn] = name
		nn++
		size += len(s)
		if name == ExtPartitionKey {
			key = s
		}
	}
	slices.Sort(names[:nn])
	if key == "" {
		key = subject
	}
	size += len(key)

	rh := &recordWithHeaders{}
	r := &rh.r
	r.Topic = topic
	hs := rh.h[:0]
	if 4+3+nn > fastHeaders {
		hs = make([]kgo.RecordHeader, 0, 4+3+nn)
	}
	buf := make([]byte, 0, size)
	add := func(k, v string) {
		i := len(buf)
		buf = append(buf, v...)
		hs = append(hs, kgo.RecordHeader{Key: k, Value: buf[i:len(buf):len(buf)]})
	}
	add(HeaderPrefix+attrSpecVersion, event.CloudEventsVersionV1)
	add(HeaderPrefix+attrID, ec.ID)
	add(HeaderPrefix+attrSource, source)
	add(HeaderPrefix+attrType, ec.Type)
	if subject != "" {
		add(HeaderPrefix+attrSubject, subject)
	}
	if ec.Time != nil && !ec.Time.IsZero() {
		i := len(buf)
		buf = ec.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		hs = append(hs, kgo.RecordHeader{Key: HeaderPrefix + attrTime, Value: buf[i:len(buf):len(buf)]})
	}
	if ct != "" {
		add(HeaderContentType, ct)
	}
	for _, name := range names[:nn] {
		add(extensionHeader(name), ec.Extensions[name].(string))
	}
	if key != "" {
		i := len(buf)
		buf = append(buf, key...)
		r.Key = buf[i:len(buf):len(buf)]
	}
	r.Headers = hs
	r.Value = e.DataEncoded
	return r, true
}

// extensionValue is extension name of e (lower-case) without the copy of
// the whole map that GetExtensions makes.
func extensionValue(e event.Event, name string) (any, bool) {
	if ec, ok := e.Context.(*event.EventContextV1); ok && ec != nil {
		v, ok := ec.Extensions[name]
		return v, ok && v != nil
	}
	if e.Context == nil {
		return nil, false
	}
	v, ok := e.Context.GetExtensions()[name]
	return v, ok && v != nil
}

// isASCII reports whether s holds ASCII only.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

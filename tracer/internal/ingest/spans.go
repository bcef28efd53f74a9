package ingest

import (
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/buttercompass/butter/tracer/api"
	"github.com/buttercompass/butter/tracer/internal/store"

	"github.com/buttercompass/butter/proto/kit"
)

// The span decoder reads an OTLP ExportTraceServiceRequest straight from
// its protobuf wire form into index rows: the fields the index keeps, the
// attributes and events written as the JSON the index stores. It makes no
// message structs and no attribute maps (decoding them with
// proto.Unmarshal, building maps and encoding them with encoding/json was
// half of the ingest's CPU). TestSpanDecoderMatchesProto and
// FuzzSpanDecoder keep it equal to the proto.Unmarshal path on every
// request that one accepts.

var errBadSpans = errors.New("malformed OTLP span batch")

// Field numbers of opentelemetry/proto (collector/trace/v1, trace/v1,
// common/v1, resource/v1).
const (
	fReqResourceSpans = 1
	fRSResource       = 1
	fRSScopeSpans     = 2
	fResAttributes    = 1
	fSSSpans          = 2
	fSpanTraceID      = 1
	fSpanSpanID       = 2
	fSpanParentID     = 4
	fSpanName         = 5
	fSpanKind         = 6
	fSpanStart        = 7
	fSpanEnd          = 8
	fSpanAttributes   = 9
	fSpanEvents       = 11
	fSpanStatus       = 15
	fStatusMessage    = 2
	fStatusCode       = 3
	fEventTime        = 1
	fEventName        = 2
	fEventAttributes  = 3
	fKVKey            = 1
	fKVValue          = 2
	fAnyString        = 1
	fAnyBool          = 2
	fAnyInt           = 3
	fAnyDouble        = 4
	fAnyArray         = 5
	fAnyKVList        = 6
	fAnyBytes         = 7
	fListValues       = 1
)

// field is one field of a message on the wire.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // varint, fixed32, fixed64
	b   []byte // bytes
}

// fields calls f for each field of msg.
func fields(msg []byte, f func(field) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return errBadSpans
		}
		msg = msg[n:]
		fd := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			fd.v, n = protowire.ConsumeVarint(msg)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(msg)
			fd.v = uint64(v)
		case protowire.Fixed64Type:
			fd.v, n = protowire.ConsumeFixed64(msg)
		case protowire.BytesType:
			fd.b, n = protowire.ConsumeBytes(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return errBadSpans
		}
		msg = msg[n:]
		if err := f(fd); err != nil {
			return err
		}
	}
	return nil
}

// str returns a string field, refusing invalid UTF-8 as proto3 does.
func (f field) str() (string, error) {
	if !utf8.Valid(f.b) {
		return "", errBadSpans
	}
	return string(f.b), nil
}

// spanDecoder holds the buffers reused from span to span.
type spanDecoder struct {
	buf []byte
}

// decode appends the spans of an ExportTraceServiceRequest to rows.
func (d *spanDecoder) decode(rows []store.SpanRow, req []byte) ([]store.SpanRow, error) {
	first := len(rows)
	err := fields(req, func(f field) error {
		if f.num != fReqResourceSpans || f.typ != protowire.BytesType {
			return nil
		}
		var err error
		rows, err = d.resourceSpans(rows, f.b)
		return err
	})
	if err != nil {
		return rows[:first], err
	}
	return rows, nil
}

// resource is what a span takes from its resource's attributes: the last
// value of each key, as a map of them would hold.
type resource struct {
	service, deployment, function string
}

func (d *spanDecoder) resourceSpans(rows []store.SpanRow, msg []byte) ([]store.SpanRow, error) {
	var res resource
	// The resource may come after the spans on the wire.
	err := fields(msg, func(f field) error {
		if f.num != fRSResource || f.typ != protowire.BytesType {
			return nil
		}
		return fields(f.b, func(f field) error {
			if f.num != fResAttributes || f.typ != protowire.BytesType {
				return nil
			}
			k, v, isStr, err := stringAttr(f.b)
			if err != nil {
				return err
			}
			switch k {
			case AttrServiceName:
				res.service = strOr(v, isStr)
			case AttrDeployment:
				res.deployment = strOr(v, isStr)
			case AttrFunction:
				res.function = strOr(v, isStr)
			}
			return nil
		})
	})
	if err != nil {
		return rows, err
	}
	err = fields(msg, func(f field) error {
		if f.num != fRSScopeSpans || f.typ != protowire.BytesType {
			return nil
		}
		return fields(f.b, func(f field) error {
			if f.num != fSSSpans || f.typ != protowire.BytesType {
				return nil
			}
			row, ok, err := d.span(f.b, &res)
			if ok {
				rows = append(rows, row)
			}
			return err
		})
	})
	return rows, err
}

func strOr(v string, ok bool) string {
	if ok {
		return v
	}
	return ""
}

// kvParts reads a KeyValue: its key and its value, a value given in
// several parts concatenated (protobuf merges a message field given twice).
func kvParts(kv []byte) (key string, val []byte, hasVal bool, err error) {
	err = fields(kv, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case fKVKey:
			k, err := f.str()
			key = k
			return err
		case fKVValue:
			if hasVal {
				val = append(append([]byte(nil), val...), f.b...)
			} else {
				val = f.b
			}
			hasVal = true
		}
		return nil
	})
	return key, val, hasVal, err
}

// stringAttr reads a KeyValue's key and, if its value is a string (or
// bytes, stored as a hex string), the string.
func stringAttr(kv []byte) (key, val string, isStr bool, err error) {
	key, v, hasVal, err := kvParts(kv)
	if err != nil || !hasVal {
		return key, "", false, err
	}
	err = fields(v, func(f field) error {
		switch f.num {
		case fAnyString, fAnyArray, fAnyKVList, fAnyBytes:
			if f.typ != protowire.BytesType {
				return nil
			}
		case fAnyBool, fAnyInt:
			if f.typ != protowire.VarintType {
				return nil
			}
		case fAnyDouble:
			if f.typ != protowire.Fixed64Type {
				return nil
			}
		default:
			return nil
		}
		val, isStr = "", false
		switch f.num {
		case fAnyString:
			s, err := f.str()
			val, isStr = s, true
			return err
		case fAnyBytes: // written as hex: a string to whoever reads it
			val, isStr = hex.EncodeToString(f.b), true
		}
		return nil
	})
	return key, val, isStr, err
}

// span decodes a Span; ok is false for one without valid ids.
func (d *spanDecoder) span(msg []byte, res *resource) (store.SpanRow, bool, error) {
	var (
		sp                      api.Span
		traceID, spanID, parent []byte
		start, end              uint64
		dep, fn                 string
		depSet, fnSet           bool
		attrs, events           string
		nattrs, nevents         int
		kindV                   uint64
		code                    uint64
		statusMsg               string
		buf                     = d.buf[:0] // the attributes, without braces
		evbuf                   []byte
		err                     error
	)
	err = fields(msg, func(f field) error {
		switch f.num {
		case fSpanTraceID:
			if f.typ == protowire.BytesType {
				traceID = f.b
			}
		case fSpanSpanID:
			if f.typ == protowire.BytesType {
				spanID = f.b
			}
		case fSpanParentID:
			if f.typ == protowire.BytesType {
				parent = f.b
			}
		case fSpanName:
			if f.typ == protowire.BytesType {
				s, err := f.str()
				sp.Name = s
				return err
			}
		case 3: // trace_state: a string, checked as proto3 does
			if f.typ == protowire.BytesType {
				_, err := f.str()
				return err
			}
		case fSpanKind:
			if f.typ == protowire.VarintType {
				kindV = f.v
			}
		case fSpanStart:
			if f.typ == protowire.Fixed64Type {
				start = f.v
			}
		case fSpanEnd:
			if f.typ == protowire.Fixed64Type {
				end = f.v
			}
		case fSpanAttributes:
			if f.typ != protowire.BytesType {
				return nil
			}
			k, v, isStr, err := stringAttr(f.b)
			if err != nil {
				return err
			}
			switch k {
			case AttrDeployment:
				dep, depSet = strOr(v, isStr), isStr
			case AttrFunction:
				fn, fnSet = strOr(v, isStr), isStr
			}
			nattrs++
			buf, err = appendKV(buf, f.b, nattrs == 1)
			return err
		case fSpanEvents:
			if f.typ != protowire.BytesType {
				return nil
			}
			nevents++
			if nevents == 1 {
				evbuf = append(evbuf, '[')
			} else {
				evbuf = append(evbuf, ',')
			}
			var err error
			evbuf, err = appendEvent(evbuf, f.b)
			return err
		case fSpanStatus:
			if f.typ != protowire.BytesType {
				return nil
			}
			return fields(f.b, func(f field) error {
				switch {
				case f.num == fStatusMessage && f.typ == protowire.BytesType:
					s, err := f.str()
					statusMsg = s
					return err
				case f.num == fStatusCode && f.typ == protowire.VarintType:
					code = f.v
				}
				return nil
			})
		}
		return nil
	})
	d.buf = buf
	if err != nil {
		return store.SpanRow{}, false, err
	}
	if len(traceID) != 16 || len(spanID) != 8 {
		return store.SpanRow{}, false, nil
	}
	attrs, events = "null", "null"
	if nattrs > 0 {
		attrs = "{" + string(buf) + "}"
	}
	if nevents > 0 {
		events = string(append(evbuf, ']'))
	}
	sp.TraceID = hex.EncodeToString(traceID)
	sp.SpanID = hex.EncodeToString(spanID)
	sp.ParentSpanID = hex.EncodeToString(parent)
	sp.Service = res.service
	sp.Kind = kindName(kindV)
	sp.Start = time.Unix(0, int64(start)).UTC()
	sp.DurationMs = float64(int64(end)-int64(start)) / float64(time.Millisecond)
	if sp.DurationMs < 0 {
		sp.DurationMs = 0
	}
	sp.Status = statusName(code)
	sp.StatusMessage = statusMsg
	sp.Deployment, sp.Function = res.deployment, res.function
	if depSet {
		sp.Deployment = dep
	}
	if fnSet {
		sp.Function = fn
	}
	return store.SpanRow{Span: sp, AttrsJSON: attrs, EventsJSON: events}, true, nil
}

func kindName(k uint64) string {
	switch k {
	case 1:
		return "internal"
	case 2:
		return "server"
	case 3:
		return "client"
	case 4:
		return "producer"
	case 5:
		return "consumer"
	}
	return ""
}

func statusName(c uint64) string {
	switch c {
	case 1:
		return api.StatusOK
	case 2:
		return api.StatusError
	}
	return api.StatusUnset
}

// appendKV appends a KeyValue as `"key":value` (a comma first unless
// first). A repeated key is written again: the JSON object's last value
// wins when read, as it would in a map.
func appendKV(b, kv []byte, first bool) ([]byte, error) {
	key, val, hasVal, err := kvParts(kv)
	if err != nil {
		return b, err
	}
	if !first {
		b = append(b, ',')
	}
	b = kit.AppendJSONString(b, key)
	b = append(b, ':')
	if !hasVal {
		return append(b, "null"...), nil
	}
	return appendAny(b, val)
}

// appendAny appends an AnyValue as JSON: the last of its oneof fields, an
// array or kvlist given in several consecutive parts merged.
func appendAny(b, msg []byte) ([]byte, error) {
	var last protowire.Number
	var lastF field
	var parts [][]byte
	err := fields(msg, func(f field) error {
		switch f.num {
		case fAnyString, fAnyBytes, fAnyArray, fAnyKVList:
			if f.typ != protowire.BytesType {
				return nil
			}
			if f.num == fAnyString {
				if _, err := f.str(); err != nil {
					return err
				}
			}
		case fAnyBool, fAnyInt:
			if f.typ != protowire.VarintType {
				return nil
			}
		case fAnyDouble:
			if f.typ != protowire.Fixed64Type {
				return nil
			}
		default:
			return nil
		}
		if f.num != last {
			parts = parts[:0]
		}
		last, lastF = f.num, f
		if f.num == fAnyArray || f.num == fAnyKVList {
			parts = append(parts, f.b)
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	switch last {
	case fAnyString:
		return kit.AppendJSONString(b, string(lastF.b)), nil
	case fAnyBool:
		return strconv.AppendBool(b, lastF.v != 0), nil
	case fAnyInt:
		return strconv.AppendInt(b, int64(lastF.v), 10), nil
	case fAnyDouble:
		f := math.Float64frombits(lastF.v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...), nil
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64), nil
	case fAnyBytes:
		b = append(b, '"')
		b = hex.AppendEncode(b, lastF.b)
		return append(b, '"'), nil
	case fAnyArray:
		b = append(b, '[')
		n := 0
		for _, p := range parts {
			err := fields(p, func(f field) error {
				if f.num != fListValues || f.typ != protowire.BytesType {
					return nil
				}
				if n > 0 {
					b = append(b, ',')
				}
				n++
				var err error
				b, err = appendAny(b, f.b)
				return err
			})
			if err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case fAnyKVList:
		n := 0
		mark := len(b)
		b = append(b, '{')
		for _, p := range parts {
			err := fields(p, func(f field) error {
				if f.num != fListValues || f.typ != protowire.BytesType {
					return nil
				}
				n++
				var err error
				b, err = appendKV(b, f.b, n == 1)
				return err
			})
			if err != nil {
				return b, err
			}
		}
		if n == 0 {
			// An empty kvlist is no map at all, as attrs makes it.
			return append(b[:mark], "null"...), nil
		}
		return append(b, '}'), nil
	}
	return append(b, "null"...), nil
}

// appendEvent appends a span Event as the JSON of an api.SpanEvent.
func appendEvent(b, msg []byte) ([]byte, error) {
	var (
		name  string
		ts    uint64
		attrs []byte
		n     int
	)
	err := fields(msg, func(f field) error {
		switch {
		case f.num == fEventTime && f.typ == protowire.Fixed64Type:
			ts = f.v
		case f.num == fEventName && f.typ == protowire.BytesType:
			s, err := f.str()
			name = s
			return err
		case f.num == fEventAttributes && f.typ == protowire.BytesType:
			n++
			var err error
			attrs, err = appendKV(attrs, f.b, n == 1)
			return err
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	b = append(b, `{"name":`...)
	b = kit.AppendJSONString(b, name)
	b = append(b, `,"time":"`...)
	b = time.Unix(0, int64(ts)).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if n > 0 {
		b = append(b, `,"attributes":{`...)
		b = append(b, attrs...)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

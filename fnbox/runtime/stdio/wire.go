package stdio

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendJSON appends m as one JSON line's worth (no newline in it), as
// json.Marshal would write it but without reflection and without
// validating and compacting every event's data again: encodeData already
// checked it is JSON. For a batch of 500 events this was most of fnbox's
// CPU in an invocation (TestInvokeJSONMatchesMarshal keeps the two equal).
func (m *invokeMsg) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, m.ID)
	b = append(b, `,"fn":`...)
	b = appendString(b, m.Fn)
	b = append(b, `,"events":[`...)
	for i := range m.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = m.Events[i].appendJSON(b)
	}
	b = append(b, ']')
	if m.Deadline != 0 {
		b = append(b, `,"deadline":`...)
		b = strconv.AppendInt(b, m.Deadline, 10)
	}
	if m.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendString(b, m.TraceParent)
	}
	if m.TraceState != "" {
		b = append(b, `,"tracestate":`...)
		b = appendString(b, m.TraceState)
	}
	if m.Batch {
		b = append(b, `,"batch":true`...)
	}
	return append(b, '}')
}

// size is about how many bytes appendJSON writes, so the line is allocated
// once: growing it was half of the encoding's CPU at batch 500.
func (m *invokeMsg) size() int {
	n := 128 + len(m.ID) + len(m.Fn) + len(m.TraceParent) + len(m.TraceState)
	for i := range m.Events {
		e := &m.Events[i]
		n += 192 + len(e.ID) + len(e.Source) + len(e.Type) + len(e.Subject) + len(e.Time) + len(e.Data) +
			len(e.DataContentType) + len(e.DataSchema) + len(e.Stream)
		for k, v := range e.Extensions {
			n += 8 + len(k) + len(v)
		}
	}
	return n
}

func (w *wireEvent) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, w.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, w.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, w.Type)
	for _, f := range [...]struct{ name, v string }{
		{`,"subject":`, w.Subject}, {`,"time":`, w.Time},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = appendString(b, f.v)
		}
	}
	b = append(b, `,"data":`...)
	switch {
	case len(w.Data) == 0:
		b = append(b, "null"...)
	case bytes.IndexByte(w.Data, '\n') >= 0:
		// Whitespace between tokens (a newline inside a JSON string is
		// always escaped) would cut the line: compact it as Marshal does.
		var c bytes.Buffer
		if err := json.Compact(&c, w.Data); err != nil {
			b = append(b, "null"...)
		} else {
			b = append(b, c.Bytes()...)
		}
	default:
		b = append(b, w.Data...)
	}
	if w.DataBase64 {
		b = append(b, `,"dataBase64":true`...)
	}
	for _, f := range [...]struct{ name, v string }{
		{`,"datacontenttype":`, w.DataContentType}, {`,"dataschema":`, w.DataSchema},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = appendString(b, f.v)
		}
	}
	b = append(b, `,"extensions":{`...)
	keys := make([]string, 0, len(w.Extensions))
	for k := range w.Extensions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, w.Extensions[k])
	}
	b = append(b, `},"stream":`...)
	b = appendString(b, w.Stream)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(w.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, w.Offset, 10)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does
// (invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped), without its HTML
// escaping, which only concerns JSON embedded in HTML.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

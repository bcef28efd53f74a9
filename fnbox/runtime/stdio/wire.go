package stdio

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/buttercompass/butter/proto/kit"
)

// appendJSON appends m as one JSON line's worth (no newline in it), as
// json.Marshal would write it but without reflection and without
// validating and compacting every event's data again: encodeData already
// checked it is JSON. For a batch of 500 events this was most of fnbox's
// CPU in an invocation (TestInvokeJSONMatchesMarshal keeps the two equal).
func (m *invokeMsg) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = kit.AppendJSONString(b, m.ID)
	if m.Set != "" {
		b = append(b, `,"set":`...)
		b = kit.AppendJSONString(b, m.Set)
	}
	b = append(b, `,"fn":`...)
	b = kit.AppendJSONString(b, m.Fn)
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
		b = kit.AppendJSONString(b, m.TraceParent)
	}
	if m.TraceState != "" {
		b = append(b, `,"tracestate":`...)
		b = kit.AppendJSONString(b, m.TraceState)
	}
	if m.Batch {
		b = append(b, `,"batch":true`...)
	}
	return append(b, '}')
}

// size is about how many bytes appendJSON writes, so the line is allocated
// once: growing it was half of the encoding's CPU at batch 500.
func (m *invokeMsg) size() int {
	n := 128 + len(m.ID) + len(m.Set) + len(m.Fn) + len(m.TraceParent) + len(m.TraceState)
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
	b = kit.AppendJSONString(b, w.ID)
	b = append(b, `,"source":`...)
	b = kit.AppendJSONString(b, w.Source)
	b = append(b, `,"type":`...)
	b = kit.AppendJSONString(b, w.Type)
	for _, f := range [...]struct{ name, v string }{
		{`,"subject":`, w.Subject}, {`,"time":`, w.Time},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = kit.AppendJSONString(b, f.v)
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
			b = kit.AppendJSONString(b, f.v)
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
		b = kit.AppendJSONString(b, k)
		b = append(b, ':')
		b = kit.AppendJSONString(b, w.Extensions[k])
	}
	b = append(b, `},"stream":`...)
	b = kit.AppendJSONString(b, w.Stream)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(w.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, w.Offset, 10)
	return append(b, '}')
}

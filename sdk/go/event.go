package butter

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one CloudEvent handed to a function, with where it sits in its
// stream.
type Event struct {
	ID, Source, Type, Subject string
	// Time is when the event happened; zero when unset.
	Time time.Time
	// DataContentType says how Data is encoded, like application/json.
	DataContentType string
	// Data is the event's payload as sent, undecoded: see DecodeData.
	Data []byte
	// Extensions are the CloudEvents extension attributes, like traceparent
	// or tenant, besides stream, partition and offset.
	Extensions map[string]string
	// Stream, Partition and Offset say where the event was read.
	Stream    string
	Partition int32
	Offset    int64
}

// DecodeData decodes Data into v: JSON for JSON content (or none stated);
// for other content v must be a *string or *[]byte.
func (e Event) DecodeData(v any) error {
	if isJSON(e.DataContentType) || e.DataContentType == "" {
		if err := json.Unmarshal(e.Data, v); err != nil {
			return fmt.Errorf("decode event %s data as JSON: %w", e.ID, err)
		}
		return nil
	}
	switch p := v.(type) {
	case *string:
		*p = string(e.Data)
	case *[]byte:
		*p = append([]byte(nil), e.Data...)
	default:
		return fmt.Errorf("decode event %s data: content type %q is not JSON: decode into a *string or *[]byte", e.ID, e.DataContentType)
	}
	return nil
}

// Headers of the protocol besides the CloudEvents ones.
const (
	headerInvocation = "Butter-Invocation"
	headerDeadline   = "Butter-Deadline"
	batchContentType = "application/cloudevents-batch+json"
)

// Attributes the Event has fields for; every other ce- header or member is
// an extension.
var attributes = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
	"stream": true, "partition": true, "offset": true,
}

// readEvents decodes a request: one event in binary mode, or a batch.
func readEvents(r *http.Request, body []byte) (events []Event, batch bool, err error) {
	if mediaType(r.Header.Get("Content-Type")) == batchContentType {
		var raw []map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, true, fmt.Errorf("decode event batch: %w", err)
		}
		for i, m := range raw {
			e, err := structured(m)
			if err != nil {
				return nil, true, fmt.Errorf("decode event %d of the batch: %w", i, err)
			}
			events = append(events, e)
		}
		return events, true, nil
	}
	e := Event{Extensions: map[string]string{}, DataContentType: r.Header.Get("Content-Type"), Data: body}
	for k, vs := range r.Header {
		name, ok := strings.CutPrefix(strings.ToLower(k), "ce-")
		if !ok || len(vs) == 0 {
			continue
		}
		v, err := url.PathUnescape(vs[0])
		if err != nil {
			v = vs[0]
		}
		if err := e.set(name, v); err != nil {
			return nil, false, err
		}
	}
	if e.ID == "" {
		return nil, false, errors.New("request is not a CloudEvent: no ce-id header")
	}
	return []Event{e}, false, nil
}

// set sets the attribute name from its string form.
func (e *Event) set(name, v string) error {
	var err error
	switch name {
	case "specversion", "dataschema":
	case "id":
		e.ID = v
	case "source":
		e.Source = v
	case "type":
		e.Type = v
	case "subject":
		e.Subject = v
	case "datacontenttype":
		e.DataContentType = v
	case "time":
		e.Time, err = time.Parse(time.RFC3339Nano, v)
	case "stream":
		e.Stream = v
	case "partition":
		var p int64
		p, err = strconv.ParseInt(v, 10, 32)
		e.Partition = int32(p)
	case "offset":
		e.Offset, err = strconv.ParseInt(v, 10, 64)
	default:
		e.Extensions[name] = v
	}
	if err != nil {
		return fmt.Errorf("event attribute %s: %w", name, err)
	}
	return nil
}

// structured decodes a structured-mode JSON event.
func structured(m map[string]json.RawMessage) (Event, error) {
	e := Event{Extensions: map[string]string{}}
	for k, raw := range m {
		if k == "data" || k == "data_base64" {
			continue
		}
		v, ok := plainString(raw)
		if !ok {
			if err := json.Unmarshal(raw, &v); err != nil {
				v = string(raw) // numbers and booleans keep their JSON text
			}
		}
		if err := e.set(k, v); err != nil {
			return Event{}, err
		}
	}
	if b64, ok := m["data_base64"]; ok {
		var s string
		if err := json.Unmarshal(b64, &s); err != nil {
			return Event{}, fmt.Errorf("data_base64: %w", err)
		}
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Event{}, fmt.Errorf("data_base64: %w", err)
		}
		e.Data = d
	} else if raw, ok := m["data"]; ok {
		var s string
		if !isJSON(e.DataContentType) && e.DataContentType != "" && json.Unmarshal(raw, &s) == nil {
			e.Data = []byte(s) // text data travels as a JSON string
		} else {
			e.Data = []byte(raw)
		}
	}
	return e, nil
}

// plainString returns the value of a JSON string with nothing to unescape
// (attributes nearly always are), without json.Unmarshal's reflection: a
// batch of 500 events has some 6,000 of them.
func plainString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false // json.Unmarshal replaces what is not UTF-8
	}
	return string(in), true
}

func isJSON(contentType string) bool {
	mt := mediaType(contentType)
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

func mediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(contentType))
	}
	return mt
}

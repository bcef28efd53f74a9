package httprt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
)

// newRequest builds the POST of events: binary mode for one event, a
// batch when batch is set.
func newRequest(url string, ds []envelope.Delivery, batch bool) (*http.Request, error) {
	if batch {
		return batchRequest(url, ds)
	}
	d := ds[0]
	var data []byte
	if d.Event.Context != nil {
		data = d.Event.Data()
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	binaryHeaders(req.Header, d)
	return req, nil
}

// batchRequest is the POST of a batch in the CloudEvents HTTP batch
// format, written by sdk-go so that its NewEventsFromHTTPRequest reads it:
// a JSON array of structured events. Where each event sits is in the
// extensions stream, partition and offset, as strings like in binary mode
// (a JSON number extension must fit an int32, and offsets do not).
func batchRequest(url string, ds []envelope.Delivery) (*http.Request, error) {
	evs := make([]event.Event, len(ds))
	for i, d := range ds {
		e := d.Event.Clone()
		if e.Context == nil {
			return nil, fmt.Errorf("event %d of the batch has no context", i)
		}
		e.SetExtension("stream", d.Stream)
		e.SetExtension("partition", strconv.FormatInt(int64(d.Partition), 10))
		e.SetExtension("offset", strconv.FormatInt(d.Offset, 10))
		// Inline when the bytes allow it, whatever the event says (SetData
		// with []byte asks for base64 even for JSON): readers that predate
		// data_base64 get JSON as JSON.
		e.DataBase64 = needsBase64(e)
		evs[i] = e
	}
	// What cehttp.NewHTTPRequestFromEvents writes, without passing each
	// event's JSON through encoding/json again to validate and compact it
	// (a third of fnbox's CPU for a batch of 500).
	size := 2
	for i := range evs {
		size += 384 + len(evs[i].Data())
	}
	body := append(make([]byte, 0, size), '[')
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			return nil, fmt.Errorf("event %d of the batch: %w", i, err)
		}
		b, err := evs[i].MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode event %d of the batch: %w", i, err)
		}
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, b...)
	}
	body = append(body, ']', '\n')
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", event.ApplicationCloudEventsBatchJSON)
	return req, nil
}

// needsBase64 reports whether e's data would not survive sdk-go's JSON
// format as it is: sdk-go inlines data only of application/json (and
// unstated), and writes any other as a JSON string, which must be UTF-8
// text for the receiver to get the same bytes back.
func needsBase64(e event.Event) bool {
	data := e.Data()
	if len(data) == 0 {
		return false
	}
	mt, _, _ := mime.ParseMediaType(e.DataContentType())
	switch mt {
	case "", event.ApplicationJSON, event.TextJSON:
		return !json.Valid(data)
	}
	// A +json type is inlined by some readers (the Go SDK) and a string to
	// sdk-go: base64 reads the same everywhere.
	return runtime.IsJSON(mt) || !runtime.IsText(e.DataContentType()) || !utf8.Valid(data)
}

// binaryHeaders sets the ce-* headers of d (CloudEvents HTTP binding,
// binary mode) and its Content-Type.
func binaryHeaders(h http.Header, d envelope.Delivery) {
	set := func(name, v string) { h.Set("ce-"+name, headerValue(v)) }
	e := d.Event
	if e.Context != nil {
		for k, v := range e.Extensions() {
			if k == "stream" || k == "partition" || k == "offset" {
				continue // where the event sits is fnbox's to say, below
			}
			if s, err := types.Format(v); err == nil {
				set(k, s)
			}
		}
		set("specversion", e.SpecVersion())
		set("id", e.ID())
		set("source", e.Source())
		set("type", e.Type())
		if s := e.Subject(); s != "" {
			set("subject", s)
		}
		if t := e.Time(); !t.IsZero() {
			set("time", t.UTC().Format(time.RFC3339Nano))
		}
		if s := e.DataSchema(); s != "" {
			set("dataschema", s)
		}
		if ct := e.DataContentType(); ct != "" {
			h.Set("Content-Type", ct)
		}
	}
	set("stream", d.Stream)
	set("partition", strconv.FormatInt(int64(d.Partition), 10))
	set("offset", strconv.FormatInt(d.Offset, 10))
}

// headerValue percent-encodes what the CloudEvents HTTP binding says must
// be: anything outside printable ASCII, '"' and '%'.
func headerValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '%' {
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// replyEvent reads the answer of a function as a CloudEvent when it is
// one: binary mode (a ce-specversion header) or structured mode
// (application/cloudevents+json). It reports false for any other answer.
// Parsing is sdk-go's, so whatever its receivers and clients answer reads
// as they meant it.
func replyEvent(resp *http.Response, body []byte) (*event.Event, bool, error) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.Header.Get("Ce-Specversion") == "" && !strings.EqualFold(mt, envelope.ContentTypeStructured) {
		return nil, false, nil
	}
	r := *resp
	r.Body = io.NopCloser(bytes.NewReader(body))
	e, err := cehttp.NewEventFromHTTPResponse(&r)
	if err != nil {
		return nil, true, err
	}
	if err := e.Validate(); err != nil {
		return nil, true, err
	}
	return e, true, nil
}

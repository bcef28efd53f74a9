package httprt

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
)

// newRequest builds the POST of events: binary mode for one event, a
// structured batch when batch is set.
func newRequest(url string, ds []envelope.Delivery, batch bool) (*http.Request, error) {
	if batch {
		all := make([]map[string]any, len(ds))
		for i, d := range ds {
			all[i] = runtime.Structured(d)
		}
		b, err := json.Marshal(all)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", BatchContentType)
		return req, nil
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

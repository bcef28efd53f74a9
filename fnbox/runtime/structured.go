package runtime

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Structured encodes a delivery as a structured-mode CloudEvents JSON
// object. Where the event sits is added as the members stream, partition
// and offset (DESIGN §3: functions see where the event sits), overriding
// extensions of those names.
func Structured(d envelope.Delivery) map[string]any {
	m := map[string]any{"stream": d.Stream, "partition": d.Partition, "offset": d.Offset}
	e := d.Event
	if e.Context == nil {
		return m
	}
	for k, v := range e.Extensions() {
		if s, err := types.Format(v); err == nil {
			if _, taken := m[k]; !taken {
				m[k] = s
			}
		}
	}
	m["specversion"] = e.SpecVersion()
	m["id"], m["source"], m["type"] = e.ID(), e.Source(), e.Type()
	if s := e.Subject(); s != "" {
		m["subject"] = s
	}
	if t := e.Time(); !t.IsZero() {
		m["time"] = t.UTC().Format(time.RFC3339Nano)
	}
	if s := e.DataSchema(); s != "" {
		m["dataschema"] = s
	}
	ct := e.DataContentType()
	if ct != "" {
		m["datacontenttype"] = ct
	}
	data := e.Data()
	switch {
	case len(data) == 0:
	case (ct == "" || IsJSON(ct)) && json.Valid(data):
		m["data"] = json.RawMessage(data)
	case utf8.Valid(data) && IsText(ct):
		m["data"] = string(data)
	default:
		m["data_base64"] = base64.StdEncoding.EncodeToString(data)
	}
	return m
}

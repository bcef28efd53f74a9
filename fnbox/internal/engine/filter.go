package engine

import (
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/buttercompass/butter/proto/envelope"
)

// matches reports whether e has every attribute or extension of filter
// with the given value (string forms compared).
func matches(filter map[string]string, e event.Event) bool {
	for name, want := range filter {
		var got string
		switch name {
		case "id":
			got = e.ID()
		case "source":
			got = e.Source()
		case "type":
			got = e.Type()
		case "subject":
			got = e.Subject()
		case "specversion":
			got = e.SpecVersion()
		case "datacontenttype":
			got = e.DataContentType()
		case "dataschema":
			got = e.DataSchema()
		case "time":
			got = types.FormatTime(e.Time())
		default:
			got = envelope.Extension(e, name)
		}
		if got != want {
			return false
		}
	}
	return true
}

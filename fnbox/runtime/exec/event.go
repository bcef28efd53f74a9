package exec

import (
	"encoding/json"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
)

// payload is what the command reads on stdin: one event, or a JSON array
// when the function takes batches.
func payload(ds []envelope.Delivery, batch bool) ([]byte, error) {
	if len(ds) == 1 && !batch {
		return json.Marshal(runtime.Structured(ds[0]))
	}
	all := make([]map[string]any, len(ds))
	for i, d := range ds {
		all[i] = runtime.Structured(d)
	}
	return json.Marshal(all)
}

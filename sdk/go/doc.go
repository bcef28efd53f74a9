// Package butter is the Go SDK for Butter Compass functions (DESIGN §5,
// platform go). A function is a program whose main calls Handle:
//
//	func main() {
//		butter.Handle(func(ctx context.Context, e butter.Event) (any, error) {
//			var order Order
//			if err := e.DecodeData(&order); err != nil {
//				return nil, butter.Permanent(err) // bad input: no retry
//			}
//			return map[string]any{"total": order.Total()}, nil
//		})
//	}
//
// Handle serves the http platform protocol on $PORT: fnbox POSTs each event
// in CloudEvents HTTP binary mode (a batch as
// application/cloudevents-batch+json, see HandleBatch) and the response is
// the result. The returned value decides the answer: nil is no result
// (204), a string is text/plain, a []byte application/octet-stream, a
// json.RawMessage is sent as JSON as is, anything else is encoded as JSON.
// An error is a failure that fnbox retries (500); one wrapped with
// Permanent goes straight to the dead-letter stream (422).
//
// During a call, ctx carries the invocation: Emit, Request and Log reach
// fnbox's context API at $BUTTER_CONTEXT_URL, and ctx's deadline is the
// invocation's (also given by Deadline).
package butter

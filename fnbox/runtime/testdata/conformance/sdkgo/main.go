// Command handler is the conformance fixture for http functions written
// with CloudEvents sdk-go: `handler <case>` serves one suite case (see
// runtimetest.Conformance) with sdk-go's client.StartReceiver, answering with
// CloudEvents; the context API is called over HTTP as any language would.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: handler <case>")
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "PORT:", err)
		os.Exit(2)
	}
	if os.Args[1] == "batch" {
		// StartReceiver takes one event per request; a batch is read with
		// NewEventsFromHTTPRequest, as sdk-go documents.
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			evs, err := cehttp.NewEventsFromHTTPRequest(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			items := make([]json.RawMessage, len(evs))
			for i, e := range evs {
				items[i] = e.Data()
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"items": items})
		})
		fail(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
	}
	fn, ok := cases[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown case %q\n", os.Args[1])
		os.Exit(2)
	}
	// The middleware puts the request headers in ctx: the invocation id,
	// the deadline and the trace are headers.
	p, err := cehttp.New(cehttp.WithPort(port), cehttp.WithRequestDataAtContextMiddleware())
	if err != nil {
		fail(err)
	}
	c, err := cloudevents.NewClient(p, client.WithPollGoroutines(64))
	if err != nil {
		fail(err)
	}
	fail(c.StartReceiver(context.Background(), fn))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

type handler = func(ctx context.Context, e event.Event) (*event.Event, protocol.Result)

// reply is the answer event of a case, data v as JSON (or text).
func reply(in event.Event, contentType string, v any) (*event.Event, protocol.Result) {
	out := cloudevents.NewEvent()
	out.SetID("reply-" + in.ID())
	out.SetSource("/sdkgo")
	out.SetType("com.example.conformance.reply")
	if err := out.SetData(contentType, v); err != nil {
		return nil, cehttp.NewResult(http.StatusInternalServerError, "encode reply: %v", err)
	}
	return &out, nil
}

// header is a request header, as sdk-go's receiver keeps them.
func header(ctx context.Context, name string) string {
	if rd := cehttp.RequestDataFromContext(ctx); rd != nil {
		return rd.Header.Get(name)
	}
	return ""
}

// call POSTs body to the context API as the invocation of ctx.
func call(ctx context.Context, path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, os.Getenv("BUTTER_CONTEXT_URL")+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Butter-Invocation", header(ctx, "Butter-Invocation"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

var cases = map[string]handler{
	"echo": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		return reply(e, cloudevents.ApplicationJSON, map[string]any{"echo": json.RawMessage(e.Data())})
	},
	"text": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		var d struct{ Name string }
		if err := e.DataAs(&d); err != nil {
			return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "%v", err)
		}
		return reply(e, "text/plain; charset=utf-8", "hello "+d.Name)
	},
	"nothing": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		return nil, nil
	},
	"trace": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		return reply(e, cloudevents.ApplicationJSON, map[string]any{"traceparent": header(ctx, "traceparent")})
	},
	"emit": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		code, body, err := call(ctx, "/emit", map[string]any{"stream": "audit", "data": map[string]any{"seen": json.RawMessage(e.Data())},
			"type": "com.example.audit", "subject": "s1", "key": "k1"})
		if err != nil || code != http.StatusNoContent {
			return nil, cehttp.NewResult(http.StatusInternalServerError, "emit: %d %s %v", code, body, err)
		}
		return reply(e, cloudevents.ApplicationJSON, map[string]any{"emitted": true})
	},
	"emit-undeclared": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		code, body, err := call(ctx, "/emit", map[string]any{"stream": "secret", "data": map[string]any{"leak": true}})
		if err != nil {
			return nil, cehttp.NewResult(http.StatusInternalServerError, "emit: %v", err)
		}
		if code == http.StatusForbidden {
			var m struct{ Error string }
			json.Unmarshal(body, &m)
			return reply(e, cloudevents.ApplicationJSON, map[string]any{"refused": true, "error": m.Error})
		}
		return reply(e, cloudevents.ApplicationJSON, map[string]any{"refused": false})
	},
	"request": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		code, body, err := call(ctx, "/request", map[string]any{"stream": "questions", "data": json.RawMessage(e.Data())})
		if err != nil || code != http.StatusOK {
			return nil, cehttp.NewResult(http.StatusInternalServerError, "request: %d %s %v", code, body, err)
		}
		return reply(e, cloudevents.ApplicationJSON, map[string]any{"answer": json.RawMessage(body)})
	},
	"fail": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		var d struct{ Why string }
		if err := e.DataAs(&d); err != nil {
			return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "%v", err)
		}
		return nil, cehttp.NewResult(http.StatusInternalServerError, "boom: %s", d.Why)
	},
	"slow": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		var d struct{ SleepMs int }
		if err := e.DataAs(&d); err != nil {
			return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "%v", err)
		}
		deadline, err := time.Parse(time.RFC3339Nano, header(ctx, "Butter-Deadline"))
		if err != nil {
			return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "Butter-Deadline: %v", err)
		}
		res := map[string]any{"remainingMs": time.Until(deadline).Milliseconds(), "deadline": deadline.Format(time.RFC3339Nano)}
		select {
		case <-time.After(time.Duration(d.SleepMs) * time.Millisecond):
		case <-time.After(time.Until(deadline)):
			return nil, cehttp.NewResult(http.StatusGatewayTimeout, "deadline passed")
		}
		return reply(e, cloudevents.ApplicationJSON, res)
	},
	"log": func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		var d struct{ Tag string }
		if err := e.DataAs(&d); err != nil {
			return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "%v", err)
		}
		if code, body, err := call(ctx, "/log", map[string]any{"level": "info", "message": "log-line " + d.Tag}); err != nil || code != http.StatusNoContent {
			return nil, cehttp.NewResult(http.StatusInternalServerError, "log: %d %s %v", code, body, err)
		}
		fmt.Println("stdout-line", d.Tag)
		fmt.Fprintln(os.Stderr, "stderr-line", d.Tag)
		return nil, nil
	},
}

package butter

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// EnvContextURL names the variable holding the context API's base URL.
const EnvContextURL = "BUTTER_CONTEXT_URL"

// Errors of the context API.
var (
	// ErrUndeclaredStream is returned by Emit and Request for a stream the
	// function did not declare in its out or emits bindings: add it to
	// emits in butter.yaml.
	ErrUndeclaredStream = errors.New("stream is not declared in the function's out or emits bindings")
	// ErrNoInvocation is returned when ctx is not the ctx of a call: pass
	// the handler's ctx, or one derived from it.
	ErrNoInvocation = errors.New("context does not belong to an invocation: pass the handler's ctx")
)

// invocation is what a call's ctx carries.
type invocation struct {
	id       string
	url      string
	deadline time.Time
	client   *http.Client
	// traceparent and tracestate are fnbox's invoke span (W3C headers).
	traceparent, tracestate string
}

type invocationKey struct{}

func withInvocation(ctx context.Context, inv *invocation) context.Context {
	return context.WithValue(ctx, invocationKey{}, inv)
}

func fromContext(ctx context.Context) (*invocation, error) {
	inv, _ := ctx.Value(invocationKey{}).(*invocation)
	if inv == nil || inv.url == "" {
		if inv != nil {
			return nil, fmt.Errorf("%s is not set: run the function under fnbox: %w", EnvContextURL, ErrNoInvocation)
		}
		return nil, ErrNoInvocation
	}
	return inv, nil
}

// EmitOptions are the options of Emit and Request; empty fields take the
// platform defaults.
type EmitOptions struct {
	// Type is the new event's type.
	Type string
	// Subject is the new event's subject.
	Subject string
	// Key is the Kafka record key, which picks the partition.
	Key string
	// ContentType overrides how data is labelled (see Emit).
	ContentType string
}

// emitBody is the body of /emit and /request.
type emitBody struct {
	Stream      string          `json:"stream"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  string          `json:"dataBase64,omitempty"`
	ContentType string          `json:"contentType,omitempty"`
	Type        string          `json:"type,omitempty"`
	Subject     string          `json:"subject,omitempty"`
	Key         string          `json:"key,omitempty"`
}

// Emit writes a new event with data to stream, which the function must
// declare in its out or emits bindings (else ErrUndeclaredStream). data
// is encoded like a result: a string is text/plain, a []byte
// application/octet-stream, a json.RawMessage JSON as is, anything else
// JSON; nil emits an event without data. It returns once fnbox has the
// event.
func Emit(ctx context.Context, stream string, data any, opts EmitOptions) error {
	_, _, err := call(ctx, "emit", stream, data, opts)
	if err != nil {
		return fmt.Errorf("emit to %q: %w", stream, err)
	}
	return nil
}

// Request emits data to stream like Emit, waits for the reply event and
// returns its data (nil when the reply has none).
func Request(ctx context.Context, stream string, data any, opts EmitOptions) ([]byte, error) {
	b, _, err := call(ctx, "request", stream, data, opts)
	if err != nil {
		return nil, fmt.Errorf("request on %q: %w", stream, err)
	}
	return b, nil
}

// Log writes a line, formatted like fmt.Sprintf, to the function's log
// for the current event (stream _butter.logs). Logging never fails the
// function: if fnbox cannot be reached the line goes to stderr.
func Log(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	body, _ := json.Marshal(map[string]string{"level": "info", "message": msg})
	if _, err := post(ctx, "log", body); err != nil {
		fmt.Fprintln(os.Stderr, msg)
	}
}

// TraceParent returns the W3C trace context of fnbox's invoke span for the
// current invocation (the traceparent and tracestate headers it was called
// with): give it to your tracer's propagator so your own spans are children
// of the invocation. Empty outside an invocation or without a trace.
func TraceParent(ctx context.Context) (traceparent, tracestate string) {
	inv, _ := ctx.Value(invocationKey{}).(*invocation)
	if inv == nil {
		return "", ""
	}
	return inv.traceparent, inv.tracestate
}

// Deadline returns when fnbox abandons the current invocation; ok is false
// outside an invocation or when it has none.
func Deadline(ctx context.Context) (deadline time.Time, ok bool) {
	inv, _ := ctx.Value(invocationKey{}).(*invocation)
	if inv == nil || inv.deadline.IsZero() {
		return time.Time{}, false
	}
	return inv.deadline, true
}

func call(ctx context.Context, op, stream string, data any, opts EmitOptions) ([]byte, string, error) {
	eb := emitBody{Stream: stream, Type: opts.Type, Subject: opts.Subject, Key: opts.Key, ContentType: opts.ContentType}
	switch d := data.(type) {
	case nil:
	case []byte:
		eb.DataBase64 = base64.StdEncoding.EncodeToString(d)
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, "", fmt.Errorf("encode data as JSON: %w", err)
		}
		eb.Data = b
	}
	body, err := json.Marshal(eb)
	if err != nil {
		return nil, "", fmt.Errorf("encode %s body: %w", op, err)
	}
	resp, err := post(ctx, op, body)
	if err != nil {
		return nil, "", err
	}
	return resp.body, resp.contentType, nil
}

type answer struct {
	body        []byte
	contentType string
}

// post calls op of the context API and turns error answers into errors.
func post(ctx context.Context, op string, body []byte) (answer, error) {
	inv, err := fromContext(ctx)
	if err != nil {
		return answer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(inv.url, "/")+"/"+op, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("call the context API: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerInvocation, inv.id)
	resp, err := inv.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("call the context API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("read the context API's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if e.Code == "undeclared_stream" || resp.StatusCode == http.StatusForbidden {
			return answer{}, fmt.Errorf("%s: %w", e.Error, ErrUndeclaredStream)
		}
		return answer{}, fmt.Errorf("context API answered %s: %s", resp.Status, e.Error)
	}
	if resp.StatusCode == http.StatusNoContent {
		return answer{}, nil
	}
	return answer{body: b, contentType: resp.Header.Get("Content-Type")}, nil
}

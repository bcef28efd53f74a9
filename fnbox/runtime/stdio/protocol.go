package stdio

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
)

// The protocol between fnbox and a host process is JSON, one message per
// line: fnbox writes on the host's fd 4 and reads the host's fd 3, so the
// user's stdout and stderr stay theirs. Messages are told apart by which
// fields they carry.
//
// fnbox → host:
//
//	{"load": [{"name","file","export"}], "dir", "set"}   load these functions
//	{"unload": set}    drop a set's functions (not answered)
//	{"id", "set", "fn", "events": [event], "deadline": unix ms, "batch": bool}   invoke
//	{"call", "ok": true, "result", "contentType", "base64"}   answer to a call
//	{"call", "error": {"message", "code"}}                    refused call
//	{"cancel": id}     fnbox gave up on an invocation (python cancels its task);
//	                   the host still replies when the call ends, which fnbox
//	                   ignores but which tells it the host is not stuck
//	end of input       exit now
//
// host → fnbox:
//
//	{"set", "ready": true} or {"set", "loadErrors": [{"fn","where","message","stack"}]}
//	{"id", "result", "contentType", "base64"}     the invocation returned
//	{"id", "error": {"message", "stack"}}         the invocation threw
//	{"id", "call", "op": "emit"|"request", "stream", "data", "contentType",
//	 "base64", "type", "subject", "key"}           a context call, answered
//	{"id", "op": "log", "level", "message"}        a log line, not answered
//	{"set", "id", "op": "stdout"|"stderr", "message"}   shared hosts only: what
//	                   an invocation (id) or a load (no id) of set wrote
//
// A set is one deployment's functions in the host. A host of one
// deployment (a Runtime) gets one load, of set "" (omitted), as its first
// message, and fnbox sends nothing else before its answer. A shared host
// (a Pool's: started with the argument --shared, before any code is
// known) takes loads at any time, each of its own set, keeps every set's
// functions apart (the same function name, or the same file name in
// another dir, in two sets are two functions), and sends what an
// invocation or a load writes to stdout or stderr as "stdout"/"stderr"
// messages, so fnbox gives each line to its deployment; its own stdout
// and stderr then carry only what no invocation or load owns.
//
// Data travels as a JSON value: JSON content types as the value itself,
// other text as a string, binary as a base64 string with "base64": true.

// loadFn is one function for the host to load.
type loadFn struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Export string `json:"export"`
}

// loadMsg asks a host to load a set of functions.
type loadMsg struct {
	Load []loadFn `json:"load"`
	Dir  string   `json:"dir"`
	Set  string   `json:"set,omitempty"`
}

// unloadMsg asks a shared host to drop a set's functions.
type unloadMsg struct {
	Unload string `json:"unload"`
}

// invokeMsg asks the host to run a function.
type invokeMsg struct {
	ID       string      `json:"id"`
	Set      string      `json:"set,omitempty"`
	Fn       string      `json:"fn"`
	Events   []wireEvent `json:"events"`
	Deadline int64       `json:"deadline,omitempty"`
	// TraceParent and TraceState are the invoke span's W3C trace context
	// (context.traceparent / context.tracestate in the function).
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	Batch       bool   `json:"batch,omitempty"`
}

// wireEvent is an event as handlers see it (DESIGN §5).
type wireEvent struct {
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	Subject         string            `json:"subject,omitempty"`
	Time            string            `json:"time,omitempty"`
	Data            json.RawMessage   `json:"data"`
	DataBase64      bool              `json:"dataBase64,omitempty"`
	DataContentType string            `json:"datacontenttype,omitempty"`
	DataSchema      string            `json:"dataschema,omitempty"`
	Extensions      map[string]string `json:"extensions"`
	Stream          string            `json:"stream"`
	Partition       int32             `json:"partition"`
	Offset          int64             `json:"offset"`
}

// answerMsg answers a context call.
type answerMsg struct {
	Call        int64           `json:"call"`
	OK          bool            `json:"ok,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	ContentType string          `json:"contentType,omitempty"`
	Base64      bool            `json:"base64,omitempty"`
	Error       *wireError      `json:"error,omitempty"`
}

// cancelMsg tells the host fnbox stopped waiting for an invocation.
type cancelMsg struct {
	Cancel string `json:"cancel"`
}

// wireError is an error in either direction.
type wireError struct {
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
	Code    string `json:"code,omitempty"`
}

// loadError is a function the host could not load.
type loadError struct {
	Fn      string `json:"fn"`
	Where   string `json:"where"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// hostMsg is any message from the host; see the protocol above.
type hostMsg struct {
	Set        string      `json:"set,omitempty"`
	Ready      bool        `json:"ready,omitempty"`
	LoadErrors []loadError `json:"loadErrors,omitempty"`

	ID          string          `json:"id,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	ContentType string          `json:"contentType,omitempty"`
	Base64      bool            `json:"base64,omitempty"`
	Error       *wireError      `json:"error,omitempty"`

	Call    int64           `json:"call,omitempty"`
	Op      string          `json:"op,omitempty"`
	Stream  string          `json:"stream,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Type    string          `json:"type,omitempty"`
	Subject string          `json:"subject,omitempty"`
	Key     string          `json:"key,omitempty"`
	Level   string          `json:"level,omitempty"`
	Message string          `json:"message,omitempty"`
}

// toWire encodes a delivery for a host.
func toWire(d envelope.Delivery) wireEvent {
	e := d.Event
	w := wireEvent{Stream: d.Stream, Partition: d.Partition, Offset: d.Offset, Extensions: map[string]string{}, Data: json.RawMessage("null")}
	if e.Context == nil {
		return w
	}
	w.ID, w.Source, w.Type, w.Subject = e.ID(), e.Source(), e.Type(), e.Subject()
	w.DataContentType, w.DataSchema = e.DataContentType(), e.DataSchema()
	if t := e.Time(); !t.IsZero() {
		w.Time = t.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range e.Extensions() {
		if s, err := types.Format(v); err == nil {
			w.Extensions[k] = s
		}
	}
	w.Data, w.DataBase64 = encodeData(e.Data(), e.DataContentType())
	return w
}

// encodeData gives data its wire form: parsed JSON for valid JSON of a
// JSON (or unstated) content type, a string for text, base64 otherwise.
func encodeData(data []byte, contentType string) (json.RawMessage, bool) {
	if len(data) == 0 {
		return json.RawMessage("null"), false
	}
	if (contentType == "" || runtime.IsJSON(contentType)) && json.Valid(data) {
		return json.RawMessage(data), false
	}
	if utf8.Valid(data) && runtime.IsText(contentType) {
		b, _ := json.Marshal(string(data))
		return b, false
	}
	b, _ := json.Marshal(base64.StdEncoding.EncodeToString(data))
	return b, true
}

// decodeData turns a value from the host back into bytes: nil for no
// value, the JSON itself for JSON, the string's bytes for text.
func decodeData(raw json.RawMessage, contentType string, b64 bool) ([]byte, string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", nil
	}
	if b64 {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", fmt.Errorf("decode base64 data: %w", err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, "", fmt.Errorf("decode base64 data: %w", err)
		}
		return b, or(contentType, "application/octet-stream"), nil
	}
	var s string
	if raw[0] == '"' && (contentType == "" || !runtime.IsJSON(contentType)) && json.Unmarshal(raw, &s) == nil {
		return []byte(s), or(contentType, "text/plain"), nil
	}
	return []byte(raw), or(contentType, "application/json"), nil
}

// encodeAnswer gives a request's reply the wire form of data.
func encodeAnswer(call int64, res runtime.Result) answerMsg {
	a := answerMsg{Call: call, OK: true, ContentType: res.ContentType}
	if res.Data != nil {
		a.Result, a.Base64 = encodeData(res.Data, res.ContentType)
	}
	return a
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

package httpevent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// ErrNotCloudEvent is wrapped by EventFromRequest for requests that are
// no CloudEvent in HTTP binary or structured mode.
var ErrNotCloudEvent = errors.New("request is not a CloudEvent")

// EventFromRequest reads the CloudEvent of r (binary mode: ce-* headers;
// structured mode: application/cloudevents+json) through sdk-go's HTTP
// binding. body is r's body, already read and limited.
func EventFromRequest(r *http.Request, body []byte) (event.Event, error) {
	msg := cehttp.NewMessage(r.Header, io.NopCloser(bytes.NewReader(body)))
	defer func() { _ = msg.Finish(nil) }()
	if msg.ReadEncoding() == binding.EncodingUnknown {
		return event.Event{}, fmt.Errorf("%w: send it in binary mode (ce-id, ce-type, ce-source, ce-specversion headers) or structured mode (Content-Type: application/cloudevents+json)", ErrNotCloudEvent)
	}
	ev, err := binding.ToEvent(r.Context(), msg)
	if err != nil {
		return event.Event{}, fmt.Errorf("%w: %v", ErrNotCloudEvent, err)
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("%w: %v", ErrNotCloudEvent, err)
	}
	return *ev, nil
}

// EventResponse renders ev as a 200 response in HTTP binary mode, the
// mode sdk-go's client.Request reads replies in.
func EventResponse(ctx context.Context, ev event.Event) (Response, error) {
	rec := &eventRecorder{h: http.Header{}}
	if err := cehttp.WriteResponseWriter(ctx, binding.ToMessage(&ev), http.StatusOK, rec); err != nil {
		return Response{}, fmt.Errorf("%w: encode reply event: %v", ErrBadReply, err)
	}
	rec.h.Del("Content-Length") // set by the server that writes it
	return Response{Status: rec.code, Headers: rec.h, Body: rec.body.Bytes()}, nil
}

// eventRecorder captures what sdk-go writes.
type eventRecorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *eventRecorder) Header() http.Header         { return r.h }
func (r *eventRecorder) WriteHeader(code int)        { r.code = code }
func (r *eventRecorder) Write(b []byte) (int, error) { return r.body.Write(b) }

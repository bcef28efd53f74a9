package httpevent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

func TestEventFromRequestModes(t *testing.T) {
	for _, c := range []struct {
		name string
		req  func() *http.Request
		ok   bool
	}{
		{"binary", func() *http.Request {
			r := httptest.NewRequest("POST", "/ce", bytes.NewReader([]byte(`{"a":1}`)))
			r.Header.Set("ce-specversion", "1.0")
			r.Header.Set("ce-id", "1")
			r.Header.Set("ce-type", "t")
			r.Header.Set("ce-source", "/s")
			r.Header.Set("ce-tenant", "acme")
			r.Header.Set("Content-Type", "application/json")
			return r
		}, true},
		{"structured", func() *http.Request {
			r := httptest.NewRequest("POST", "/ce", bytes.NewReader([]byte(
				`{"specversion":"1.0","id":"1","type":"t","source":"/s","tenant":"acme","datacontenttype":"application/json","data":{"a":1}}`)))
			r.Header.Set("Content-Type", "application/cloudevents+json")
			return r
		}, true},
		{"plain", func() *http.Request {
			r := httptest.NewRequest("POST", "/ce", bytes.NewReader([]byte(`{"a":1}`)))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, false},
		{"binary without a type", func() *http.Request {
			r := httptest.NewRequest("POST", "/ce", nil)
			r.Header.Set("ce-specversion", "1.0")
			r.Header.Set("ce-id", "1")
			r.Header.Set("ce-source", "/s")
			return r
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.req()
			var body bytes.Buffer
			_, _ = body.ReadFrom(r.Body)
			ev, err := EventFromRequest(r, body.Bytes())
			if !c.ok {
				if !errors.Is(err, ErrNotCloudEvent) {
					t.Fatalf("got %v, want ErrNotCloudEvent", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID() != "1" || ev.Type() != "t" || ev.Source() != "/s" || ev.Extensions()["tenant"] != "acme" || string(ev.Data()) != `{"a":1}` {
				t.Fatalf("got %s", ev)
			}
		})
	}
}

// TestEventResponseReadBySDK: the answer is read back by sdk-go as the
// same event.
func TestEventResponseReadBySDK(t *testing.T) {
	ev := cloudevents.NewEvent()
	ev.SetID("r-1")
	ev.SetType("butter.result")
	ev.SetSource("butter://d/f")
	ev.SetExtension("causationid", "1")
	_ = ev.SetData(cloudevents.ApplicationJSON, map[string]int{"a": 1})
	resp, err := EventResponse(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	resp.Write(rec)
	got, err := cehttp.NewEventFromHTTPResponse(rec.Result())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || rec.Header().Get("ce-id") != "r-1" || got.Type() != "butter.result" || got.Source() != "butter://d/f" ||
		got.Extensions()["causationid"] != "1" || string(got.Data()) != `{"a":1}` {
		t.Fatalf("got %d %v %s", rec.Code, rec.Header(), got)
	}
}

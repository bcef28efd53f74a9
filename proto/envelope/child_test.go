package envelope

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// checkChildRecord checks that ChildRecord(parent, o) writes the record
// ToRecord writes for ChildEvent(parent, o) through the general code,
// given the same id and time, or fails as that does.
func checkChildRecord(t *testing.T, parent event.Event, o Output) *kgo.Record {
	t.Helper()
	got, err := ChildRecord("out", parent, o)
	e := ChildEvent(parent, o)
	noFastPath = true
	defer func() { noFastPath = false }()
	if err != nil {
		if _, gerr := ToRecord("out", e); gerr == nil || gerr.Error() != err.Error() {
			t.Fatalf("ChildRecord: %v, general: %v", err, gerr)
		}
		return nil
	}
	for _, h := range got.Headers {
		switch h.Key {
		case HeaderPrefix + attrID:
			e.SetID(string(h.Value))
		case HeaderPrefix + attrTime:
			tm, err := types.ParseTime(string(h.Value))
			if err != nil {
				t.Fatalf("time %q: %v", h.Value, err)
			}
			e.SetTime(tm)
		}
	}
	want, err := ToRecord("out", e)
	if err != nil {
		t.Fatalf("ChildRecord wrote what the general encoder refuses (%v): %v", err, got.Headers)
	}
	if got.Topic != want.Topic || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) || (got.Value == nil) != (want.Value == nil) ||
		len(got.Headers) != len(want.Headers) {
		t.Fatalf("ChildRecord and the general encoder differ:\n%+v\n%+v", got, want)
	}
	for i, h := range got.Headers {
		if w := want.Headers[i]; h.Key != w.Key || !bytes.Equal(h.Value, w.Value) {
			t.Fatalf("header %d: ChildRecord %s=%q, general %s=%q", i, h.Key, h.Value, w.Key, w.Value)
		}
	}
	return got
}

func TestChildRecord(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ts, _ := trace.ParseTraceState("k=v")
	span := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts}))
	spanNoState := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))

	full := fullEvent(t)
	bare := New("/p", "t")
	odd := New("/p", "t")
	odd.SetExtension(ExtCorrelationID, 42) // not a string: its canonical form is carried
	for _, parent := range []event.Event{full, bare, odd, {}} {
		for _, o := range []Output{
			{Source: "/fnbox/d/f", Type: "butter.result", Subject: full.ID(), PartitionKey: "k", Data: []byte(`{"a":1}`), DataContentType: "application/json"},
			{Source: "/fnbox/d/f", Type: " butter.emit ", Subject: " s ", Data: []byte{}, DataContentType: " text/plain "},
			{Source: "/s", Type: "t", Trace: span},
			{Source: "/s", Type: "t", Trace: spanNoState, Data: []byte("x"), DataContentType: "application/octet-stream"},
			{Source: "/s", Type: "t", Trace: context.Background(), Subject: "subj"},
			{Source: "/s", Type: "t", Data: []byte("x"), DataContentType: "not a media type"},
			{Source: "/s", Type: " "},
			{Source: "http://[::1", Type: "t"},
			{Source: "", Type: "t"},
		} {
			checkChildRecord(t, parent, o)
		}
	}
}

// TestChildRecordFast checks that the platform's own results take the
// fast path.
func TestChildRecordFast(t *testing.T) {
	o := Output{Source: "/fnbox/d/f", Type: "butter.result", Subject: "s", PartitionKey: "k", Data: []byte(`{}`), DataContentType: "application/json"}
	parent := fullEvent(t)
	if _, ok := encodeChildFast("t", parent, o); !ok {
		t.Fatal("encodeChildFast declined a valid output")
	}
	r := checkChildRecord(t, parent, o)
	d := FromRecord(r)
	if d.Raw || d.Event.ID() == "" || Extension(d.Event, ExtCausationID) != parent.ID() || Extension(d.Event, ExtCorrelationID) != "root-1" {
		t.Fatalf("child record decodes to %v (%v)", d.Event, d.Invalid)
	}
	if time.Since(d.Event.Time()) > time.Minute {
		t.Fatalf("child time %v", d.Event.Time())
	}
}

package httprt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/proto/envelope"
)

// seen is what the sdk-go functions say they received, as their data.
type seen struct {
	ID, Source, Type, Subject, Time, DataSchema, DataContentType string
	Data                                                         []byte
	Extensions                                                   map[string]string
}

func seenOf(e event.Event) seen {
	s := seen{ID: e.ID(), Source: e.Source(), Type: e.Type(), Subject: e.Subject(), DataSchema: e.DataSchema(),
		DataContentType: e.DataContentType(), Data: e.Data(), Extensions: map[string]string{}}
	if !e.Time().IsZero() {
		s.Time = e.Time().UTC().Format(time.RFC3339Nano)
	}
	for k, v := range e.Extensions() {
		s.Extensions[k], _ = types.Format(v)
	}
	return s
}

// serveCloudEvents serves the functions written with CloudEvents sdk-go,
// and reports whether fn was one of them:
//
//	sdk-receiver  sdk-go's own client.StartReceiver; answers a CloudEvent
//	              (binary mode, as sdk-go does) of type com.example.reply
//	              whose data is what it received
//	sdk-batch     a handler reading the request with NewEventsFromHTTPRequest;
//	              answers the JSON list of what it received
//	structured    answers a CloudEvent in structured mode
//	invalid-ce    answers ce- headers that are not a valid CloudEvent
func serveCloudEvents(fn string) bool {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	switch fn {
	case "sdk-receiver":
		p, err := cehttp.New(cehttp.WithPort(port))
		if err != nil {
			fail(err)
		}
		c, err := cloudevents.NewClient(p)
		if err != nil {
			fail(err)
		}
		fail(c.StartReceiver(context.Background(), func(_ context.Context, in event.Event) (*event.Event, protocol.Result) {
			out := cloudevents.NewEvent()
			out.SetID("reply-to-" + in.ID())
			out.SetSource("/sdk-receiver")
			out.SetType("com.example.reply")
			out.SetSubject("about-" + in.ID())
			out.SetDataSchema("https://example.com/reply")
			out.SetExtension("tenant", in.Extensions()["tenant"])
			out.SetExtension("attempt", 2)
			out.SetExtension(envelope.ExtPartitionKey, "reply-key")
			// A function must not be able to forge the chain or the trace.
			out.SetExtension(envelope.ExtCausationID, "forged")
			if err := out.SetData(cloudevents.ApplicationJSON, seenOf(in)); err != nil {
				return nil, err
			}
			return &out, nil
		}))
	case "sdk-batch", "structured", "invalid-ce":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			switch fn {
			case "sdk-batch":
				evs, err := cehttp.NewEventsFromHTTPRequest(r)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				all := make([]seen, len(evs))
				for i, e := range evs {
					all[i] = seenOf(e)
				}
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(all)
			case "structured":
				w.Header().Set("Content-Type", "application/cloudevents+json; charset=utf-8")
				fmt.Fprint(w, `{"specversion":"1.0","id":"s-1","source":"/structured","type":"com.example.structured",`+
					`"subject":"sub","flavour":"plain","count":3,"datacontenttype":"text/plain","data":"hi there"}`)
			case "invalid-ce":
				w.Header().Set("Ce-Specversion", "1.0")
				w.Header().Set("Ce-Id", "x")
				w.Header().Set("Content-Type", "text/plain")
				fmt.Fprint(w, "no type, no source")
			}
		})
		fail(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
	default:
		return false
	}
	return true
}

// sample is an event with every attribute and an extension, where it sits.
func sample(id string, data string) envelope.Delivery {
	e := envelope.New("https://example.com/orders", "com.example.order")
	e.SetID(id)
	e.SetSubject("order-1")
	e.SetDataSchema("https://example.com/order")
	e.SetExtension("tenant", "acme")
	e.SetExtension(envelope.ExtCorrelationID, "root-1")
	if err := e.SetData("application/json", []byte(data)); err != nil {
		panic(err)
	}
	return envelope.Delivery{Event: e, Stream: "orders", Partition: 2, Offset: 40}
}

func invokeAll(t *testing.T, rt runtime.Runtime, fn string, ds ...envelope.Delivery) (runtime.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return rt.Invoke(ctx, runtime.Invocation{Function: fn, Events: ds, Deadline: time.Now().Add(15 * time.Second)}, runtimetest.NewTestHost(nil))
}

// wantSeen fails unless the function saw d's event with every attribute,
// plus where it sits as the extensions stream, partition and offset.
func wantSeen(t *testing.T, got seen, d envelope.Delivery) {
	t.Helper()
	want := seenOf(d.Event)
	want.Extensions["stream"] = d.Stream
	want.Extensions["partition"] = strconv.Itoa(int(d.Partition))
	want.Extensions["offset"] = strconv.FormatInt(d.Offset, 10)
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if string(wb) != string(gb) {
		t.Errorf("sdk-go received\n%s\nwant\n%s", gb, wb)
	}
}

// TestSDKReceiverFunction: a function that is sdk-go's own
// client.StartReceiver gets every attribute of the event, and the
// CloudEvent it answers is the result's event.
func TestSDKReceiverFunction(t *testing.T) {
	rt := start(t, "sdk-receiver")
	d := sample("e-1", `{"qty":2}`)
	res, err := invokeAll(t, rt, "sdk-receiver", d)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if res.Event == nil {
		t.Fatalf("result %q (%s) has no event", res.Data, res.ContentType)
	}
	var got seen
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatalf("result data %q: %v", res.Data, err)
	}
	wantSeen(t, got, d)
	e := res.Event
	if e.Type() != "com.example.reply" || e.Source() != "/sdk-receiver" || e.Subject() != "about-e-1" ||
		e.DataSchema() != "https://example.com/reply" || res.ContentType != "application/json" {
		t.Errorf("reply event %v, content type %q", e, res.ContentType)
	}
	exts := seenOf(*e).Extensions
	if exts["tenant"] != "acme" || exts["attempt"] != "2" || exts[envelope.ExtPartitionKey] != "reply-key" {
		t.Errorf("reply extensions %v", exts)
	}
}

// TestBatchForSDK: a batch is in the CloudEvents HTTP batch format that
// sdk-go's NewEventsFromHTTPRequest reads, every attribute intact.
func TestBatchForSDK(t *testing.T) {
	rt := start(t, "sdk-batch")
	ds := []envelope.Delivery{sample("b-1", `1`), sample("b-2", `"two"`), sample("b-3", `{"three":3}`)}
	for i := range ds {
		ds[i].Offset += int64(i)
	}
	text := envelope.New("/text", "com.example.text")
	text.SetID("b-4")
	if err := text.SetData("text/plain", []byte("plain text")); err != nil {
		t.Fatal(err)
	}
	bin := envelope.New("/bin", "com.example.bin")
	bin.SetID("b-5")
	if err := bin.SetData("application/octet-stream", []byte{0, 1, 0xff}); err != nil {
		t.Fatal(err)
	}
	ds = append(ds, envelope.Delivery{Event: text, Stream: "orders", Partition: 2, Offset: 43},
		envelope.Delivery{Event: bin, Stream: "orders", Partition: 2, Offset: 1 << 40})
	res, err := invokeAll(t, rt, "sdk-batch", ds...)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var got []seen
	if err := json.Unmarshal(res.Data, &got); err != nil || len(got) != len(ds) {
		t.Fatalf("result %q: %v; want %d events", res.Data, err, len(ds))
	}
	for i, d := range ds {
		wantSeen(t, got[i], d)
	}
}

// TestStructuredReply: a reply in structured mode is the result's event.
func TestStructuredReply(t *testing.T) {
	rt := start(t, "structured")
	res, err := invokeAll(t, rt, "structured", sample("e-1", `1`))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if res.Event == nil || res.Event.Type() != "com.example.structured" || res.Event.Subject() != "sub" {
		t.Fatalf("result event %v", res.Event)
	}
	if string(res.Data) != "hi there" || res.ContentType != "text/plain" {
		t.Errorf("data %q (%s), want hi there (text/plain)", res.Data, res.ContentType)
	}
	if exts := seenOf(*res.Event).Extensions; exts["flavour"] != "plain" || exts["count"] != "3" {
		t.Errorf("extensions %v", exts)
	}
}

// TestInvalidCloudEventReply: ce- headers that make no valid CloudEvent
// are a permanent failure saying so, not a plain body.
func TestInvalidCloudEventReply(t *testing.T) {
	rt := start(t, "invalid-ce")
	_, err := invokeAll(t, rt, "invalid-ce", sample("e-1", `1`))
	var fe *runtime.FunctionError
	if !errors.As(err, &fe) || !fe.Permanent || !strings.Contains(fe.Message, "CloudEvent") {
		t.Fatalf("error %v, want a permanent FunctionError about the CloudEvent", err)
	}
}

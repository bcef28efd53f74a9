package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
)

// ceHandler answers with what it saw of the request event, so the test
// can tell the event reached the function as the caller sent it.
const ceHandler = `exports.echo = async (event) => ({
  type: event.type, source: event.source, id: event.id, subject: event.subject,
  tenant: event.extensions.tenant, replyto: event.extensions.replyto, traceparent: event.extensions.traceparent, data: event.data,
});
`

const ceDescriptor = `name: ce
platform: node
functions:
  - fn: handler.js:echo
    bindings:
      route: { context: /ce, mode: cloudevents }
`

// TestCloudEventsRouteWithSDKClient: sdk-go's client.Request, in binary
// and structured mode, against a real gateway and a real node function on
// the embedded broker: the request event is the caller's CloudEvent, the
// answer is the function's result event.
func TestCloudEventsRouteWithSDKClient(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: this test runs a node function (.ci/run installs nodejs)")
	}
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "handler.js"), []byte(ceHandler), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(code, control.DescriptorFile), []byte(ceDescriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	c := testutil.NewCluster(t)
	c.Deploy("ce", ceDescriptor)

	logs := startFnbox(t, code, "echo", "ce-1", c)

	target := startGateway(t, c) + "/ce"
	kittest.Eventually(t, "fnbox ready", func() error {
		if !strings.Contains(logs.String(), control.ReadyMessage) {
			return fmt.Errorf("no %q yet", control.ReadyMessage)
		}
		return nil
	})

	cl, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(target))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		ctx  func(context.Context) context.Context
	}{{"binary", cloudevents.WithEncodingBinary}, {"structured", cloudevents.WithEncodingStructured}} {
		t.Run(mode.name, func(t *testing.T) {
			var n int
			var reply *event.Event
			kittest.Eventually(t, "client.Request answered", func() error {
				n++
				req := cloudevents.NewEvent()
				req.SetID(fmt.Sprintf("%s-%d", mode.name, n))
				req.SetSource("https://example.com/shop")
				req.SetType("com.example.order.placed")
				req.SetSubject("order-7")
				req.SetExtension("tenant", "acme")
				req.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				if err := req.SetData(cloudevents.ApplicationJSON, map[string]any{"sku": "a-1", "qty": 2}); err != nil {
					return err
				}
				rctx, rcancel := context.WithTimeout(mode.ctx(context.Background()), 20*time.Second)
				defer rcancel()
				ev, res := cl.Request(rctx, req)
				if !cloudevents.IsACK(res) {
					return fmt.Errorf("request: %v", res)
				}
				if ev == nil {
					return fmt.Errorf("no reply event (%v)", res)
				}
				reply = ev
				return nil
			})
			if reply.Type() != obs.TypeResult || reply.Source() != obs.Source("ce", "echo") || reply.ID() == "" {
				t.Fatalf("reply attributes: %s", reply)
			}
			if got, _ := reply.Extensions()["causationid"].(string); got != fmt.Sprintf("%s-%d", mode.name, n) {
				t.Errorf("reply causationid %q, want the request's id", got)
			}
			var seen struct {
				Type, Source, ID, Subject, Tenant, Replyto, Traceparent string
				Data                                                    struct {
					SKU string
					Qty int
				}
			}
			if err := json.Unmarshal(reply.Data(), &seen); err != nil {
				t.Fatalf("reply data %s: %v", reply.Data(), err)
			}
			if seen.Type != "com.example.order.placed" || seen.Source != "https://example.com/shop" || seen.Subject != "order-7" ||
				seen.Tenant != "acme" || seen.Replyto == "" || seen.Data.SKU != "a-1" || seen.Data.Qty != 2 {
				t.Fatalf("the function saw %s", reply.Data())
			}
			// The gateway's span (and so the event's traceparent) continues
			// the caller's trace in binary mode, where it is a header.
			if mode.name == "binary" && !strings.HasPrefix(seen.Traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
				t.Errorf("request event traceparent %q, want the caller's trace", seen.Traceparent)
			}
		})
	}

	// A plain HTTP request is no CloudEvent: 400 with a problem body.
	res, err := http.Post(target, "application/json", strings.NewReader(`{"sku":"a-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") ||
		!strings.Contains(string(b), "not a CloudEvent") {
		t.Fatalf("plain request: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
}

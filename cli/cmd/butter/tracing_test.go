package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/tracer/api"
)

// collector is an OTLP/HTTP trace receiver: it keeps every span posted to
// /v1/traces, with the service.name of its resource.
type collector struct {
	mu    sync.Mutex
	spans map[string]otlpSpan // by span id (hex)
}

type otlpSpan struct {
	service, name, trace, parent string
}

func newCollector(t *testing.T) (*collector, string) {
	c := &collector{spans: map[string]otlpSpan{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if r.URL.Path != "/v1/traces" || err != nil {
			http.Error(w, fmt.Sprintf("%s: %v", r.URL.Path, err), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					c.spans[fmt.Sprintf("%x", s.SpanId)] = otlpSpan{service: service, name: s.Name,
						trace: fmt.Sprintf("%x", s.TraceId), parent: fmt.Sprintf("%x", s.ParentSpanId)}
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// ancestors returns the services and names of span id's ancestors, the
// nearest first, up to a parent the collector does not hold.
func (c *collector) ancestors(id string) []otlpSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []otlpSpan
	for s, ok := c.spans[id]; ok; s, ok = c.spans[s.parent] {
		out = append(out, s)
	}
	return out
}

// find returns the id of the span of trace with name, "" if none.
func (c *collector) find(trace, service, name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.spans {
		if s.trace == trace && s.service == service && s.name == name {
			return id
		}
	}
	return ""
}

// TestTraceAcrossServices: a request with a traceparent to a route whose
// function emits to a stream read by a second function makes one trace:
// the gateway's span under the caller's, the first function's invoke under
// the gateway's, the second's under the receive (fetch) span of its event,
// itself under the first's — and every span reaches
// the OTLP/HTTP collector at OTEL_EXPORTER_OTLP_ENDPOINT.
func TestTraceAcrossServices(t *testing.T) {
	t.Parallel()
	c, url := newCollector(t)
	tracer := freeAddr(t)
	p := startPlatformEnv(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + url, "OTEL_BSP_SCHEDULE_DELAY=100"}, "--tracer-addr", tracer)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), `name: chain
platform: node
functions:
  - fn: handler.js:front
    name: front
    bindings:
      route: { context: /chain, methods: [POST] }
      emits: [chain-mid]
  - fn: handler.js:back
    name: back
    bindings:
      streams: [{ name: chain-mid, offset: first }]
      out: chain-out
`)
	writeFile(t, filepath.Join(dir, "handler.js"), `exports.front = async (event, context) => {
  await context.emit("chain-mid", { from: "front" });
  return { ok: true };
};
exports.back = async (event) => ({ seen: event.data });
`)
	p.deployerCmd("deploy", dir)

	const trace, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	kittest.Eventually(t, "the route answers", func() error {
		req, _ := http.NewRequest("POST", "http://"+p.gateway+"/chain", strings.NewReader(`{}`))
		req.Header.Set("traceparent", "00-"+trace+"-"+caller+"-01")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /chain = %d", res.StatusCode)
		}
		return nil
	})

	// back descends from front, front from the gateway, the gateway from
	// the caller.
	var path []string
	kittest.Eventually(t, "invoke back ← invoke front ← gateway ← the caller at the collector", func() error {
		back := c.find(trace, "fnbox", "invoke back")
		if back == "" {
			return fmt.Errorf("no invoke back span in trace %s", trace)
		}
		chain := c.ancestors(back)
		path = path[:0]
		sawFront := false
		for _, s := range chain {
			path = append(path, s.service+": "+s.name)
			sawFront = sawFront || (s.service == "fnbox" && s.name == "invoke front")
		}
		if top := chain[len(chain)-1]; !sawFront || top.service != "gateway" || top.parent != caller {
			return fmt.Errorf("ancestry of invoke back: %s; the top span's parent %s", strings.Join(path, " ← "), top.parent)
		}
		return nil
	})
	t.Logf("trace %s: %s", trace, strings.Join(path, " ← "))
	// fnbox's fetch span: invoke back's parent is the receive of its
	// event from chain-mid, itself a child of the span that wrote it.
	kittest.Eventually(t, "invoke back under receive chain-mid", func() error {
		back, receive := c.find(trace, "fnbox", "invoke back"), c.find(trace, "fnbox", "receive chain-mid")
		if back == "" || receive == "" {
			return fmt.Errorf("invoke back %q, receive chain-mid %q", back, receive)
		}
		if got := c.ancestors(back); len(got) < 2 || got[0].parent != receive {
			return fmt.Errorf("invoke back's parent is %q, want receive chain-mid %s", got[0].parent, receive)
		}
		if got := c.ancestors(receive); len(got) < 2 || got[1].service != "fnbox" || !strings.HasSuffix(got[1].name, " front") {
			return fmt.Errorf("receive chain-mid's parent is not a span of front in fnbox: %v", got)
		}
		return nil
	})
	// Writing front's reply is a produce span under its invoke.
	kittest.Eventually(t, "produce front under invoke front", func() error {
		front, produce := c.find(trace, "fnbox", "invoke front"), c.find(trace, "fnbox", "produce front")
		if front == "" || produce == "" {
			return fmt.Errorf("invoke front %q, produce front %q", front, produce)
		}
		if got := c.ancestors(produce); len(got) < 2 || got[0].parent != front {
			return fmt.Errorf("produce front's parent is %q, want invoke front %s", got[0].parent, front)
		}
		return nil
	})

	// The tracer, fed through _butter.traces, has the same chain.
	kittest.Eventually(t, "the tracer's trace has invoke back ← invoke front ← gateway", func() error {
		resp, err := http.Get("http://" + tracer + "/v1/traces/" + trace)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var tr api.Trace
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			return fmt.Errorf("GET /v1/traces/%s = %d: %v", trace, resp.StatusCode, err)
		}
		spans := map[string]api.Span{}
		for _, s := range tr.Spans {
			spans[s.SpanID] = s
		}
		for _, s := range tr.Spans {
			if s.Service != "fnbox" || s.Name != "invoke back" {
				continue
			}
			var names []string
			for a, ok := s, true; ok; a, ok = spans[a.ParentSpanID] {
				names = append(names, a.Service+": "+a.Name)
				if a.Service == "gateway" && a.ParentSpanID == caller && slices.Contains(names, "fnbox: invoke front") {
					return nil
				}
			}
			return fmt.Errorf("tracer ancestry of invoke back: %s", strings.Join(names, " ← "))
		}
		return fmt.Errorf("no invoke back span among %d", len(tr.Spans))
	})
}

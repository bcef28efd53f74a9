package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/tracer/api"
)

// TestTracerUnderUp deploys examples/http-hello on butter up, calls it
// with a traceparent, and finds the request's trace (gateway and fnbox
// spans, fnbox's under the gateway's), the deployment's platform events
// and its running function in the tracer butter up runs, through the API
// and the butter trace and events commands.
func TestTracerUnderUp(t *testing.T) {
	tracer := freeAddr(t)
	p := startPlatform(t, "--tracer-addr", tracer)
	base := "http://" + tracer
	p.deployerCmd("deploy", filepath.Join("..", "..", "..", "examples", "http-hello"))

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	kittest.Eventually(t, "POST /hello answered", func() error {
		req, _ := http.NewRequest("POST", "http://"+p.gateway+"/hello", strings.NewReader(`{"name":"ada"}`))
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("POST /hello = %d %s", resp.StatusCode, b)
		}
		return nil
	})

	getJSON := func(path string, v any) error {
		resp, err := http.Get(base + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s = %d %s", path, resp.StatusCode, b)
		}
		return json.Unmarshal(b, v)
	}
	kittest.Eventually(t, "the tracer has the request's gateway and fnbox spans", func() error {
		var tr api.Trace
		if err := getJSON("/v1/traces/"+traceID, &tr); err != nil {
			return err
		}
		bySpan := map[string]api.Span{}
		for _, s := range tr.Spans {
			bySpan[s.SpanID] = s
		}
		for _, s := range tr.Spans {
			if s.Service == "fnbox" && s.Deployment == "hello" && bySpan[s.ParentSpanID].Service == "gateway" {
				return nil
			}
		}
		return fmt.Errorf("no fnbox span of hello under a gateway span in %+v", tr.Spans)
	})
	out := p.must("", "trace", traceID, "--tracer", base).stdout
	if !strings.Contains(out, "[gateway]") || !strings.Contains(out, "[fnbox]  hello/hello") {
		t.Errorf("butter trace printed:\n%s", out)
	}

	kittest.Eventually(t, "butter events shows the deployment", func() error {
		out := p.must("", "events", "--resource", "deployment/hello", "--tracer", base).stdout
		if !strings.Contains(out, "deployment.create.completed") {
			return fmt.Errorf("butter events printed:\n%s", out)
		}
		return nil
	})
	kittest.Eventually(t, "the overview shows hello running", func() error {
		var ov api.Overview
		if err := getJSON("/v1/overview", &ov); err != nil {
			return err
		}
		if len(ov.Deployments) != 1 || ov.Deployments[0].Name != "hello" || len(ov.Deployments[0].Functions) != 1 ||
			ov.Deployments[0].Functions[0].Replicas != 1 {
			return fmt.Errorf("overview = %+v", ov)
		}
		return nil
	})
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/tracer/api"
)

// TestLineageAndFailures: on butter up, the lineage of an event published
// to the first stream of a two-function pipeline lists the first
// function's result and the second's; a function that throws shows why,
// and that the event was dead-lettered, in butter logs and the tracer.
func TestLineageAndFailures(t *testing.T) {
	t.Parallel()
	tracer := freeAddr(t)
	p := startPlatform(t, "--tracer-addr", tracer)
	get := func(path string, v any) error {
		resp, err := http.Get("http://" + tracer + path)
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
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), `name: pipe
platform: node
functions:
  - fn: handler.js:first
    name: first
    bindings:
      streams: [{ name: pipe-in, offset: first }]
      out: pipe-mid
  - fn: handler.js:second
    name: second
    bindings:
      streams: [{ name: pipe-mid, offset: first }]
      out: pipe-out
  - fn: handler.js:boom
    name: boom
    bindings:
      streams: [{ name: pipe-bad, offset: first }]
    delivery: { retries: 1, backoff: 10ms }
`)
	writeFile(t, filepath.Join(dir, "handler.js"), `exports.first = (event) => ({ step: 1, in: event.data });
exports.second = (event) => ({ step: 2, in: event.data });
exports.boom = () => { throw new Error("boom: cannot handle this input"); };
`)
	p.deployerCmd("deploy", dir)

	id := published(t, p.must("", "publish", "pipe-in", `{"n": 1}`).stdout)
	kittest.Eventually(t, "the lineage lists both functions' results", func() error {
		var l api.Lineage
		if err := get("/v1/lineage?stream=pipe-in&id="+url.QueryEscape(id), &l); err != nil {
			return err
		}
		byStream := map[string]api.Event{}
		for _, d := range l.Descendants {
			byStream[d.Stream] = d
		}
		mid, end := byStream["pipe-mid"], byStream["pipe-out"]
		if l.Event.ID != id || mid.CausationID != id || mid.Function != "pipe/first" ||
			end.CausationID != mid.ID || end.Function != "pipe/second" {
			return fmt.Errorf("lineage of %s: event %+v, descendants %+v", id, l.Event, l.Descendants)
		}
		return nil
	})

	bad := published(t, p.must("", "publish", "pipe-bad", `{"n": 2}`).stdout)
	kittest.Eventually(t, "butter logs says, through the tracer, why the event failed and that it was dead-lettered", func() error {
		r := p.must("", "logs", "pipe/boom", "--data", p.data) // the context names its tracer and deployer
		if !strings.Contains(r.stdout, "boom: cannot handle this input") || !strings.Contains(r.stdout, "dead-lettered to") ||
			!strings.Contains(r.stdout, "event="+bad) {
			return fmt.Errorf("butter logs printed:\n%s", r.stdout)
		}
		if strings.Contains(r.stderr, "from Kafka") {
			t.Errorf("butter logs on butter up did not ask its tracer: %s", r.stderr)
		}
		return nil
	})
	kittest.Eventually(t, "the tracer's logs have the dead letter, with the event", func() error {
		var page api.Page[api.Log]
		if err := get("/v1/logs?deployment=pipe&function=boom&level=error", &page); err != nil {
			return err
		}
		for _, l := range page.Items {
			if l.EventID == bad && strings.Contains(l.Message, "dead-lettered to") && strings.Contains(l.Message, "boom: cannot handle this input") {
				return nil
			}
		}
		return fmt.Errorf("no dead-letter line for %s in %+v", bad, page.Items)
	})
}

// published returns the event id of butter publish's "published ID to
// STREAM".
func published(t *testing.T, out string) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "published" {
		t.Fatalf("butter publish printed %q", out)
	}
	return f[1]
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestGatewayAndTimerEndToEnd runs butter up and deploys the two examples
// that events reach without a stream binding: examples/http-hello (Node,
// behind the gateway) answers an HTTP request with the status, headers and
// body it returned, and examples/tick (Python, on the timer; its schedule
// shortened to every second) receives ticks with distinct deterministic
// ids.
func TestGatewayAndTimerEndToEnd(t *testing.T) {
	p := startPlatform(t)
	b := p.must
	deploy := func(dir string) { p.deployerCmd("deploy", dir) }

	tick := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "..", "examples", "tick"), tick)
	desc, err := os.ReadFile(filepath.Join(tick, "butter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fast := strings.Replace(string(desc), `"@every 5s"`, `"@every 1s"`, 1)
	if fast == string(desc) {
		t.Fatalf("examples/tick/butter.yaml has no \"@every 5s\" schedule to shorten:\n%s", desc)
	}
	writeFile(t, filepath.Join(tick, "butter.yaml"), fast)
	deploy(filepath.Join("..", "..", "..", "examples", "http-hello"))
	deploy(tick)

	// The gateway learns routes from _butter.deployments: poll until the
	// route is live, then check one answer whole.
	var resp *http.Response
	var body []byte
	kittest.Eventually(t, "POST /hello answered", func() error {
		r, err := http.Post("http://"+p.gateway+"/hello", "application/json", strings.NewReader(`{"name":"x"}`))
		if err != nil {
			return err
		}
		defer r.Body.Close()
		resp, body = r, must(io.ReadAll(r.Body))
		if r.StatusCode == http.StatusNotFound {
			return fmt.Errorf("route not live yet: %s", body)
		}
		return nil
	})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("POST /hello: %d %s %s", resp.StatusCode, resp.Header, body)
	}
	var hello struct{ Greeting string }
	if err := json.Unmarshal(body, &hello); err != nil || !strings.Contains(hello.Greeting, "x") {
		t.Fatalf("POST /hello answered %s, want a greeting for x", body)
	}

	// Ticks: distinct ids of the form <schedule-id>@<scheduled unix ms>,
	// and the function's log line for each.
	ids := map[string]bool{}
	for _, e := range tailJSON(t, b, "tick-tick-ticks", 3) {
		if e.Event.Type != "butter.timer.tick" || !strings.Contains(e.Event.ID, "@") || ids[e.Event.ID] {
			t.Fatalf("tick %+v: want a butter.timer.tick with a new <schedule>@<ms> id (seen %v)", e, ids)
		}
		ids[e.Event.ID] = true
	}
	if !pollLogs(t, b, "tick", "due") {
		t.Fatal("no log line of the tick function")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

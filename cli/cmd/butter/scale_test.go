package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// fnStatus is one function of `butter get -o json`.
type fnStatus struct {
	Name    string `json:"name"`
	Desired int    `json:"desired"`
	Running int    `json:"running"`
	Lag     *int64 `json:"lag"`
	Scaled  *struct {
		To     int    `json:"to"`
		Reason string `json:"reason"`
	} `json:"scaled"`
}

func getFunctions(t *testing.T, p *platform, name string) map[string]fnStatus {
	t.Helper()
	r := p.deployerCmd("get", name, "-o", "json")
	var st struct {
		Functions []fnStatus `json:"functions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("butter get %s: %v in %s", name, err, r.stdout)
	}
	out := map[string]fnStatus{}
	for _, f := range st.Functions {
		out[f.Name] = f
	}
	return out
}

// TestScaleToZeroAndWake runs butter up (loadmon included) and deploys two
// functions with scale {min: 0}: none runs until there is work. An event
// published while the stream function sleeps wakes it and is handled; an
// HTTP request to the sleeping route function wakes it and is answered
// within the route's deadline. After idleAfter both go back to zero.
// butter get shows desired, running and lag throughout. The wake times are
// logged (measured, not asserted: `make bench` is for speed).
func TestScaleToZeroAndWake(t *testing.T) {
	p := startPlatform(t, "--loadmon-interval", "250ms", "--loadmon-cooldown", "1s")
	b := p.must
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), `name: sleepy
platform: node
functions:
  - fn: handler.js:work
    name: work
    bindings:
      streams: [jobs]
      out: done
    scale: { min: 0, max: 2, idleAfter: 3s }
  - fn: handler.js:web
    name: web
    bindings:
      route: { context: /sleepy, timeout: 20s }
    scale: { min: 0, max: 2, idleAfter: 3s }
`)
	writeFile(t, filepath.Join(dir, "handler.js"), `
exports.work = (event) => ({ done: event.data.n });
exports.web = () => ({ status: 200, body: { awake: true } });
`)
	b("", "stream", "create", "jobs", "--partitions", "2")
	b("", "stream", "create", "done", "--partitions", "1")
	p.deployerCmd("deploy", dir)
	st := getFunctions(t, p, "sleepy")
	if st["work"].Desired != 0 || st["work"].Running != 0 || st["web"].Desired != 0 {
		t.Fatalf("after deploy: %+v, want both functions at 0", st)
	}

	// Published while asleep: "latest" was pinned at deploy, so the event
	// is lag, wakes the function and is handled.
	start := time.Now()
	b(`{"n": 1}`+"\n", "publish", "jobs", "-")
	res := tailJSON(t, b, "done", 1)
	t.Logf("wake from zero (stream): publish → result on done in %s", time.Since(start))
	if string(res[0].Event.Data) != `{"done":1}` {
		t.Fatalf("result %s", res[0].Event.Data)
	}
	st = getFunctions(t, p, "sleepy")
	if w := st["work"]; w.Scaled == nil || w.Scaled.Reason != "wake" || w.Lag == nil {
		t.Errorf("butter get after the wake: %+v, want the wake decision and the lag", w)
	}

	// A request to the sleeping route: the request event is lag that wakes
	// the function, which answers within the route's timeout.
	var body []byte
	var took time.Duration
	kittest.Eventually(t, "GET /sleepy answered", func() error {
		t0 := time.Now()
		r, err := http.Get("http://" + p.gateway + "/sleepy")
		if err != nil {
			return err
		}
		defer r.Body.Close()
		body, _ = io.ReadAll(r.Body)
		if r.StatusCode == http.StatusNotFound {
			return fmt.Errorf("route not live yet: %s", body)
		}
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET /sleepy: %d %s", r.StatusCode, body)
		}
		took = time.Since(t0)
		return nil
	})
	t.Logf("wake from zero (route): request → answer in %s", took)
	if !strings.Contains(string(body), `"awake":true`) {
		t.Fatalf("GET /sleepy answered %s", body)
	}

	// Idle for idleAfter: both back to zero, no instance left.
	kittest.Eventually(t, "back to zero", func() error {
		st := getFunctions(t, p, "sleepy")
		for _, f := range st {
			if f.Desired != 0 || f.Running != 0 || f.Scaled == nil || f.Scaled.To != 0 {
				return fmt.Errorf("%+v", st)
			}
		}
		return nil
	})
	if out := p.deployerCmd("get", "sleepy").stdout; !strings.Contains(out, "lag: 0") || !strings.Contains(out, "desired: 0") {
		t.Errorf("butter get (yaml) shows no lag or desired:\n%s", out)
	}
}

// TestBacklogScalesZeroToFourToZero: a backlog on a 4-partition stream
// for a function with scale {min: 0, max: 4} wakes it to 4 instances (the
// partition cap), every event is handled, and the function goes back to 0
// after idleAfter. The time from the backlog to the second instance
// running is logged.
func TestBacklogScalesZeroToFourToZero(t *testing.T) {
	p := startPlatform(t, "--loadmon-interval", "250ms", "--loadmon-cooldown", "1s")
	b := p.must
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), `name: busy
platform: node
functions:
  - fn: handler.js:work
    name: work
    bindings:
      streams: [backlog]
      out: worked
    scale: { min: 0, max: 4, lagPerReplica: 100, idleAfter: 2s }
`)
	writeFile(t, filepath.Join(dir, "handler.js"), `
exports.work = (event) => {
  const until = Date.now() + 5;
  while (Date.now() < until) {}
  return { n: event.data.n };
};
`)
	b("", "stream", "create", "backlog", "--partitions", "4")
	b("", "stream", "create", "worked", "--partitions", "1")
	p.deployerCmd("deploy", dir)
	const n = 2000
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "{\"n\":%d}\n", i)
	}
	start := time.Now()
	b(lines.String(), "publish", "backlog", "-")
	published := time.Now()
	peak := 0
	kittest.Eventually(t, "second instance running", func() error {
		w := getFunctions(t, p, "busy")["work"]
		peak = max(peak, w.Desired)
		if w.Running < 2 {
			return fmt.Errorf("%+v", w)
		}
		return nil
	})
	t.Logf("backlog of %d → second instance running in %s (%s after the publish command returned)", n, time.Since(start), time.Since(published))
	kittest.Eventually(t, "four instances decided", func() error {
		w := getFunctions(t, p, "busy")["work"]
		peak = max(peak, w.Desired)
		if peak < 4 {
			return fmt.Errorf("%+v", w)
		}
		return nil
	})
	tailJSON(t, b, "worked", n)
	t.Logf("backlog of %d handled in %s", n, time.Since(start))
	kittest.Eventually(t, "back to zero", func() error {
		w := getFunctions(t, p, "busy")["work"]
		if w.Desired != 0 || w.Running != 0 || w.Lag == nil || *w.Lag != 0 {
			return fmt.Errorf("%+v", w)
		}
		return nil
	})
	if peak != 4 {
		t.Fatalf("peak desired %d, want 4 (the partition count)", peak)
	}
}

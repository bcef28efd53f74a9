package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestDeployPythonEndToEnd runs butter up, deploys a Python function that
// reads a one-partition stream from the first event, and counts its
// results: every input has exactly one result whose causationid is the
// input's id. A replay from offset 400 then reprocesses exactly the last
// 600 events.
func TestDeployPythonEndToEnd(t *testing.T) {
	p := startPlatform(t)
	b, d := p.must, p.deployerCmd

	dir := t.TempDir()
	single := `name: count
platform: python
functions:
  - fn: handler.py:handle
    bindings:
      streams: [{ name: numbers, offset: first }]
      out: counted
`
	writeFile(t, filepath.Join(dir, "handler.py"), `
def handle(event, context):
    if event["data"]["n"] == 7:
        context.log("seven seen")
    return {"n": event["data"]["n"], "offset": event["offset"]}
`)
	b("", "stream", "create", "numbers", "--partitions", "1")
	// One partition each: results in input order.
	for _, s := range []string{"counted", "counted-400", "counted-time"} {
		b("", "stream", "create", s, "--partitions", "1")
	}
	const n, half = 1000, 500
	publish := func(from, to int) {
		var lines strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&lines, "{\"n\":%d}\n", i)
		}
		b(lines.String(), "publish", "numbers", "-")
	}
	// The second half is written after since: a function starting at that
	// time sees exactly it. Kafka timestamps are milliseconds, hence the
	// pauses on both sides.
	publish(0, half)
	time.Sleep(5 * time.Millisecond)
	since := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	publish(half, n)
	// Three functions on the same stream, each its own consumer group
	// starting where its offset says: first, 400, a time.
	writeFile(t, filepath.Join(dir, "butter.yaml"), single+`  - fn: handler.py:handle
    name: from-400
    bindings:
      streams: [{ name: numbers, offset: 400 }]
      out: counted-400
  - fn: handler.py:handle
    name: from-time
    bindings:
      streams: [{ name: numbers, offset: "`+since.Format(time.RFC3339Nano)+`" }]
      out: counted-time
`)
	if r := d("deploy", dir); !strings.Contains(r.stdout, "count is running") {
		t.Fatalf("deploy: %s", r.stdout)
	}
	// Every running instance says where its /metrics is, from its
	// heartbeats, and serves them there.
	kittest.Eventually(t, "butter get -o json shows each instance's admin address", func() error {
		var st struct {
			Instances []struct {
				ID, State, Admin string
			} `json:"instances"`
		}
		if err := json.Unmarshal([]byte(d("get", "count", "-o", "json").stdout), &st); err != nil {
			return err
		}
		running := 0
		for _, in := range st.Instances {
			if in.State != "running" {
				continue
			}
			running++
			if in.Admin == "" {
				return fmt.Errorf("instance %s has no admin address yet", in.ID)
			}
			res, err := http.Get("http://" + in.Admin + "/metrics")
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s/metrics: %d", in.Admin, res.StatusCode)
			}
		}
		if running == 0 {
			return fmt.Errorf("no running instance in %+v", st)
		}
		return nil
	})

	inputs := tailJSON(t, b, "numbers", n)
	results := tailJSON(t, b, "counted", n)
	byCause := map[string]int{}
	for _, r := range results {
		byCause[r.Event.Causationid]++
	}
	for _, in := range inputs {
		if byCause[in.Event.ID] != 1 {
			t.Fatalf("input %s has %d results, want 1", in.Event.ID, byCause[in.Event.ID])
		}
	}
	// A stream's events are all there before its function starts, so the
	// first result says where it started and the count says it read on.
	for _, c := range []struct {
		out   string
		first int
	}{{"counted-400", 400}, {"counted-time", half}} {
		got := tailJSON(t, b, c.out, n-c.first)
		for i, r := range got {
			var data struct{ N int }
			json.Unmarshal(r.Event.Data, &data)
			if data.N != c.first+i || r.Event.Causationid != inputs[c.first+i].Event.ID {
				t.Fatalf("%s: result %d is for n=%d (caused by %s), want n=%d", c.out, i, data.N, r.Event.Causationid, c.first+i)
			}
		}
		if events := streamEvents(t, b, c.out); events != n-c.first {
			t.Fatalf("%s holds %d results, want exactly %d", c.out, events, n-c.first)
		}
	}

	if r := d("replay", "count/handle", "--stream", "numbers", "--from", "400"); !strings.Contains(r.stdout, "reset butter.count.handle on numbers") {
		t.Fatalf("replay: %s", r.stdout)
	}
	again := tailJSON(t, b, "counted", n+600)[n:]
	for i, r := range again {
		var data struct{ N int }
		json.Unmarshal(r.Event.Data, &data)
		if data.N != 400+i {
			t.Fatalf("replayed result %d is for n=%d, want %d", i, data.N, 400+i)
		}
	}
	if !pollLogs(t, b, "count/handle", "seven seen") {
		t.Fatal("butter logs never showed the function's context.log line")
	}
	d("rm", "count")

	// A syntax error in the code is reported by deploy, not crash-looped.
	writeFile(t, filepath.Join(dir, "butter.yaml"), single)
	writeFile(t, filepath.Join(dir, "handler.py"), "def handle(event, context)\n    return 1\n")
	r := p.run(time.Minute, "", "deploy", dir, "--deployer", "http://"+p.deployer, "--timeout", "60s")
	if r.code == 0 || !strings.Contains(r.stderr, "cannot start") || !strings.Contains(r.stderr, "handler.py") {
		t.Fatalf("deploy of broken code: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var st struct {
		Functions []struct {
			Restarts int  `json:"restarts"`
			Broken   bool `json:"broken"`
		} `json:"functions"`
	}
	json.Unmarshal([]byte(d("get", "count", "-o", "json").stdout), &st)
	if len(st.Functions) != 1 || !st.Functions[0].Broken || st.Functions[0].Restarts != 1 {
		t.Fatalf("status of a deployment whose code does not load: %+v", st)
	}
}

// streamEvents returns the EVENTS column of butter stream ls for stream.
func streamEvents(t *testing.T, b func(string, ...string) result, stream string) int {
	t.Helper()
	for _, line := range strings.Split(b("", "stream", "ls").stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == stream {
			n, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("stream ls line %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("stream ls lists no %s", stream)
	return 0
}

// pollLogs runs butter logs until a line contains want: logs are written
// asynchronously, after the result.
func pollLogs(t *testing.T, b func(string, ...string) result, target, want string) bool {
	t.Helper()
	kittest.Eventually(t, "butter logs "+target+" shows "+want, func() error {
		if out := b("", "logs", target).stdout; !strings.Contains(out, want) {
			return fmt.Errorf("no %q in:\n%s", want, out)
		}
		return nil
	})
	return true
}

// TestFnTest runs a function locally with nothing else running.
func TestFnTest(t *testing.T) {
	r := butter(t, `{"total": 10}`, "fn", "test", "../../../examples/enrich", "--event", "-")
	if r.code != 0 || !strings.Contains(r.stdout, `result (application/json): {"order":{"total":10},"totalWithTax":12.0}`) ||
		!strings.Contains(r.stdout, "log INFO: enriching order") {
		t.Fatalf("fn test: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), "name: boom\nplatform: node\nfunctions:\n  - fn: h.js:boom\n    bindings: { streams: [x] }\n")
	writeFile(t, filepath.Join(dir, "h.js"), "exports.boom = () => { throw new Error('no luck'); };\n")
	if r := butter(t, "{}", "fn", "test", dir, "--event", "-"); r.code == 0 || !strings.Contains(r.stderr, "no luck") {
		t.Fatalf("fn test of a throwing function: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, filepath.Join(dir, "h.js"), "exports.boom = ( => 1;\n")
	if r := butter(t, "{}", "fn", "test", dir, "--event", "-"); r.code == 0 || !strings.Contains(r.stderr, "h.js") {
		t.Fatalf("fn test of a function with a syntax error: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestFnTestGo runs a go function locally: butter fn test builds it as
// the deployer would, in a copy, leaving the example's directory as it was.
func TestFnTestGo(t *testing.T) {
	ex := filepath.Join("..", "..", "..", "examples", "go-greet")
	r := runButter(t, slowDeploy, `{"name":"gopher"}`, "fn", "test", ex, "--event", "-")
	if r.code != 0 || !strings.Contains(r.stdout, `result (application/json): {"greeting":"hello, gopher, from Go"}`) {
		t.Fatalf("fn test of go-greet: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(ex, ".butter")); !os.IsNotExist(err) {
		t.Errorf("fn test left build output in %s: %v", ex, err)
	}
}

type tailEvent struct {
	Offset int64 `json:"offset"`
	Event  struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		Causationid string          `json:"causationid"`
		Data        json.RawMessage `json:"data"`
	} `json:"event"`
}

// tailJSON reads count events of a stream from the first; tail waits for
// them, so this also waits for the function to produce them.
func tailJSON(t *testing.T, b func(string, ...string) result, stream string, count int) []tailEvent {
	t.Helper()
	r := b("", "stream", "tail", stream, "--from", "first", "-n", fmt.Sprint(count), "-o", "json")
	var out []tailEvent
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e tailEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tail %s: %v in %q", stream, err, line)
		}
		out = append(out, e)
	}
	if len(out) != count {
		t.Fatalf("tail %s: %d events, want %d", stream, len(out), count)
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployPythonEndToEnd runs butter up, deploys a Python function that
// reads a one-partition stream from the first event, and counts its
// results: every input has exactly one result whose causationid is the
// input's id. A replay from offset 400 then reprocesses exactly the last
// 600 events.
func TestDeployPythonEndToEnd(t *testing.T) {
	addr, deployerAddr := freeAddr(t), freeAddr(t)
	startButter(t, "Ctrl-C stops", "up", "--data", t.TempDir(), "--broker-addr", addr,
		"--admin-addr", "", "--deployer-addr", deployerAddr)
	b := func(stdin string, args ...string) result {
		t.Helper()
		r := butter(t, stdin, append(args, "--brokers", addr)...)
		if r.code != 0 {
			t.Fatalf("butter %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}
	d := func(args ...string) result {
		return b("", append(args, "--deployer", "http://"+deployerAddr)...)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), `name: count
platform: python
functions:
  - fn: handler.py:handle
    bindings:
      streams: [{ name: numbers, offset: first }]
      out: counted
`)
	writeFile(t, filepath.Join(dir, "handler.py"), `
def handle(event, context):
    return {"n": event["data"]["n"], "offset": event["offset"]}
`)
	b("", "stream", "create", "numbers", "--partitions", "1")
	b("", "stream", "create", "counted", "--partitions", "1") // one partition: results in input order
	var lines strings.Builder
	const n = 1000
	for i := range n {
		fmt.Fprintf(&lines, "{\"n\":%d}\n", i)
	}
	b(lines.String(), "publish", "numbers", "-")
	if r := d("deploy", dir); !strings.Contains(r.stdout, "count is running") {
		t.Fatalf("deploy: %s", r.stdout)
	}

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

	if r := d("replay", "count", "--stream", "numbers", "--from", "400"); !strings.Contains(r.stdout, "reset butter.count.handle on numbers") {
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
	d("rm", "count")
}

type tailEvent struct {
	Offset int64 `json:"offset"`
	Event  struct {
		ID          string          `json:"id"`
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

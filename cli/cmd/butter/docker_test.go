package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestUpRuntimeDocker: `butter up --runtime docker` runs a python
// deployment in a container that `docker ps --filter label=...` shows,
// reaching the embedded broker through its container listener; after
// `docker kill` the container is replaced and every event has its result.
// It needs docker and builds the images (cached by tag).
func TestUpRuntimeDocker(t *testing.T) {
	build := exec.Command("../../../deploy/images/build.sh", "python")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build images (docker needed): %v", err)
	}
	const name = "dockercount"
	ps := func() []string {
		out, err := exec.Command("docker", "ps", "-q", "--filter", "label=butter.deployment="+name).Output()
		if err != nil {
			t.Fatalf("docker ps: %v", err)
		}
		return strings.Fields(string(out))
	}
	t.Cleanup(func() { // whatever a failure left
		for _, id := range ps() {
			_ = exec.Command("docker", "rm", "-f", id).Run()
		}
	})
	p := startPlatform(t, "--runtime", "docker")
	b, d := p.must, p.deployerCmd
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "butter.yaml"), `name: `+name+`
platform: python
functions:
  - fn: handler.py:handle
    bindings:
      streams: [{ name: dnumbers, offset: first }]
      out: dcounted
`)
	writeFile(t, filepath.Join(dir, "handler.py"), "def handle(event, context):\n    return {\"n\": event[\"data\"][\"n\"]}\n")
	b("", "stream", "create", "dnumbers", "--partitions", "2")
	b("", "stream", "create", "dcounted", "--partitions", "1")
	publish := func(from, to int) {
		var lines strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&lines, "{\"n\":%d}\n", i)
		}
		b(lines.String(), "publish", "dnumbers", "-")
	}
	publish(0, 100)
	if r := d("deploy", dir); !strings.Contains(r.stdout, name+" is running") {
		t.Fatalf("deploy: %s", r.stdout)
	}
	first := ps()
	if len(first) != 1 {
		t.Fatalf("docker ps --filter label=butter.deployment=%s: %v, want one container", name, first)
	}
	if err := exec.Command("docker", "kill", first[0]).Run(); err != nil {
		t.Fatal(err)
	}
	publish(100, 200)
	kittest.Eventually(t, "killed container replaced", func() error {
		if now := ps(); len(now) != 1 || now[0] == first[0] {
			return fmt.Errorf("containers %v, killed %s", now, first[0])
		}
		return nil
	})
	// At least once: a redelivery after the kill may add duplicates, so
	// read on until every input has its result.
	seen := map[int]bool{}
	for want := 200; len(seen) < 200; want += 200 - len(seen) {
		seen = map[int]bool{}
		for _, e := range tailJSON(t, b, "dcounted", want) {
			var v struct{ N int }
			if err := json.Unmarshal(e.Event.Data, &v); err != nil {
				t.Fatal(err)
			}
			seen[v.N] = true
		}
	}
}

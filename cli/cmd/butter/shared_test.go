package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// sharedDeployment writes a node deployment with `isolation: shared`
// whose function handle (the same file and function names in every
// deployment) answers with who, logs "<who> says three" on n=3 and takes
// 40 ms an event (each partition in order: about 50 events a second per
// deployment, some 30 s for the stream), so kills land mid-stream.
func sharedDeployment(t *testing.T, who string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "handler.js"), fmt.Sprintf(`
exports.handle = async (event, context) => {
  if (event.data.n === 3) console.log("%[1]s says three")
  await new Promise((resolve) => setTimeout(resolve, 40))
  return { n: event.data.n, who: "%[1]s" }
}
`, who))
	writeFile(t, filepath.Join(dir, "butter.yaml"), fmt.Sprintf(`name: share-%[1]s
platform: node
isolation: shared
functions:
  - fn: handler.js:handle
    bindings:
      streams: [{ name: share-%[1]s-in, offset: first }]
      out: share-%[1]s-out
`, who))
	return dir
}

// instancePIDs returns the pids of deployment's running instances.
func instancePIDs(t *testing.T, d func(...string) result, deployment string) []int {
	t.Helper()
	var st struct {
		Instances []struct {
			State string `json:"state"`
			Ready bool   `json:"ready"`
			PID   int    `json:"pid"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(d("get", deployment, "-o", "json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, in := range st.Instances {
		if in.State == "running" && in.Ready {
			pids = append(pids, in.PID)
		}
	}
	return pids
}

// slowly is kittest.Eventually at a pace for conditions that run butter
// commands: each is a process and a Kafka connection.
func slowly(t *testing.T, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*kittest.Timeout)
	defer cancel()
	var err error
	if kit.Poll(ctx, 250*time.Millisecond, func() bool { err = cond(); return err == nil }) != nil {
		t.Fatalf("%s: still failing after %s: %v", what, 2*kittest.Timeout, err)
	}
}

// TestSharedIsolation runs two node deployments with `isolation: shared`
// on butter up: one pool fnbox and one node host serve both, each keeps
// its own code, output and results, and three SIGKILLs of the pool
// mid-stream lose no event of either.
func TestSharedIsolation(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	b, d := p.must, p.deployerCmd
	const n = 1500
	for _, who := range []string{"a", "b"} {
		b("", "stream", "create", "share-"+who+"-in", "--partitions", "2")
		b("", "stream", "create", "share-"+who+"-out", "--partitions", "1")
		var lines strings.Builder
		for i := range n {
			fmt.Fprintf(&lines, "{\"n\":%d}\n", i)
		}
		b(lines.String(), "publish", "share-"+who+"-in", "-")
	}
	d("deploy", sharedDeployment(t, "a"))
	d("deploy", sharedDeployment(t, "b"))

	pool := 0
	slowly(t, "both deployments run in one pool process", func() error {
		a, bb := instancePIDs(t, d, "share-a"), instancePIDs(t, d, "share-b")
		if len(a) != 1 || len(bb) != 1 || a[0] != bb[0] {
			return fmt.Errorf("pids of share-a %v, share-b %v: want one and the same", a, bb)
		}
		pool = a[0]
		return nil
	})
	if kids := kittest.Children(pool); len(kids) != 1 || kids[0].Comm != "node" {
		t.Fatalf("the pool %d runs %+v, want one node host for both deployments", pool, kids)
	}

	// Three kills, at a fifth, two fifths and three fifths of the results
	// (with what each kill has redelivered: the last still lands well
	// before the end).
	for kill := 1; kill <= 3; kill++ {
		want := kill * 2 * n / 5
		slowly(t, fmt.Sprintf("%d results before kill %d", want, kill), func() error {
			if got := streamEvents(t, b, "share-a-out") + streamEvents(t, b, "share-b-out"); got < want {
				return fmt.Errorf("%d results", got)
			}
			return nil
		})
		if err := syscall.Kill(pool, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d of pool %d: %v", kill, pool, err)
		}
		killed := pool
		slowly(t, "a new pool serves both deployments", func() error {
			a, bb := instancePIDs(t, d, "share-a"), instancePIDs(t, d, "share-b")
			if len(a) != 1 || len(bb) != 1 || a[0] != bb[0] || a[0] == killed {
				return fmt.Errorf("pids of share-a %v, share-b %v: want one new pool (killed %d)", a, bb, killed)
			}
			pool = a[0]
			return nil
		})
	}

	for _, who := range []string{"a", "b"} {
		out := "share-" + who + "-out"
		inputs := tailJSON(t, b, "share-"+who+"-in", n)
		var results []tailEvent
		slowly(t, out+" has a result for every input", func() error {
			got := streamEvents(t, b, out)
			if got < n {
				return fmt.Errorf("%d results, want at least %d", got, n)
			}
			results = tailJSON(t, b, out, got)
			seen := map[string]bool{}
			for _, r := range results {
				var data struct{ Who string }
				if err := json.Unmarshal(r.Event.Data, &data); err != nil || data.Who != who {
					t.Fatalf("%s holds a result of %q (%s): the deployments' code got mixed", out, data.Who, r.Event.Data)
				}
				seen[r.Event.Causationid] = true
			}
			for _, in := range inputs {
				if !seen[in.Event.ID] {
					return fmt.Errorf("input %s has no result yet", in.Event.ID)
				}
			}
			return nil
		})
		t.Logf("%s: %d results for %d inputs after 3 kills of the pool", out, len(results), n)
	}

	// Each deployment's console output is its own.
	pollLogs(t, b, "share-a", "a says three")
	pollLogs(t, b, "share-b", "b says three")
	if out := b("", "logs", "share-a").stdout; strings.Contains(out, "b says") {
		t.Fatalf("share-a's logs hold share-b's output:\n%s", out)
	}

	// What one process cannot give each deployment is refused at deploy.
	dir := sharedDeployment(t, "c")
	desc, err := os.ReadFile(filepath.Join(dir, "butter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "butter.yaml"), strings.Replace(string(desc), "isolation: shared\n", "isolation: shared\nenv: { MODE: fast }\n", 1))
	r := p.run(time.Minute, "", "deploy", dir, "--deployer", "http://"+p.deployer)
	if r.code == 0 || !strings.Contains(r.stderr, "env") || !strings.Contains(r.stderr, "isolation") {
		t.Fatalf("deploy of a shared deployment with env: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

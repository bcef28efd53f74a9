package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/tracer/api"
	"github.com/buttercompass/butter/tracer/internal/testutil"
)

var bin string

func TestMain(m *testing.M) {
	kittest.MainWithBinaries(m, kittest.Binary{Pkg: ".", Name: "butter-tracer", Path: &bin})
}

// tracer is a butter-tracer process.
type tracer struct {
	cmd *exec.Cmd
	url string
	out *kittest.Buffer
}

var banner = regexp.MustCompile(`on (http://[0-9.:]+)/`)

// run starts butter-tracer on brokers with its index in dir.
func run(t *testing.T, brokers, dir string) *tracer {
	t.Helper()
	tr := &tracer{out: &kittest.Buffer{}}
	tr.cmd = exec.Command(bin, "--brokers", brokers, "--addr", "127.0.0.1:0", "--data", dir, "--discover", "200ms", "--log-level", "warn")
	tr.cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "BUTTER_TOPIC_PREFIX=")
	tr.cmd.Stdout, tr.cmd.Stderr = tr.out, tr.out
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.cmd.Process.Kill()
		_ = tr.cmd.Wait()
	})
	// The banner only says where it listens; readiness is /readyz.
	kittest.Eventually(t, "butter-tracer prints its address", func() error {
		if m := banner.FindStringSubmatch(tr.out.String()); m != nil {
			tr.url = m[1]
			return nil
		}
		if tr.cmd.ProcessState != nil {
			return fmt.Errorf("exited: %s", tr.out)
		}
		return fmt.Errorf("no banner yet: %s", tr.out)
	})
	kittest.WaitReady(t, "butter-tracer", tr.url)
	return tr
}

// indexed returns butter_tracer_records_total from /metrics.
func (tr *tracer) indexed(t *testing.T) int {
	resp, err := http.Get(tr.url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "butter_tracer_records_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return 0
}

// snapshot fetches the answers that must not depend on how the index was
// built: every trace, logs page by page, platform events, lineages.
func snapshot(t *testing.T, url string, seed testutil.Seed) (map[string][]byte, error) {
	snap := map[string][]byte{}
	get := func(path string) ([]byte, error) {
		code, body := testutil.Get(t, url+path, nil)
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET %s = %d %s", path, code, body)
		}
		snap[path] = body
		return body, nil
	}
	var traces api.Page[api.TraceSummary]
	body, err := get("/v1/traces?limit=1000")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &traces); err != nil || len(traces.Items) != len(seed.TraceIDs) {
		return nil, fmt.Errorf("%d of %d traces indexed", len(traces.Items), len(seed.TraceIDs))
	}
	for _, tr := range traces.Items {
		if tr.Spans != 3 {
			return nil, fmt.Errorf("trace %s has %d spans, want 3", tr.TraceID, tr.Spans)
		}
	}
	var pes api.Page[api.PlatformEvent]
	body, err = get("/v1/platform-events")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &pes); err != nil || len(pes.Items) != 2 {
		return nil, fmt.Errorf("%d of 2 platform events indexed", len(pes.Items))
	}
	for _, p := range []string{"/v1/traces/" + seed.ErrorTrace, "/v1/traces/" + seed.TraceIDs[0], "/v1/traces?status=error",
		"/v1/logs?level=error&limit=1000"} {
		if _, err := get(p); err != nil {
			return nil, err
		}
	}
	lines := 0
	for cursor := ""; ; {
		var page api.Page[api.Log]
		body, err := get("/v1/logs?limit=1000&cursor=" + cursor)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		lines += len(page.Items)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if lines != seed.Logs {
		return nil, fmt.Errorf("%d of %d log lines indexed", lines, seed.Logs)
	}
	for _, i := range []int{0, len(seed.Chains) / 2, len(seed.Chains) - 1} {
		c := seed.Chains[i]
		var l api.Lineage
		body, err := get("/v1/lineage?stream=orders&id=" + c[0])
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, &l); err != nil || len(l.Descendants) < 2 {
			return nil, fmt.Errorf("lineage of %s incomplete: %s", c[0], body)
		}
		if _, err := get("/v1/lineage?stream=shipped&id=" + c[2]); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// settled returns the snapshot of url once it is complete and two in a
// row are the same: the tracer has read everything.
func settled(t *testing.T, who, url string, seed testutil.Seed) map[string][]byte {
	var snap map[string][]byte
	kittest.Eventually(t, who+" indexes everything", func() error {
		a, err := snapshot(t, url, seed)
		if err != nil {
			return err
		}
		b, err := snapshot(t, url, seed)
		if err != nil {
			return err
		}
		for path := range a {
			if !bytes.Equal(a[path], b[path]) {
				return fmt.Errorf("GET %s still changing", path)
			}
		}
		snap = b
		return nil
	})
	return snap
}

// TestKill9ResumesExactly kills a tracer with SIGKILL while it indexes a
// backlog, restarts it on the same data dir, and checks it answers exactly
// what a tracer that indexed everything in one go answers: no record lost,
// none counted twice.
func TestKill9ResumesExactly(t *testing.T) {
	brokers := testutil.Broker(t)
	seed := testutil.Produce(t, brokers, testutil.Sizes{Traces: 300, Chains: 3000, Logs: 5000})
	total := 3*3000 + 1 + 5000 + 4 + 2 + 1 // events, dead letter, logs, platform events, heartbeats, deployment (+ span records)
	dir := t.TempDir()

	// Log lines keep arriving while the first tracer runs, so it is
	// killed in the middle of indexing whatever the machine's speed.
	stop, produced := make(chan struct{}), make(chan int)
	go func() { produced <- testutil.ProduceLogs(brokers, stop) }()
	first := run(t, brokers, dir)
	var atKill int
	kittest.Eventually(t, "the tracer indexes part of the backlog", func() error {
		if atKill = first.indexed(t); atKill == 0 {
			return fmt.Errorf("nothing indexed yet")
		}
		return nil
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	close(stop)
	more := <-produced
	if more < 0 {
		t.Fatal("producing log lines failed")
	}
	seed.Logs += more
	total += more
	t.Logf("killed after indexing %d of %d records", atKill, total)

	restarted := run(t, brokers, dir)
	fresh := run(t, brokers, t.TempDir())
	want := settled(t, "the fresh tracer", fresh.url, seed)
	got := settled(t, "the restarted tracer", restarted.url, seed)
	for path, w := range want {
		if !bytes.Equal(got[path], w) {
			t.Errorf("GET %s after kill -9 and restart differs from a fresh index:\n got %.300s\nwant %.300s", path, got[path], w)
		}
	}
	if n := restarted.indexed(t); n+atKill < total {
		t.Errorf("restarted tracer indexed %d records after the kill at %d: fewer than the %d produced", n, atKill, total)
	}
}

// TestBadFlagsExit checks a bad configuration stops the binary at once
// with the flag named.
func TestBadFlagsExit(t *testing.T) {
	out, err := exec.Command(bin, "--discover", "-1s", "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--discover") {
		t.Errorf("butter-tracer --discover -1s = %v %s, want an error naming --discover", err, out)
	}
}

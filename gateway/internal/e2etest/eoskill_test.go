package e2etest

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

const eosRouteDescriptor = `name: slow
platform: node
functions:
  - fn: handler.js:handle
    name: handle
    bindings:
      route: {context: /slow, methods: [POST], timeout: 90s}
    delivery: {guarantee: exactly-once}
`

// The handler notes each start in a file next to it (so the test knows the
// request is being handled), takes 2 s, and answers with the body.
const eosRouteHandler = `const fs = require("fs");
exports.handle = async (event) => {
  fs.appendFileSync(__dirname + "/started", event.id + "\n");
  await new Promise((resolve) => setTimeout(resolve, 2000));
  return { status: 200, body: "done " + event.data.body };
};
`

// TestExactlyOnceRouteAnswersAfterKill: a route with guarantee:
// exactly-once answers a request whose fnbox was killed with SIGKILL while
// handling it. The restarted fnbox (same fencing slot) aborts the dead
// one's transaction at once, handles the request again, and its reply,
// committed in its transaction, reaches the gateway's read_committed reply
// reader while the caller still waits.
func TestExactlyOnceRouteAnswersAfterKill(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: this test runs a node function (.ci/run installs nodejs)")
	}
	code := t.TempDir()
	for f, s := range map[string]string{control.DescriptorFile: eosRouteDescriptor, "handler.js": eosRouteHandler} {
		if err := os.WriteFile(filepath.Join(code, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := testutil.NewCluster(t)
	c.Deploy("slow", eosRouteDescriptor)

	start := func() (*exec.Cmd, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		admin := ln.Addr().String()
		ln.Close()
		box := exec.Command(fnboxBin, "--code", code, "--instance", "eos-route-1", "--"+control.SlotFlag, "0",
			"--admin", admin, "--brokers", c.Broker.Addr(), "--log-level", "warn")
		logs := &kittest.Buffer{}
		box.Stdout, box.Stderr = logs, logs
		if err := box.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if box.ProcessState == nil {
				_ = box.Process.Kill()
				_ = box.Wait()
			}
			if t.Failed() {
				t.Logf("fnbox output:\n%s", logs.String())
			}
		})
		return box, admin
	}
	first, admin := start()
	kittest.WaitReady(t, "fnbox", "http://"+admin)

	gwURL := startGateway(t, c)

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := http.Post(gwURL+"/slow", "text/plain", strings.NewReader("ada"))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		answered <- answer{status: res.StatusCode, body: string(b)}
	}()

	started := filepath.Join(code, "started")
	kittest.Eventually(t, "request being handled", func() error {
		_, err := os.Stat(started)
		return err
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killed := time.Now()
	second, _ := start()

	select {
	case a := <-answered:
		if a.err != nil || a.status != 200 || a.body != "done ada" {
			t.Fatalf("answer after the kill: %d %q %v, want 200 \"done ada\"", a.status, a.body, a.err)
		}
	case <-time.After(testutil.Timeout):
		t.Fatal("no answer after the kill")
	}
	b, _ := os.ReadFile(started)
	t.Logf("answered %s after the kill; the request was handled %d times", time.Since(killed).Round(100*time.Millisecond), strings.Count(string(b), "\n"))
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = second.Wait()
}

package e2etest

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/gateway/service"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// startFnbox runs the fnbox binary on the deployment in code, for function
// fn as instance, until the test ends; its output is logged if the test
// failed. It returns the output so far, where fnbox logs that it is ready.
func startFnbox(t *testing.T, code, fn, instance string, c *testutil.Cluster) *kittest.Buffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	box := exec.CommandContext(ctx, fnboxBin, "--code", code, "--descriptor", filepath.Join(code, control.DescriptorFile),
		"--functions", fn, "--instance", instance, "--admin", "127.0.0.1:0", "--brokers", c.Broker.Addr())
	logs := &kittest.Buffer{}
	box.Stdout, box.Stderr = logs, logs
	if err := box.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = box.Wait()
		if t.Failed() {
			t.Logf("fnbox output:\n%s", logs.String())
		}
	})
	return logs
}

// startGateway serves a gateway on c's broker until the test ends and
// returns its base URL.
func startGateway(t *testing.T, c *testutil.Cluster) string {
	t.Helper()
	cfg := service.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{c.Broker.Addr()}}
	cfg.Grace = 5 * time.Second
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	gw, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kittest.Serve(t, gw)
	return "http://" + gw.Addr()
}

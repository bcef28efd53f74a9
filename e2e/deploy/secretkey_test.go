package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/broker-bridge/broker"
)

// TestSecretKeyFileShared runs the real deployer and bridge binaries the
// way deploy/k8s does: one key file, given to both by
// BUTTER_SECRET_KEY_FILE, in the shape a Secret volume with defaultMode
// 0400 and fsGroup has (owned by root, group 65532, mode 0440). The
// deployer must start with it and seal a webhook token with it; the
// bridge must open that token with it: a request with the token is
// accepted, one with another is refused.
func TestSecretKeyFileShared(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to make the key file root-owned, as the kubelet does (the tests run as root here and in CI)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./deployer/cmd/butter-deployer", "./broker-bridge/cmd/butter-bridge")
	build.Dir = repo(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the deployer and the bridge: %v\n%s", err, out)
	}

	raw := make([]byte, 32)
	rand.Read(raw)
	keyDir := filepath.Join(t.TempDir(), "secret-key")
	key := filepath.Join(keyDir, "secret.key")
	if err := errors.Join(os.Mkdir(keyDir, 0o755), os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(raw)), 0o400),
		os.Chown(key, 0, 65532), os.Chmod(key, 0o440)); err != nil {
		t.Fatal(err)
	}

	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	const token = "e2e-deployer-token"
	env := append(os.Environ(), "BUTTER_SECRET_KEY_FILE="+key, "BUTTER_BROKERS="+b.Addr(), "BUTTER_TOKEN="+token)
	deployerAddr, bridgeAddr := freeAddr(t), freeAddr(t)
	start(t, ctx, filepath.Join(bin, "butter-deployer"), env, "--addr", deployerAddr, "--data", t.TempDir(), "--runtime", "process",
		"--fnbox", "/bin/true") // instances do not matter here, and fnbox is another team's work in progress

	start(t, ctx, filepath.Join(bin, "butter-bridge"), env, "--addr", bridgeAddr, "--retry", "100ms")
	for _, a := range []string{deployerAddr, bridgeAddr} {
		if err := waitReady(ctx, "http://"+a+"/readyz"); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}

	const hookToken = "e2e-hook-token-sealed-by-the-deployer"
	desc := fmt.Sprintf(`name: hooks
platform: exec
secretEnv: {HOOK_TOKEN: %q}
functions: [{fn: "cat", bindings: {streams: [hook-events]}}]
bridges:
  - name: in
    source: {webhook: {tokenFrom: HOOK_TOKEN}}
    stream: hook-events
`, hookToken)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+deployerAddr+"/v1/deployments", strings.NewReader(desc))
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %s %s", resp.Status, body)
	}

	post := func(bearer string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+bridgeAddr+"/v1/webhooks/hooks/in", strings.NewReader(`{"n":1}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// The bridge learns of the deployment from _butter.deployments: poll
	// until the webhook exists (404 before).
	wait, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	var code int
	for code != http.StatusAccepted {
		if code, err = post(hookToken); err != nil {
			t.Fatal(err)
		}
		if code != http.StatusNotFound && code != http.StatusServiceUnavailable && code != http.StatusAccepted {
			t.Fatalf("webhook with the sealed token: %d; want 202 (the bridge opens what the deployer sealed with the shared key)", code)
		}
		select {
		case <-wait.Done():
			t.Fatalf("webhook with the sealed token: still %d after 30s; want 202 (the bridge opens what the deployer sealed with the shared key)", code)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if code, err := post("another-token"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("webhook with another token: %d %v; want 401", code, err)
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs a service binary until the test ends, its output in the
// test's log on failure.
func start(t *testing.T, ctx context.Context, path string, env []string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(path), out.String())
		}
	})
}

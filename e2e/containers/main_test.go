package containers_test

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	tclog "github.com/testcontainers/testcontainers-go/log"
)

// label marks every container, network and volume these tests make, so a
// run that died before its cleanup is swept by the next one.
const label = "butter.e2e=containers"

// repo is the repository root: this file is e2e/containers/main_test.go.
func repo() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestMain sweeps leftovers and builds the service images once: the tests
// then start containers, never images.
func TestMain(m *testing.M) {
	// Ryuk, testcontainers' reaper, is an image that would have to be
	// pulled; the tests clean up themselves and sweep by label instead.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// Its progress lines are noise; failures carry the containers' logs.
	tclog.SetDefault(stdlog.New(io.Discard, "", 0))
	if err := sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "containers tests need a Docker engine:", err)
		os.Exit(1)
	}
	for _, build := range [][]string{
		{filepath.Join(repo(), "deploy", "build-images.sh"), "broker", "deployer", "gateway", "loadmon", "cli"},
		{filepath.Join(repo(), "deploy", "images", "build.sh"), "python", "node"}, // the functions' images
	} {
		if out, err := exec.Command(build[0], build[1:]...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", build[0], err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// deploymentPrefix starts the names of the tests' deployments, whose
// containers the deployer labels butter.deployment=<name>.
const deploymentPrefix = "e2e-ctr-"

// removeInstances removes the function containers of deployments whose
// names start with prefix.
func removeInstances(prefix string) {
	out, _ := exec.Command("docker", "ps", "-a", "--filter", "label=butter.deployment",
		"--format", `{{.ID}} {{.Label "butter.deployment"}}`).Output()
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if id, name, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// sweep removes what an earlier run of this package left behind.
func sweep() error {
	removeInstances(deploymentPrefix)
	for _, kind := range []string{"container", "network", "volume"} {
		ls := []string{kind, "ls", "-q", "--filter", "label=" + label}
		if kind == "container" {
			ls = []string{"ps", "-aq", "--filter", "label=" + label}
		}
		out, err := exec.Command("docker", ls...).Output()
		if err != nil {
			return fmt.Errorf("docker %s: %w", strings.Join(ls, " "), err)
		}
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			rm := append([]string{kind, "rm", "-f"}, ids...)
			if kind == "network" {
				rm = append([]string{kind, "rm"}, ids...)
			}
			if out, err := exec.Command("docker", rm...).CombinedOutput(); err != nil {
				return fmt.Errorf("sweep %ss: %w: %s", kind, err, out)
			}
		}
	}
	return nil
}

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitReady polls url until it answers 200 or ctx ends.
func waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %s", url, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dockerQuiet runs the docker CLI for a cleanup, where failing is allowed.
func dockerQuiet(args ...string) error {
	return exec.Command("docker", args...).Run()
}

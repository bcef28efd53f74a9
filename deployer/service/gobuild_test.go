package service

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/proto/kit"
)

var goCache = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	return strings.TrimSpace(string(out)), err
})

// hostGoCache is the machine's Go build cache: deployers under test share
// it, so the standard library is compiled once, not once per deployer.
func hostGoCache(t *testing.T) string {
	t.Helper()
	dir, err := goCache()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	return dir
}

const greetYAML = `name: greet
platform: go
functions:
  - fn: ./cmd/greet
    bindings:
      streams: [{ name: names, offset: first }]
      out: greetings
`

const greetMain = `package main

import (
	"context"

	butter "github.com/buttercompass/butter/sdk/go"
)

func main() {
	butter.Handle(func(ctx context.Context, e butter.Event) (any, error) {
		return "hello", nil
	})
}
`

// TestDeployGoBuilds deploys a go function: a compile error is a 400
// naming the file and line and stores nothing; fixed code is built into
// the version's directory and fnbox is pointed at the built binary.
func TestDeployGoBuilds(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	code := map[string]string{
		"butter.yaml":       greetYAML,
		"go.mod":            "module example.com/greet\n\ngo 1.26\n\nrequire github.com/buttercompass/butter/sdk/go v0.0.0\n",
		"cmd/greet/main.go": strings.Replace(greetMain, `return "hello", nil`, `return hello, nil`, 1),
	}
	r := d.do(t, "POST", "/v1/deployments", "application/gzip", archive.TarGz(code), "")
	var p kit.Problem
	r.json(t, &p)
	if r.code != 400 || p.Title != "go build failed" || !strings.Contains(p.Detail, "nothing was deployed") ||
		!slices.ContainsFunc(p.Errors, func(s string) bool { return strings.HasPrefix(s, "cmd/greet/main.go:11:10: undefined: hello") }) {
		t.Fatalf("broken code = %d %s", r.code, r.body)
	}
	if r := d.do(t, "GET", "/v1/deployments", "", nil, ""); !strings.Contains(string(r.body), `"deployments":[]`) {
		t.Errorf("something was stored: %s", r.body)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.data, "deployments", "greet")); len(entries) != 0 {
		t.Errorf("a failed build left %v behind", entries)
	}

	// A descriptor alone has nothing to build.
	r = d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(greetYAML), "")
	if r.json(t, &p); r.code != 400 || !strings.Contains(strings.Join(p.Errors, "\n"), "butter.yaml:2:11 platform: go functions are built from their code") {
		t.Errorf("go descriptor alone = %d %s", r.code, r.body)
	}

	code["cmd/greet/main.go"] = greetMain
	if r := d.do(t, "POST", "/v1/deployments", "application/gzip", archive.TarGz(code), ""); r.code != 201 {
		t.Fatalf("POST = %d %s", r.code, r.body)
	}
	st := d.waitRunning(t, "greet", 1)
	dir := filepath.Join(e.data, "deployments", "greet", st.Version)
	if fi, err := os.Stat(filepath.Join(dir, ".butter", "go", "greet")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("built binary: %v", err)
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(st.Instances[0].PID), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if args := strings.Split(string(cmdline), "\x00"); !slices.Contains(args, filepath.Join(dir, ".butter", "butter.yaml")) {
		t.Errorf("fnbox runs with %q, want the built descriptor", args)
	}
}

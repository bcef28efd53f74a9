// Package testutil holds helpers the deployer's tests share: building the
// fakefnbox stand-in binary, and polling for a condition.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"
)

// Timeout bounds every wait in tests; generous for -race on busy
// machines, and polling returns as soon as the condition holds.
const Timeout = 60 * time.Second

// BuildFakeFnbox builds testdata/fakefnbox (a stand-in for the real fnbox
// binary) into dir and returns its path. Call it from TestMain.
func BuildFakeFnbox(dir string) (string, error) {
	_, file, _, _ := goruntime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "runtime", "process", "testdata", "fakefnbox")
	bin := filepath.Join(dir, "fakefnbox")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build fakefnbox: %w\n%s", err, out)
	}
	return bin, nil
}

// Eventually polls cond every 20ms until it returns nil, failing the test
// with cond's last error after Timeout.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, Timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MainWithFakeFnbox builds fakefnbox into a temp dir, stores its path in
// *bin and runs the tests.
func MainWithFakeFnbox(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "fakefnbox")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin, err = BuildFakeFnbox(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

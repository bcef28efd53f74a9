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

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// Timeout bounds every wait in tests (kittest.Timeout).
const Timeout = kittest.Timeout

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

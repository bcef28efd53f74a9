// Package kittest is what every module's tests share: polling for a
// condition instead of sleeping (nats-server's checkFor).
package kittest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit"
)

// Timeout bounds every wait in tests: generous for -race on a busy
// two-core machine, and polling returns as soon as the condition holds.
const Timeout = 90 * time.Second

// Eventually polls cond every 20ms (kit.Poll) until it returns nil,
// failing the test with cond's last error after Timeout.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var err error
	if kit.Poll(ctx, 20*time.Millisecond, func() bool { err = cond(); return err == nil }) != nil {
		t.Fatalf("%s: still failing after %s: %v", what, Timeout, err)
	}
}

// WaitReady polls base's /readyz (a service's admin endpoint) until it
// answers 200.
func WaitReady(t testing.TB, what, base string) {
	t.Helper()
	Eventually(t, what+" ready", func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}

// Binary is a program a test package builds once, in TestMain, to run as
// a real process.
type Binary struct {
	// Pkg is the main package's directory, relative to the test's.
	Pkg string
	// Name is the executable's file name; binaries of one package share
	// a directory, so a program finding another next to it works.
	Name string
	// Path receives the built executable's path.
	Path *string
	// Flags are extra go build flags, e.g. -race.
	Flags []string
}

// MainWithBinaries builds bins into a temporary directory, runs the
// tests, removes the directory and exits with the tests' code. A build
// that fails fails the whole package, with the compiler's output.
func MainWithBinaries(m *testing.M, bins ...Binary) {
	dir, err := os.MkdirTemp("", "butter-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range bins {
		*b.Path = filepath.Join(dir, b.Name)
		cmd := exec.Command("go", append(append([]string{"build"}, b.Flags...), "-o", *b.Path, ".")...)
		cmd.Dir = b.Pkg
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s (%s): %v\n%s", b.Name, b.Pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Buffer is a bytes.Buffer safe for a process writing and a test reading.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

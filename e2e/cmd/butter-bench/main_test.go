package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/buttercompass/butter/e2e/internal/bench"
)

// TestRunWritesFile checks that -o gets exactly what stdout gets.
func TestRunWritesFile(t *testing.T) {
	cfg := bench.QuickConfig()
	cfg.Events, cfg.Requests, cfg.Warmup = 500, 10, 2
	cfg.TempDir = t.TempDir()
	file := filepath.Join(t.TempDir(), "benchmarks.md")

	var stdout bytes.Buffer
	if err := run(t.Context(), cfg, file, &stdout); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if stdout.Len() == 0 || !bytes.Equal(written, stdout.Bytes()) {
		t.Errorf("file and stdout differ:\nfile:\n%s\nstdout:\n%s", written, stdout.Bytes())
	}
}

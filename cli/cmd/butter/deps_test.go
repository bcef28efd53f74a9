package main

import (
	"os/exec"
	"strings"
	"testing"
)

// binaries are the programs the platform ships: none of them may link the
// standard testing package or a test-only package of ours (runtimetest,
// kittest, authtest, testutil): test code belongs in tests, not in what a
// user runs (STYLE §12).
var binaries = []string{
	"github.com/buttercompass/butter/cli/cmd/butter",
	"github.com/buttercompass/butter/fnbox/cmd/fnbox",
	"github.com/buttercompass/butter/deployer/cmd/butter-deployer",
	"github.com/buttercompass/butter/gateway/cmd/butter-gateway",
	"github.com/buttercompass/butter/loadmon/cmd/butter-loadmon",
	"github.com/buttercompass/butter/timer/cmd/butter-timer",
	"github.com/buttercompass/butter/tracer/cmd/butter-tracer",
	"github.com/buttercompass/butter/broker-bridge/cmd/butter-broker",
	"github.com/buttercompass/butter/broker-bridge/cmd/butter-bridge",
}

// testOnly reports whether an import path is test-only code.
func testOnly(path string) bool {
	if path == "testing" || strings.HasPrefix(path, "testing/") {
		return true
	}
	if !strings.HasPrefix(path, "github.com/buttercompass/butter/") {
		return false
	}
	last := path[strings.LastIndex(path, "/")+1:]
	return strings.HasSuffix(last, "test") || last == "testutil"
}

func TestBinariesDoNotLinkTesting(t *testing.T) {
	t.Parallel()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH, so the binaries' imports cannot be listed: %v", err)
	}
	for _, bin := range binaries {
		// -f prints, for every dependency, its path and what it imports,
		// so a failure names the package that pulled test code in.
		out, err := exec.Command(goCmd, "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", bin, err, out)
		}
		for line := range strings.Lines(string(out)) {
			fields := strings.Fields(line)
			if len(fields) == 0 || testOnly(fields[0]) {
				continue
			}
			for _, imp := range fields[1:] {
				if testOnly(imp) {
					t.Errorf("%s links test-only package %s (imported by %s): move it to a _test.go file or a …test package", bin, imp, fields[0])
				}
			}
		}
	}
}

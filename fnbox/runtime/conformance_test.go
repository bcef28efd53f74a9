package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/fnbox/runtime"
	rtexec "github.com/buttercompass/butter/fnbox/runtime/exec"
	"github.com/buttercompass/butter/fnbox/runtime/stdio"
)

// need fails the test when a language is missing: a skipped suite would
// look green on a machine that cannot run functions at all.
func need(t *testing.T, command, hint string) {
	t.Helper()
	if _, err := exec.LookPath(command); err != nil {
		t.Fatalf("%s is not on PATH, so this platform cannot be tested: %s", command, hint)
	}
}

func fixture(platform string) string {
	return filepath.Join("testdata", "conformance", platform)
}

func TestConformanceNode(t *testing.T) {
	need(t, "node", "install Node.js 20+: apt-get install -y nodejs")
	runtime.RunConformance(t, runtime.Conformance{Name: "node", Dir: fixture("node"), Start: stdio.Start})
}

func TestConformancePython(t *testing.T) {
	need(t, "python3", "install Python 3: apt-get install -y python3")
	runtime.RunConformance(t, runtime.Conformance{Name: "python", Dir: fixture("python"), Start: stdio.Start})
}

func TestConformanceExec(t *testing.T) {
	// The exec fixture is a python script; exec itself needs no language.
	need(t, "python3", "install Python 3: apt-get install -y python3")
	// Version-manager shims (pyenv) cost half a second per process, which
	// the 50 concurrent commands multiply: run the interpreter itself.
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("find the python3 interpreter: %v", err)
	}
	t.Setenv("PATH", filepath.Dir(strings.TrimSpace(string(out)))+string(os.PathListSeparator)+os.Getenv("PATH"))
	runtime.RunConformance(t, runtime.Conformance{
		Name: "exec", Dir: fixture("exec"), Start: rtexec.Start, StdoutIsResult: true,
	})
}

// TestConformanceTestHost checks the suite's own Host refuses what fnbox
// refuses, so the emit-undeclared case means something.
func TestConformanceTestHost(t *testing.T) {
	h := runtime.NewTestHost(nil)
	if err := h.Emit(t.Context(), runtime.Emit{Stream: "anything"}); err == nil {
		t.Error("TestHost with no function accepted an emit")
	}
}

package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/fnbox/runtime"
	rtexec "github.com/buttercompass/butter/fnbox/runtime/exec"
	"github.com/buttercompass/butter/fnbox/runtime/httprt"
	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/fnbox/runtime/stdio"
)

// need fails the test when a language is missing: a skipped suite would
// look green on a machine that cannot run functions at all.
func need(t testing.TB, command, hint string) {
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
	runtimetest.RunConformance(t, runtimetest.Conformance{Name: "node", Dir: fixture("node"), Start: stdio.Start})
}

func TestConformancePython(t *testing.T) {
	need(t, "python3", "install Python 3: apt-get install -y python3")
	runtimetest.RunConformance(t, runtimetest.Conformance{Name: "python", Dir: fixture("python"), Start: stdio.Start})
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
	runtimetest.RunConformance(t, runtimetest.Conformance{
		Name: "exec", Dir: fixture("exec"), Start: rtexec.Start, StdoutIsResult: true,
	})
}

func TestConformanceHTTP(t *testing.T) {
	// The http fixture is a python http.server; http itself needs no language.
	need(t, "python3", "install Python 3: apt-get install -y python3")
	runtimetest.RunConformance(t, runtimetest.Conformance{Name: "http", Dir: fixture("http"), Start: httprt.Start})
}

func TestConformanceGo(t *testing.T) {
	need(t, "go", "install Go: https://go.dev/dl")
	runtimetest.RunConformance(t, runtimetest.Conformance{Name: "go", Dir: buildGoFixture(t, "go"), Start: httprt.Start})
}

// TestConformanceSDKGo runs the suite against http functions that are
// CloudEvents sdk-go's own receiver (client.StartReceiver), answering
// with CloudEvents: a function nobody here wrote the protocol of.
func TestConformanceSDKGo(t *testing.T) {
	need(t, "go", "install Go: https://go.dev/dl")
	runtimetest.RunConformance(t, runtimetest.Conformance{Name: "sdkgo", Dir: buildGoFixture(t, "sdkgo"), Start: httprt.Start})
}

// buildGoFixture copies a Go fixture's descriptors into a temporary
// directory and builds its main.go there as ./handler, the command its
// butter.yaml names: fnbox builds nothing for platform go yet.
func buildGoFixture(t testing.TB, name string) string {
	t.Helper()
	src, err := filepath.Abs(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"butter.yaml", filepath.Join("broken", "butter.yaml")} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatalf("read go fixture: %v", err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The fixture is its own module, outside the workspace (the go one
	// with a replace to the SDK in this repository).
	build := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(dir, "handler"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the go fixture: %v\n%s", err, out)
	}
	return dir
}

// TestConformanceTestHost checks the suite's own Host refuses what fnbox
// refuses, so the emit-undeclared case means something.
func TestConformanceTestHost(t *testing.T) {
	h := runtimetest.NewTestHost(nil)
	if err := h.Emit(t.Context(), runtime.Emit{Stream: "anything"}); err == nil {
		t.Error("TestHost with no function accepted an emit")
	}
}

package process

import (
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// logLines decodes the JSON lines of a log.
func logLines(t *testing.T, log *kittest.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestPrepareLogsGoBuild: preparing a go deployment logs its build in the
// deployer's log: when each function's go build starts and when it is
// done, with how many packages it compiled; every build uses the one
// cache given (here the machine's, so the standard library is there).
func TestPrepareLogsGoBuild(t *testing.T) {
	cache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	var logs kittest.Buffer
	rt, err := New(Config{DataDir: t.TempDir(), Bin: fakeFnbox, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Go: gobuild.Config{Cache: strings.TrimSpace(string(cache))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	desc := "name: greet\nplatform: go\nfunctions:\n  - fn: ./cmd/greet\n    bindings: { streams: [names] }\n"
	code := archive.TarGz(map[string]string{
		"butter.yaml": desc,
		"go.mod":      "module example.com/greet\n\ngo 1.26\n\nrequire github.com/buttercompass/butter/sdk/go v0.0.0\n",
		"cmd/greet/main.go": `package main

import (
	"context"

	butter "github.com/buttercompass/butter/sdk/go"
)

const fresh = "` + time.Now().Format(time.RFC3339Nano) + `"

func main() {
	butter.Handle(func(ctx context.Context, e butter.Event) (any, error) { return fresh, nil })
}
`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := rt.Prepare(ctx, control.Deployment{Name: "greet", Version: "v1", Descriptor: desc, Code: code}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	var started, done map[string]any
	for _, l := range logLines(t, &logs) {
		switch l["msg"] {
		case "go build started":
			started = l
		case "go build done":
			done = l
		}
	}
	if started == nil || started["deployment"] != "greet" || started["fn"] != "greet" || started["package"] != "./cmd/greet" {
		t.Errorf("go build started line %v", started)
	}
	if done == nil || done["deployment"] != "greet" || done["compiled"].(float64) < 1 || done["elapsed"] == "" {
		t.Errorf("go build done line %v", done)
	}
}

// TestBuildLogEvery: while compiling, at most one line per interval.
func TestBuildLogEvery(t *testing.T) {
	var logs kittest.Buffer
	report := buildLog(slog.New(slog.NewJSONHandler(&logs, nil)), 5*time.Second)
	p := gobuild.Progress{Deployment: "d", Function: "f", Package: "."}
	report(p)
	for i, at := range []time.Duration{time.Second, 2 * time.Second, 6 * time.Second, 7 * time.Second, 12 * time.Second} {
		p.Compiled, p.Last, p.Elapsed = i+1, "pkg", at
		report(p)
	}
	p.Done = true
	report(p)
	var msgs []string
	for _, l := range logLines(t, &logs) {
		msgs = append(msgs, l["msg"].(string))
	}
	want := "go build started,go build compiling,go build compiling,go build done"
	if got := strings.Join(msgs, ","); got != want {
		t.Errorf("lines %s, want %s", got, want)
	}
}

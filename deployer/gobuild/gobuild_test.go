package gobuild

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/buttercompass/butter/proto/descriptor"
)

// testCache is the build cache every test shares: the machine's own, so
// the standard library is compiled once, not once per test.
var testCache string

func TestMain(m *testing.M) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err == nil {
		testCache = strings.TrimSpace(string(out))
	}
	os.Exit(m.Run())
}

const greetMain = `package main

import (
	"context"

	butter "github.com/buttercompass/butter/sdk/go"
)

func main() {
	butter.Handle(func(ctx context.Context, e butter.Event) (any, error) {
		var in struct{ Name string }
		if err := e.DecodeData(&in); err != nil {
			return nil, butter.Permanent(err)
		}
		return map[string]string{"greeting": "hello, " + in.Name}, nil
	})
}
`

// goMod requires the SDK and replaces it with a checkout that is not in
// the upload, as a developer's go.mod does: the build must override it.
const goMod = `module example.com/greet

go 1.26

require github.com/buttercompass/butter/sdk/go v0.0.0

replace github.com/buttercompass/butter/sdk/go => ../../sdk/go
`

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// build builds the code in files with a fresh builder.
func build(t *testing.T, files map[string]string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	desc, err := descriptor.Parse("butter.yaml", []byte(files["butter.yaml"]))
	if err != nil {
		t.Fatalf("descriptor: %v", err)
	}
	b := New(Config{Dir: t.TempDir(), Cache: testCache})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return dir, b.Build(ctx, dir, "butter.yaml", []byte(files["butter.yaml"]), desc)
}

// TestBuildRunsFunctions builds two functions, one per package form, and
// checks that the descriptor fnbox runs names the binaries under the same
// function names, and that a binary serves the http protocol.
func TestBuildRunsFunctions(t *testing.T) {
	dir, err := build(t, map[string]string{
		"butter.yaml": `name: greet
platform: go
functions:
  - fn: ./cmd/greet
    bindings: { streams: [names], out: greetings }
  - fn: .
    name: root
    bindings: { streams: [names] }
  - { fn: "./cmd/greet/", name: again, bindings: { streams: [names] } }
`,
		"go.mod":            goMod,
		"cmd/greet/main.go": greetMain,
		"main.go":           greetMain,
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	src, _ := os.ReadFile(filepath.Join(dir, RunDescriptor))
	t.Logf("%s:\n%s", RunDescriptor, src)
	run, err := descriptor.ParseFile(filepath.Join(dir, RunDescriptor))
	if err != nil {
		t.Fatalf("run descriptor: %v", err)
	}
	want := map[string]string{"greet": "./.butter/go/greet", "root": "./.butter/go/root", "again": "./.butter/go/again"}
	if len(run.Functions) != len(want) {
		t.Fatalf("run descriptor has %d functions", len(run.Functions))
	}
	for _, f := range run.Functions {
		if want[f.Name] != f.Fn {
			t.Errorf("function %s runs %q, want %q", f.Name, f.Fn, want[f.Name])
		}
		if st, err := os.Stat(filepath.Join(dir, f.Fn)); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("binary of %s: %v", f.Name, err)
		}
	}
	if run.Functions[0].Bindings.Out != "greetings" {
		t.Errorf("bindings lost in the rewrite: %+v", run.Functions[0].Bindings)
	}
	if got := serveOnce(t, filepath.Join(dir, BinDir, "greet"), `{"name":"go"}`); got != `{"greeting":"hello, go"}` {
		t.Errorf("binary answered %q", got)
	}
}

// serveOnce starts a built function on a free port, POSTs one event in
// CloudEvents binary mode and returns the body of the answer.
func serveOnce(t *testing.T, bin, data string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var answer string
	kittest.Eventually(t, "the function listens", func() error {
		req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/test", "ce-type": "t"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer = strings.TrimSpace(string(body))
		return nil
	})
	return answer
}

// TestBuildCompileError reports the compiler's file:line, relative to the
// code, and writes no descriptor to run.
func TestBuildCompileError(t *testing.T) {
	dir, err := build(t, map[string]string{
		"butter.yaml": "name: broken\nplatform: go\nfunctions:\n  - fn: ./cmd/greet\n    bindings: { streams: [names] }\n",
		"go.mod":      goMod,
		"cmd/greet/main.go": strings.Replace(greetMain, `"hello, " + in.Name`, `"hello, " + in.Nme`, 1) +
			"\nfunc unused() int { return undefinedThing }\n",
	})
	var berr *Error
	if !errors.As(err, &berr) {
		t.Fatalf("build = %v, want *Error", err)
	}
	joined := strings.Join(berr.Problems, "\n")
	t.Logf("%s:\n%s", berr.Summary, joined)
	for _, want := range []string{"cmd/greet/main.go:15:", "in.Nme undefined", "cmd/greet/main.go:19:", "undefined: undefinedThing"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "# ") || strings.Contains(joined, dir) || strings.Contains(joined, "./cmd") {
		t.Errorf("problems name build paths or headers:\n%s", joined)
	}
	if !strings.Contains(berr.Summary, "function greet (./cmd/greet)") {
		t.Errorf("summary %q does not name the function", berr.Summary)
	}
	if _, err := os.Stat(filepath.Join(dir, RunDescriptor)); err == nil {
		t.Error("a failed build wrote the run descriptor")
	}
}

// TestBuildBadFn names the descriptor line of each fn that is no package
// of the code, before running the compiler.
func TestBuildBadFn(t *testing.T) {
	_, err := build(t, map[string]string{
		"butter.yaml": `name: bad
platform: go
functions:
  - fn: cmd/greet
    bindings: { streams: [names] }
  - fn: ./missing
    bindings: { streams: [names] }
  - fn: ./cmd/greet --fast
    name: fast
    bindings: { streams: [names] }
  - fn: ./../outside
    bindings: { streams: [names] }
`,
		"go.mod":            goMod,
		"cmd/greet/main.go": greetMain,
	})
	var berr *Error
	if !errors.As(err, &berr) || len(berr.Problems) != 4 {
		t.Fatalf("build = %v, want 4 problems", err)
	}
	for i, want := range []string{
		`butter.yaml:4:9 functions[0].fn: "cmd/greet" is not a package path relative to the code: write . or ./cmd/greet`,
		`butter.yaml:6:9 functions[1].fn: "./missing" is not a directory of the code`,
		`butter.yaml:8:9 functions[2].fn: "./cmd/greet --fast": a go function's fn is a Go package path`,
		`butter.yaml:11:9 functions[3].fn: "./../outside" points outside the code`,
	} {
		if !strings.HasPrefix(berr.Problems[i], want) {
			t.Errorf("problem %d = %q, want %q…", i, berr.Problems[i], want)
		}
	}
}

// TestBuildWithoutGoMod builds code with no go.mod at all, and reports an
// import no module provides at its line: the build never downloads.
func TestBuildWithoutGoMod(t *testing.T) {
	files := map[string]string{
		"butter.yaml": "name: bare\nplatform: go\nfunctions:\n  - { fn: ., name: bare, bindings: { streams: [names] } }\n",
		"main.go":     greetMain,
	}
	if _, err := build(t, files); err != nil {
		t.Fatalf("build without go.mod: %v", err)
	}
	files["main.go"] = strings.Replace(greetMain, `"context"`, "\"context\"\n\t_ \"github.com/nowhere/nothing\"", 1)
	_, err := build(t, files)
	var berr *Error
	if !errors.As(err, &berr) || !strings.Contains(strings.Join(berr.Problems, "\n"), "main.go:5:2: ") ||
		!strings.Contains(strings.Join(berr.Problems, "\n"), "GOPROXY=off") {
		t.Fatalf("build importing an unknown module = %v", err)
	}
}

// TestRunDescriptorJSON rewrites a JSON descriptor yaml.v3 cannot read
// (an escaped slash) as JSON.
func TestRunDescriptorJSON(t *testing.T) {
	src := []byte(`{"name":"j","platform":"go","functions":[{"fn":".\/cmd\/greet","bindings":{"streams":["s"]}}]}`)
	desc, err := descriptor.Parse("butter.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	doc, nodes, err := functionNodes(src)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runDescriptor(src, doc, nodes, desc)
	if err != nil {
		t.Fatal(err)
	}
	run, err := descriptor.Parse("run.yaml", out)
	if err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if f := run.Functions[0]; f.Name != "greet" || f.Fn != "./.butter/go/greet" || f.Bindings.Streams[0].Name != "s" {
		t.Errorf("run descriptor %s", out)
	}
}

// TestBuildProgress: a build reports its start, each package go build
// compiles (here at least the function's own, whose source is new), and
// its end; a failed build's last report carries its error, and the
// problems hold no package line of -v.
func TestBuildProgress(t *testing.T) {
	files := map[string]string{
		"butter.yaml": "name: greet\nplatform: go\nfunctions:\n  - fn: ./cmd/greet\n    bindings: { streams: [names] }\n",
		"go.mod":      goMod,
		// New source, so the cache cannot have it.
		"cmd/greet/main.go": greetMain + "\nconst fresh = \"" + time.Now().Format(time.RFC3339Nano) + "\"\n\nvar _ = fresh\n",
	}
	run := func(files map[string]string) ([]Progress, error) {
		dir := t.TempDir()
		writeFiles(t, dir, files)
		desc, err := descriptor.Parse("butter.yaml", []byte(files["butter.yaml"]))
		if err != nil {
			t.Fatal(err)
		}
		var got []Progress
		b := New(Config{Dir: t.TempDir(), Cache: testCache, Progress: func(p Progress) { got = append(got, p) }})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		return got, b.Build(ctx, dir, "butter.yaml", []byte(files["butter.yaml"]), desc)
	}
	got, err := run(files)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	first, last := got[0], got[len(got)-1]
	if first.Deployment != "greet" || first.Function != "greet" || first.Package != "./cmd/greet" || first.Done || first.Compiled != 0 {
		t.Errorf("first report %+v, want the start of greet", first)
	}
	if !last.Done || last.Err != nil || last.Compiled < 1 || last.Compiled != len(got)-2 || last.Elapsed <= 0 {
		t.Errorf("last report %+v after %d reports, want done with every compiled package counted", last, len(got))
	}
	own := false
	for _, p := range got[1 : len(got)-1] {
		own = own || p.Last == "example.com/greet/cmd/greet"
	}
	if !own {
		t.Errorf("no report of the function's own package example.com/greet/cmd/greet: %+v", got)
	}

	files["cmd/greet/main.go"] += "\nfunc broken() int { return undefinedThing }\n"
	got, err = run(files)
	var berr *Error
	if !errors.As(err, &berr) {
		t.Fatalf("broken build = %v, want *Error", err)
	}
	if last := got[len(got)-1]; !last.Done || !errors.As(last.Err, &berr) {
		t.Errorf("last report of a failed build %+v, want done with its *Error", last)
	}
	for _, p := range berr.Problems {
		if isPackageLine(p) {
			t.Errorf("problem %q is a package line of go build -v", p)
		}
	}
	if !strings.Contains(strings.Join(berr.Problems, "\n"), "undefined: undefinedThing") {
		t.Errorf("problems %q lack the compiler's error", berr.Problems)
	}
}

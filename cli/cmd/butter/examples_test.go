package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamExamples are the examples under examples/ that bind to streams and
// that TestExamplesEndToEnd deploys: one event in, the expected result out.
// Every such example belongs here; examples/http-hello and examples/tick
// (route and timer bindings) are TestGatewayAndTimerEndToEnd's.
var streamExamples = []struct {
	dir     string // under examples/
	in, out string // streams
	data    string // the input event's data
	want    string // the result's data, as JSON
}{
	{"hello", "greetings", "greetings-answered", `{"name":"ada"}`, `{"greeting":"hello, ada"}`},
	{"enrich", "orders", "order-results", `{"total":10}`, `{"order":{"total":10},"totalWithTax":12.0}`},
	{"exec-wordcount", "sentences", "word-counts", `{"text":"to be or not to be"}`, `{"words":6,"distinct":4}`},
	{"http-shout", "whispers", "shouts", `{"text":"psst"}`, `{"text":"PSST!","id":"$ID"}`},
	{"go-greet", "gophers", "gopher-greetings", `{"name":"gopher"}`, `{"greeting":"hello, gopher, from Go"}`},
}

// slowDeploy bounds a butter deploy: a go example is compiled by the
// deployer, and on a cold build cache that compiles the standard library.
const slowDeploy = 5 * time.Minute

// TestExamplesEndToEnd runs butter up, deploys every stream example at
// once with butter deploy, publishes one event to each and checks that
// each writes the expected result, caused by that event. A go example
// with a compile error is then refused, naming the file and line, and the
// running version keeps working.
func TestExamplesEndToEnd(t *testing.T) {
	// The deployers under test share the machine's build cache, so the
	// standard library is compiled once, not once per run.
	if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
		t.Setenv("BUTTER_GO_CACHE", strings.TrimSpace(string(out)))
	}
	p := startPlatform(t)
	b := p.must
	deploy := func(dir string) result {
		return p.run(slowDeploy, "", "deploy", dir, "--deployer", "http://"+p.deployer, "--timeout", slowDeploy.String())
	}

	var wg sync.WaitGroup
	results := make([]result, len(streamExamples))
	for i, ex := range streamExamples {
		wg.Go(func() { results[i] = deploy(filepath.Join("../../../examples", ex.dir)) })
	}
	wg.Wait()
	for i, ex := range streamExamples {
		if r := results[i]; r.code != 0 || !strings.Contains(r.stdout, " is running") {
			t.Fatalf("deploy examples/%s: exit %d\n%s%s", ex.dir, r.code, r.stdout, r.stderr)
		}
	}

	ids := make([]string, len(streamExamples))
	for i, ex := range streamExamples {
		r := b("", "publish", ex.in, ex.data)
		ids[i] = strings.Fields(r.stdout)[1] // published <id> to ...
	}
	for i, ex := range streamExamples {
		got := tailJSON(t, b, ex.out, 1)[0]
		want := strings.ReplaceAll(ex.want, "$ID", ids[i])
		if got.Event.Causationid != ids[i] || !sameJSON(got.Event.Data, want) {
			t.Errorf("examples/%s: %s has %s caused by %s, want %s caused by %s",
				ex.dir, ex.out, got.Event.Data, got.Event.Causationid, want, ids[i])
		}
	}
	if t.Failed() {
		return
	}

	// A compile error refuses the new version and leaves the old running.
	broken := t.TempDir()
	copyDir(t, "../../../examples/go-greet", broken)
	main := filepath.Join(broken, "cmd", "greet", "main.go")
	src, _ := os.ReadFile(main)
	writeFile(t, main, strings.Replace(string(src), `"hello, " + in.Name`, `"hello, " + in.Nmae`, 1))
	r := deploy(broken)
	if r.code == 0 || !strings.Contains(r.stderr, "go build failed") || !strings.Contains(r.stderr, "cmd/greet/main.go:19:55: in.Nmae undefined") {
		t.Fatalf("deploy of go code that does not compile: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	b("", "publish", "gophers", `{"name":"again"}`)
	// The stream has several partitions: tail lists them one after the
	// other, so the new result is either of the two.
	got := tailJSON(t, b, "gopher-greetings", 2)
	if !sameJSON(got[0].Event.Data, `{"greeting":"hello, again, from Go"}`) && !sameJSON(got[1].Event.Data, `{"greeting":"hello, again, from Go"}`) {
		t.Errorf("after a refused deploy go-greet answered %s and %s, want one for again", got[0].Event.Data, got[1].Event.Data)
	}
}

// sameJSON reports whether got and want are the same JSON value.
func sameJSON(got json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// copyDir copies the regular files of src into dst, keeping their modes.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

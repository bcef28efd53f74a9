package runtime_test

import (
	"testing"

	rtexec "github.com/buttercompass/butter/fnbox/runtime/exec"
	"github.com/buttercompass/butter/fnbox/runtime/httprt"
	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/fnbox/runtime/stdio"
)

// BenchmarkInvoke measures one no-op invocation round trip per platform
// on a real host process: go test -run '^$' -bench Invoke ./runtime/
func BenchmarkInvoke(b *testing.B) {
	b.Run("node", func(b *testing.B) {
		need(b, "node", "install Node.js 20+: apt-get install -y nodejs")
		runtimetest.BenchInvoke(b, runtimetest.Conformance{Name: "node", Dir: fixture("node"), Start: stdio.Start})
	})
	b.Run("python", func(b *testing.B) {
		need(b, "python3", "install Python 3: apt-get install -y python3")
		runtimetest.BenchInvoke(b, runtimetest.Conformance{Name: "python", Dir: fixture("python"), Start: stdio.Start})
	})
	b.Run("go", func(b *testing.B) {
		need(b, "go", "install Go: https://go.dev/dl")
		runtimetest.BenchInvoke(b, runtimetest.Conformance{Name: "go", Dir: buildGoFixture(b, "go"), Start: httprt.Start})
	})
	b.Run("http", func(b *testing.B) {
		need(b, "python3", "install Python 3: apt-get install -y python3")
		runtimetest.BenchInvoke(b, runtimetest.Conformance{Name: "http", Dir: fixture("http"), Start: httprt.Start})
	})
	b.Run("exec", func(b *testing.B) {
		need(b, "python3", "install Python 3: apt-get install -y python3")
		runtimetest.BenchInvoke(b, runtimetest.Conformance{Name: "exec", Dir: fixture("exec"), Start: rtexec.Start})
	})
}

// BenchmarkStart measures starting each platform's runtime and its first
// invocation, the runtime's share of a cold start:
// go test -run '^$' -bench Start ./runtime/
func BenchmarkStart(b *testing.B) {
	b.Run("node", func(b *testing.B) {
		need(b, "node", "install Node.js 20+: apt-get install -y nodejs")
		runtimetest.BenchStart(b, runtimetest.Conformance{Name: "node", Dir: fixture("node"), Start: stdio.Start})
	})
	b.Run("python", func(b *testing.B) {
		need(b, "python3", "install Python 3: apt-get install -y python3")
		runtimetest.BenchStart(b, runtimetest.Conformance{Name: "python", Dir: fixture("python"), Start: stdio.Start})
	})
	b.Run("go", func(b *testing.B) {
		need(b, "go", "install Go: https://go.dev/dl")
		runtimetest.BenchStart(b, runtimetest.Conformance{Name: "go", Dir: buildGoFixture(b, "go"), Start: httprt.Start})
	})
}

// BenchmarkInvokeBatch500 measures one invocation of 500 events of a batch
// function per platform (ns/op is per 500 events), the path of batch
// functions and replays: go test -run '^$' -bench InvokeBatch ./runtime/
func BenchmarkInvokeBatch500(b *testing.B) {
	b.Run("node", func(b *testing.B) {
		need(b, "node", "install Node.js 20+: apt-get install -y nodejs")
		runtimetest.BenchInvokeBatch(b, runtimetest.Conformance{Name: "node", Dir: fixture("node"), Start: stdio.Start}, 500)
	})
	b.Run("python", func(b *testing.B) {
		need(b, "python3", "install Python 3: apt-get install -y python3")
		runtimetest.BenchInvokeBatch(b, runtimetest.Conformance{Name: "python", Dir: fixture("python"), Start: stdio.Start}, 500)
	})
	b.Run("go", func(b *testing.B) {
		need(b, "go", "install Go: https://go.dev/dl")
		runtimetest.BenchInvokeBatch(b, runtimetest.Conformance{Name: "go", Dir: buildGoFixture(b, "go"), Start: httprt.Start}, 500)
	})
}

package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
)

// TestMuxChoosesByDescriptor: no runtime: is the default; a runtime the
// deployer lacks is refused naming the flag, and Start calls it broken
// (only a new version can fix it).
func TestMuxChoosesByDescriptor(t *testing.T) {
	// An empty Mux stands in for the process runtime: For only looks the
	// name up.
	m := &Mux{Default: descriptor.RuntimeProcess, Runtimes: map[string]Runtime{descriptor.RuntimeProcess: &Mux{}}}
	const base = "name: t\nplatform: exec\nfunctions: [{fn: ./a, bindings: {streams: [s]}}]\n"
	for _, c := range []struct{ yaml, want, err string }{
		{base, "process", ""},
		{base + "runtime: process\n", "process", ""},
		{base + "runtime: docker\n", "", `runtime: "docker" is not enabled on this deployer (it runs process); start the deployer with --runtime docker`},
	} {
		d, err := descriptor.Parse(control.DescriptorFile, []byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.For(d)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: For = %q, %v; want %q, %q", c.yaml, got, err, c.want, c.err)
		}
	}
	_, err := m.Start(context.Background(), InstanceSpec{Deployment: "t", Descriptor: base + "runtime: docker\n"})
	if !errors.Is(err, ErrBroken) {
		t.Fatalf("Start of a docker deployment on a process deployer = %v, want ErrBroken", err)
	}
}

package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
)

// Mux is a Runtime that runs each deployment with the runtime its
// descriptor names (runtime: process | docker), or Default.
type Mux struct {
	// Default runs deployments whose descriptor names no runtime.
	Default string
	// Runtimes by name (descriptor.RuntimeProcess, RuntimeDocker).
	Runtimes map[string]Runtime

	mu    sync.Mutex
	owner map[string]string // instance id → runtime name, from Start and List
}

var _ Runtime = (*Mux)(nil)

// For returns the runtime name a descriptor runs with, or an error
// naming the runtime this deployer does not have.
func (m *Mux) For(d *descriptor.Descriptor) (string, error) {
	name := d.Runtime
	if name == "" {
		name = m.Default
	}
	if m.Runtimes[name] == nil {
		return "", fmt.Errorf("runtime: %q is not enabled on this deployer (it runs %s); start the deployer with --runtime %s, or remove runtime: from the descriptor",
			name, orList(slices.Sorted(maps.Keys(m.Runtimes))), name)
	}
	return name, nil
}

// Start starts the instance with its deployment's runtime. A runtime
// this deployer lacks is ErrBroken: only a new version can fix it.
func (m *Mux) Start(ctx context.Context, spec InstanceSpec) (Instance, error) {
	d, err := descriptor.Parse(control.DescriptorFile, []byte(spec.Descriptor))
	if err != nil {
		return Instance{}, fmt.Errorf("parse descriptor of deployment %q: %w", spec.Deployment, err)
	}
	name, err := m.For(d)
	if err != nil {
		return Instance{}, fmt.Errorf("%w: %w", ErrBroken, err)
	}
	in, err := m.Runtimes[name].Start(ctx, spec)
	if err == nil {
		m.note(in.ID, name)
	}
	return in, err
}

// List lists every runtime's instances.
func (m *Mux) List(ctx context.Context) ([]Instance, error) {
	var out []Instance
	for _, name := range slices.Sorted(maps.Keys(m.Runtimes)) {
		insts, err := m.Runtimes[name].List(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s runtime: %w", name, err)
		}
		for _, in := range insts {
			m.note(in.ID, name)
		}
		out = append(out, insts...)
	}
	return out, nil
}

// Stop stops the instance in the runtime that has it; an id no List or
// Start reported is stopped in every runtime (each ignores ids it does
// not know).
func (m *Mux) Stop(ctx context.Context, id string) error {
	m.mu.Lock()
	name, ok := m.owner[id]
	m.mu.Unlock()
	if ok {
		err := m.Runtimes[name].Stop(ctx, id)
		if err == nil {
			m.mu.Lock()
			delete(m.owner, id)
			m.mu.Unlock()
		}
		return err
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.Runtimes)) {
		errs = append(errs, m.Runtimes[name].Stop(ctx, id))
	}
	return errors.Join(errs...)
}

// Prune prunes every runtime, keeping also what any runtime's instances
// run: the runtimes share code dirs, and each vouches only for its own
// instances.
func (m *Mux) Prune(ctx context.Context, keep func(deployment, version string) bool) error {
	insts, err := m.List(ctx)
	if err != nil {
		return err
	}
	inUse := map[[2]string]bool{}
	for _, in := range insts {
		inUse[[2]string{in.Deployment, in.Version}] = true
	}
	keepAll := func(dep, version string) bool { return inUse[[2]string{dep, version}] || keep(dep, version) }
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.Runtimes)) {
		errs = append(errs, m.Runtimes[name].Prune(ctx, keepAll))
	}
	return errors.Join(errs...)
}

func (m *Mux) note(id, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.owner == nil {
		m.owner = map[string]string{}
	}
	m.owner[id] = name
}

func orList(xs []string) string {
	switch len(xs) {
	case 0:
		return "none"
	case 1:
		return xs[0]
	}
	return fmt.Sprintf("%s and %s", joinComma(xs[:len(xs)-1]), xs[len(xs)-1])
}

func joinComma(xs []string) string {
	s := xs[0]
	for _, x := range xs[1:] {
		s += ", " + x
	}
	return s
}

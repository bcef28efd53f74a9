package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// Prune removes the code dirs of versions keep rejects that no listed
// instance runs and that were not prepared within PruneAfter, the
// directories of deployments left empty, and leftovers of preparations a
// crash interrupted.
func (r *Runtime) Prune(ctx context.Context, keep func(deployment, version string) bool) error {
	insts, err := r.List(ctx)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, in := range insts {
		inUse[filepath.Join(in.Deployment, in.Version)] = true
	}
	r.prepareMu.Lock() // no code dir is being made meanwhile
	defer r.prepareMu.Unlock()
	root := filepath.Join(r.dataDir, "deployments")
	deps, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, dep := range deps {
		if !dep.IsDir() {
			continue
		}
		versions, err := os.ReadDir(filepath.Join(root, dep.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		left := len(versions)
		for _, v := range versions {
			info, err := v.Info()
			if err != nil || time.Since(info.ModTime()) < r.cfg.PruneAfter {
				continue
			}
			name := v.Name()
			leftover := strings.HasPrefix(name, ".prepare-") || strings.HasPrefix(name, ".unpack-")
			if !leftover && (inUse[filepath.Join(dep.Name(), name)] || keep(dep.Name(), name)) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(root, dep.Name(), name)); err != nil {
				errs = append(errs, err)
				continue
			}
			left--
			r.log.Info("removed unused code", kit.KeyDeployment, dep.Name(), "version", name)
		}
		if left == 0 {
			_ = os.Remove(filepath.Join(root, dep.Name())) // only if empty
		}
	}
	return errors.Join(errs...)
}

// CodeDir is where a deployment version's code is unpacked.
func (r *Runtime) CodeDir(deployment, version string) string {
	return filepath.Join(r.dataDir, "deployments", deployment, version)
}

// Prepare unpacks a deployment version's code where its instances will
// run, and builds it when its platform is go, without starting anything.
// The deployer calls it before storing a go deployment, so a build error
// (a *gobuild.Error) rejects the deployment; Start then finds the code
// ready.
func (r *Runtime) Prepare(ctx context.Context, d control.Deployment) error {
	_, _, err := r.prepare(ctx, runtime.InstanceSpec{Deployment: d.Name, Version: d.Version, Descriptor: d.Descriptor, Code: d.Code})
	return err
}

// prepare makes <data>/deployments/<name>/<version>/ with the code and
// butter.yaml, and for a go deployment the built functions, and returns
// it with the descriptor fnbox runs. A version's content never changes,
// so an existing directory is reused. The directory is made under a
// temporary name and renamed into place once whole, so a crash or a
// failed build never leaves half of one behind.
func (r *Runtime) prepare(ctx context.Context, spec runtime.InstanceSpec) (dir, desc string, err error) {
	// Both name a directory under the data dir: never a path out of it.
	if !descriptor.ValidVersion(spec.Version) || !filepath.IsLocal(spec.Deployment) || strings.ContainsRune(spec.Deployment, filepath.Separator) {
		return "", "", fmt.Errorf("deployment %q version %q cannot name a code directory", spec.Deployment, spec.Version)
	}
	dir = r.CodeDir(spec.Deployment, spec.Version)
	ready := func() bool { return fileExists(filepath.Join(dir, control.DescriptorFile)) }
	if ready() { // without the lock: a build elsewhere must not hold up this start
		return dir, runDescriptor(dir), nil
	}
	r.prepareMu.Lock()
	defer r.prepareMu.Unlock()
	if ready() {
		return dir, runDescriptor(dir), nil
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", "", fmt.Errorf("create code dir: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(dir), ".prepare-"+spec.Version+"-"+randHex(4))
	defer os.RemoveAll(tmp)
	if len(spec.Code) > 0 {
		if err := archive.Extract(spec.Code, tmp); err != nil {
			return "", "", err
		}
	} else if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", "", fmt.Errorf("create code dir: %w", err)
	}
	// The stored descriptor is the one the deployer validated; write it
	// even over the archive's copy, which it was read from anyway.
	if err := writeFile(filepath.Join(tmp, control.DescriptorFile), []byte(spec.Descriptor)); err != nil {
		return "", "", err
	}
	parsed, err := descriptor.Parse(control.DescriptorFile, []byte(spec.Descriptor))
	if err != nil {
		return "", "", fmt.Errorf("parse descriptor of %s version %s: %w", spec.Deployment, spec.Version, err)
	}
	if parsed.Platform == descriptor.PlatformGo {
		if len(spec.Code) == 0 {
			return "", "", gobuild.ErrNoCode(control.DescriptorFile, []byte(spec.Descriptor))
		}
		if err := r.builder.Build(ctx, tmp, control.DescriptorFile, []byte(spec.Descriptor), parsed); err != nil {
			return "", "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", fmt.Errorf("move code into %s: %w", dir, err)
	}
	return dir, runDescriptor(dir), nil
}

// runDescriptor is the descriptor fnbox runs in a prepared code dir: the
// build's rewrite for go, else butter.yaml.
func runDescriptor(dir string) string {
	if p := filepath.Join(dir, filepath.FromSlash(gobuild.RunDescriptor)); fileExists(p) {
		return p
	}
	return filepath.Join(dir, control.DescriptorFile)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// buildLogEvery spaces the progress lines of one function's go build.
const buildLogEvery = 5 * time.Second

// buildLog logs go builds (gobuild.Progress): a line when a function's
// build starts, then at most one every `every` while it compiles (how
// many packages, the latest), and one when it ends, so a first build
// that compiles the standard library for minutes is seen working.
func buildLog(log *slog.Logger, every time.Duration) func(gobuild.Progress) {
	var last time.Duration // Elapsed of the latest progress line
	return func(p gobuild.Progress) {
		l := log.With(kit.KeyDeployment, p.Deployment, kit.KeyFn, p.Function, "package", p.Package)
		switch {
		case p.Done && p.Err != nil:
			l.Warn("go build failed", "compiled", p.Compiled, "elapsed", p.Elapsed.Round(time.Millisecond).String(), kit.KeyError, p.Err)
		case p.Done:
			l.Info("go build done", "compiled", p.Compiled, "elapsed", p.Elapsed.Round(time.Millisecond).String())
		case p.Compiled == 0:
			last = 0
			l.Info("go build started")
		case p.Elapsed-last >= every:
			last = p.Elapsed
			l.Info("go build compiling", "compiled", p.Compiled, "last", p.Last, "elapsed", p.Elapsed.Round(time.Second).String())
		}
	}
}

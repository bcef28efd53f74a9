// Package gobuild builds the functions of a go-platform deployment at
// deploy time, with the Go toolchain of the deployer's machine.
//
// A go function's fn is a Go package path relative to the code directory:
// "." (the root package) or "./cmd/orders". Build runs `go build` for each
// function into <code>/.butter/go/<function name> and writes
// <code>/.butter/butter.yaml, the descriptor fnbox runs: the deployment's
// own, with each fn replaced by its binary (and each name made explicit, so
// the names do not change). fnbox then runs the binary as an http-platform
// command. The stored descriptor is never changed.
//
// The function's module requires github.com/buttercompass/butter/sdk/go,
// which is on no module proxy: Build writes the SDK source embedded in the
// deployer (sdk.Source) to disk and builds with a copy of the function's
// go.mod that replaces the SDK with that directory (go build -modfile). The
// build never touches the network (GOPROXY=off), never switches toolchain
// (GOTOOLCHAIN=local), ignores any go.work above the code (GOWORK=off),
// builds without cgo (CGO_ENABLED=0) and with -trimpath, and keeps its
// build cache in Config.Cache (one for every build of a deployer, so a
// redeploy compiles only what changed). It runs go build -v, whose package
// lines become Config.Progress reports. A code directory without go.mod
// gets one.
//
// A build that fails because of the user's code or descriptor is an
// *Error whose Problems name the file and line, as the compiler did.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/buttercompass/butter/proto/descriptor"
	sdk "github.com/buttercompass/butter/sdk/go"
)

// Paths Build writes inside the code directory.
const (
	// BinDir holds one binary per function, named after the function.
	BinDir = ".butter/go"
	// RunDescriptor is the descriptor fnbox runs: fn names the binaries.
	RunDescriptor = ".butter/butter.yaml"
)

// SDKModule is the module path of the Go SDK that functions import.
const SDKModule = "github.com/buttercompass/butter/sdk/go"

// DefaultTimeout bounds one function's build when Config.Timeout is zero:
// the first build on a fresh cache compiles the standard library.
const DefaultTimeout = 10 * time.Minute

// Config configures a Builder.
type Config struct {
	// Go is the go command. Default: go on PATH.
	Go string
	// Dir is the builder's work directory: the SDK copy, go.mod copies
	// and, by default, the build cache. Required.
	Dir string
	// SDK is a directory holding the SDK module source to build against.
	// Default: the copy embedded in the deployer, written under Dir.
	SDK string
	// Cache is GOCACHE for builds. Default: Dir/cache.
	Cache string
	// Timeout bounds each function's build. Default DefaultTimeout.
	Timeout time.Duration
	// Progress, if set, is told what a build is doing (see Progress), from
	// the goroutine that runs it. Default: nothing is told.
	Progress func(Progress)
}

// Progress is a report on a running build, for Config.Progress: one when a
// function's go build starts, one for each package it compiles (those the
// build cache lacks: on a warm cache often only the function's own), and
// one when it ends. A cold cache compiles the standard library first,
// which is where minutes go.
type Progress struct {
	// Deployment, Function and Package (its fn) name what is built.
	Deployment, Function, Package string
	// Compiled counts the packages compiled so far for this function,
	// Last is the latest of them.
	Compiled int
	Last     string
	// Elapsed is the time since this function's build started.
	Elapsed time.Duration
	// Done is set on a function's last report, with Err its failure.
	Done bool
	Err  error
}

// Builder builds go functions. It is safe for concurrent use.
type Builder struct {
	cfg Config

	mu     sync.Mutex
	sdkDir string // the SDK on disk once written
}

// New returns a Builder; nothing is checked or written until Build.
func New(cfg Config) *Builder {
	if cfg.Go == "" {
		cfg.Go = "go"
	}
	if cfg.Cache == "" && cfg.Dir != "" {
		cfg.Cache = filepath.Join(cfg.Dir, "cache")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	// GOCACHE must be absolute; the go command refuses a relative one.
	if abs, err := filepath.Abs(cfg.Cache); err == nil && cfg.Cache != "" {
		cfg.Cache = abs
	}
	return &Builder{cfg: cfg}
}

// Error is a build that failed because of the deployment's code or
// descriptor: fixing them fixes it. Problems are compiler-style lines,
// "main.go:12:3: undefined: x" or "butter.yaml:5:9 functions[0].fn: ...",
// with paths relative to the code directory.
type Error struct {
	// Summary says what failed, e.g. "go build of function greet (./cmd/greet) failed".
	Summary  string
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return e.Summary
	}
	return e.Summary + ": " + strings.Join(e.Problems, "; ")
}

// Build builds every function of desc, whose source is descSrc (as named
// by descFile in problems), in the unpacked code directory dir, and writes
// dir/RunDescriptor. It returns an *Error for problems in the user's code
// or descriptor, another error when the toolchain cannot run.
func (b *Builder) Build(ctx context.Context, dir, descFile string, descSrc []byte, desc *descriptor.Descriptor) error {
	if desc.Platform != descriptor.PlatformGo {
		return fmt.Errorf("build deployment %s: platform %q is not go", desc.Name, desc.Platform)
	}
	doc, fnNodes, err := functionNodes(descSrc)
	if err != nil {
		return fmt.Errorf("build deployment %s: read %s: %w", desc.Name, descFile, err)
	}
	if len(fnNodes) != len(desc.Functions) {
		return fmt.Errorf("build deployment %s: %s has %d function entries, the descriptor %d", desc.Name, descFile, len(fnNodes), len(desc.Functions))
	}
	var probs []string
	pkgs := make([]string, len(desc.Functions))
	for i, f := range desc.Functions {
		pkgs[i], err = packagePath(dir, f.Fn)
		if err != nil {
			n := fnNodes[i].fn
			probs = append(probs, descriptor.Problem{File: descFile, Line: n.Line, Column: n.Column,
				Field: fmt.Sprintf("functions[%d].fn", i), Message: err.Error()}.String())
		}
	}
	if len(probs) > 0 {
		return &Error{Summary: "fn of a go function is a Go package in the code", Problems: probs}
	}

	sdkDir, err := b.sdk()
	if err != nil {
		return err
	}
	work, err := b.modfile(ctx, dir, sdkDir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(work))
	if err := os.MkdirAll(filepath.Join(dir, BinDir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", BinDir, err)
	}
	built := map[string]string{} // package → binary, built once
	for i, f := range desc.Functions {
		bin := filepath.Join(dir, BinDir, f.Name)
		if prev, ok := built[pkgs[i]]; ok {
			if err := os.Link(prev, bin); err != nil {
				return fmt.Errorf("link binary of function %s: %w", f.Name, err)
			}
			continue
		}
		if err := b.build(ctx, dir, work, pkgs[i], bin, desc.Name, f); err != nil {
			return err
		}
		built[pkgs[i]] = bin
	}
	run, err := runDescriptor(descSrc, doc, fnNodes, desc)
	if err != nil {
		return fmt.Errorf("build deployment %s: write %s: %w", desc.Name, RunDescriptor, err)
	}
	if err := os.WriteFile(filepath.Join(dir, RunDescriptor), run, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", RunDescriptor, err)
	}
	return nil
}

// packagePath checks fn, a package path relative to the code dir, and
// returns it in the form go build takes.
func packagePath(dir, fn string) (string, error) {
	fn = strings.TrimSpace(fn)
	if strings.ContainsAny(fn, " \t\n") {
		return "", fmt.Errorf("%q: a go function's fn is a Go package path, like . or ./cmd/orders, without arguments", fn)
	}
	if fn != "." && !strings.HasPrefix(fn, "./") {
		return "", fmt.Errorf("%q is not a package path relative to the code: write . or ./%s", fn, strings.TrimPrefix(fn, "/"))
	}
	clean := path.Clean(fn)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q points outside the code", fn)
	}
	st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(clean)))
	if err != nil || !st.IsDir() {
		return "", fmt.Errorf("%q is not a directory of the code: fn names the package directory holding main.go", fn)
	}
	if clean == "." {
		return ".", nil
	}
	return "./" + clean, nil
}

// build runs go build for one function, reporting its progress.
func (b *Builder) build(ctx context.Context, dir, modfile, pkg, bin, deployment string, f descriptor.Function) (err error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	p := Progress{Deployment: deployment, Function: f.Name, Package: f.Fn}
	b.report(p)
	defer func() {
		p.Elapsed, p.Done, p.Err = time.Since(start), true, err
		b.report(p)
	}()
	// -v prints each package as it is compiled: the progress. Everything
	// else go build says is kept for the error.
	var out bytes.Buffer
	lines := &lineWriter{each: func(l string) {
		if isPackageLine(l) {
			p.Compiled, p.Last, p.Elapsed = p.Compiled+1, l, time.Since(start)
			b.report(p)
			return
		}
		out.WriteString(l + "\n")
	}}
	cmd := b.command(ctx, dir, "build", "-v", "-trimpath", "-modfile="+modfile, "-o", bin, pkg)
	cmd.Stdout, cmd.Stderr = lines, lines
	err = cmd.Run()
	lines.flush()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("go build of function %s (%s): %w", f.Name, f.Fn, ctx.Err())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("run %s build for function %s (the deployer builds go functions: install Go or set --go): %w", b.cfg.Go, f.Name, err)
	}
	return &Error{Summary: fmt.Sprintf("go build of function %s (%s) failed", f.Name, f.Fn),
		Problems: compilerLines(out.Bytes(), dir, modfile)}
}

func (b *Builder) report(p Progress) {
	if b.cfg.Progress != nil {
		b.cfg.Progress(p)
	}
}

// isPackageLine reports whether a line of go build -v is a package it
// compiled (an import path alone), not a message.
func isPackageLine(l string) bool {
	return l != "" && !strings.ContainsAny(l, " \t:") && !strings.HasPrefix(l, "#")
}

// lineWriter calls each with every whole line written to it. exec writes
// to it from one goroutine when Stdout and Stderr are the same writer.
type lineWriter struct {
	each    func(string)
	partial []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.each(strings.TrimRight(string(w.partial[:i]), "\r"))
		w.partial = w.partial[i+1:]
	}
}

// flush passes on a last line without its newline.
func (w *lineWriter) flush() {
	if len(w.partial) > 0 {
		w.each(string(w.partial))
		w.partial = nil
	}
}

// goCmd runs the go command in dir with the build environment and returns
// its combined output.
func (b *Builder) goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return b.command(ctx, dir, args...).CombinedOutput()
}

// command is the go command in dir with the build environment.
func (b *Builder) command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.cfg.Go, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0",
		"GOCACHE="+b.cfg.Cache)
	if os.Getenv("GOMODCACHE") == "" && os.Getenv("GOPATH") == "" && os.Getenv("HOME") == "" {
		// A service account without HOME: go needs a module cache even
		// when nothing is downloaded.
		cmd.Env = append(cmd.Env, "GOMODCACHE="+filepath.Join(b.cfg.Dir, "mod"))
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// compilerLines turns go build's output into problems: headers ("# pkg")
// and module chatter dropped, build paths made relative to the code.
func compilerLines(out []byte, dir, modfile string) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "# ") ||
			strings.HasPrefix(l, "go: found ") || strings.HasPrefix(l, "go: finding ") {
			continue
		}
		l = strings.ReplaceAll(l, modfile, "go.mod")
		l = strings.ReplaceAll(l, strings.TrimSuffix(modfile, ".mod")+".sum", "go.sum")
		l = strings.ReplaceAll(l, dir+string(filepath.Separator), "")
		l = strings.TrimPrefix(l, "./")
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		lines = []string{"go build failed without saying why"}
	}
	return lines
}

// modfile writes the go.mod go build uses: the code's own (or a new one
// when there is none) with the SDK replaced by sdkDir, in a fresh
// directory under the work dir, with the code's go.sum beside it.
func (b *Builder) modfile(ctx context.Context, dir, sdkDir string) (string, error) {
	tmpRoot := filepath.Join(b.cfg.Dir, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return "", fmt.Errorf("create go build work dir: %w", err)
	}
	tmp, err := os.MkdirTemp(tmpRoot, "mod-")
	if err != nil {
		return "", fmt.Errorf("create go build work dir: %w", err)
	}
	modfile := filepath.Join(tmp, "go.mod")
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", err
	}
	src, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if errors.Is(err, fs.ErrNotExist) {
		// go build needs a go.mod at the module root, not only -modfile.
		src = []byte("module function\n\ngo " + sdkGoVersion() + "\n")
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), src, 0o644); err != nil {
			return fail(fmt.Errorf("write go.mod: %w", err))
		}
	} else if err != nil {
		return fail(fmt.Errorf("read go.mod: %w", err))
	}
	if err := os.WriteFile(modfile, src, 0o644); err != nil {
		return fail(fmt.Errorf("copy go.mod: %w", err))
	}
	if sum, err := os.ReadFile(filepath.Join(dir, "go.sum")); err == nil {
		if err := os.WriteFile(filepath.Join(tmp, "go.sum"), sum, 0o644); err != nil {
			return fail(fmt.Errorf("copy go.sum: %w", err))
		}
	}
	// A replace of the SDK in the user's go.mod points at their checkout,
	// which is not here: drop it, whatever version it names.
	out, err := b.goCmd(ctx, dir, "mod", "edit", "-json", modfile)
	if err != nil {
		return fail(&Error{Summary: "go.mod is not valid", Problems: compilerLines(out, dir, modfile)})
	}
	var mod struct {
		Replace []struct {
			Old struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		return fail(fmt.Errorf("read go mod edit -json: %w", err))
	}
	args := []string{"mod", "edit"}
	for _, r := range mod.Replace {
		if r.Old.Path == SDKModule {
			old := r.Old.Path
			if r.Old.Version != "" {
				old += "@" + r.Old.Version
			}
			args = append(args, "-dropreplace="+old)
		}
	}
	args = append(args, "-replace="+SDKModule+"="+sdkDir, modfile)
	if out, err := b.goCmd(ctx, dir, args...); err != nil {
		return fail(&Error{Summary: "go.mod cannot be edited", Problems: compilerLines(out, dir, modfile)})
	}
	return modfile, nil
}

// sdk returns the SDK directory, writing the embedded copy on first use.
// The copy's directory is named after its content, so a deployer with a
// newer SDK never builds against an older copy.
func (b *Builder) sdk() (string, error) {
	if b.cfg.SDK != "" {
		return filepath.Abs(b.cfg.SDK)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sdkDir != "" {
		return b.sdkDir, nil
	}
	files, err := fs.Glob(sdk.Source, "*")
	if err != nil {
		return "", fmt.Errorf("list embedded Go SDK: %w", err)
	}
	slices.Sort(files)
	h := sha256.New()
	contents := map[string][]byte{}
	for _, name := range files {
		c, err := fs.ReadFile(sdk.Source, name)
		if err != nil {
			return "", fmt.Errorf("read embedded Go SDK: %w", err)
		}
		contents[name] = c
		fmt.Fprintf(h, "%s %d\n", name, len(c))
		h.Write(c)
	}
	dir, err := filepath.Abs(filepath.Join(b.cfg.Dir, "sdk-"+hex.EncodeToString(h.Sum(nil))[:12]))
	if err != nil {
		return "", fmt.Errorf("resolve Go SDK dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		if err := writeDir(dir, contents); err != nil {
			return "", err
		}
	}
	b.sdkDir = dir
	return dir, nil
}

// writeDir writes files into dir through a temporary sibling, so dir is
// whole or absent.
func writeDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".sdk-")
	if err != nil {
		return fmt.Errorf("write Go SDK: %w", err)
	}
	defer os.RemoveAll(tmp)
	for name, c := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), c, 0o644); err != nil {
			return fmt.Errorf("write Go SDK: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			return nil // written meanwhile by another deployer
		}
		return fmt.Errorf("write Go SDK: %w", err)
	}
	return nil
}

// sdkGoVersion is the go directive of the SDK's go.mod, for a generated
// go.mod: a function module needs at least the SDK's Go version.
func sdkGoVersion() string {
	src, _ := fs.ReadFile(sdk.Source, "go.mod")
	for l := range bytes.Lines(src) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(string(l)), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "1.26"
}

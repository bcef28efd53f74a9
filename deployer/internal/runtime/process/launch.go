package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
)

// brokenFile, in a version's code dir, holds why its code failed to load:
// the version stays stopped across deployer restarts until a new version
// is deployed (Prune removes the dir with the version).
const brokenFile = ".butter-broken"

// checkBroken refuses a version whose code failed to load before: its
// code dir holds brokenFile.
func checkBroken(dir string) error {
	if b, err := os.ReadFile(filepath.Join(dir, brokenFile)); err == nil {
		return fmt.Errorf("%w: %s", runtime.ErrBroken, b)
	}
	return nil
}

// launch starts cmd as process id (an instance or a pool): in its own
// process group, inside its cgroups with limits l, tied to the deployer's
// life when Config.DieWithParent, told where to signal readiness when
// readyPath is set. It returns the process's cgroup directories.
func (r *Runtime) launch(cmd *exec.Cmd, id, readyPath string, l limits) ([]string, error) {
	dirs, err := r.cgroups.create(id, l)
	if err != nil {
		return nil, err
	}
	if l.NodeHeapMiB > 0 {
		// Later entries win: this one overrides the deployer's own.
		cmd.Env = append(cmd.Env, "NODE_OPTIONS="+strings.TrimSpace(os.Getenv("NODE_OPTIONS")+" --max-old-space-size="+strconv.FormatInt(l.NodeHeapMiB, 10)))
	}
	if readyPath != "" {
		cmd.Args = append(cmd.Args, "--"+control.ReadyFileFlag, readyPath)
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if r.cfg.DieWithParent {
		attr.Pdeathsig = syscall.SIGKILL
	}
	if r.cgroups.kind == CgroupV2 && len(dirs) > 0 {
		f, err := os.Open(dirs[0])
		if err != nil {
			removeCgroups(dirs)
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		defer f.Close()
		// Born inside its cgroup: nothing it forks escapes the limits.
		attr.UseCgroupFD, attr.CgroupFD = true, int(f.Fd())
	}
	cmd.SysProcAttr = attr
	if r.cfg.DieWithParent {
		err = startTied(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		removeCgroups(dirs)
		return nil, err
	}
	if r.cgroups.kind == CgroupV1 {
		// v1 cannot start a process inside its cgroup: fnbox is moved
		// just after it started, and so is anything it started before
		// that (it starts its runtime host at once); what it starts
		// later is born inside.
		if err := joinTree(dirs, cmd.Process.Pid); err != nil {
			killGroup(cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			removeCgroups(dirs)
			return nil, err
		}
	}
	return dirs, nil
}

// exitError says why a started instance exited, and whether it was for
// good (the code failed to load, which is remembered in the code dir).
func (r *Runtime) exitError(cmd *exec.Cmd, err error, p *proc, dir string) (error, bool) {
	switch {
	case killed(cmd) && oomKills(p.rec.Cgroups) > 0:
		return fmt.Errorf("fnbox killed by the kernel: the instance went over its memory limit of %s (the functions' limits.memory plus %s for fnbox)",
			byteSize(r.instanceMemory(p)), byteSize(r.cfg.MemoryOverhead)), false
	case err == nil:
		return errors.New("fnbox exited with status 0"), false
	case cmd.ProcessState.ExitCode() == control.ExitCodeLoadError:
		msg := lastLine(r.logPath(p.rec.ID))
		_ = writeFile(filepath.Join(dir, brokenFile), []byte(msg))
		return errors.New(msg), true
	case cmd.ProcessState.ExitCode() == control.ExitCodeOrphan:
		return fmt.Errorf("fnbox exited on its own, its broker or deployment gone: %s", lastLine(r.logPath(p.rec.ID))), false
	default:
		return fmt.Errorf("fnbox %s", err), false
	}
}

// killed reports whether cmd ended by SIGKILL, as the kernel's OOM killer
// ends a process; an earlier kill of a function process alone must not be
// blamed for a later exit of fnbox.
func killed(cmd *exec.Cmd) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// instanceMemory reads the memory limit of p's cgroup, 0 if none.
func (r *Runtime) instanceMemory(p *proc) int64 {
	for _, dir := range p.rec.Cgroups {
		for _, file := range []string{"memory.max", "memory.limit_in_bytes"} {
			if b, err := os.ReadFile(filepath.Join(dir, file)); err == nil {
				n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				return n
			}
		}
	}
	return 0
}

// byteSize writes n in Mi when it is whole, like the descriptor does.
func byteSize(n int64) string {
	if n > 0 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + "Mi"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// sameBrokers reports whether an instance recorded with brokers talks to
// the cluster this runtime uses.
func sameBrokers(recorded, current []string) bool {
	a, b := slices.Clone(recorded), slices.Clone(current)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Admit refuses a descriptor whose limits this machine cannot enforce
// (no usable cgroup), naming the first function that sets them, so the
// deploy fails instead of a version reported broken later.
func (r *Runtime) Admit(d *descriptor.Descriptor) error {
	if r.cgroups.kind != CgroupNone {
		return nil
	}
	for i, f := range d.Functions {
		if f.Limits.MemoryBytes() > 0 || f.Limits.MilliCPU() > 0 {
			return fmt.Errorf("functions[%d].limits: %w: no writable cgroup (%s); remove the limits or run the deployer where cgroups are writable (docs/deployer.md#resource-limits)", i, ErrLimits, r.cgroups.why)
		}
	}
	return nil
}

package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// This file enforces limits.memory, limits.cpu and a pids cap on each
// instance: fnbox and the function processes it starts (a node or python
// host, a command, an http server) share one cgroup per instance, made
// under the deployer's own cgroup.
//
//   - cgroup v2, when the deployer's cgroup can give memory, cpu and pids
//     to its children (its cgroup.subtree_control lists them or accepts
//     them); the instance starts inside its cgroup (clone3
//     CLONE_INTO_CGROUP), so nothing it forks escapes.
//   - else cgroup v1, when the memory, cpu and pids hierarchies are mounted
//     under /sys/fs/cgroup and writable (root); fnbox is moved into its
//     cgroups right after it starts, before it starts any function
//     process.
//   - else nothing can enforce a limit: an instance whose functions set
//     limits is refused with ErrLimits (the deployment is reported
//     broken), and the pids cap does not apply.
//
// A cgroup's memory limit covers every process in it, so the limit is the
// sum of the hosted functions' limits.memory plus Config.MemoryOverhead for
// fnbox itself; a function without limits.memory makes its instance
// unlimited. A node function also gets --max-old-space-size (3/4 of its
// share), so V8 collects garbage before the kernel kills.

// ErrLimits is returned (wrapped) by Start when a function's limits cannot
// be enforced on this machine. Restarting cannot fix it.
var ErrLimits = errors.New("resource limits cannot be enforced here")

// limits is what one instance may use: the runtime-wide limits plus a
// pids cap.
type limits struct {
	runtime.Limits
	pids int64 // processes and threads; 0 is no limit
}

// instanceLimits sums the limits of the functions an instance hosts.
func instanceLimits(desc *descriptor.Descriptor, functions []string, overhead, pids int64) limits {
	return limits{Limits: runtime.InstanceLimits(desc, functions, overhead), pids: pids}
}

// Cgroup kinds, as Enforcement reports them.
const (
	CgroupV2   = "cgroup2"
	CgroupV1   = "cgroup1"
	CgroupNone = "none"
)

// cgroups makes and removes instance cgroups of one kind.
type cgroups struct {
	kind string
	// v2 is the directory instance cgroups are made in (cgroup v2).
	v2 string
	// v1 maps each controller (memory, cpu, pids) to the directory its
	// instance cgroups are made in (cgroup v1).
	v1 map[string]string
	// why says what was tried when kind is CgroupNone.
	why string
}

// controllers are the cgroup controllers the runtime uses.
var controllers = []string{"memory", "cpu", "pids"}

// detectCgroups finds the first usable kind: v2, then v1, then none.
// Instance cgroups go into a butter-instances directory under the
// deployer's own cgroup, so an operator's limit on the deployer bounds
// every instance too.
func detectCgroups() *cgroups {
	own := ownCgroups()
	var whys []string
	for _, mount := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		p, ok := own[""]
		if !ok || !isCgroup2(mount) {
			continue
		}
		// The deployer's own cgroup, else its parent: a cgroup holding
		// processes (the deployer) cannot give controllers to children, so
		// a deployer in a leaf of a delegated cgroup puts the instances
		// beside itself.
		dir := filepath.Join(mount, p)
		for _, at := range []string{dir, filepath.Dir(dir)} {
			if !strings.HasPrefix(at, mount) {
				break
			}
			if err := enableControllers(at); err != nil {
				whys = append(whys, fmt.Sprintf("cgroup v2 at %s: %v", at, err))
				continue
			}
			base := filepath.Join(at, "butter-instances")
			err := os.MkdirAll(base, 0o755)
			if err == nil {
				err = enableControllers(base)
			}
			if err == nil {
				return &cgroups{kind: CgroupV2, v2: base}
			}
			whys = append(whys, fmt.Sprintf("cgroup v2 at %s: %v", base, err))
		}
		break
	}
	v1 := map[string]string{}
	for _, c := range controllers {
		p, ok := own[c]
		mount := filepath.Join("/sys/fs/cgroup", c)
		if !ok || !fileExists(filepath.Join(mount, "cgroup.procs")) {
			whys = append(whys, fmt.Sprintf("cgroup v1 %s: not mounted at %s", c, mount))
			break
		}
		base := filepath.Join(mount, p, "butter-instances")
		if err := os.MkdirAll(base, 0o755); err != nil {
			whys = append(whys, fmt.Sprintf("cgroup v1 %s: %v", c, err))
			break
		}
		v1[c] = base
	}
	if len(v1) == len(controllers) {
		return &cgroups{kind: CgroupV1, v1: v1}
	}
	return &cgroups{kind: CgroupNone, why: strings.Join(whys, "; ")}
}

// ownCgroups reads /proc/self/cgroup: controller → path; "" is the cgroup
// v2 path.
func ownCgroups() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// isCgroup2 reports whether a cgroup v2 hierarchy is mounted at dir.
func isCgroup2(dir string) bool {
	var st syscall.Statfs_t
	const cgroup2Magic = 0x63677270
	return syscall.Statfs(dir, &st) == nil && st.Type == cgroup2Magic
}

// enableControllers makes memory, cpu and pids available to dir's
// children. A cgroup holding processes itself cannot (the kernel's
// no-internal-processes rule): then the deployer must run in a leaf of a
// delegated cgroup, see docs/deployer.md.
func enableControllers(dir string) error {
	have, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	var add []string
	for _, c := range controllers {
		if !slices.Contains(strings.Fields(string(have)), c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(add, " ")), 0o644); err != nil {
		return fmt.Errorf("enable %s: %w", strings.Join(add, " "), err)
	}
	return nil
}

// create makes instance id's cgroups with limits l and returns their
// directories (none for CgroupNone).
func (c *cgroups) create(id string, l limits) ([]string, error) {
	if c.kind == CgroupNone {
		if l.Memory > 0 || l.MilliCPU > 0 {
			return nil, fmt.Errorf("%w: %w: no writable cgroup (%s); remove limits from the descriptor or run the deployer where cgroups are writable (docs/deployer.md)", runtime.ErrBroken, ErrLimits, c.why)
		}
		return nil, nil
	}
	var dirs []string
	write := func(dir, file, v string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
			return fmt.Errorf("set %s of instance %s: %w", file, id, err)
		}
		return nil
	}
	fail := func(err error) ([]string, error) {
		removeCgroups(dirs)
		return nil, err
	}
	if c.kind == CgroupV2 {
		dir := filepath.Join(c.v2, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup of instance %s: %w", id, err)
		}
		dirs = append(dirs, dir)
		if l.Memory > 0 {
			if err := write(dir, "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
				return fail(err)
			}
			_ = write(dir, "memory.swap.max", "0") // absent without swap accounting
		}
		if l.MilliCPU > 0 {
			if err := write(dir, "cpu.max", fmt.Sprintf("%d 100000", l.MilliCPU*100)); err != nil {
				return fail(err)
			}
		}
		if l.pids > 0 {
			if err := write(dir, "pids.max", strconv.FormatInt(l.pids, 10)); err != nil {
				return fail(err)
			}
		}
		return dirs, nil
	}
	for _, ctrl := range controllers {
		dir := filepath.Join(c.v1[ctrl], id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fail(fmt.Errorf("create %s cgroup of instance %s: %w", ctrl, id, err))
		}
		dirs = append(dirs, dir)
		var err error
		switch {
		case ctrl == "memory" && l.Memory > 0:
			err = write(dir, "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10))
			if err == nil && fileExists(filepath.Join(dir, "memory.memsw.limit_in_bytes")) {
				// Swap would let a function run past its limit, slowly.
				err = write(dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10))
			}
		case ctrl == "cpu" && l.MilliCPU > 0:
			err = write(dir, "cpu.cfs_period_us", "100000")
			if err == nil {
				err = write(dir, "cpu.cfs_quota_us", strconv.FormatInt(l.MilliCPU*100, 10))
			}
		case ctrl == "pids" && l.pids > 0:
			err = write(dir, "pids.max", strconv.FormatInt(l.pids, 10))
		}
		if err != nil {
			return fail(err)
		}
	}
	return dirs, nil
}

// join moves pid into cgroup v1 directories (v2 instances start inside
// theirs).
func joinCgroups(dirs []string, pid int) error {
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move pid %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// joinTree moves pid into cgroup v1 directories, then every process
// under it, until a scan finds none it had not moved: a process started
// before its parent was moved is moved itself, one started after is born
// inside.
func joinTree(dirs []string, pid int) error {
	if err := joinCgroups(dirs, pid); err != nil {
		return err
	}
	moved := map[int]bool{}
	for range 5 {
		more := false
		for _, n := range descendants(pid) {
			if moved[n] {
				continue
			}
			// A process that exited meanwhile cannot be moved, and
			// needs not be.
			if err := joinCgroups(dirs, n); err != nil && !errors.Is(err, syscall.ESRCH) {
				if _, alive, _ := procStart(n); alive {
					return err
				}
			}
			moved[n], more = true, true
		}
		if !more {
			return nil
		}
	}
	return nil
}

// oomKills returns how many processes the kernel killed in the memory
// cgroup among dirs for going over its limit.
func oomKills(dirs []string) int {
	for _, dir := range dirs {
		for _, file := range []string{"memory.events", "memory.oom_control"} {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				continue
			}
			for line := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
					n, _ := strconv.Atoi(strings.TrimSpace(v))
					return n
				}
			}
		}
	}
	return 0
}

// removeCgroups kills what is left in dirs (a function process that
// outlived fnbox) and removes them.
func removeCgroups(dirs []string) {
	for _, dir := range dirs {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for f := range strings.FieldsSeq(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	for _, dir := range dirs {
		// A killed process leaves its cgroup a moment later: retry for
		// up to a second.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = kit.Poll(ctx, 20*time.Millisecond, func() bool {
			err := syscall.Rmdir(dir)
			return err == nil || errors.Is(err, syscall.ENOENT)
		})
		cancel()
	}
}

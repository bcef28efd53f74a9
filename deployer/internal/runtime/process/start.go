package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// Start unpacks the code (once per version) and starts fnbox on it; an
// isolation: shared deployment joins its platform's pool instead (pool.go).
func (r *Runtime) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	dir, desc, err := r.prepare(ctx, spec)
	if err != nil {
		return runtime.Instance{}, err
	}
	parsed, err := descriptor.Parse(control.DescriptorFile, []byte(spec.Descriptor))
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("parse descriptor of deployment %q version %s: %w", spec.Deployment, spec.Version, err)
	}
	if err := checkBroken(dir); err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s for deployment %s: %w", r.cfg.Bin, spec.Deployment, err)
	}
	if parsed.Shared() {
		return r.startMember(ctx, spec, dir, desc, parsed.Platform)
	}
	l := instanceLimits(parsed, spec.Functions, r.cfg.MemoryOverhead, r.cfg.PidsMax)
	secretEnv, err := r.secretEnv(spec)
	if err != nil {
		return runtime.Instance{}, err
	}
	id := fmt.Sprintf("%s-%d-%s", spec.Deployment, spec.Replica, randHex(4))
	args, env := r.args(dir, desc, id, spec.Functions, r.login(spec.Deployment))
	args = append(args, "--"+control.SlotFlag, strconv.Itoa(spec.Slot))
	// Not CommandContext: an instance outlives the request that started it.
	cmd := exec.Command(r.cfg.Bin, append(slices.Clip(r.cfg.BinArgs), args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), secretEnv...)
	rec := record{
		ID: id, Deployment: spec.Deployment, Version: spec.Version, Replica: spec.Replica, Slot: spec.Slot, Functions: spec.Functions,
	}
	p, err := r.run(cmd, rec, l, r.readyPath(id), r.recordPath(id), r.logPath(id), func(cmd *exec.Cmd, err error, p *proc) (error, bool) {
		return r.exitError(cmd, err, p, dir)
	})
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s for deployment %s: %w", r.cfg.Bin, spec.Deployment, err)
	}
	r.mu.Lock()
	r.procs[id] = p
	r.mu.Unlock()
	r.tail(p, r.logPath(id), 0)
	r.log.Info("instance started", kit.KeyDeployment, spec.Deployment, "instance", id, "pid", p.rec.PID,
		"version", spec.Version, "functions", strings.Join(spec.Functions, ","))
	return p.instance(r.readyPath(p.rec.ID)), nil
}

// run forks cmd (launch) with its output appended to logPath and records
// it at recPath as rec with its pid and start time, for a restarted
// deployer to adopt; exit says why it ended. Instances and pools both
// start through it.
func (r *Runtime) run(cmd *exec.Cmd, rec record, l limits, readyPath, recPath, logPath string, exit func(*exec.Cmd, error, *proc) (error, bool)) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cgroups, err := r.launch(cmd, rec.ID, readyPath, l)
	if err != nil {
		os.Remove(logPath)
		return nil, err
	}
	rec.PID, rec.Started, rec.Brokers, rec.Cgroups = cmd.Process.Pid, time.Now().UTC(), r.cfg.Kafka.Brokers, cgroups
	p := &proc{done: make(chan struct{}), rec: rec}
	go func() {
		err := cmd.Wait()
		p.err, p.permanent = exit(cmd, err, p)
		close(p.done)
	}()
	ticks, alive, err := procStart(p.rec.PID)
	if err == nil && alive {
		p.rec.StartTicks = ticks
		err = writeRecord(recPath, p.rec)
	} else if err == nil {
		err = <-waitErr(p)
	}
	if err != nil {
		killGroup(p.rec.PID, syscall.SIGKILL)
		<-p.done
		os.Remove(recPath)
		removeCgroups(cgroups)
		return nil, fmt.Errorf("start %s: %w", rec.ID, err)
	}
	return p, nil
}

func waitErr(p *proc) <-chan error {
	c := make(chan error, 1)
	go func() { <-p.done; c <- p.err }()
	return c
}

// login returns the Kafka settings of deployment's instances.
func (r *Runtime) login(deployment string) kit.KafkaConfig {
	if r.cfg.Login != nil {
		return r.cfg.Login(deployment)
	}
	return r.cfg.Kafka
}

// args builds fnbox's command line (see fnbox --help) and extra env.
func (r *Runtime) args(dir, desc, id string, functions []string, k kit.KafkaConfig) (args, env []string) {
	args = []string{
		"--code", dir,
		"--descriptor", desc,
		"--functions", strings.Join(functions, ","),
		"--instance", id,
		"--admin", "127.0.0.1:0",
	}
	kargs, env := k.Args()
	args = append(args, kargs...)
	return args, env
}

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
	"github.com/buttercompass/butter/proto/kit"
)

// Start unpacks the code (once per version) and starts fnbox on it.
func (r *Runtime) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	dir, desc, err := r.prepare(ctx, spec)
	if err != nil {
		return runtime.Instance{}, err
	}
	secretEnv, err := r.secretEnv(spec)
	if err != nil {
		return runtime.Instance{}, err
	}
	id := fmt.Sprintf("%s-%d-%s", spec.Deployment, spec.Replica, randHex(4))
	logf, err := os.OpenFile(r.logPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("open instance log: %w", err)
	}
	defer logf.Close()
	args, env := r.args(dir, desc, id, spec.Functions, r.login(spec.Deployment))
	args = append(args, "--"+control.SlotFlag, strconv.Itoa(spec.Slot))
	// Not CommandContext: an instance outlives the request that started it.
	cmd := exec.Command(r.cfg.Bin, append(slices.Clip(r.cfg.BinArgs), args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), secretEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cgroups, err := r.launch(cmd, id, dir, spec)
	if err != nil {
		os.Remove(r.logPath(id))
		return runtime.Instance{}, fmt.Errorf("start %s for deployment %s: %w", r.cfg.Bin, spec.Deployment, err)
	}
	p := &proc{done: make(chan struct{}), rec: record{
		ID: id, PID: cmd.Process.Pid, Started: time.Now().UTC(),
		Deployment: spec.Deployment, Version: spec.Version, Replica: spec.Replica, Slot: spec.Slot, Functions: spec.Functions,
		Brokers: r.cfg.Kafka.Brokers, Cgroups: cgroups,
	}}
	go func() {
		err := cmd.Wait()
		p.err, p.permanent = r.exitError(cmd, err, p, dir)
		close(p.done)
	}()
	ticks, alive, err := procStart(p.rec.PID)
	if err == nil && alive {
		p.rec.StartTicks = ticks
		err = writeRecord(r.recordPath(id), p.rec)
	} else if err == nil {
		err = <-waitErr(p)
	}
	if err != nil {
		killGroup(p.rec.PID, syscall.SIGKILL)
		<-p.done
		os.Remove(r.recordPath(id))
		return runtime.Instance{}, fmt.Errorf("start instance %s: %w", id, err)
	}
	r.mu.Lock()
	r.procs[id] = p
	r.mu.Unlock()
	r.tail(p, 0)
	r.log.Info("instance started", kit.KeyDeployment, spec.Deployment, "instance", id, "pid", p.rec.PID,
		"version", spec.Version, "functions", strings.Join(spec.Functions, ","))
	return p.instance(r.readyPath(p.rec.ID)), nil
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

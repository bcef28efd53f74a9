// Package reconcile is the container manager: it compares the desired
// deployments with the instances a runtime reports and starts, replaces
// and stops instances until they match.
//
// Each function runs Count instances: loadmon's latest decision for the
// deployment's current version (Config.Scale, read from _butter.scale)
// clamped to scale.min and scale.max, else scale.min. A deployment wants
// as many replicas as its largest count, and replica i runs the functions
// whose count is above i, so a function at 2 runs on replicas 0 and 1 and
// one at 1 on replica 0 only; a function at 0 runs nowhere, and a
// deployment whose functions are all at 0 runs nothing (loadmon wakes it
// on lag; Config.Positions pins where it will start reading). A
// crashed replica is restarted after an exponential backoff with jitter
// (kit.Backoff: BackoffBase doubling to BackoffMax, each wait drawn from
// the upper half of its step); its last error is kept for status. An update
// starts the new version's replica before stopping the old one.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
)

// Source is the desired state: the store of _butter.deployments.
type Source interface {
	// List returns every deployment.
	List() []control.Deployment
	// Changed returns a channel closed at the next change.
	Changed() <-chan struct{}
}

// Config configures a Reconciler.
type Config struct {
	Runtime runtime.Runtime
	Source  Source
	// Events, if set, records instance.crash alarms.
	Events *control.Recorder
	Logger *slog.Logger
	// BackoffBase is the step before restarting a replica after its first
	// crash, doubling per consecutive crash; each wait is drawn from
	// [step/2, step] (kit.Backoff). Default 1s.
	BackoffBase time.Duration
	// BackoffMax caps the backoff. Default 30s.
	BackoffMax time.Duration
	// StableAfter is how long a replica must run for its crash count to
	// reset. Default 30s.
	StableAfter time.Duration
	// Resync is how often the reconciler looks at instances without being
	// told of a change (that is how crashes are noticed). Default 250ms.
	Resync time.Duration
	// KeepInstances leaves instances running when Run returns, to be
	// adopted by the next deployer; default is to stop them.
	KeepInstances bool
	// Scale, if set, is loadmon's decisions; without it every function
	// runs scale.min instances.
	Scale Scale
	// Positions, if set, pins the start position of every function that
	// runs no instance, once per version (see GroupPositions).
	Positions Positions
	// Access, if set, gives each deployment its Kafka principal before
	// any of its instances starts, and revokes it once the deployment is
	// gone (package principal).
	Access Access
}

// Access makes and revokes deployment principals.
type Access interface {
	// Ensure makes d's principal and ACLs current.
	Ensure(ctx context.Context, d control.Deployment) error
	// Sweep revokes the principals of deployments keep does not want.
	Sweep(ctx context.Context, keep func(deployment string) bool) error
}

// Reconciler drives the runtime towards the desired state.
type Reconciler struct {
	cfg Config
	log *slog.Logger

	pass    sync.Mutex // one pass at a time
	stopped bool       // under pass: Run ended, so no pass starts anything

	mu     sync.Mutex
	slots  map[slotKey]*slot
	held   map[string]int
	last   []runtime.Instance
	pinned map[string]bool // deployment/function@version whose start position is pinned
}

type slotKey struct {
	deployment string
	replica    int
}

// slot is the crash history of one replica.
type slot struct {
	version   string // the version wanted when the counts below began
	failures  int
	next      time.Time // no start before
	lastError string
	// broken is the version whose code failed to load: it is not started
	// again, a new version is.
	broken string
	// oomID and oomSeen are the instance whose memory-limit kills were
	// last reported and how many (see noteOOM).
	oomID   string
	oomSeen int
	// fence is the fencing slot (control.SlotFlag) of the replica's last
	// instance, fenced says it is set: see fenceSlot.
	fence  int
	fenced bool
}

// FunctionStatus is one function's part of a deployment's status.
type FunctionStatus struct {
	Name string `json:"name"`
	// Desired is how many instances should host it: loadmon's decision
	// clamped to [Min, Max], else Min.
	Desired int `json:"desired"`
	// Min and Max are its scale bounds.
	Min int `json:"min"`
	Max int `json:"max"`
	// Scaled is loadmon's latest decision for this version, if any: its
	// reason, the lag behind it and when.
	Scaled *ScaledStatus `json:"scaled,omitempty"`
	// Running is how many instances of the current version host it.
	Running int `json:"running"`
	// LastError is the last crash or start error of a replica hosting it.
	LastError string `json:"lastError,omitempty"`
	// Restarts counts consecutive crashes of its replicas.
	Restarts int `json:"restarts,omitempty"`
	// Broken reports that this version's code failed to load: it is not
	// restarted, and only a new version can fix it.
	Broken bool `json:"broken,omitempty"`
}

// ScaledStatus summarizes a function's latest scale decision.
type ScaledStatus struct {
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
	Lag    int64     `json:"lag"`
	Rate   float64   `json:"rate"`
	Time   time.Time `json:"time"`
}

// New returns a reconciler; call Run.
func New(cfg Config) *Reconciler {
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 30 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger, slots: map[slotKey]*slot{}, held: map[string]int{}, pinned: map[string]bool{}}
}

// UseScale makes the reconciler follow loadmon's decisions and pin the
// start positions of functions at zero instances (Config.Scale and
// Config.Positions), for a host that builds them after New. Call it
// before Run.
func (r *Reconciler) UseScale(s Scale, p Positions) {
	r.pass.Lock()
	defer r.pass.Unlock()
	r.cfg.Scale, r.cfg.Positions = s, p
}

// Run reconciles on every change and every Resync until ctx is done, then
// stops every instance unless KeepInstances.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Resync)
	defer t.Stop()
	for {
		changed := r.cfg.Source.Changed()
		var scaled <-chan struct{} // nil without Scale: never ready
		if r.cfg.Scale != nil {
			scaled = r.cfg.Scale.Changed()
		}
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile", kit.KeyError, err)
		}
		select {
		case <-ctx.Done():
			return r.stop(context.WithoutCancel(ctx))
		case <-changed:
		case <-scaled:
			// The decisions of one loadmon tick arrive a few ms apart:
			// waiting for them to settle reconciles a deployment whose
			// functions change together once, instead of starting a
			// replica for the first decision only to replace it at the
			// next.
			select {
			case <-ctx.Done():
				return r.stop(context.WithoutCancel(ctx))
			case <-time.After(scaleSettle):
			}
		case <-t.C:
		}
	}
}

// scaleSettle is how long the reconciler waits after a scale decision for
// the others of the same loadmon tick.
const scaleSettle = 30 * time.Millisecond

// ErrStopped is what Sync returns once Run has ended: a request still in
// flight at shutdown must not start instances after they were stopped.
var ErrStopped = errors.New("the reconciler has stopped")

// stop ends reconciling, then stops every instance unless KeepInstances.
func (r *Reconciler) stop(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	r.stopped = true
	if r.cfg.KeepInstances {
		return nil
	}
	insts, err := r.cfg.Runtime.List(ctx)
	if err != nil {
		return fmt.Errorf("stop instances: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(insts))
	for i, in := range insts {
		wg.Go(func() { errs[i] = r.cfg.Runtime.Stop(ctx, in.ID) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Hold makes deployment name want no instances until Release, for replay
// (a consumer group's offsets can only be reset while it is empty). Holds
// nest. Call Sync after it to stop the instances now.
func (r *Reconciler) Hold(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held[name]++
}

// Release undoes one Hold.
func (r *Reconciler) Release(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held[name]--; r.held[name] <= 0 {
		delete(r.held, name)
	}
}

// want is one desired replica.
type want struct {
	dep       control.Deployment
	functions []string
}

// Desired returns the replicas deployment d wants with no scale
// decisions: replica i hosts the functions whose scale.min is above i.
func Desired(d control.Deployment) ([][]string, error) { return DesiredWith(d, nil) }

// DesiredWith returns the replicas deployment d wants under scale's
// decisions (nil: none): replica i hosts the functions whose Count is
// above i.
func DesiredWith(d control.Deployment, scale Scale) ([][]string, error) {
	desc, err := d.Parse()
	if err != nil {
		return nil, err
	}
	counts := make([]int, len(desc.Functions))
	for i, f := range desc.Functions {
		var dec control.ScaleDecision
		var ok bool
		if scale != nil {
			dec, ok = scale.Decision(d.Name, f.Name)
		}
		counts[i] = Count(f.Scale, d.Version, dec, ok)
	}
	var out [][]string
	for i := 0; ; i++ {
		var fns []string
		for j, f := range desc.Functions {
			if counts[j] > i {
				fns = append(fns, f.Name)
			}
		}
		if len(fns) == 0 {
			return out, nil
		}
		out = append(out, fns)
	}
}

// Sync runs one reconcile pass now and returns when it is done: crashed
// instances are noted and forgotten, missing replicas started (unless in
// backoff), outdated ones replaced, unwanted ones stopped.
func (r *Reconciler) Sync(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	if r.stopped {
		return ErrStopped
	}
	rt := r.cfg.Runtime
	insts, err := rt.List(ctx)
	if err != nil {
		return err
	}
	now := time.Now()

	wants := map[slotKey]want{}
	noLogin := map[string]bool{}
	var errs []error
	r.mu.Lock()
	held := maps(r.held)
	r.mu.Unlock()
	for _, d := range r.cfg.Source.List() {
		if held[d.Name] > 0 {
			continue
		}
		replicas, err := DesiredWith(d, r.cfg.Scale)
		if err != nil {
			r.log.Error("skip undeployable deployment", kit.KeyDeployment, d.Name, kit.KeyError, err)
			continue
		}
		if err := r.pin(ctx, d, replicas); err != nil {
			errs = append(errs, err)
		}
		for i, fns := range replicas {
			wants[slotKey{d.Name, i}] = want{dep: d, functions: fns}
		}
		if r.cfg.Access != nil && len(replicas) > 0 {
			// Without its principal an instance could not log in: start
			// none (running ones go on) and try again next pass.
			if err := r.cfg.Access.Ensure(ctx, d); err != nil {
				noLogin[d.Name] = true
				errs = append(errs, err)
			}
		}
	}

	bySlot := map[slotKey][]runtime.Instance{}
	for _, in := range insts {
		k := slotKey{in.Deployment, in.Replica}
		r.noteOOM(ctx, k, in, wants)
		if in.State == runtime.StateExited {
			r.crashed(ctx, k, in, now, wants)
			if err := rt.Stop(ctx, in.ID); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if _, ok := wants[k]; !ok {
			r.log.Info("stopping unwanted instance", kit.KeyDeployment, in.Deployment, "instance", in.ID, "replica", in.Replica)
			if err := rt.Stop(ctx, in.ID); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		bySlot[k] = append(bySlot[k], in)
	}

	// Fencing slots held by live instances, per deployment.
	used := map[string]map[int]bool{}
	for k, insts := range bySlot {
		if used[k.deployment] == nil {
			used[k.deployment] = map[int]bool{}
		}
		for _, in := range insts {
			used[k.deployment][in.Slot] = true
		}
	}

	var running []runtime.Instance
	for k, w := range wants {
		current, old := split(bySlot[k], w)
		st := r.slot(k)
		r.mu.Lock()
		if !st.fenced && len(current) > 0 {
			st.fence, st.fenced = current[0].Slot, true // adopted
		}
		if st.version != w.dep.Version {
			// A new version starts with a clean slate: the old one's
			// crashes do not hold its first start back.
			st.version, st.failures, st.next, st.lastError = w.dep.Version, 0, time.Time{}, ""
		}
		r.mu.Unlock()
		if len(current) == 0 {
			r.mu.Lock()
			wait := now.Before(st.next) || st.broken == w.dep.Version || noLogin[w.dep.Name]
			r.mu.Unlock()
			if !wait {
				if used[k.deployment] == nil {
					used[k.deployment] = map[int]bool{}
				}
				fence := r.fenceSlot(k, used[k.deployment])
				used[k.deployment][fence] = true
				in, err := rt.Start(ctx, runtime.InstanceSpec{
					Deployment: w.dep.Name, Version: w.dep.Version, Replica: k.replica, Slot: fence,
					Functions: w.functions, Descriptor: w.dep.Descriptor, Code: w.dep.Code,
				})
				if errors.Is(err, runtime.ErrBroken) {
					// Remembered by the runtime across restarts: stays
					// stopped until a new version.
					r.failed(k, err.Error(), now)
					r.mu.Lock()
					st.broken = w.dep.Version
					r.mu.Unlock()
				} else if err != nil {
					r.failed(k, err.Error(), now)
					errs = append(errs, err)
				} else {
					current = append(current, in)
				}
			}
		}
		// Never two of a replica: keep the oldest of the current version.
		for _, dup := range current[min(1, len(current)):] {
			old = append(old, dup)
		}
		current = current[:min(1, len(current))]
		if len(current) == 1 && (current[0].Ready || len(old) == 0) {
			// Update: the new replica serves, so the old one goes. Until it
			// says it is ready (its code loaded, its group joined) the old
			// one keeps serving: a new version that fails to load never
			// leaves the slot empty.
			for _, in := range old {
				if err := rt.Stop(ctx, in.ID); err != nil {
					errs = append(errs, err)
				}
			}
			if now.Sub(current[0].Started) > r.cfg.StableAfter {
				r.mu.Lock()
				st.failures = 0
				r.mu.Unlock()
			}
		} else {
			running = append(running, old...)
		}
		running = append(running, current...)
	}

	r.mu.Lock()
	for k := range r.slots {
		if _, ok := wants[k]; !ok {
			delete(r.slots, k)
		}
	}
	r.last = running
	r.mu.Unlock()
	// Code of versions no longer deployed (held ones too: a replay
	// restarts them) goes, once no instance runs it.
	wanted := map[string]string{}
	for _, d := range r.cfg.Source.List() {
		wanted[d.Name] = d.Version
	}
	r.mu.Lock()
	for k := range r.pinned {
		key, version, _ := strings.Cut(k, "@")
		dep, _, _ := strings.Cut(key, "/")
		if wanted[dep] != version {
			delete(r.pinned, k)
		}
	}
	r.mu.Unlock()
	if err := rt.Prune(ctx, func(dep, version string) bool { return wanted[dep] == version }); err != nil {
		errs = append(errs, fmt.Errorf("prune code: %w", err))
	}
	if r.cfg.Access != nil {
		if err := r.cfg.Access.Sweep(ctx, func(dep string) bool { _, ok := wanted[dep]; return ok }); err != nil {
			errs = append(errs, fmt.Errorf("revoke principals: %w", err))
		}
	}
	return errors.Join(errs...)
}

// pin pins the start position of d's functions that run no instance, once
// per version, before loadmon could wake them (see GroupPositions).
func (r *Reconciler) pin(ctx context.Context, d control.Deployment, replicas [][]string) error {
	if r.cfg.Positions == nil {
		return nil
	}
	desc, err := d.Parse()
	if err != nil {
		return err
	}
	var idle []string
	for _, f := range desc.Functions {
		k := control.ScaleKey(d.Name, f.Name) + "@" + d.Version
		if len(replicas) > 0 && slices.Contains(replicas[0], f.Name) {
			continue
		}
		r.mu.Lock()
		done := r.pinned[k]
		r.mu.Unlock()
		if !done {
			idle = append(idle, f.Name)
		}
	}
	if len(idle) == 0 {
		return nil
	}
	if err := r.cfg.Positions.Pin(ctx, d, idle); err != nil {
		return fmt.Errorf("pin start positions of %s: %w", d.Name, err)
	}
	r.mu.Lock()
	for _, fn := range idle {
		r.pinned[control.ScaleKey(d.Name, fn)+"@"+d.Version] = true
	}
	r.mu.Unlock()
	return nil
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// split separates a slot's instances into those serving w and the rest,
// oldest first.
func split(insts []runtime.Instance, w want) (current, old []runtime.Instance) {
	slices.SortFunc(insts, func(a, b runtime.Instance) int { return a.Started.Compare(b.Started) })
	for _, in := range insts {
		if in.Serves(w.dep.Version, w.functions) {
			current = append(current, in)
		} else {
			old = append(old, in)
		}
	}
	return current, old
}

// fenceSlot picks the fencing slot of a new instance of replica k. It is
// the slot of the replica's last instance, so that a restart after a crash
// fences the dead instance and the broker aborts its open transactions at
// once; unless a live instance holds it (an update's old version, still
// serving until the new one is ready: sharing would make them fence each
// other). Else it is the lowest slot no live instance holds and no other
// replica of the deployment remembers. used holds the deployment's live
// slots.
func (r *Reconciler) fenceSlot(k slotKey, used map[int]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.slots[k]
	if st != nil && st.fenced && !used[st.fence] {
		return st.fence
	}
	taken := map[int]bool{}
	for ok, os := range r.slots {
		if ok.deployment == k.deployment && ok != k && os.fenced {
			taken[os.fence] = true
		}
	}
	n := 0
	for used[n] || taken[n] {
		n++
	}
	if st != nil {
		st.fence, st.fenced = n, true
	}
	return n
}

func (r *Reconciler) slot(k slotKey) *slot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slots[k]
	if s == nil {
		s = &slot{}
		r.slots[k] = s
	}
	return s
}

// failed notes a crash or failed start of replica k and schedules the
// next attempt.
func (r *Reconciler) failed(k slotKey, msg string, now time.Time) int {
	s := r.slot(k)
	r.mu.Lock()
	defer r.mu.Unlock()
	s.failures++
	s.lastError = msg
	// Jittered, so replicas that crashed together do not restart together.
	s.next = now.Add(kit.Backoff{Base: r.cfg.BackoffBase, Max: r.cfg.BackoffMax}.Delay(s.failures))
	return s.failures
}

func (r *Reconciler) crashed(ctx context.Context, k slotKey, in runtime.Instance, now time.Time, wants map[slotKey]want) {
	if _, ok := wants[k]; !ok {
		return // exited while unwanted: nobody cares
	}
	n := r.failed(k, in.Error, now)
	if in.Permanent {
		r.mu.Lock()
		r.slots[k].broken = in.Version
		r.mu.Unlock()
	}
	r.log.Warn("instance crashed", kit.KeyDeployment, in.Deployment, "instance", in.ID, kit.KeyError, in.Error, "restarts", n)
	if r.cfg.Events == nil {
		return
	}
	_, err := r.cfg.Events.Emit(ctx, control.TypeInstanceCrash, control.Info{
		Resource: control.Resource(control.KindDeployment, in.Deployment),
		Actor:    control.ActorSystem, Category: control.CategoryAlarm, Severity: control.SeverityError,
	}, control.InstanceCrash{Deployment: in.Deployment, Version: in.Version, Instance: in.ID, Error: in.Error, Restarts: n})
	if err != nil {
		r.log.Warn("record crash event", kit.KeyDeployment, in.Deployment, kit.KeyError, err)
	}
}

// noteOOM reports the kernel's memory-limit kills in instance in, once
// each: the slot's lastError says so and an instance.oomkilled alarm is
// recorded. fnbox often survives (the function process was the largest),
// so this is seen on running instances too, not only as a crash.
func (r *Reconciler) noteOOM(ctx context.Context, k slotKey, in runtime.Instance, wants map[slotKey]want) {
	if _, ok := wants[k]; !ok || in.OOMKills == 0 {
		return
	}
	st := r.slot(k)
	r.mu.Lock()
	if st.oomID != in.ID {
		st.oomID, st.oomSeen = in.ID, 0
	}
	n := in.OOMKills - st.oomSeen
	st.oomSeen = in.OOMKills
	msg := fmt.Sprintf("instance %s: the kernel killed %d process(es) for going over the memory limit (limits.memory); the event being handled is retried, then dead-lettered", in.ID, in.OOMKills)
	if n > 0 {
		st.lastError = msg
	}
	r.mu.Unlock()
	if n <= 0 {
		return
	}
	r.log.Warn("instance over its memory limit", kit.KeyDeployment, in.Deployment, "instance", in.ID, "oom_kills", in.OOMKills)
	if r.cfg.Events == nil {
		return
	}
	_, err := r.cfg.Events.Emit(ctx, control.TypeInstanceOOMKilled, control.Info{
		Resource: control.Resource(control.KindDeployment, in.Deployment),
		Actor:    control.ActorSystem, Category: control.CategoryAlarm, Severity: control.SeverityError,
	}, control.InstanceCrash{Deployment: in.Deployment, Version: in.Version, Instance: in.ID, Error: msg, Restarts: in.OOMKills})
	if err != nil {
		r.log.Warn("record oomkilled event", kit.KeyDeployment, in.Deployment, kit.KeyError, err)
	}
}

// Instances returns the running instances of deployment name as of the
// last pass.
func (r *Reconciler) Instances(name string) []runtime.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.Instance
	for _, in := range r.last {
		if in.Deployment == name {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b runtime.Instance) int { return a.Replica - b.Replica })
	return out
}

// Status returns the per-function status of d as of the last pass.
func (r *Reconciler) Status(d control.Deployment) []FunctionStatus {
	desc, err := d.Parse()
	if err != nil {
		return nil
	}
	insts := r.Instances(d.Name)
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]FunctionStatus, 0, len(desc.Functions))
	for _, f := range desc.Functions {
		var dec control.ScaleDecision
		var ok bool
		if r.cfg.Scale != nil {
			dec, ok = r.cfg.Scale.Decision(d.Name, f.Name)
		}
		fs := FunctionStatus{Name: f.Name, Desired: Count(f.Scale, d.Version, dec, ok), Min: f.Scale.MinReplicas(), Max: f.Scale.Max}
		if ok && dec.Version == d.Version {
			fs.Scaled = &ScaledStatus{From: dec.From, To: dec.To, Reason: dec.Reason, Lag: dec.Lag, Rate: dec.Rate, Time: dec.Time}
		}
		for _, in := range insts {
			if in.Version == d.Version && in.Ready && slices.Contains(in.Functions, f.Name) {
				fs.Running++
			}
		}
		for i := range fs.Desired {
			if s := r.slots[slotKey{d.Name, i}]; s != nil && s.lastError != "" {
				fs.LastError, fs.Restarts = s.lastError, max(fs.Restarts, s.failures)
				fs.Broken = fs.Broken || s.broken == d.Version
			}
		}
		out = append(out, fs)
	}
	return out
}

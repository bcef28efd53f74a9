package app

// Pool mode (`fnbox --pool DIR`, docs/fnbox.md#pool-mode): one fnbox runs
// the instances of many `isolation: shared` deployments of one platform,
// with one runtime.Pool (one node or python host) for all their functions.
// The deployer adds an instance by writing DIR/members/<id>.json and stops
// it by deleting that file; the pool answers with the instance's own ready
// file and with DIR/members/<id>.exit (control/pool.go). Everything is a
// file so that either side may restart and find the other's state.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"

	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// poolScan is how often the pool reads its members' directory besides
// when inotify says it changed (watchDir): how long a new member waits
// before it starts, a deleted one before it drains, where inotify is not
// there.
const poolScan = 200 * time.Millisecond

// poolCloseTimeout bounds closing the shared runtime at the end, as
// box.Config.CloseTimeout does for a lone instance's.
const poolCloseTimeout = 10 * time.Second

// errMemberRemoved is the cause of a member's end when the deployer
// deleted its file.
var errMemberRemoved = errors.New("member file deleted")

// pool is a running `fnbox --pool`.
type pool struct {
	dir, membersDir string
	log             *slog.Logger
	admin           *kit.Admin

	// platform and rt are the platform served and its shared runtime; set
	// at start with --pool-platform, else by the first member (under mu).
	platform string
	rt       runtime.Pool

	wg sync.WaitGroup
	mu sync.Mutex
	// running holds the members whose box has not yet ended, by id.
	running map[string]*member
	// refused holds members whose exit file could not be written: not
	// tried again while their file exists.
	refused map[string]bool
}

// member is one running instance of the pool.
type member struct {
	stop    context.CancelCauseFunc
	removed bool        // its file was deleted and stop called
	spans   *kgo.Client // logged in as the member's principal
}

// runPool runs fnbox as a pool of c.pool until ctx is done, then drains
// every member. Members are not given exit files then: the next pool on
// the same directory resumes them.
func runPool(ctx context.Context, c config) error {
	if err := kit.EnvError(); err != nil {
		return err
	}
	log, err := kit.NewLogger(os.Stderr, c.logLevel)
	if err != nil {
		return err
	}
	p := &pool{
		dir: c.pool, membersDir: filepath.Join(c.pool, control.PoolMembersDir),
		log: log, running: map[string]*member{}, refused: map[string]bool{},
	}
	if err := os.MkdirAll(p.membersDir, 0o755); err != nil {
		return fmt.Errorf("create pool directory: %w", err)
	}
	// A ready file left by a killed pool says nothing about this one.
	readyPath := filepath.Join(c.pool, control.PoolReadyFile)
	if err := os.Remove(readyPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale pool ready file: %w", err)
	}
	// Each member has a tracer provider of its own (see startMember); the
	// error handler is process-wide.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry error", kit.KeyError, err)
	}))

	if c.poolPlatform != "" {
		if err := p.startRuntime(c.poolPlatform); err != nil {
			return err
		}
	}
	defer p.closeRuntime()

	p.admin = kit.NewAdmin(c.admin)
	if err := p.admin.Listen(); err != nil {
		return err
	}
	if err := writeJSONFile(readyPath, control.ReadyFile{PID: os.Getpid(), Instance: "pool", Admin: p.admin.Addr()}); err != nil {
		return err
	}
	defer func() { _ = os.Remove(readyPath) }()
	log.Info("fnbox pool starting", "dir", c.pool, "platform", c.poolPlatform, "admin", p.admin.Addr())

	// The pool watches its broker as a lone fnbox does, through its
	// members' logins: the deployer gives the pool none of its own (no
	// password in its environment), and an idle pool has nothing to lose.
	// No deployment is watched: the deployer deletes the member files of
	// deleted deployments.
	ctx, orphaned := context.WithCancelCause(ctx)
	defer orphaned(nil)
	go func() {
		if c.orphanGrace <= 0 {
			return
		}
		if err := watchBroker(ctx, p.ping, "", &presence{}, c.orphanGrace, log); err != nil {
			log.Error("exiting", kit.KeyError, err)
			orphaned(err)
		}
	}()
	err = p.admin.Supervise(ctx, kit.Part{Name: "pool", Run: func(pctx context.Context) error {
		return runOrphanable(pctx, ctx, p.run, log)
	}})
	if cause := context.Cause(ctx); errors.Is(cause, errOrphan) {
		err = errors.Join(err, cause)
	}
	log.Info("fnbox pool stopped", "dir", c.pool)
	return err
}

// run scans the members' directory until ctx is done, then waits for
// every member to drain.
func (p *pool) run(ctx context.Context) error {
	t := time.NewTicker(poolScan)
	defer t.Stop()
	changed := watchDir(ctx, p.membersDir)
	for {
		p.scan(ctx)
		select {
		case <-ctx.Done():
			// The members' contexts are ctx's children: they are draining.
			p.wg.Wait()
			return nil
		case <-t.C:
		case <-changed:
		}
	}
}

// scan starts the members whose file appeared and stops those whose file
// is gone. A member runs while its file exists and its exit file does
// not: one that ended is not restarted, even if its file is rewritten,
// until the deployer deletes its exit file.
func (p *pool) scan(ctx context.Context) {
	entries, err := os.ReadDir(p.membersDir)
	if err != nil {
		p.log.Warn("read pool members", "dir", p.membersDir, kit.KeyError, err)
		return
	}
	files, exits := map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") { // a file being written
			continue
		}
		if id, ok := strings.CutSuffix(name, control.PoolMemberExt); ok {
			files[id] = true
		} else if id, ok := strings.CutSuffix(name, control.PoolExitExt); ok {
			exits[id] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, m := range p.running {
		if !files[id] && !m.removed {
			p.log.Info("pool member deleted; draining it", "instance", id)
			m.removed = true
			m.stop(errMemberRemoved)
		}
	}
	for id := range p.refused {
		if !files[id] {
			delete(p.refused, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(files)) {
		if p.running[id] != nil || exits[id] || p.refused[id] {
			continue
		}
		if err := p.startMember(ctx, id); err != nil {
			p.log.Warn("pool member refused", "instance", id, kit.KeyError, err)
			if !p.exit(id, err) {
				p.refused[id] = true
			}
		}
	}
}

// startMember reads the file of member id and starts its box. Called
// with p.mu held.
func (p *pool) startMember(ctx context.Context, id string) error {
	path := filepath.Join(p.membersDir, id+control.PoolMemberExt)
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read pool member %s: %w", path, err)
	}
	var pm control.PoolMember
	if err := json.Unmarshal(raw, &pm); err != nil {
		return fmt.Errorf("read pool member %s: %w", path, err)
	}
	if pm.Instance != "" && pm.Instance != id {
		return fmt.Errorf("read pool member %s: instance %q differs from the file's name", path, pm.Instance)
	}
	c, err := parseFlags(pm.Args, pm.Env, io.Discard)
	if err != nil {
		return fmt.Errorf("parse args of pool member %s: %w", id, err)
	}
	if c.pool != "" {
		return fmt.Errorf("parse args of pool member %s: --%s: a member cannot be a pool", id, control.PoolFlag)
	}
	desc, fns, err := loadDeployment(c)
	if err != nil {
		return err
	}
	if desc.Isolation != descriptor.IsolationShared {
		iso := cmp.Or(desc.Isolation, descriptor.IsolationProcess)
		return fmt.Errorf("deployment %s has isolation %s: only deployments with `isolation: %s` run in a pool; run it in an fnbox of its own",
			desc.Name, iso, descriptor.IsolationShared)
	}
	if p.rt == nil {
		if err := p.startRuntime(desc.Platform); err != nil {
			return err
		}
	}
	if desc.Platform != p.platform {
		return fmt.Errorf("deployment %s runs on %s but this pool serves %s: each platform has its own pool", desc.Name, desc.Platform, p.platform)
	}
	log, err := kit.NewLogger(os.Stderr, c.logLevel)
	if err != nil {
		return err
	}
	log = log.With("instance", c.instance)

	// What is this member's own: its principal's clients (the engine's,
	// and one for its spans, so they are exported under its principal),
	// its metrics (labelled with its id on the pool's registry) and its
	// ready file. The admin server, the runtime host and the broker watch
	// are the pool's.
	metrics := &memberMetrics{reg: prometheus.WrapRegistererWith(prometheus.Labels{"instance": id}, p.admin.Registry())}
	spans, err := c.kafka.NewClient()
	if err != nil {
		return err
	}
	tp, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{
		Service: "fnbox", Kafka: spans, Topic: c.kafka.Namespace().Topic(topics.Traces), Logger: log,
	})
	if err != nil {
		spans.Close()
		return err
	}
	release := func() {
		metrics.unregisterAll()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("flush spans", kit.KeyError, err)
		}
		spans.Close()
	}
	b, err := box.New(box.Config{
		Kafka: c.kafka, Deployment: desc, Dir: c.code, Functions: fns,
		Instance: c.instance, Admin: p.admin.Addr(), Logger: log, Metrics: metrics,
		Slot: c.slot, TxnTimeout: c.txnTimeout, RebalanceTimeout: c.rebalanceTimeout,
		Pool: p.rt, TracerProvider: tp,
	})
	if err != nil {
		release()
		return err
	}
	// A ready file left by a killed pool says nothing about this run.
	if c.readyFile != "" {
		if err := os.Remove(c.readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			release()
			return fmt.Errorf("remove stale ready file: %w", err)
		}
	}
	mctx, stop := context.WithCancelCause(ctx)
	p.running[id] = &member{stop: stop, spans: spans}
	p.wg.Add(1)
	log.Info("pool member starting", "deployment", desc.Name)
	go func() {
		defer p.wg.Done()
		defer stop(nil)
		err := p.runMember(ctx, mctx, id, b, c, log)
		release()
		p.mu.Lock()
		delete(p.running, id)
		p.mu.Unlock()
		if err != nil {
			log.Error("pool member ended", kit.KeyError, err)
		}
	}()
	return nil
}

// runMember runs member id's box b until mctx is done or it ends on its
// own, announcing it ready meanwhile; then it removes its ready file and
// writes its exit file, unless the pool (ctx) is stopping. It returns the
// error the instance ended with by itself.
func (p *pool) runMember(ctx, mctx context.Context, id string, b *box.Box, c config, log *slog.Logger) error {
	actx, stopAnnounce := context.WithCancel(mctx)
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		announceReady(actx, b, c.readyFile, control.ReadyFile{PID: os.Getpid(), Instance: c.instance, Admin: p.admin.Addr()}, log)
	}()
	err := b.Run(mctx)
	stopAnnounce()
	<-announced
	// The ready file goes before the exit file comes: whoever sees the
	// exit never sees the instance ready.
	if c.readyFile != "" {
		if rerr := os.Remove(c.readyFile); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			log.Warn("remove ready file", "path", c.readyFile, kit.KeyError, rerr)
		}
	}
	switch {
	case errors.Is(context.Cause(mctx), errMemberRemoved):
		if err != nil {
			log.Warn("pool member stopped with an error", kit.KeyError, err)
		}
		p.exitOrRefuse(id, nil)
		return nil
	case ctx.Err() != nil:
		// The pool is stopping: the member resumes with the next pool.
		return err
	}
	if err == nil {
		err = errors.New("the instance stopped on its own")
	}
	p.exitOrRefuse(id, err)
	return err
}

// exitOrRefuse is exit for a member's own goroutine (p.mu not held).
func (p *pool) exitOrRefuse(id string, err error) {
	if !p.exit(id, err) {
		p.mu.Lock()
		p.refused[id] = true
		p.mu.Unlock()
	}
}

// ping reports whether the broker answers any member's client; nil
// without members.
func (p *pool) ping(ctx context.Context) error {
	p.mu.Lock()
	var cls []*kgo.Client
	for _, m := range p.running {
		cls = append(cls, m.spans)
	}
	p.mu.Unlock()
	var errs []error
	for _, cl := range cls {
		err := cl.Ping(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// exit writes member id's exit file: err nil for a member stopped as
// asked. It reports whether it could; a member whose exit file cannot be
// written is refused until its file goes, so it is not started again
// every scan.
func (p *pool) exit(id string, err error) bool {
	var e control.PoolExit
	if err != nil {
		e = control.PoolExit{Error: err.Error(), LoadError: errors.Is(err, runtime.ErrLoad)}
	}
	path := filepath.Join(p.membersDir, id+control.PoolExitExt)
	if werr := writeJSONFile(path, e); werr != nil {
		p.log.Error("write pool member exit file", "instance", id, kit.KeyError, werr)
		return false
	}
	return true
}

// startRuntime starts the shared runtime of platform. Called with p.mu
// held, or before any member.
func (p *pool) startRuntime(platform string) error {
	newPool, ok := box.Pools[platform]
	if !ok {
		return fmt.Errorf("start pool: platform %q cannot share processes (pool platforms: %v)", platform, slices.Sorted(maps.Keys(box.Pools)))
	}
	rt, err := newPool(platform, p.log)
	if err != nil {
		return fmt.Errorf("start %s pool: %w", platform, err)
	}
	p.platform, p.rt = platform, rt
	p.log.Info("pool runtime started", "platform", platform)
	return nil
}

// closeRuntime stops the shared runtime, once every member has drained.
func (p *pool) closeRuntime() {
	if p.rt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), poolCloseTimeout)
	defer cancel()
	if err := p.rt.Close(ctx); err != nil {
		p.log.Warn("close pool runtime", kit.KeyError, err)
	}
}

// memberMetrics registers a member's metrics on the pool's registry,
// labelled with its id, and unregisters them all when it ends.
type memberMetrics struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

var _ prometheus.Registerer = (*memberMetrics)(nil)

// Register registers c and remembers it.
func (m *memberMetrics) Register(c prometheus.Collector) error {
	if err := m.reg.Register(c); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cs = append(m.cs, c)
	return nil
}

// MustRegister registers cs, panicking on failure as a Registry does.
func (m *memberMetrics) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := m.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister unregisters c.
func (m *memberMetrics) Unregister(c prometheus.Collector) bool {
	m.mu.Lock()
	m.cs = slices.DeleteFunc(m.cs, func(x prometheus.Collector) bool { return x == c })
	m.mu.Unlock()
	return m.reg.Unregister(c)
}

func (m *memberMetrics) unregisterAll() {
	m.mu.Lock()
	cs := m.cs
	m.cs = nil
	m.mu.Unlock()
	for _, c := range cs {
		m.reg.Unregister(c)
	}
}

// Package docker is the runtime that runs each fnbox instance as a Docker
// container, through the Docker Engine API (github.com/moby/moby/client).
//
// Images are built locally by deploy/images/build.sh (`make images`) and
// never pulled: butter-fnbox (scratch + static fnbox), butter-node and
// butter-python (a Debian rootfs with the language runtime + fnbox). The
// function code is not baked into an image: the version's unpacked code
// dir (made by the process runtime's Prepare, shared) is bind-mounted
// read-only at /code. A per-instance state dir is mounted at /run/butter
// for fnbox's ready file.
//
// Every container carries labels (LabelDeployment, LabelFunction, ...)
// and the label LabelPlatform, a hash of the data directory, so the
// deployer that restarts on the same data directory adopts exactly its
// own containers and no other platform's on the same engine. The
// container's state in the engine is the record: nothing else is kept.
package docker

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// Labels on every container this runtime starts.
const (
	LabelDeployment = "butter.deployment"
	LabelFunction   = "butter.function" // comma-separated function names
	LabelVersion    = "butter.version"
	LabelInstance   = "butter.instance"
	LabelReplica    = "butter.replica"
	LabelSlot       = "butter.slot"
	// LabelPlatform is a hash of the deployer's data directory: which
	// platform the container belongs to.
	LabelPlatform = "butter.platform"
)

// Images per platform, built by deploy/images/build.sh.
const (
	ImageFnbox  = "butter-fnbox:latest"
	ImageNode   = "butter-node:latest"
	ImagePython = "butter-python:latest"
)

// Paths inside the container.
const (
	codeMount  = "/code"
	stateMount = "/run/butter"
	readyName  = "ready"
)

// brokenFile is the process runtime's marker, in a version's code dir, of
// code that failed to load: both runtimes share the code dirs, so a
// version broken under one is broken under the other.
const brokenFile = ".butter-broken"

// User is the uid:gid instances run as: nobody, never root.
const User = "65534:65534"

// Config configures the docker runtime.
type Config struct {
	// DataDir is the platform data directory: code dirs are
	// <data>/deployments/<name>/<version> (CodeDir), instance state dirs
	// <data>/containers/<id>.
	DataDir string
	// Prepare makes the code dir of a deployment version (the process
	// runtime's Prepare: unpack, and build go functions).
	Prepare func(ctx context.Context, d control.Deployment) error
	// CodeDir is where Prepare put a version's code.
	CodeDir func(deployment, version string) string
	// Kafka is the platform's Kafka settings; Login, if set, returns a
	// deployment's own login. Their Brokers are replaced by Brokers.
	Kafka kit.KafkaConfig
	Login func(deployment string) kit.KafkaConfig
	// Brokers are the broker addresses as containers reach them. Default:
	// Kafka.Brokers with loopback hosts replaced by the gateway of Network
	// (where butter up's broker listens for containers, --container-addr).
	Brokers []string
	// Network is the Docker network containers join: a bridge network,
	// never host. Default "bridge".
	Network string
	// Images overrides the image of a platform (node, python, go, exec,
	// http). Default ImageNode, ImagePython, else ImageFnbox.
	Images map[string]string
	// Grace is how long Stop waits after SIGTERM before SIGKILL. Default 10s.
	Grace time.Duration
	// MemoryOverhead is added to the sum of an instance's functions'
	// limits.memory for fnbox itself. Default 128Mi.
	MemoryOverhead int64
	// PidsMax caps the processes and threads of a container. Default 1024.
	PidsMax int64
	// Secrets decrypts descriptors' secretEnv into the container's env;
	// nil refuses a deployment that has secrets.
	Secrets *secrets.Key
	// Logger receives the runtime's logs and every container output line.
	Logger *slog.Logger
	// Client is the Docker client. Default: from the environment
	// (DOCKER_HOST...), API version negotiated.
	Client *client.Client
}

// Runtime runs instances as containers.
type Runtime struct {
	cfg      Config
	dataDir  string
	platform string // LabelPlatform value
	cli      *client.Client
	log      *slog.Logger
	brokers  []string

	tailCtx    context.Context
	tailCancel context.CancelFunc
	tails      sync.WaitGroup

	mu sync.Mutex
	// known are the containers of this run: started, or adopted and
	// followed; exited holds the final state of exited ones.
	known  map[string]*inst
	closed bool
	// ooms counts oom events by instance (events.go).
	ooms map[string]int
}

var _ runtime.Runtime = (*Runtime)(nil)

type inst struct {
	adopted bool
	ready   bool
	exit    *exitInfo // set once seen exited
}

type exitInfo struct {
	err       string
	permanent bool
	oom       bool
}

// New connects to the Docker engine (negotiating the API version: the
// engine here speaks 1.41, the client supports 1.40 and later) and
// returns a runtime. It fails when the engine cannot be reached.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.MemoryOverhead <= 0 {
		cfg.MemoryOverhead = 128 << 20
	}
	if cfg.PidsMax <= 0 {
		cfg.PidsMax = 1024
	}
	if cfg.Network == "" {
		cfg.Network = "bridge"
	}
	if cfg.Network == "host" || strings.HasPrefix(cfg.Network, "container:") {
		return nil, fmt.Errorf("check docker network %q: instances never share the host's or another container's network; use a bridge network", cfg.Network)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Prepare == nil || cfg.CodeDir == nil {
		return nil, errors.New("docker runtime: Prepare and CodeDir are required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "containers"), 0o755); err != nil {
		return nil, fmt.Errorf("create containers dir: %w", err)
	}
	cli := cfg.Client
	if cli == nil {
		if cli, err = client.New(client.FromEnv); err != nil {
			return nil, fmt.Errorf("docker client: %w", err)
		}
	}
	ping, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return nil, fmt.Errorf("reach the Docker engine (is dockerd running and its socket readable? DOCKER_HOST): %w", err)
	}
	r := &Runtime{cfg: cfg, dataDir: dir, platform: PlatformID(dir), cli: cli, log: cfg.Logger, known: map[string]*inst{}, ooms: map[string]int{}}
	r.brokers = cfg.Brokers
	if len(r.brokers) == 0 {
		if r.brokers, err = r.gatewayBrokers(ctx); err != nil {
			return nil, err
		}
	}
	r.tailCtx, r.tailCancel = context.WithCancel(context.Background())
	r.watchOOM()
	cfg.Logger.Info("docker runtime ready", "api_version", ping.APIVersion, "network", cfg.Network, "brokers", strings.Join(r.brokers, ","))
	return r, nil
}

// PlatformID is the LabelPlatform value of the containers of the
// platform whose data directory is dir (absolute).
func PlatformID(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:8])
}

// gatewayBrokers is Kafka.Brokers with loopback hosts replaced by the
// gateway of the network: where the host is, seen from a container.
func (r *Runtime) gatewayBrokers(ctx context.Context) ([]string, error) {
	var gw string
	out := make([]string, 0, len(r.cfg.Kafka.Brokers))
	for _, b := range r.cfg.Kafka.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			return nil, fmt.Errorf("broker address %q: %w", b, err)
		}
		ip := net.ParseIP(host)
		if host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
			if gw == "" {
				if gw, err = r.Gateway(ctx); err != nil {
					return nil, err
				}
			}
			host = gw
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// Gateway returns the gateway address of the runtime's network: the
// host's address as containers on it see it.
func (r *Runtime) Gateway(ctx context.Context) (string, error) {
	return NetworkGateway(ctx, r.cli, r.cfg.Network)
}

// NetworkGateway returns the IPv4 gateway of a Docker network.
func NetworkGateway(ctx context.Context, cli *client.Client, network string) (string, error) {
	res, err := cli.NetworkInspect(ctx, network, client.NetworkInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect docker network %q: %w", network, err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.IsValid() && c.Gateway.Is4() {
			return c.Gateway.String(), nil
		}
	}
	// The default bridge of some engines (20.10 here) reports only its
	// subnet: the gateway is the bridge interface's address, which Docker
	// makes the subnet's first.
	if ifc, err := net.InterfaceByName(res.Network.Options["com.docker.network.bridge.name"]); err == nil {
		if addrs, err := ifc.Addrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					return ipn.IP.String(), nil
				}
			}
		}
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Subnet.IsValid() && c.Subnet.Addr().Is4() {
			return c.Subnet.Masked().Addr().Next().String(), nil
		}
	}
	return "", fmt.Errorf("docker network %q has no IPv4 gateway: set the brokers containers reach (--docker-brokers)", network)
}

// Brokers are the broker addresses given to containers.
func (r *Runtime) Brokers() []string { return r.brokers }

// Close stops following container logs. Containers keep running, to be
// adopted by the next deployer or stopped with Stop before.
func (r *Runtime) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.tailCancel()
	r.tails.Wait()
}

// ImageFor returns the image that runs a platform's functions.
func (r *Runtime) ImageFor(platform string) string {
	if img := r.cfg.Images[platform]; img != "" {
		return img
	}
	return DefaultImage(platform)
}

// DefaultImage is the image of a platform when Config.Images has none.
func DefaultImage(platform string) string {
	switch platform {
	case descriptor.PlatformNode:
		return ImageNode
	case descriptor.PlatformPython:
		return ImagePython
	default:
		return ImageFnbox
	}
}

// Admit refuses a descriptor the docker runtime cannot run: a missing
// image (say which and how to make it), or platform image.
func (r *Runtime) Admit(ctx context.Context, d *descriptor.Descriptor) error {
	if d.Platform == descriptor.PlatformImage {
		return fmt.Errorf("platform: %q is not available yet; use node, python, go, exec or http", d.Platform)
	}
	return r.haveImage(ctx, r.ImageFor(d.Platform))
}

func (r *Runtime) haveImage(ctx context.Context, img string) error {
	if _, err := r.cli.ImageInspect(ctx, img); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker image %s is missing: build the runtime images with `make images` (deploy/images/build.sh); they are never pulled", img)
		}
		return fmt.Errorf("inspect docker image %s: %w", img, err)
	}
	return nil
}

// Prune removes the state dirs of containers that are gone without a
// Stop (removed with docker rm) once they are a minute old, so a state
// dir being made for a starting container is never taken. The code dirs
// belong to the process runtime: the mux prunes them, keeping what
// containers run.
func (r *Runtime) Prune(ctx context.Context, _ func(deployment, version string) bool) error {
	insts, err := r.List(ctx)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, in := range insts {
		listed[in.ID] = true
	}
	entries, err := os.ReadDir(filepath.Join(r.dataDir, "containers"))
	if err != nil {
		return fmt.Errorf("list container state dirs: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || listed[e.Name()] || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		os.RemoveAll(r.stateDir(e.Name()))
	}
	return nil
}

func (r *Runtime) stateDir(id string) string { return filepath.Join(r.dataDir, "containers", id) }

// containerName is the Docker name of instance id.
func containerName(id string) string { return "butter-" + id }

// Start prepares the code and starts a container running fnbox on it.
// Every instance gets a container of its own whatever the descriptor's
// isolation says: shared is a packing hint the process runtime honours
// (docs/descriptor.md#isolation), and its rules (no env, secrets or
// limits) leave nothing a container of its own would run differently.
func (r *Runtime) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	desc, err := descriptor.Parse(control.DescriptorFile, []byte(spec.Descriptor))
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("parse descriptor of deployment %q: %w", spec.Deployment, err)
	}
	if desc.Platform == descriptor.PlatformImage {
		return runtime.Instance{}, fmt.Errorf("%w: platform image is not available yet", runtime.ErrBroken)
	}
	img := r.ImageFor(desc.Platform)
	if err := r.haveImage(ctx, img); err != nil {
		return runtime.Instance{}, err
	}
	if err := r.cfg.Prepare(ctx, control.Deployment{Name: spec.Deployment, Version: spec.Version, Descriptor: spec.Descriptor, Code: spec.Code}); err != nil {
		return runtime.Instance{}, err
	}
	dir := r.cfg.CodeDir(spec.Deployment, spec.Version)
	if b, err := os.ReadFile(filepath.Join(dir, brokenFile)); err == nil {
		return runtime.Instance{}, fmt.Errorf("%w: %s", runtime.ErrBroken, b)
	}
	if err := readableByAll(dir); err != nil {
		return runtime.Instance{}, err
	}
	secretEnv, err := r.secretEnv(spec, desc)
	if err != nil {
		return runtime.Instance{}, err
	}
	id := fmt.Sprintf("%s-%d-%s", spec.Deployment, spec.Replica, randHex(4))
	state := r.stateDir(id)
	if err := os.MkdirAll(state, 0o755); err != nil {
		return runtime.Instance{}, fmt.Errorf("create instance state dir: %w", err)
	}
	// The instance's user (nobody) writes its ready file here.
	if err := os.Chmod(state, 0o777); err != nil {
		return runtime.Instance{}, fmt.Errorf("open instance state dir to its user: %w", err)
	}
	runDesc := codeMount + "/" + control.DescriptorFile
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(gobuild.RunDescriptor))); err == nil {
		runDesc = codeMount + "/" + gobuild.RunDescriptor
	}
	args, env := r.args(runDesc, id, spec, r.login(spec.Deployment))
	lim := runtime.InstanceLimits(desc, spec.Functions, r.cfg.MemoryOverhead)
	if lim.NodeHeapMiB > 0 {
		env = append(env, "NODE_OPTIONS=--max-old-space-size="+strconv.FormatInt(lim.NodeHeapMiB, 10))
	}
	pids := r.cfg.PidsMax
	noNewPrivs := "no-new-privileges"
	hc := &container.HostConfig{
		Binds:          []string{dir + ":" + codeMount + ":ro", state + ":" + stateMount + ":rw"},
		NetworkMode:    container.NetworkMode(r.cfg.Network),
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,nosuid,nodev,size=64m"},
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{noNewPrivs},
		Resources: container.Resources{
			Memory:    lim.Memory,
			NanoCPUs:  lim.MilliCPU * 1_000_000,
			PidsLimit: &pids,
		},
	}
	if lim.Memory > 0 {
		hc.MemorySwap = lim.Memory // no swap: over the limit is an OOM kill
	}
	labels := map[string]string{
		LabelDeployment: spec.Deployment,
		LabelFunction:   strings.Join(spec.Functions, ","),
		LabelVersion:    spec.Version,
		LabelInstance:   id,
		LabelReplica:    strconv.Itoa(spec.Replica),
		LabelSlot:       strconv.Itoa(spec.Slot),
		LabelPlatform:   r.platform,
	}
	grace := int(r.cfg.Grace / time.Second)
	created, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: containerName(id),
		Config: &container.Config{
			Image:       img,
			Cmd:         args,
			Env:         append(env, secretEnv...),
			Labels:      labels,
			User:        User,
			WorkingDir:  codeMount,
			StopTimeout: &grace,
		},
		HostConfig: hc,
	})
	if err != nil {
		os.RemoveAll(state)
		return runtime.Instance{}, fmt.Errorf("create container for deployment %s: %w", spec.Deployment, err)
	}
	r.mu.Lock()
	r.known[id] = &inst{}
	r.mu.Unlock()
	if _, err := r.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		r.remove(context.WithoutCancel(ctx), id)
		return runtime.Instance{}, fmt.Errorf("start container for deployment %s: %w", spec.Deployment, err)
	}
	started := time.Now().UTC()
	r.follow(id, spec.Deployment, started.Add(-time.Second))
	r.log.Info("instance started", kit.KeyDeployment, spec.Deployment, "instance", id, "container", created.ID[:12],
		"image", img, "version", spec.Version, "functions", strings.Join(spec.Functions, ","))
	return runtime.Instance{ID: id, Deployment: spec.Deployment, Version: spec.Version, Replica: spec.Replica, Slot: spec.Slot,
		Functions: spec.Functions, Started: started, State: runtime.StateRunning}, nil
}

// login returns the Kafka settings of deployment's instances, with the
// brokers containers reach.
func (r *Runtime) login(deployment string) kit.KafkaConfig {
	k := r.cfg.Kafka
	if r.cfg.Login != nil {
		k = r.cfg.Login(deployment)
	}
	k.Brokers = r.brokers
	return k
}

// args is fnbox's command line in the container and its extra env.
func (r *Runtime) args(desc, id string, spec runtime.InstanceSpec, k kit.KafkaConfig) (args, env []string) {
	args = []string{
		"--code", codeMount,
		"--descriptor", desc,
		"--functions", strings.Join(spec.Functions, ","),
		"--instance", id,
		"--admin", "127.0.0.1:0",
		"--" + control.SlotFlag, strconv.Itoa(spec.Slot),
		"--" + control.ReadyFileFlag, stateMount + "/" + readyName,
	}
	// TLS files are not mounted into containers (docs/docker.md).
	k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile = "", "", ""
	kargs, kenv := k.Args()
	return append(args, kargs...), append(env, kenv...)
}

// secretEnv returns spec's secretEnv decrypted, as NAME=value entries.
func (r *Runtime) secretEnv(spec runtime.InstanceSpec, desc *descriptor.Descriptor) ([]string, error) {
	if len(desc.SecretEnv) == 0 {
		return nil, nil
	}
	if r.cfg.Secrets == nil {
		return nil, fmt.Errorf("start deployment %q: it has secretEnv, and the runtime has no secret key to decrypt it", spec.Deployment)
	}
	env := make([]string, 0, len(desc.SecretEnv))
	for k, sealed := range desc.SecretEnv {
		v, err := r.cfg.Secrets.Open(spec.Deployment, k, sealed)
		if err != nil {
			return nil, fmt.Errorf("start deployment %q version %s: %w", spec.Deployment, spec.Version, err)
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}

// List reports every container of this platform, running or exited.
// Containers this run did not start are adopted (and their output
// followed from now on).
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	res, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelPlatform+"="+r.platform)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []runtime.Instance
	for _, c := range res.Items {
		id := c.Labels[LabelInstance]
		if id == "" {
			continue
		}
		in := runtime.Instance{
			ID: id, Deployment: c.Labels[LabelDeployment], Version: c.Labels[LabelVersion],
			Started: time.Unix(c.Created, 0).UTC(), State: runtime.StateRunning,
		}
		in.Replica, _ = strconv.Atoi(c.Labels[LabelReplica])
		in.Slot, _ = strconv.Atoi(c.Labels[LabelSlot])
		if f := c.Labels[LabelFunction]; f != "" {
			in.Functions = strings.Split(f, ",")
		}
		r.mu.Lock()
		k := r.known[id]
		if k == nil {
			k = &inst{adopted: true}
			r.known[id] = k
			if c.State == container.StateRunning && !r.closed {
				r.follow(id, in.Deployment, time.Now())
			}
			r.log.Info("instance adopted", kit.KeyDeployment, in.Deployment, "instance", id, "state", string(c.State))
		}
		exit := k.exit
		in.OOMKills = r.ooms[id]
		r.mu.Unlock()
		in.Adopted = k.adopted
		switch c.State {
		case container.StateRunning, container.StateCreated, container.StateRestarting, container.StatePaused:
			if _, err := os.Stat(filepath.Join(r.stateDir(id), readyName)); err == nil {
				in.Ready = true
			}
		default: // exited, dead, removing
			if exit == nil {
				if exit, err = r.exited(ctx, c.ID, in); err != nil {
					return nil, err
				}
				r.mu.Lock()
				k.exit = exit
				r.mu.Unlock()
			}
			in.State, in.Error, in.Permanent = runtime.StateExited, exit.err, exit.permanent
			if exit.oom {
				in.OOMKills = max(in.OOMKills, 1)
			}
		}
		out = append(out, in)
	}
	return out, nil
}

// exited says why a container exited, from its inspected state.
func (r *Runtime) exited(ctx context.Context, containerID string, in runtime.Instance) (*exitInfo, error) {
	res, err := r.cli.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return &exitInfo{err: "container removed"}, nil
		}
		return nil, fmt.Errorf("inspect container of instance %s: %w", in.ID, err)
	}
	st := res.Container.State
	if st == nil {
		return &exitInfo{err: "container state unknown"}, nil
	}
	switch {
	case st.OOMKilled:
		mem := int64(0)
		if res.Container.HostConfig != nil {
			mem = res.Container.HostConfig.Memory
		}
		return &exitInfo{oom: true, err: fmt.Sprintf("container OOM-killed: the instance went over its memory limit of %s (the functions' limits.memory plus %s for fnbox)",
			byteSize(mem), byteSize(r.cfg.MemoryOverhead))}, nil
	case st.ExitCode == control.ExitCodeLoadError:
		msg := r.lastLine(ctx, containerID)
		_ = os.WriteFile(filepath.Join(r.cfg.CodeDir(in.Deployment, in.Version), brokenFile), []byte(msg), 0o644)
		return &exitInfo{err: msg, permanent: true}, nil
	case st.ExitCode == control.ExitCodeOrphan:
		return &exitInfo{err: "fnbox exited on its own, its broker or deployment gone: " + r.lastLine(ctx, containerID)}, nil
	case st.ExitCode == 137:
		return &exitInfo{err: "container killed (SIGKILL, exit status 137): docker kill, or the engine stopped it"}, nil
	case st.Error != "":
		return &exitInfo{err: fmt.Sprintf("container exited with status %d: %s", st.ExitCode, st.Error)}, nil
	default:
		return &exitInfo{err: fmt.Sprintf("container exited with status %d", st.ExitCode)}, nil
	}
}

// lastLine is the last line the container printed (fnbox's own error).
func (r *Runtime) lastLine(ctx context.Context, containerID string) string {
	rc, err := r.cli.ContainerLogs(ctx, containerID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return "fnbox could not load the function code"
	}
	defer rc.Close()
	var b strings.Builder
	_, _ = stdcopy.StdCopy(&b, &b, io.LimitReader(rc, 64<<10))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "fnbox: ")
}

// Stop stops the container (SIGTERM, SIGKILL after the grace), removes
// it and forgets the instance. An unknown id is a no-op.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	grace := int(r.cfg.Grace / time.Second)
	_, err := r.cli.ContainerStop(ctx, containerName(id), client.ContainerStopOptions{Timeout: &grace})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop instance %s: %w", id, err)
	}
	found := err == nil
	if err := r.remove(ctx, id); err != nil {
		return err
	}
	if found {
		r.log.Info("instance stopped", "instance", id)
	}
	return nil
}

// remove removes the container (forcibly) and its state dir.
func (r *Runtime) remove(ctx context.Context, id string) error {
	_, err := r.cli.ContainerRemove(ctx, containerName(id), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("remove container of instance %s: %w", id, err)
	}
	os.RemoveAll(r.stateDir(id))
	r.mu.Lock()
	delete(r.known, id)
	delete(r.ooms, id)
	r.mu.Unlock()
	return nil
}

// follow copies the container's output, from since, into the runtime's
// log line by line until the container is gone, or Close.
func (r *Runtime) follow(id, deployment string, since time.Time) {
	if r.tailCtx.Err() != nil { // closed: no new goroutine on a waited group
		return
	}
	log := r.log.With(kit.KeyDeployment, deployment, "instance", id)
	r.tails.Go(func() {
		rc, err := r.cli.ContainerLogs(r.tailCtx, containerName(id), client.ContainerLogsOptions{
			ShowStdout: true, ShowStderr: true, Follow: true, Since: strconv.FormatInt(since.Unix(), 10)})
		if err != nil {
			if r.tailCtx.Err() == nil {
				log.Warn("cannot follow container output", kit.KeyError, err)
			}
			return
		}
		defer rc.Close()
		pr, pw := io.Pipe()
		go func() {
			_, err := stdcopy.StdCopy(pw, pw, rc)
			pw.CloseWithError(err)
		}()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			log.Info(sc.Text(), "source", "fnbox")
		}
		pr.Close()
	})
}

// readableByAll lets the instance's user (nobody) read the code dir: the
// process runtime unpacks it for the deployer's own user.
func readableByAll(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := info.Mode()
		want := m.Perm() | 0o044
		if d.IsDir() || m.Perm()&0o100 != 0 {
			want |= 0o011
		}
		if want != m.Perm() && m.Type()&fs.ModeSymlink == 0 {
			return os.Chmod(p, want)
		}
		return nil
	})
}

// byteSize writes n in Mi when it is whole, like the descriptor does.
func byteSize(n int64) string {
	if n <= 0 {
		return "none"
	}
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + "Mi"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

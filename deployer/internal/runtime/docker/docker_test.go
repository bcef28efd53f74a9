package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/runtime/process"
	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// FnboxBin is a host fnbox, for the process runtime beside the docker
// one (deployer_test.go).
var FnboxBin string

// TestMain builds the images once (build.sh skips what is up to date)
// and a host fnbox: the tests fail, not skip, without a Docker engine.
func TestMain(m *testing.M) {
	if err := BuildImages("fnbox", "python", "node"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kittest.MainWithBinaries(m, kittest.Binary{Pkg: "../../../../fnbox/cmd/fnbox", Name: "fnbox", Path: &FnboxBin})
}

// BuildImages runs deploy/images/build.sh for the named images.
func BuildImages(names ...string) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("the docker runtime tests need docker: %w", err)
	}
	cmd := exec.Command("../../../../deploy/images/build.sh", names...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build images: %w", err)
	}
	return nil
}

// rig is an embedded secure broker listening for containers on the
// bridge gateway, and a code-preparing process runtime.
type rig struct {
	t       testing.TB
	dir     string
	broker  *broker.Broker
	proc    *process.Runtime
	cli     *client.Client
	records *kgo.Client
	logs    lockedBuffer // the runtimes' logs
	network string
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newRig(t testing.TB) *rig {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return newRigOn(t, cli, "bridge")
}

// newRigOn is newRig with containers on network.
func newRigOn(t testing.TB, cli *client.Client, network string) *rig {
	t.Helper()
	ctx := context.Background()
	gw, err := NetworkGateway(ctx, cli, network)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", ContainerAddr: gw, DataDir: filepath.Join(dir, "b"), Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []topics.Spec{{Name: "numbers", Partitions: 2}, {Name: "counted", Partitions: 1}} {
		if err := b.CreateTopic(s); err != nil {
			t.Fatal(err)
		}
	}
	cache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	// go functions are built at deploy by the host's go, in its cache.
	proc, err := process.New(process.Config{DataDir: dir, Bin: "/nonexistent", Kafka: b.Kafka(),
		Go: gobuild.Config{Cache: strings.TrimSpace(string(cache))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.Close)
	cl, err := b.Kafka().NewClient(kgo.ConsumeTopics("counted"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &rig{t: t, dir: dir, broker: b, proc: proc, cli: cli, records: cl, network: network}
}

// runtime returns a docker runtime on the rig's data dir (a second call
// is a restarted deployer).
func (g *rig) runtime() *Runtime {
	g.t.Helper()
	rt, err := New(context.Background(), Config{DataDir: g.dir, Prepare: g.proc.Prepare, CodeDir: g.proc.CodeDir,
		Kafka: g.broker.Kafka(), Network: g.network, Grace: 2 * time.Second, MemoryOverhead: 64 << 20, Logger: slog.New(slog.NewJSONHandler(&g.logs, nil))})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(rt.Close)
	g.t.Cleanup(func() { // sweep whatever a failed test left
		insts, _ := rt.List(context.Background())
		for _, in := range insts {
			_ = rt.Stop(context.Background(), in.ID)
		}
	})
	return rt
}

func (g *rig) produce(from, to int) {
	g.t.Helper()
	for n := from; n < to; n++ {
		rec := &kgo.Record{Topic: "numbers", Key: []byte(strconv.Itoa(n)), Value: fmt.Appendf(nil, `{"n":%d}`, n)}
		if err := g.records.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			g.t.Fatal(err)
		}
	}
}

// awaitResults reads counted until every n in [0, total) has a result.
func (g *rig) awaitResults(seen map[int]bool, total int) {
	g.t.Helper()
	deadline := time.Now().Add(kittest.Timeout)
	for len(seen) < total {
		if time.Now().After(deadline) {
			g.t.Fatalf("%d of %d results after %s", len(seen), total, kittest.Timeout)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := g.records.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var v struct{ N int }
			if json.Unmarshal(r.Value, &v) == nil {
				seen[v.N] = true
			}
		})
	}
}

const pyDesc = `name: count
platform: python
functions:
  - fn: handler.py:handle
    bindings:
      streams: [{ name: numbers, offset: first }]
      out: counted
    limits: { memory: 64Mi, cpu: "0.5" }
`

const pyHandler = `
def handle(event, context):
    return {"n": event["data"]["n"]}
`

func spec(desc string, files map[string]string) runtime.InstanceSpec {
	files["butter.yaml"] = desc
	return runtime.InstanceSpec{Deployment: "count", Version: "v1", Functions: []string{"handle"}, Descriptor: desc, Code: archive.TarGz(files)}
}

func instance(t *testing.T, rt *Runtime, id string) runtime.Instance {
	t.Helper()
	insts, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("instance %s not listed (have %v)", id, insts)
	return runtime.Instance{}
}

// TestPythonFunctionInContainer: a python function runs in a container
// on the embedded broker (through its container listener, with its SASL
// login), confined as documented; a restarted runtime adopts it; a
// docker kill is reported with its reason; Stop removes it.
func TestPythonFunctionInContainer(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	rt := g.runtime()
	ctx := context.Background()
	g.produce(0, 20)
	start := time.Now()
	in, err := rt.Start(ctx, spec(pyDesc, map[string]string{"handler.py": pyHandler}))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	g.awaitResults(seen, 1)
	t.Logf("cold start (Start → first result, warm image): %s", time.Since(start).Round(time.Millisecond))
	g.awaitResults(seen, 20)
	kittest.Eventually(t, "ready", func() error {
		if !instance(t, rt, in.ID).Ready {
			return fmt.Errorf("not ready")
		}
		return nil
	})

	res, err := g.cli.ContainerInspect(ctx, containerName(in.ID), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Container
	for k, want := range map[string]string{LabelDeployment: "count", LabelFunction: "handle", LabelVersion: "v1", LabelInstance: in.ID, LabelReplica: "0", LabelSlot: "0"} {
		if got := c.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	hc := c.HostConfig
	switch {
	case c.Config.User != User:
		t.Errorf("user %q, want %s (non-root)", c.Config.User, User)
	case !hc.ReadonlyRootfs:
		t.Error("root filesystem writable")
	case !slices.Equal(hc.CapDrop, []string{"ALL"}):
		t.Errorf("CapDrop %v, want ALL", hc.CapDrop)
	case !slices.Contains(hc.SecurityOpt, "no-new-privileges"):
		t.Errorf("SecurityOpt %v, want no-new-privileges", hc.SecurityOpt)
	case hc.NetworkMode.IsHost():
		t.Error("host network")
	case hc.PidsLimit == nil || *hc.PidsLimit != 1024:
		t.Errorf("PidsLimit %v, want 1024", hc.PidsLimit)
	case hc.Memory != (64+64)<<20 || hc.NanoCPUs != 500_000_000:
		t.Errorf("Memory %d NanoCPUs %d, want 128Mi (64Mi + overhead) and 0.5 CPU", hc.Memory, hc.NanoCPUs)
	case !slices.ContainsFunc(c.Mounts, func(m container.MountPoint) bool { return m.Destination == codeMount && !m.RW }):
		t.Errorf("mounts %+v: want the code read-only at %s", c.Mounts, codeMount)
	}
	if _, ok := hc.Tmpfs["/tmp"]; !ok {
		t.Errorf("tmpfs %v, want /tmp", hc.Tmpfs)
	}

	// fnbox's output in the container reaches the runtime's log.
	kittest.Eventually(t, "container output in the runtime log", func() error {
		if logs := g.logs.String(); !strings.Contains(logs, control.ReadyMessage) || !strings.Contains(logs, `"source":"fnbox"`) {
			return fmt.Errorf("no %q line from the container in:\n%s", control.ReadyMessage, g.logs.String())
		}
		return nil
	})

	// A restarted deployer adopts the running container.
	rt.Close()
	rt2 := g.runtime()
	got := instance(t, rt2, in.ID)
	if !got.Adopted || got.State != runtime.StateRunning || !got.Ready || got.Deployment != "count" || !slices.Equal(got.Functions, []string{"handle"}) {
		t.Fatalf("after restart: %+v, want it adopted, running and ready", got)
	}
	g.produce(20, 30)
	g.awaitResults(seen, 30)

	// docker kill: listed as exited, with the reason.
	if _, err := g.cli.ContainerKill(ctx, containerName(in.ID), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "killed container listed as exited", func() error {
		got := instance(t, rt2, in.ID)
		if got.State != runtime.StateExited || !strings.Contains(got.Error, "SIGKILL") {
			return fmt.Errorf("%+v", got)
		}
		return nil
	})
	if err := rt2.Stop(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := g.cli.ContainerInspect(ctx, containerName(in.ID), client.ContainerInspectOptions{}); err == nil {
		t.Fatal("container still there after Stop")
	}
	if insts, _ := rt2.List(ctx); len(insts) != 0 {
		t.Fatalf("listed after Stop: %+v", insts)
	}
}

// TestNodeFunctionInContainer: a node function runs in butter-node, with
// its V8 heap sized from limits.memory.
func TestNodeFunctionInContainer(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	rt := g.runtime()
	desc := strings.NewReplacer("platform: python", "platform: node", "handler.py:handle", "handler.js:handle").Replace(pyDesc)
	in, err := rt.Start(context.Background(), spec(desc, map[string]string{"handler.js": "exports.handle = (event) => ({ n: event.data.n })\n"}))
	if err != nil {
		t.Fatal(err)
	}
	g.produce(0, 5)
	g.awaitResults(map[int]bool{}, 5)
	res, err := g.cli.ContainerInspect(context.Background(), containerName(in.ID), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Container.Config; c.Image != ImageNode || !slices.Contains(c.Env, "NODE_OPTIONS=--max-old-space-size=48") {
		t.Fatalf("image %s env %v: want %s and a 48 MiB heap (3/4 of 64Mi)", c.Image, c.Env, ImageNode)
	}
}

// TestGoFunctionInContainer: a go function, built static at deploy, runs
// in the scratch image butter-fnbox.
func TestGoFunctionInContainer(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	rt := g.runtime()
	desc := strings.NewReplacer("platform: python", "platform: go", "handler.py:handle", "./cmd/handle").Replace(pyDesc)
	main := `package main

import (
	"context"

	butter "github.com/buttercompass/butter/sdk/go"
)

func main() {
	butter.Handle(func(ctx context.Context, e butter.Event) (any, error) {
		return e.Data, nil
	})
}
`
	in, err := rt.Start(context.Background(), spec(desc, map[string]string{"cmd/handle/main.go": main}))
	if err != nil {
		t.Fatal(err)
	}
	g.produce(0, 5)
	g.awaitResults(map[int]bool{}, 5)
	res, err := g.cli.ContainerInspect(context.Background(), containerName(in.ID), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Container.Config.Image != ImageFnbox {
		t.Fatalf("image %s, want %s", res.Container.Config.Image, ImageFnbox)
	}
}

// TestSecretEnvInContainer: a secretEnv value is decrypted into the
// container's environment (and so the function's), never written to the
// code dir the container sees.
func TestSecretEnvInContainer(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	key, err := secrets.NewKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New(context.Background(), Config{DataDir: g.dir, Prepare: g.proc.Prepare, CodeDir: g.proc.CodeDir,
		Kafka: g.broker.Kafka(), Grace: 2 * time.Second, Secrets: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	desc := strings.Replace(pyDesc, "platform: python\n", "platform: python\nsecretEnv: { TOKEN: \""+key.Seal("count", "TOKEN", "s3cret")+"\" }\n", 1)
	handler := "import os\ndef handle(event, context):\n    return {\"n\": event[\"data\"][\"n\"], \"token\": os.environ[\"TOKEN\"]}\n"
	in, err := rt.Start(context.Background(), spec(desc, map[string]string{"handler.py": handler}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop(context.Background(), in.ID) })
	g.produce(0, 1)
	kittest.Eventually(t, "result with the secret", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var found bool
		g.records.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			found = found || strings.Contains(string(r.Value), `"token": "s3cret"`) || strings.Contains(string(r.Value), `"token":"s3cret"`)
		})
		if !found {
			return fmt.Errorf("no result carrying the decrypted secret yet")
		}
		return nil
	})
}

// TestUserDefinedNetwork: containers on a network of the user's join it,
// and reach the broker on that network's gateway (derived, not given).
func TestUserDefinedNetwork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	name := "butter-test-" + randHex(4)
	if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}) })
	g := newRigOn(t, cli, name)
	rt := g.runtime()
	if gw, _ := rt.Gateway(ctx); len(rt.Brokers()) != 1 || !strings.HasPrefix(rt.Brokers()[0], gw+":") {
		t.Fatalf("brokers %v, want the gateway %s of %s", rt.Brokers(), gw, name)
	}
	in, err := rt.Start(ctx, spec(pyDesc, map[string]string{"handler.py": pyHandler}))
	if err != nil {
		t.Fatal(err)
	}
	g.produce(0, 3)
	g.awaitResults(map[int]bool{}, 3)
	res, err := g.cli.ContainerInspect(ctx, containerName(in.ID), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Container.HostConfig.NetworkMode); got != name {
		t.Fatalf("network %s, want %s", got, name)
	}
}

// TestOOMReported: a function that goes over its memory limit is killed
// by the kernel inside its container, and List reports it.
func TestOOMReported(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	rt := g.runtime()
	desc := strings.Replace(pyDesc, `limits: { memory: 64Mi, cpu: "0.5" }`, `limits: { memory: 16Mi }`, 1)
	hog := "\ndef handle(event, context):\n    b = bytearray(512 << 20)\n    return {\"n\": len(b)}\n"
	in, err := rt.Start(context.Background(), spec(desc, map[string]string{"handler.py": hog}))
	if err != nil {
		t.Fatal(err)
	}
	g.produce(0, 1)
	kittest.Eventually(t, "OOM kill reported", func() error {
		got := instance(t, rt, in.ID)
		if got.OOMKills == 0 {
			return fmt.Errorf("%+v", got)
		}
		t.Logf("reported: %+v", got)
		return nil
	})
}

// TestMissingImageSaysMakeImages: a platform whose image is missing is
// refused with the image's name and how to build it.
func TestMissingImageSaysMakeImages(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	rt, err := New(context.Background(), Config{DataDir: g.dir, Prepare: g.proc.Prepare, CodeDir: g.proc.CodeDir,
		Kafka: g.broker.Kafka(), Images: map[string]string{"python": "butter-missing-image:never"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	_, err = rt.Start(context.Background(), spec(pyDesc, map[string]string{"handler.py": pyHandler}))
	if err == nil || !strings.Contains(err.Error(), "butter-missing-image:never") || !strings.Contains(err.Error(), "make images") {
		t.Fatalf("Start = %v, want an error naming the image and make images", err)
	}
}

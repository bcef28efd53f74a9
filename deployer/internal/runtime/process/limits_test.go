package process

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/deployer/internal/reconcile"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// hogJS allocates and touches data.size bytes when an event asks for it.
const hogJS = `exports.run = async (event) => {
  const size = (event.data && event.data.size) || 0;
  if (size > 0) { const b = Buffer.alloc(size); b.fill(1); return { touched: b.length }; }
  return { ok: true };
};
`

func nodeDeployment(t *testing.T, name, limits string) control.Deployment {
	t.Helper()
	desc := fmt.Sprintf(`name: %s
platform: node
functions:
  - fn: handler.js:run
    name: run
    bindings:
      streams: [{name: %s-in, offset: first}]
    delivery: {retries: 1, backoff: 100ms, deadLetter: %s-dlq}
%s`, name, name, name, limits)
	return control.Deployment{Name: name, Version: "v1", Descriptor: desc, Code: tarGz(t, map[string]string{"handler.js": hogJS})}
}

// tarGz packs files into a tar.gz code archive.
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fixedSource is a desired state that does not change.
type fixedSource []control.Deployment

func (s fixedSource) List() []control.Deployment { return s }
func (s fixedSource) Changed() <-chan struct{}   { return nil }

// TestMemoryLimit: a node function with limits.memory 64Mi allocating
// 400 MB on one event is killed by the kernel, reported (status lastError,
// an instance.oomkilled event), the event retried then dead-lettered,
// while another deployment's instance keeps running untouched. Where no
// cgroup can enforce the limit, the instance is refused instead.
func TestMemoryLimit(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range append(topics.Internal(), topics.Stream("hog-in"), topics.Stream("hog-dlq"), topics.Stream("calm-in")) {
		if err := b.CreateTopic(s); err != nil {
			t.Fatal(err)
		}
	}
	// The log level that once hid readiness from the deployer.
	t.Setenv("BUTTER_LOG_LEVEL", "warn")
	rt, err := New(Config{DataDir: t.TempDir(), Bin: realFnbox, Grace: 5 * time.Second, Kafka: b.Kafka()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	hog, calm := nodeDeployment(t, "hog", "    limits: {memory: 64Mi}\n"), nodeDeployment(t, "calm", "")

	if rt.Enforcement() == CgroupNone {
		_, err := rt.Start(context.Background(), runtime.InstanceSpec{Deployment: "hog", Version: "v1", Functions: []string{"run"},
			Descriptor: hog.Descriptor, Code: hog.Code})
		if !errors.Is(err, runtime.ErrBroken) || !errors.Is(err, ErrLimits) {
			t.Fatalf("without cgroups Start = %v, want ErrBroken and ErrLimits", err)
		}
		return
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("hog-dlq", topics.Events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	rec := reconcile.New(reconcile.Config{Runtime: rt, Source: fixedSource{hog, calm},
		Events: control.NewRecorder(cl, topics.Events, control.SourceDeployer), Resync: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = rec.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	readyOne := func(name string) runtime.Instance {
		var in runtime.Instance
		kittest.Eventually(t, name+" ready", func() error {
			insts := rec.Instances(name)
			if len(insts) != 1 || !insts[0].Ready {
				return fmt.Errorf("instances %+v", insts)
			}
			in = insts[0]
			return nil
		})
		return in
	}
	calmIn := readyOne("calm")
	readyOne("hog")

	e := envelope.New("/test", "test.alloc")
	e.SetID("alloc-400mb")
	_ = e.SetData(event.ApplicationJSON, map[string]int{"size": 400 << 20})
	r, _ := envelope.ToRecord("hog-in", e)
	sent := time.Now()
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var dead, oomEvent bool
	kittest.Eventually(t, "the event dead-lettered and an instance.oomkilled event", func() error {
		pctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		fs := cl.PollRecords(pctx, 100)
		fs.EachRecord(func(r *kgo.Record) {
			ev := envelope.FromRecord(r).Event
			switch {
			case r.Topic == "hog-dlq" && ev.ID() == "alloc-400mb":
				dead = true
			case r.Topic == topics.Events && ev.Type() == control.TypeInstanceOOMKilled:
				oomEvent = true
			}
		})
		if !dead || !oomEvent {
			return fmt.Errorf("dead-lettered %v, oomkilled event %v", dead, oomEvent)
		}
		return nil
	})
	st := rec.Status(hog)
	t.Logf("killed, reported and dead-lettered %s after the event was written; status %+v", time.Since(sent).Round(time.Millisecond), st)
	if len(st) != 1 || !strings.Contains(st[0].LastError, "memory limit") {
		t.Errorf("hog status = %+v, want a lastError about the memory limit", st)
	}
	insts := rec.Instances("calm")
	if len(insts) != 1 || insts[0].ID != calmIn.ID || insts[0].PID != calmIn.PID || insts[0].State != runtime.StateRunning || insts[0].OOMKills != 0 {
		t.Errorf("calm = %+v, want its first instance %s still running", insts, calmIn.ID)
	}
	if _, err := os.Stat(rt.readyPath(calmIn.ID)); err != nil {
		t.Errorf("calm's ready file: %v", err)
	}
}

// TestInstanceCgroup: an instance's cgroup carries the sum of its
// functions' limits plus fnbox's allowance, the cpu quota and the pids
// cap, and is removed with the instance.
func TestInstanceCgroup(t *testing.T) {
	d, err := descriptor.Parse("butter.yaml", []byte(`name: lim
platform: node
functions:
  - fn: a.js:f
    name: a
    bindings: { streams: [a] }
    limits: { memory: 64Mi, cpu: 250m }
  - fn: b.js:f
    name: b
    bindings: { streams: [b] }
    limits: { memory: 32Mi, cpu: "0.25" }
  - fn: c.js:f
    name: c
    bindings: { streams: [c] }
`))
	if err != nil {
		t.Fatal(err)
	}
	l := instanceLimits(d, []string{"a", "b"}, 128<<20, 100)
	if want := (limits{Limits: runtime.Limits{Memory: (64 + 32 + 128) << 20, MilliCPU: 500, NodeHeapMiB: 72}, pids: 100}); l != want {
		t.Errorf("limits of a and b = %+v, want %+v", l, want)
	}
	if l := instanceLimits(d, []string{"a", "c"}, 128<<20, 100); l.Memory != 0 || l.MilliCPU != 0 || l.NodeHeapMiB != 0 {
		t.Errorf("with unlimited c = %+v, want no memory or cpu limit", l)
	}

	cg := detectCgroups()
	dirs, err := cg.create("lim-0-test", l)
	if cg.kind == CgroupNone {
		if !errors.Is(err, ErrLimits) {
			t.Fatalf("without cgroups create = %v, want ErrLimits", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	read := func(file string) string {
		for _, dir := range dirs {
			if b, err := os.ReadFile(dir + "/" + file); err == nil {
				return strings.TrimSpace(string(b))
			}
		}
		return "absent"
	}
	want := map[string]string{"memory.limit_in_bytes": "234881024", "cpu.cfs_quota_us": "50000", "pids.max": "100"}
	if cg.kind == CgroupV2 {
		want = map[string]string{"memory.max": "234881024", "cpu.max": "50000 100000", "pids.max": "100"}
	}
	for file, v := range want {
		if got := read(file); got != v {
			t.Errorf("%s = %s, want %s", file, got, v)
		}
	}
	removeCgroups(dirs)
	for _, dir := range dirs {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s not removed: %v", dir, err)
		}
	}
}

// TestAdmitRefusesUnenforceableLimits: without a usable cgroup a
// descriptor with limits is refused at deploy, naming the function; one
// without limits is admitted. With one, both are.
func TestAdmitRefusesUnenforceableLimits(t *testing.T) {
	parse := func(limits string) *descriptor.Descriptor {
		d, err := descriptor.Parse("butter.yaml", []byte("name: a\nplatform: node\nfunctions:\n  - fn: a.js:f\n    name: a\n    bindings: { streams: [a] }\n  - fn: b.js:f\n    name: b\n    bindings: { streams: [b] }\n"+limits))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	limited, free := parse("    limits: { cpu: 500m }\n"), parse("")
	rt := newRuntime(t, t.TempDir(), time.Second)
	if rt.Enforcement() != CgroupNone {
		if err := rt.Admit(limited); err != nil {
			t.Errorf("with %s: Admit = %v", rt.Enforcement(), err)
		}
	}
	rt.cgroups = &cgroups{kind: CgroupNone, why: "none in this test"}
	if err := rt.Admit(limited); !errors.Is(err, ErrLimits) || !strings.Contains(err.Error(), "functions[1].limits") {
		t.Errorf("Admit without cgroups = %v, want ErrLimits naming functions[1].limits", err)
	}
	if err := rt.Admit(free); err != nil {
		t.Errorf("Admit of no limits = %v", err)
	}
}

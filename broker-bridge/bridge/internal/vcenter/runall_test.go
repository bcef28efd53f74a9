package vcenter

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmware/govmomi/simulator"

	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// TestSeveralVCenters: one bridge reads two vCenters (two simulator.VPX
// instances) into one stream; each has a checkpoint of its own, keyed by
// its instance uuid; after a restart both resume, and every (source, id)
// is on the stream exactly once.
func TestSeveralVCenters(t *testing.T) {
	t.Parallel()
	kcfg := startBroker(t, "vc-events")
	// Two vCenters: the VPX model gives every simulator of a host the same
	// instance uuid, two real vCenters have two.
	sims := []*simulator.Server{startVCSimAs(t, "11111111-1111-4111-8111-111111111111"), startVCSimAs(t, "22222222-2222-4222-8222-222222222222")}
	var cfgs []Config
	ctx := context.Background()
	var posts []func(msg string) error
	uuids := map[string]string{} // source URL → instance uuid
	for _, s := range sims {
		u := *s.URL
		pass, _ := u.User.Password()
		user := u.User.Username()
		u.User = nil
		cfgs = append(cfgs, Config{Deployment: "vc", Bridge: "vcenter",
			Spec:     descriptor.VCenterSource{URL: u.String(), Insecure: true, Username: user, PageSize: 100, Poll: descriptor.Duration(50 * time.Millisecond)},
			Password: pass, Stream: "vc-events", Checkpoints: topics.Checkpoints, Kafka: kcfg,
			TransactionalID: bridges.TransactionalID("", "vc", "vcenter"), Logger: slog.New(slog.DiscardHandler),
			Retry: 100 * time.Millisecond, PerInstance: true})
		sv := newSimVM(t, s)
		uuids[u.String()] = sv.c.ServiceContent.About.InstanceUuid
		posts = append(posts, func(msg string) error { return sv.post(ctx, msg) })
	}
	if len(uuids) != 2 || uuids[cfgs[0].Spec.URL] == uuids[cfgs[1].Spec.URL] {
		t.Fatalf("the simulators are not two instances: %v", uuids)
	}
	run := func() (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- RunAll(rctx, cfgs) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RunAll: %v", err)
			}
		}
	}
	rd, err := kcfg.NewClient(kgo.ConsumeTopics("vc-events"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var mu sync.Mutex
	seen := map[string]int{} // source + id → times
	msgs := map[string]bool{}
	read := func() {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			e := envelope.FromRecord(r).Event
			mu.Lock()
			defer mu.Unlock()
			seen[e.Source()+" "+e.ID()]++
			var data struct {
				Message string `json:"message"`
			}
			_ = e.DataAs(&data)
			msgs[e.Source()+" "+data.Message] = true
			if e.Extensions()[bridges.ExtInstanceUUID] != uuids[e.Source()] {
				t.Errorf("event of %s has instance %v, want %s", e.Source(), e.Extensions()[bridges.ExtInstanceUUID], uuids[e.Source()])
			}
		})
	}
	// waitFor posts a probe to every vCenter until each reached the
	// stream (a first start reads from the vCenter's now), then msgs.
	waitFor := func(prefix string, n int) {
		kittest.Eventually(t, "events of both vCenters", func() error {
			read()
			mu.Lock()
			defer mu.Unlock()
			for i, c := range cfgs {
				for j := range n {
					if m := fmt.Sprint(prefix, j); !msgs[c.Spec.URL+" "+m] {
						if prefix == "probe" {
							_ = posts[i](m)
						}
						return fmt.Errorf("%s: %s missing", c.Spec.URL, m)
					}
				}
			}
			return nil
		})
	}
	stop := run()
	waitFor("probe", 1)
	for i := range 50 {
		for _, post := range posts {
			if err := post(fmt.Sprint("a", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor("a", 50)
	stop()
	// Posted while the bridge is stopped: each vCenter's own checkpoint
	// says where it resumes.
	for i := range 50 {
		for _, post := range posts {
			if err := post(fmt.Sprint("b", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop = run()
	defer stop()
	waitFor("b", 50)
	read()
	mu.Lock()
	defer mu.Unlock()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("event %s on the stream %d times", k, n)
		}
	}
	// One checkpoint per instance.
	cps := map[string]bridges.Checkpoint{}
	cl, err := kcfg.NewClient(kgo.ConsumeTopics(topics.Checkpoints), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	kittest.Eventually(t, "a checkpoint per vCenter", func() error {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if strings.HasSuffix(string(r.Key), "/owner") {
				return
			}
			var cp bridges.Checkpoint
			if json.Unmarshal(r.Value, &cp) == nil {
				cps[string(r.Key)] = cp
			}
		})
		for _, u := range uuids {
			if cp, ok := cps["vc/vcenter/"+u]; !ok || cp.InstanceUUID != u || cp.LastKey <= 0 {
				return fmt.Errorf("checkpoints %v: none for %s", cps, u)
			}
		}
		return nil
	})
}

// startVCSimAs is startVCSim with the given About.InstanceUuid.
func startVCSimAs(t *testing.T, uuid string) *simulator.Server {
	t.Helper()
	m := simulator.VPX()
	m.ServiceContent.About.InstanceUuid = uuid
	createModel.Lock()
	err := m.Create()
	createModel.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Remove)
	m.Service.TLS = new(tls.Config)
	s := m.Service.NewServer()
	t.Cleanup(s.Close)
	return s
}

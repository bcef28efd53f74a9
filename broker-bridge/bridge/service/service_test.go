package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// TestTwoReplicas runs two bridge replicas on one deployment with a
// vCenter source (the govmomi simulator) and a webhook: every vCenter
// event reaches the stream exactly once while both run and after the
// owner stops, and either replica takes webhooks.
func TestTwoReplicas(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := b.Kafka()

	m := simulator.VPX()
	createModel.Lock()
	err = m.Create()
	createModel.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Remove)
	m.Service.TLS = new(tls.Config)
	vc := m.Service.NewServer()
	t.Cleanup(vc.Close)
	u := *vc.URL
	pass, _ := u.User.Password()
	u.User = nil

	remote, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remote.Close)
	if err := remote.CreateTopic(topics.Spec{Name: "orders", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	desc := fmt.Sprintf(`name: vc
platform: node
secretEnv: {VC_PASSWORD: %q, HOOK_TOKEN: tok}
functions: [{fn: a.js:f, bindings: {streams: [vc-events]}}]
bridges:
  - name: vcenter
    source: {vcenter: {url: %q, insecure: true, username: %q, passwordFrom: VC_PASSWORD, pageSize: 10, poll: 50ms}}
    stream: vc-events
  - name: hooks
    source: {webhook: {tokenFrom: HOOK_TOKEN}}
    stream: hook-events
  - name: mirror
    source: {kafka: {brokers: [%q], topic: orders}}
    stream: orders-copy
`, pass, u.String(), vc.URL.User.Username(), remote.Addr())
	if err := b.CreateTopic(control.DeploymentsSpec()); err != nil {
		t.Fatal(err)
	}
	cl, err := kcfg.NewClient(kgo.ProducerBatchMaxBytes(control.MaxRecordBytes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	rec, err := control.DeploymentRecord(topics.Deployments, control.Deployment{Name: "vc", Version: "1", Descriptor: desc, Created: time.Now(), Updated: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var reps []*Service
	var stops []func()
	for i := range 2 {
		s, err := New(Config{Addr: "127.0.0.1:0", SecretKeyFile: filepath.Join(t.TempDir(), "none"), Replica: fmt.Sprint("r", i),
			Retry: 100 * time.Millisecond, Kafka: kcfg, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, kittest.Serve(t, s))
		reps = append(reps, s)
		kittest.WaitReady(t, "bridge", "http://"+s.Addr())
	}

	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, vc.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, "DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	em := event.NewManager(c.Client)
	// The source reads from the vCenter's clock at its first start; the
	// checkpoint says it has started.
	kittest.Eventually(t, "a vcenter source owns the bridge", func() error {
		if !reps[0].owner.Load() && !reps[1].owner.Load() {
			return fmt.Errorf("no owner")
		}
		return nil
	})
	rcl, err := remote.Kafka().NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcl.Close)
	for i := range 10 {
		if err := rcl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte(fmt.Sprint("order", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := kcfg.NewClient(kgo.ConsumeTopics("vc-events", "hook-events"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rd.Close)
	ids := map[string]int{}
	msgs := map[string]bool{}
	read := func(want int) {
		t.Helper()
		kittest.Eventually(t, "user events", func() error {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
				e := envelope.FromRecord(r).Event
				if r.Topic == "vc-events" {
					ids[e.ID()]++
					if e.Subject() == "GeneralUserEvent" {
						var data struct {
							Message string `json:"message"`
						}
						_ = e.DataAs(&data)
						msgs[data.Message] = true
					}
				} else if r.Topic == "orders-copy" {
					ids[string(r.Value)]++
					msgs[string(r.Value)] = true
				} else {
					msgs["hook:"+string(e.Data())] = true
				}
			})
			if len(msgs) < want {
				return fmt.Errorf("%d of %d", len(msgs), want)
			}
			return nil
		})
	}
	post := func(from, to int) {
		for i := from; i < to; i++ {
			msg := fmt.Sprint("m", i)
			ev := &types.GeneralUserEvent{GeneralEvent: types.GeneralEvent{Event: types.Event{Vm: &types.VmEventArgument{Vm: vm.Reference()}}, Message: msg}}
			if err := em.PostEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait until the source reads: an event posted before its first
	// collector may fall before its start.
	kittest.Eventually(t, "source reading", func() error {
		post(0, 1)
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		n := 0
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) { n++ })
		if n == 0 {
			return fmt.Errorf("nothing yet")
		}
		return nil
	})
	rd.Close()
	rd, _ = kcfg.NewClient(kgo.ConsumeTopics("vc-events", "hook-events", "orders-copy"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	post(1, 40)

	// A webhook on the replica that does not own the source.
	other := 0
	if reps[0].owner.Load() {
		other = 1
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+reps[other].Addr()+"/v1/webhooks/vc/hooks", strings.NewReader(`{"n":1}`))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %s", resp.Status)
	}
	read(51)

	// The owner stops; the other takes the source over from the checkpoint.
	stops[1-other]()
	kittest.Eventually(t, "the other replica owns the source", func() error {
		if !reps[other].owner.Load() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	post(40, 80)
	// The new owner resumes the mirror from its checkpoint too.
	for i := 10; i < 20; i++ {
		if err := rcl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte(fmt.Sprint("order", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	read(101)
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s on the stream %d times", id, n)
		}
	}
}

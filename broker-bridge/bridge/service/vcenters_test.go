package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
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

// createModel serialises simulator.Model.Create, which writes
// package-level state of the simulator.
var createModel sync.Mutex

// TestVCentersDescriptor deploys a descriptor whose one bridge lists two
// vCenters (vcenters:, each with its own secretEnv password) and checks
// that the service reads both into the stream.
func TestVCentersDescriptor(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := b.Kafka()
	if err := b.CreateTopic(control.DeploymentsSpec()); err != nil {
		t.Fatal(err)
	}
	var entries []string
	var posts []func(string) error
	ctx := context.Background()
	secretEnv := map[string]string{}
	for i, uuid := range []string{"aaaaaaaa-1111-4111-8111-111111111111", "bbbbbbbb-2222-4222-8222-222222222222"} {
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
		vc := m.Service.NewServer()
		t.Cleanup(vc.Close)
		u := *vc.URL
		pass, _ := u.User.Password()
		u.User = nil
		secretEnv[fmt.Sprint("VC", i)] = pass
		entries = append(entries, fmt.Sprintf("{url: %q, insecure: true, username: %q, passwordFrom: VC%d}", u.String(), vc.URL.User.Username(), i))
		c, err := govmomi.NewClient(ctx, vc.URL, true)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, "DC0_H0_VM0")
		if err != nil {
			t.Fatal(err)
		}
		em := event.NewManager(c.Client)
		posts = append(posts, func(msg string) error {
			return em.PostEvent(ctx, &types.GeneralUserEvent{GeneralEvent: types.GeneralEvent{Event: types.Event{Vm: &types.VmEventArgument{Vm: vm.Reference()}}, Message: msg}})
		})
	}
	desc := fmt.Sprintf(`name: vc
platform: node
secretEnv: {VC0: %q, VC1: %q}
functions: [{fn: a.js:f, bindings: {streams: [vc-events]}}]
bridges:
  - name: vcenters
    source: {vcenter: {vcenters: [%s], pageSize: 10, poll: 50ms}}
    stream: vc-events
`, secretEnv["VC0"], secretEnv["VC1"], strings.Join(entries, ", "))
	cl, err := kcfg.NewClient(kgo.ProducerBatchMaxBytes(control.MaxRecordBytes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	rec, err := control.DeploymentRecord(topics.Deployments, control.Deployment{Name: "vc", Version: "1", Descriptor: desc, Created: time.Now(), Updated: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Addr: "127.0.0.1:0", SecretKeyFile: filepath.Join(t.TempDir(), "none"), Replica: "r0",
		Retry: 100 * time.Millisecond, Kafka: kcfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	kittest.Serve(t, s)
	rd, err := kcfg.NewClient(kgo.ConsumeTopics("vc-events"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rd.Close)
	sources := map[string]bool{}
	kittest.Eventually(t, "events of both vCenters", func() error {
		for i, post := range posts {
			if err := post(fmt.Sprint("probe", i)); err != nil {
				return err
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			sources[fmt.Sprint(envelope.FromRecord(r).Event.Extensions()["vcenterinstanceuuid"])] = true
		})
		if !sources["aaaaaaaa-1111-4111-8111-111111111111"] || !sources["bbbbbbbb-2222-4222-8222-222222222222"] {
			return fmt.Errorf("events of %v", sources)
		}
		return nil
	})
}

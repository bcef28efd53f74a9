package cloudevents

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/runtime/platforms"
	"github.com/buttercompass/butter/gateway/service"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// gatewayFn answers a request event with a summary of what it saw.
const gatewayFn = `exports.quote = async (event) => ({
  sawType: event.type, sawSource: event.source, sawTenant: event.extensions.tenant,
  total: event.data.qty * 5,
});
`

const gatewayDesc = `name: shop
platform: node
functions:
  - fn: handler.js:quote
    bindings:
      route: { context: /quote, mode: cloudevents }
`

// TestGatewayRequestWithSDKClient: sdk-go's client.Request, in binary and
// structured mode, against the gateway (route mode cloudevents) and a real
// fnbox running a node function, on the embedded broker: the reply is the
// function's result event.
func TestGatewayRequestWithSDKClient(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: this test runs a node function (.ci/run installs nodejs)")
	}
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	dep := control.Deployment{Name: "shop", Version: "1", Descriptor: gatewayDesc, Created: time.Now(), Updated: time.Now(), Actor: "test"}
	desc, err := dep.Parse()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range desc.Functions[0].StreamNames() {
		if err := b.CreateTopic(topics.Stream(s)); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	rec, err := control.DeploymentRecord(topics.Deployments, dep)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// fnbox, in-process, with the real node runtime.
	for name, start := range platforms.All() {
		if _, ok := box.Platforms[name]; !ok {
			box.Platforms[name] = box.Platform(start)
		}
	}
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "handler.js"), []byte(gatewayFn), 0o644); err != nil {
		t.Fatal(err)
	}
	kafka := kit.KafkaConfig{Brokers: []string{b.Addr()}}
	logger, _ := kit.NewLogger(io.Discard, "info")
	bx, err := box.New(box.Config{Kafka: kafka, Deployment: desc, Dir: code, Instance: "ce-1", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan error, 1)
	go func() { bdone <- bx.Run(bctx) }()
	t.Cleanup(func() {
		bcancel()
		if err := <-bdone; err != nil {
			t.Errorf("fnbox: %v", err)
		}
	})

	cfg := service.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = kafka
	cfg.Grace = 5 * time.Second
	cfg.Logger = logger
	gw, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), timeout)
	defer pcancel()
	if err := gw.Provision(pctx); err != nil {
		gw.Close()
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan error, 1)
	go func() { sdone <- gw.Serve(sctx) }()
	t.Cleanup(func() {
		scancel()
		<-sdone
		gw.Close()
	})
	kittest.Eventually(t, "fnbox ready", func() error { return bx.Ready(context.Background()) })

	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget("http://" + gw.Addr() + "/quote"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			n := 0
			kittest.Eventually(t, "client.Request answered", func() error {
				n++
				req := cloudevents.NewEvent()
				req.SetID(fmt.Sprintf("%s-%d", m.name, n))
				req.SetSource("https://example.com/shop")
				req.SetType("com.example.quote.requested")
				req.SetExtension("tenant", "acme")
				if err := req.SetData(cloudevents.ApplicationJSON, map[string]int{"qty": 3}); err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(m.sdkCtx(context.Background()), 20*time.Second)
				defer cancel()
				reply, res := c.Request(ctx, req)
				if !cloudevents.IsACK(res) || reply == nil {
					return fmt.Errorf("request: %v (reply %v)", res, reply)
				}
				if reply.Type() != obs.TypeResult || reply.Source() != obs.Source("shop", "quote") || reply.DataContentType() != cloudevents.ApplicationJSON {
					return fmt.Errorf("reply attributes: %s", reply)
				}
				var got struct {
					SawType, SawSource, SawTenant string
					Total                         int
				}
				if err := json.Unmarshal(reply.Data(), &got); err != nil {
					return err
				}
				if got.SawType != req.Type() || got.SawSource != req.Source() || got.SawTenant != "acme" || got.Total != 15 {
					t.Fatalf("reply data %s", reply.Data())
				}
				return nil
			})
		})
	}
}

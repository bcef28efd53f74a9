package control

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/topics"
)

const brokerTimeout = 60 * time.Second

const ordersYAML = `name: orders
platform: node
functions:
  - fn: handler.js:onOrder
    bindings:
      streams: [orders]
`

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	for _, s := range topics.Internal() {
		if err := c.CreateTopic(s.Name, s.PartitionCount(), s.Configs()); err != nil {
			t.Fatalf("create %s: %v", s.Name, err)
		}
	}
	return c
}

func newClient(t *testing.T, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func consume(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records before timeout", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestDeploymentRoundTrip(t *testing.T) {
	d := Deployment{Name: "orders", Descriptor: ordersYAML, Code: []byte{0x1f, 0x8b, 0}, Actor: "anonymous",
		Created: time.Now().UTC(), Updated: time.Now().UTC()}
	d.Version = ContentVersion(d.Descriptor, d.Code)
	if len(d.Version) != 12 || d.Version != ContentVersion(ordersYAML, d.Code) || d.Version == ContentVersion(ordersYAML, nil) {
		t.Fatalf("content version %q is not a stable 12-digit hash of both parts", d.Version)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	rec, err := DeploymentRecord(topics.Deployments, d)
	if err != nil {
		t.Fatal(err)
	}
	got, deleted, err := DecodeDeployment(rec)
	if err != nil || deleted || got.Name != "orders" || string(got.Code) != string(d.Code) {
		t.Fatalf("decode = %+v, %v, %v", got, deleted, err)
	}
	var raw map[string]any
	_ = json.Unmarshal(rec.Value, &raw)
	if raw["code"] != "H4sA" {
		t.Errorf("code in JSON = %v, want base64 H4sA", raw["code"])
	}
	desc, err := got.Parse()
	if err != nil || desc.Functions[0].Name != "on-order" {
		t.Fatalf("parse = %+v, %v", desc, err)
	}
	_, deleted, err = DecodeDeployment(DeploymentTombstone(topics.Deployments, "orders"))
	if !deleted || err != nil {
		t.Fatalf("tombstone decoded as deleted=%v err=%v", deleted, err)
	}
	rec.Key = []byte("other")
	if _, _, err := DecodeDeployment(rec); !errors.Is(err, ErrNameMismatch) {
		t.Fatalf("mismatched key: err = %v", err)
	}
}

func TestParseReportsProblemsWithPositions(t *testing.T) {
	d := Deployment{Name: "orders", Version: "1", Descriptor: "name: orders\nplatform: cobol\nfunctions: []\n"}
	err := d.Validate()
	var ps descriptor.Problems
	if !errors.As(err, &ps) || len(ps) < 2 || ps[0].File != "orders/butter.yaml" || ps[0].Line == 0 {
		t.Fatalf("problems = %v", err)
	}
}

// TestFullSizeRecordFits stores a deployment with an incompressible code
// archive of MaxCodeSize: the broker's 1 MiB default would refuse it.
func TestFullSizeRecordFits(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cl := newClient(t, c, kgo.ProducerBatchMaxBytes(MaxRecordBytes), kgo.FetchMaxPartitionBytes(MaxRecordBytes),
		kgo.ConsumeTopics(topics.Deployments), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	code := make([]byte, MaxCodeSize)
	_, _ = rand.Read(code)
	d := Deployment{Name: "orders", Version: "1", Descriptor: ordersYAML, Code: code}
	rec, err := DeploymentRecord(topics.Deployments, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err == nil {
		t.Fatal("broker accepted a 10 MiB record under the default max.message.bytes; the test proves nothing")
	}
	adm := kadm.NewClient(cl)
	var alter []kadm.AlterConfig
	for k, v := range DeploymentsTopicConfigs() {
		alter = append(alter, kadm.AlterConfig{Name: k, Value: kadm.StringPtr(v)})
	}
	if _, err := adm.AlterTopicConfigs(ctx, alter, topics.Deployments); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce full-size deployment: %v", err)
	}
	got, _, err := DecodeDeployment(consume(t, cl, 1)[0])
	if err != nil || len(got.Code) != MaxCodeSize {
		t.Fatalf("read back %d bytes, err %v", len(got.Code), err)
	}
}

func TestRecorderChain(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cl := newClient(t, c, kgo.ConsumeTopics(topics.Events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	rec := NewRecorder(cl, topics.Events, SourceDeployer)
	info := Info{Resource: Resource(KindDeployment, "orders"), Actor: ActorAnonymous}
	a, err := rec.Begin(ctx, TypeDeploymentDelete, info, DeploymentChange{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Fail(ctx, errors.New("boom"), nil); err != nil {
		t.Fatal(err)
	}
	recs := consume(t, cl, 2)
	first, second := envelope.FromRecord(recs[0]).Event, envelope.FromRecord(recs[1]).Event
	if first.Type() != TypeDeploymentDelete || second.Type() != TypeDeploymentDeleteFailed {
		t.Fatalf("types %s, %s", first.Type(), second.Type())
	}
	if envelope.Extension(second, envelope.ExtCausationID) != first.ID() || envelope.Extension(second, envelope.ExtCorrelationID) != first.ID() ||
		envelope.Extension(first, envelope.ExtCorrelationID) != first.ID() {
		t.Errorf("chain ids wrong: first %s, second causation %s correlation %s", first.ID(),
			envelope.Extension(second, envelope.ExtCausationID), envelope.Extension(second, envelope.ExtCorrelationID))
	}
	for _, e := range []struct{ name, got, want string }{
		{"actor", envelope.Extension(second, ExtActor), ActorAnonymous},
		{"category", envelope.Extension(first, ExtCategory), CategoryAction},
		{"severity", envelope.Extension(second, ExtSeverity), SeverityError},
		{"resource", envelope.Extension(second, ExtResource), "deployment/orders"},
		{"key", string(recs[0].Key), "deployment/orders"},
	} {
		if e.got != e.want {
			t.Errorf("%s = %q, want %q", e.name, e.got, e.want)
		}
	}
	var data map[string]any
	_ = json.Unmarshal(second.Data(), &data)
	if data["error"] != "boom" {
		t.Errorf("failed data = %s", second.Data())
	}
}

func TestRecorderFailsWhenEventCannotBeStored(t *testing.T) {
	c := newCluster(t)
	cl := newClient(t, c, kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(2*time.Second))
	rec := NewRecorder(cl, "no-such-topic", SourceDeployer)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rec.Begin(ctx, TypeDeploymentCreate, Info{Resource: "deployment/x"}, nil); err == nil {
		t.Fatal("Begin succeeded without a topic to store the event")
	}
}

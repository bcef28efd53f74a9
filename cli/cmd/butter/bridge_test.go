package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// TestWebhookExample runs examples/webhook on butter up as its README
// does: a signed webhook is accepted, summarised by the python function
// and posted by the bridge's HTTP sink to a receiver as a CloudEvent; an
// unsigned one is refused with 401 and reaches nobody.
func TestWebhookExample(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []http.Header
		raw []string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, raw = append(got, r.Header.Clone()), append(raw, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	// The example, its sink pointed at the receiver.
	dir := t.TempDir()
	copyDir(t, "../../../examples/webhook", dir)
	desc := filepath.Join(dir, "butter.yaml")
	b, err := os.ReadFile(desc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "http://127.0.0.1:9999/in") {
		t.Fatalf("examples/webhook no longer posts to http://127.0.0.1:9999/in:\n%s", b)
	}
	writeFile(t, desc, strings.ReplaceAll(string(b), "http://127.0.0.1:9999/in", receiver.URL+"/in"))

	bridge := freeAddr(t)
	p := startPlatform(t, "--bridge-addr", bridge)
	p.deployerCmd("deploy", dir)

	url := "http://" + bridge + "/v1/webhooks/hooks/github"
	body := `{"ref":"refs/heads/main","commits":[{},{}]}`
	post := func(sign bool) (int, string) {
		body := body
		if !sign {
			body = `{"ref":"refs/heads/unsigned","commits":[]}`
		}
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sign {
			mac := hmac.New(sha256.New, []byte("change-me"))
			mac.Write([]byte(body))
			req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	kittest.Eventually(t, "the bridge accepts the signed webhook", func() error {
		if code, msg := post(true); code != http.StatusAccepted {
			return fmt.Errorf("signed POST = %d %s", code, msg)
		}
		return nil
	})
	if code, msg := post(false); code != http.StatusUnauthorized {
		t.Errorf("unsigned POST = %d %s, want 401", code, msg)
	}

	kittest.Eventually(t, "the receiver gets the summary as a CloudEvent", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return fmt.Errorf("nothing received yet")
		}
		var summary struct {
			Type    string
			Ref     string
			Commits int
		}
		if err := json.Unmarshal([]byte(raw[0]), &summary); err != nil || summary.Ref != "refs/heads/main" || summary.Commits != 2 ||
			summary.Type != "com.github.push" || got[0].Get("Ce-Specversion") != "1.0" || got[0].Get("Ce-Id") == "" {
			return fmt.Errorf("received %s with headers %v", raw[0], got[0])
		}
		return nil
	})
	// Besides the 401: no summary of the unsigned webhook reached the
	// receiver by the time the signed one's did.
	mu.Lock()
	defer mu.Unlock()
	for _, r := range raw {
		if strings.Contains(r, "unsigned") {
			t.Errorf("the receiver got the unsigned webhook's summary: %s", r)
		}
	}
}

// platformKafka is a client config for the platform's broker, logged in
// as its admin.
func platformKafka(t *testing.T, p *platform) kit.KafkaConfig {
	t.Helper()
	props, err := kit.ReadClientProperties(p.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	return kit.KafkaConfig{Brokers: []string{p.broker}, SASLMechanism: props.Mechanism, SASLUser: props.User, SASLPassword: props.Password}
}

// produceOrders writes n CloudEvents com.example.order {id, total} to
// topic, retrying until the topic exists.
func produceOrders(t *testing.T, kcfg kit.KafkaConfig, topic string, n int) {
	t.Helper()
	cl, err := kcfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		e := envelope.New("/shop", "com.example.order")
		e.SetID(fmt.Sprint("o-", i))
		if err := e.SetData("application/json", map[string]any{"id": fmt.Sprint("o-", i), "total": i * 30}); err != nil {
			t.Fatal(err)
		}
		r, err := envelope.ToRecord(topic, e)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	kittest.Eventually(t, "orders written to "+topic, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, recs...).FirstErr()
	})
}

// TestHTTPSinkExample runs examples/http-sink on butter up: orders on the
// stream become alerts, which the bridge's HTTP sink posts to a receiver
// as CloudEvents, every one.
func TestHTTPSinkExample(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got = map[string]map[string]any{} // order → alert
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alert map[string]any
		if err := json.NewDecoder(r.Body).Decode(&alert); err != nil || r.Header.Get("Ce-Specversion") != "1.0" || r.Header.Get("Ce-Id") == "" {
			t.Errorf("not a CloudEvent in binary mode: %v %v", r.Header, err)
		}
		mu.Lock()
		got[fmt.Sprint(alert["order"])] = alert
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	dir := t.TempDir()
	copyDir(t, "../../../examples/http-sink", dir)
	desc := filepath.Join(dir, "butter.yaml")
	b, err := os.ReadFile(desc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "http://127.0.0.1:9999/in") {
		t.Fatalf("examples/http-sink no longer posts to http://127.0.0.1:9999/in:\n%s", b)
	}
	writeFile(t, desc, strings.ReplaceAll(string(b), "http://127.0.0.1:9999/in", receiver.URL+"/in"))

	p := startPlatform(t)
	p.deployerCmd("deploy", dir)
	const n = 10
	produceOrders(t, platformKafka(t, p), "orders", n)
	kittest.Eventually(t, "every alert posted", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < n {
			return fmt.Errorf("%d of %d alerts", len(got), n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		a := got[fmt.Sprint("o-", i)]
		want := "low"
		if i*30 >= 100 {
			want = "high"
		}
		if a == nil || a["level"] != want {
			t.Errorf("alert of o-%d = %v, want level %s", i, a, want)
		}
	}
}

// TestKafkaMirrorExample runs examples/kafka-mirror on butter up against
// a second, in-process cluster: orders written there are mirrored in,
// checked by the python function and mirrored back out, CloudEvents
// headers kept, each once.
func TestKafkaMirrorExample(t *testing.T) {
	t.Parallel()
	other, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	for _, s := range []string{"orders", "orders-checked"} {
		if err := other.CreateTopic(topics.Stream(s)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	copyDir(t, "../../../examples/kafka-mirror", dir)
	desc := filepath.Join(dir, "butter.yaml")
	b, err := os.ReadFile(desc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), "127.0.0.1:9192") != 2 {
		t.Fatalf("examples/kafka-mirror no longer names the other cluster 127.0.0.1:9192 twice:\n%s", b)
	}
	writeFile(t, desc, strings.ReplaceAll(string(b), "127.0.0.1:9192", other.Addr()))

	p := startPlatform(t)
	p.deployerCmd("deploy", dir)
	const n = 10
	produceOrders(t, other.Kafka(), "orders", n)

	rd, err := other.Kafka().NewClient(kgo.ConsumeTopics("orders-checked"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	kittest.Eventually(t, "checked orders on the other cluster", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			e := envelope.FromRecord(r).Event
			var c struct {
				ID    string
				Valid bool
			}
			if err := json.Unmarshal(e.Data(), &c); err != nil || e.SpecVersion() != "1.0" || e.ID() == "" {
				t.Errorf("not a CloudEvent: %s (%v)", e, err)
			}
			if c.Valid != (c.ID != "o-0") { // o-0 has total 0
				t.Errorf("%s: valid %v", c.ID, c.Valid)
			}
			seen[c.ID]++
		})
		if len(seen) < n {
			return fmt.Errorf("%d of %d", len(seen), n)
		}
		return nil
	})
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s on the other cluster %d times", id, k)
		}
	}
}

// TestVCenterExample runs examples/vcenter on butter up against the
// govmomi simulator: power-cycling a VM yields VmPoweredOffEvent and
// VmPoweredOnEvent CloudEvents on vc-events, which the deployed python
// function turns into {vm, power} records on vm-power.
func TestVCenterExample(t *testing.T) {
	t.Parallel()
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Remove)
	m.Service.TLS = new(tls.Config)
	sim := m.Service.NewServer()
	t.Cleanup(sim.Close)
	u := *sim.URL
	pass, _ := u.User.Password()
	user := u.User.Username()
	u.User = nil

	dir := t.TempDir()
	copyDir(t, "../../../examples/vcenter", dir)
	desc := filepath.Join(dir, "butter.yaml")
	b, err := os.ReadFile(desc)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"https://127.0.0.1:8989/sdk", "username: user", "VC_PASSWORD: pass"} {
		if !strings.Contains(string(b), s) {
			t.Fatalf("examples/vcenter no longer has %q:\n%s", s, b)
		}
	}
	d := strings.ReplaceAll(string(b), "https://127.0.0.1:8989/sdk", u.String())
	d = strings.ReplaceAll(d, "username: user", "username: "+user)
	d = strings.ReplaceAll(d, "VC_PASSWORD: pass", fmt.Sprintf("VC_PASSWORD: %q", pass))
	writeFile(t, desc, d)

	p := startPlatform(t)
	p.deployerCmd("deploy", dir)

	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, sim.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, "DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	rd, err := platformKafka(t, p).NewClient(kgo.ConsumeTopics("vm-power"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	power := map[string]bool{}
	// The bridge's first start reads from the vCenter's now: cycle until
	// both power events went through the bridge and the function.
	kittest.Eventually(t, "the function's records of both power events", func() error {
		for _, op := range []func(context.Context) (*object.Task, error){vm.PowerOff, vm.PowerOn} {
			task, err := op(ctx)
			if err != nil {
				return err
			}
			if err := task.Wait(ctx); err != nil {
				return err
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var rec struct{ VM, Power string }
			if err := json.Unmarshal(envelope.FromRecord(r).Event.Data(), &rec); err == nil && rec.VM == "DC0_H0_VM0" {
				power[rec.Power] = true
			}
		})
		if !power["off"] || !power["on"] {
			return fmt.Errorf("records of %v so far", power)
		}
		return nil
	})
}

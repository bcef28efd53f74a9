package service

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/deployer/internal/testutil"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// fakeFnbox is the stand-in fnbox binary built by TestMain.
var fakeFnbox string

func TestMain(m *testing.M) { testutil.MainWithFakeFnbox(m, &fakeFnbox) }

const ordersYAML = `name: orders
platform: node
functions:
  - fn: handler.js:onOrder
    bindings:
      streams: [{ name: orders, offset: first }]
      out: order-results
`

// env is a broker and a data dir deployers of one test share.
type env struct {
	t       *testing.T
	brokers string
	data    string
	kafka   *kgo.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &env{t: t, brokers: b.Addr(), data: t.TempDir(), kafka: cl}
}

// deployer is a running deployer and its base URL.
type deployer struct {
	url  string
	stop func()
}

func (e *env) start(token string) *deployer {
	e.t.Helper()
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.FnboxBin, cfg.Token = "127.0.0.1:0", e.data, fakeFnbox, token
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{e.brokers}}
	cfg.Grace = 5 * time.Second
	cfg.GoCache = hostGoCache(e.t)
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	stop := kittest.Serve(e.t, s)
	return &deployer{url: "http://" + s.Addr(), stop: stop}
}

type resp struct {
	code int
	body []byte
	hdr  http.Header
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (d *deployer) do(t *testing.T, method, path, ctype string, body []byte, token string) resp {
	t.Helper()
	req, _ := http.NewRequest(method, d.url+path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b, res.Header}
}

type status struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Functions []struct {
		Name    string `json:"name"`
		Desired int    `json:"desired"`
		Running int    `json:"running"`
	} `json:"functions"`
	Instances []struct {
		ID  string `json:"id"`
		PID int    `json:"pid"`
	} `json:"instances"`
}

func (d *deployer) waitRunning(t *testing.T, name string, n int) status {
	t.Helper()
	var st status
	kittest.Eventually(t, name+" running", func() error {
		r := d.do(t, "GET", "/v1/deployments/"+name, "", nil, "")
		if r.code != 200 {
			return fmt.Errorf("GET: %d %s", r.code, r.body)
		}
		st = status{}
		r.json(t, &st)
		if len(st.Instances) != n || (n > 0 && st.Functions[0].Running != n) {
			return fmt.Errorf("status %s", r.body)
		}
		return nil
	})
	return st
}

func zipOf(files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, _ := zw.Create(name)
		_, _ = w.Write([]byte(body))
	}
	_ = zw.Close()
	return buf.Bytes()
}

func TestDeployFormats(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	jsonDesc := `{"name":"json-dep","platform":"exec","functions":[{"fn":"./run.sh","bindings":{"streams":["in"]}}]}`
	cases := []struct {
		name, ctype string
		body        []byte
	}{
		{"orders", "application/yaml", []byte(ordersYAML)},
		{"json-dep", "application/json", []byte(jsonDesc)},
		{"tgz", "application/gzip", archive.TarGz(map[string]string{"butter.yaml": strings.ReplaceAll(ordersYAML, "orders\n", "tgz\n"), "handler.js": "exports.onOrder = () => 1"})},
		{"zipped", "application/zip", zipOf(map[string]string{"butter.yaml": strings.ReplaceAll(ordersYAML, "name: orders", "name: zipped"), "lib/handler.js": "x"})},
	}
	for _, c := range cases {
		r := d.do(t, "POST", "/v1/deployments", c.ctype, c.body, "")
		if r.code != http.StatusCreated {
			t.Fatalf("%s: POST = %d %s", c.name, r.code, r.body)
		}
		var st status
		r.json(t, &st)
		if st.Name != c.name || len(st.Version) != 12 {
			t.Errorf("%s: status %s", c.name, r.body)
		}
		d.waitRunning(t, c.name, 1)
	}
	// Unpacked code of the zip is where fnbox is pointed.
	r := d.do(t, "GET", "/v1/deployments", "", nil, "")
	var list struct{ Deployments []status }
	r.json(t, &list)
	var names []string
	for _, s := range list.Deployments {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"json-dep", "orders", "tgz", "zipped"}) {
		t.Errorf("list = %v", names)
	}
	// Every stream the descriptors name exists.
	tds, err := kadm.NewClient(e.kafka).ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"orders", "order-results", "orders-on-order-dlq", "in"} {
		if !tds.Has(s) {
			t.Errorf("stream %s not created", s)
		}
	}
	if r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(ordersYAML), ""); r.code != http.StatusConflict {
		t.Errorf("second POST = %d, want 409", r.code)
	}
}

func TestRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	bad := "name: Orders\nplatform: cobol\nfunctions:\n  - fn: x\n    bindings: {}\n    delivery: { retries: -1 }\n"
	r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(bad), "")
	var p kit.Problem
	r.json(t, &p)
	if r.code != 400 || r.hdr.Get("Content-Type") != kit.ProblemContentType || len(p.Errors) < 4 {
		t.Fatalf("bad descriptor = %d %s", r.code, r.body)
	}
	for _, want := range []string{"butter.yaml:1:7 name", "butter.yaml:2:11 platform", "delivery.retries"} {
		if !slices.ContainsFunc(p.Errors, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("problems %q lack %q", p.Errors, want)
		}
	}
	archives := []struct {
		name, ctype string
		body        []byte
		want        string
	}{
		{"not gzip", "application/gzip", []byte("plain text"), "not gzip"},
		{"no butter.yaml", "application/gzip", archive.TarGz(map[string]string{"handler.js": "x"}), "no butter.yaml"},
		{"traversal", "application/gzip", archive.TarGz(map[string]string{"butter.yaml": ordersYAML, "../evil.sh": "x"}), "escapes"},
		{"zip traversal", "application/zip", zipOf(map[string]string{"butter.yaml": ordersYAML, "../../evil": "x"}), "escapes"},
		{"broken zip", "application/zip", []byte("PK nope"), "not a valid zip"},
	}
	for _, a := range archives {
		r := d.do(t, "POST", "/v1/deployments", a.ctype, a.body, "")
		r.json(t, &p)
		if r.code != 400 || !strings.Contains(p.Detail, a.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", a.name, r.code, r.body, a.want)
		}
	}
	huge := make([]byte, control.MaxCodeSize+2<<20)
	if r := d.do(t, "POST", "/v1/deployments", "application/gzip", huge, ""); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge upload = %d, want 413", r.code)
	}
	if r := d.do(t, "POST", "/v1/deployments", "text/plain", []byte(ordersYAML), ""); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain = %d, want 415", r.code)
	}
	if r := d.do(t, "GET", "/v1/deployments", "", nil, ""); !strings.Contains(string(r.body), `"deployments":[]`) {
		t.Errorf("something was stored: %s", r.body)
	}
}

func TestLifecycleEventsAndRebuild(t *testing.T) {
	e := newEnv(t)
	d := e.start("s3cret")
	if r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(ordersYAML), ""); r.code != 401 {
		t.Fatalf("no token = %d", r.code)
	}
	if r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(ordersYAML), "wrong"); r.code != 401 {
		t.Fatalf("wrong token = %d", r.code)
	}
	if r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(ordersYAML), "s3cret"); r.code != 201 {
		t.Fatalf("POST = %d %s", r.code, r.body)
	}
	v1 := d.waitRunning(t, "orders", 1)

	// PUT replaces: new version, new instance, old one gone.
	v2yaml := ordersYAML + "version: \"2.0\"\n"
	if r := d.do(t, "PUT", "/v1/deployments/other", "application/yaml", []byte(v2yaml), "s3cret"); r.code != 400 {
		t.Errorf("PUT under another name = %d", r.code)
	}
	if r := d.do(t, "PUT", "/v1/deployments/orders", "application/yaml", []byte(v2yaml), "s3cret"); r.code != 200 {
		t.Fatalf("PUT = %d %s", r.code, r.body)
	}
	v2 := d.waitRunning(t, "orders", 1)
	if v2.Version != "2.0" || v2.Instances[0].ID == v1.Instances[0].ID {
		t.Errorf("after PUT: %+v (before %+v)", v2, v1)
	}

	// A restarted deployer rebuilds from the topic.
	d.stop()
	d = e.start("s3cret")
	if st := d.waitRunning(t, "orders", 1); st.Version != "2.0" {
		t.Errorf("after restart version %q", st.Version)
	}

	if r := d.do(t, "DELETE", "/v1/deployments/orders", "", nil, "s3cret"); r.code != 204 {
		t.Fatalf("DELETE = %d %s", r.code, r.body)
	}
	if r := d.do(t, "GET", "/v1/deployments/orders", "", nil, ""); r.code != 404 {
		t.Errorf("GET after DELETE = %d", r.code)
	}

	evs := readEvents(t, e.kafka, 8)
	var types []string
	byID := map[string]event.Event{}
	for _, ev := range evs {
		types = append(types, ev.Type())
		byID[ev.ID()] = ev
	}
	want := []string{control.TypeAuthReject, control.TypeAuthReject,
		control.TypeDeploymentCreate, control.TypeDeploymentCreateCompleted,
		control.TypeDeploymentUpdate, control.TypeDeploymentUpdateCompleted,
		control.TypeDeploymentDelete, control.TypeDeploymentDeleteCompleted}
	if !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for _, ev := range evs {
		if !control.IsOutcome(ev.Type()) {
			continue
		}
		parent, ok := byID[envelope.Extension(ev, envelope.ExtCausationID)]
		if !ok || parent.Type()+control.SuffixCompleted != ev.Type() || envelope.Extension(ev, envelope.ExtCorrelationID) != parent.ID() {
			t.Errorf("%s not linked to its action", ev.Type())
		}
		if envelope.Extension(ev, control.ExtActor) != control.ActorToken || envelope.Extension(ev, control.ExtResource) != "deployment/orders" {
			t.Errorf("%s: actor %q resource %q", ev.Type(), envelope.Extension(ev, control.ExtActor), envelope.Extension(ev, control.ExtResource))
		}
	}
}

func readEvents(t *testing.T, cl *kgo.Client, n int) []event.Event {
	t.Helper()
	cl.AddConsumeTopics(topics.Events)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	var out []event.Event
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d events", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, envelope.FromRecord(r).Event) })
	}
	return out
}

func TestReplayResetsOffsets(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	if r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(ordersYAML), ""); r.code != 201 {
		t.Fatalf("POST = %d %s", r.code, r.body)
	}
	before := d.waitRunning(t, "orders", 1)
	ctx := context.Background()
	for i := range 10 {
		if err := e.kafka.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte{byte(i)}, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(e.kafka)
	ends, _ := adm.ListEndOffsets(ctx, "orders")

	for _, c := range []struct {
		from string
		want func(p int32) int64
	}{
		{"latest", func(p int32) int64 { o, _ := ends.Lookup("orders", p); return o.Offset }},
		{"first", func(int32) int64 { return 0 }},
		{"1", func(p int32) int64 { o, _ := ends.Lookup("orders", p); return min(1, o.Offset) }},
	} {
		body := fmt.Sprintf(`{"function":"on-order","stream":"orders","from":%q}`, c.from)
		r := d.do(t, "POST", "/v1/deployments/orders/replay", "application/json", []byte(body), "")
		if r.code != 200 {
			t.Fatalf("replay %s = %d %s", c.from, r.code, r.body)
		}
		fetched, err := adm.FetchOffsets(ctx, "butter.orders.on-order")
		if err != nil {
			t.Fatal(err)
		}
		for p := range topics.DefaultPartitions {
			got, ok := fetched.Lookup("orders", p)
			if !ok || got.At != c.want(p) {
				t.Errorf("from %s: partition %d at %d (found %v), want %d", c.from, p, got.At, ok, c.want(p))
			}
		}
	}
	after := d.waitRunning(t, "orders", 1)
	if after.Instances[0].ID == before.Instances[0].ID {
		t.Error("replay did not restart the instance")
	}
	if r := d.do(t, "POST", "/v1/deployments/orders/replay", "application/json", []byte(`{"stream":"nope","from":"first"}`), ""); r.code != 400 {
		t.Errorf("replay of unbound stream = %d", r.code)
	}
	evs := readEvents(t, e.kafka, 8)
	if evs[2].Type() != control.TypeDeploymentReplay || evs[3].Type() != control.TypeDeploymentReplayCompleted ||
		envelope.Extension(evs[3], envelope.ExtCausationID) != evs[2].ID() {
		t.Errorf("replay events: %s, %s", evs[2].Type(), evs[3].Type())
	}
}

func TestFullSizeArchive(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	// Incompressible content just under the limit once gzipped.
	noise := make([]byte, control.MaxCodeSize-64<<10)
	_, _ = rand.Read(noise)
	code := archive.TarGz(map[string]string{"butter.yaml": ordersYAML, "blob.bin": string(noise)})
	if len(code) > control.MaxCodeSize {
		t.Fatalf("test archive is %d bytes, over the limit it is meant to stay under", len(code))
	}
	t.Logf("archive is %d bytes", len(code))
	r := d.do(t, "POST", "/v1/deployments", "application/gzip", code, "")
	if r.code != 201 {
		t.Fatalf("POST %d-byte archive = %d %s", len(code), r.code, r.body)
	}
	d.waitRunning(t, "orders", 1)
	d.stop()
	d = e.start("")
	d.waitRunning(t, "orders", 1)
}

// TestConcurrentCreatesOfOneName: of several POSTs of one name at once,
// exactly one creates it; the others are told it exists.
func TestConcurrentCreatesOfOneName(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	const n = 6
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("%sversion: \"v%d\"\n", ordersYAML, i)
			codes[i] = d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(body), "").code
		})
	}
	wg.Wait()
	created, conflicts := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			conflicts++
		}
	}
	if created != 1 || conflicts != n-1 {
		t.Fatalf("answers %v, want one 201 and %d 409", codes, n-1)
	}
}

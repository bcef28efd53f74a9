package service

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/deployer/internal/testutil"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

// The plain text of the test's secret; it must appear nowhere but in the
// function's environment (and in what the function itself returns).
const secretValue = "hunter2-secret-Zq8"

const secretYAML = `name: vault
platform: python
env: { GREETING: hello }
secretEnv:
  DB_PASSWORD: ` + secretValue + `   # never stored in plain text
functions:
  - fn: handler.py:handle
    bindings:
      streams: [{ name: vault-in, offset: first }]
      out: vault-out
`

const secretHandler = `import os

def handle(event, context):
    return {"password": os.environ.get("DB_PASSWORD"), "greeting": os.environ.get("GREETING")}
`

// realFnbox builds the real fnbox once for the tests that run functions.
var realFnbox = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "fnbox-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "fnbox")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/buttercompass/butter/fnbox/cmd/fnbox").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build fnbox: %w\n%s", err, out)
	}
	return bin, nil
})

// startWith starts a deployer on e with the real fnbox, its logs in logs,
// after change has adjusted its configuration.
func (e *env) startWith(logs io.Writer, change func(*Config)) *deployer {
	t := e.t
	t.Helper()
	bin, err := realFnbox()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.FnboxBin = "127.0.0.1:0", e.data, bin
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{e.brokers}}
	cfg.Grace = 5 * time.Second
	cfg.BackoffBase, cfg.BackoffMax = 200*time.Millisecond, time.Second
	cfg.Logger, _ = kit.NewLogger(logs, "debug")
	if change != nil {
		change(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := kittest.Serve(t, s)
	return &deployer{url: "http://" + s.Addr(), stop: stop}
}

// readAll returns every record of topic, from the first to the end
// offsets it has now, read with a plain Kafka client.
func readAll(t *testing.T, brokers, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(control.MaxRecordBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var recs []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset < end {
				recs = append(recs, r)
				if r.Offset+1 >= end {
					delete(left, r.Partition)
				}
			}
		})
	}
	return recs
}

// unpacked is every file of a tar.gz, concatenated.
func unpacked(t *testing.T, code []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(code))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var all bytes.Buffer
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return all.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString(hdr.Name + "\n")
		_, _ = io.Copy(&all, tr)
	}
}

// TestSecretsNeverStoredOrReturned deploys a python function with a secret
// and checks that the plain text reaches the function and nothing else:
// not _butter.deployments (record, descriptor and code archive), not
// _butter.events, not the API, not the deployer's logs; that a second
// deploy of the same descriptor keeps the stored secret and version; and
// that a deployer with another key says which deployment it cannot start.
func TestSecretsNeverStoredOrReturned(t *testing.T) {
	e := newEnv(t)
	var logs kittest.Buffer
	d := e.startWith(&logs, nil)
	code := archive.TarGz(map[string]string{control.DescriptorFile: secretYAML, "handler.py": secretHandler})
	r := d.do(t, "POST", "/v1/deployments", archive.TypeGzip, code, "")
	if r.code != http.StatusCreated {
		t.Fatalf("POST = %d %s", r.code, r.body)
	}
	var created status
	r.json(t, &created)

	// The function sees the secret in its environment.
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	if err := e.kafka.ProduceSync(ctx, &kgo.Record{Topic: "vault-in", Value: []byte(`{"n":1}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var result struct{ Password, Greeting string }
	kittest.Eventually(t, "the function's result on vault-out", func() error {
		for _, rec := range readAll(t, e.brokers, "vault-out") {
			if err := json.Unmarshal(rec.Value, &result); err != nil {
				return fmt.Errorf("result %q: %v", rec.Value, err)
			}
			return nil
		}
		return fmt.Errorf("no result yet; status %s", d.do(t, "GET", "/v1/deployments/vault", "", nil, "").body)
	})
	if result.Password != secretValue || result.Greeting != "hello" {
		t.Fatalf("function saw DB_PASSWORD=%q GREETING=%q, want %q and hello", result.Password, result.Greeting, secretValue)
	}

	// Raw reads of the internal topics with a plain Kafka client.
	recs := readAll(t, e.brokers, topics.Deployments)
	if len(recs) != 1 {
		t.Fatalf("%d deployment records, want 1", len(recs))
	}
	stored, _, err := control.DecodeDeployment(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	for what, b := range map[string][]byte{
		"record": recs[0].Value, "descriptor": []byte(stored.Descriptor), "code archive": unpacked(t, stored.Code),
	} {
		if bytes.Contains(b, []byte(secretValue)) {
			t.Errorf("the secret is in plain text in the %s of _butter.deployments:\n%s", what, b)
		}
	}
	if !strings.Contains(stored.Descriptor, "DB_PASSWORD: \"butter:sealed:v1:") || !strings.Contains(stored.Descriptor, "# never stored in plain text") {
		t.Errorf("stored descriptor is not the one sent with the value sealed in place:\n%s", stored.Descriptor)
	}
	for _, rec := range readAll(t, e.brokers, topics.Events) {
		if bytes.Contains(rec.Value, []byte(secretValue)) {
			t.Errorf("the secret is in a platform event: %s", rec.Value)
		}
	}

	// The API names the secret, never its value.
	for _, path := range []string{"/v1/deployments/vault", "/v1/deployments"} {
		r := d.do(t, "GET", path, "", nil, "")
		if r.code != 200 || bytes.Contains(r.body, []byte(secretValue)) || !bytes.Contains(r.body, []byte(`"secretEnv":{"DB_PASSWORD":"(secret)"}`)) {
			t.Errorf("GET %s = %d %s", path, r.code, r.body)
		}
	}

	// The same descriptor again changes nothing: same sealed value, same
	// version, so no restart.
	r = d.do(t, "PUT", "/v1/deployments/vault", archive.TypeGzip, code, "")
	var updated status
	r.json(t, &updated)
	if r.code != http.StatusOK || updated.Version != created.Version {
		t.Fatalf("PUT of the same code = %d, version %s; want 200 and %s", r.code, updated.Version, created.Version)
	}
	recs = readAll(t, e.brokers, topics.Deployments)
	if again, _, _ := control.DecodeDeployment(recs[len(recs)-1]); again.Descriptor != stored.Descriptor {
		t.Errorf("re-sent secret stored anew:\n%s\n%s", stored.Descriptor, again.Descriptor)
	}
	// A stored sealed value may be sent back, but not moved to another
	// deployment (which could print it).
	moved := strings.Replace(stored.Descriptor, "name: vault", "name: thief", 1)
	moved = strings.ReplaceAll(moved, "vault-", "thief-")
	r = d.do(t, "POST", "/v1/deployments", archive.TypeYAML, []byte(moved), "")
	if r.code != http.StatusBadRequest || !bytes.Contains(r.body, []byte("butter.yaml:5:16 secretEnv.DB_PASSWORD: open secret DB_PASSWORD of deployment")) {
		t.Errorf("sealed value moved to another deployment: %d %s", r.code, r.body)
	}
	if strings.Contains(logs.String(), secretValue) {
		t.Errorf("the secret is in the deployer's log")
	}

	// Another key cannot open what the first sealed: the deployer says
	// so at start and in the deployment's status, naming the deployment.
	d.stop()
	other := filepath.Join(t.TempDir(), "other.key")
	if _, _, err := secrets.LoadOrCreateKey(other); err != nil {
		t.Fatal(err)
	}
	logs = kittest.Buffer{}
	d = e.startWith(&logs, func(c *Config) { c.SecretKeyFile = other })
	if !strings.Contains(logs.String(), `"deployment":"vault"`) || !strings.Contains(logs.String(), "sealed with another secret key") {
		t.Errorf("start with another key logs no clear error:\n%s", logs.String())
	}
	kittest.Eventually(t, "the start error in the status", func() error {
		r := d.do(t, "GET", "/v1/deployments/vault", "", nil, "")
		if !bytes.Contains(r.body, []byte(`open secret DB_PASSWORD of deployment \"vault\"`)) || !bytes.Contains(r.body, []byte("sealed with another secret key")) {
			return fmt.Errorf("status %s", r.body)
		}
		return nil
	})
}

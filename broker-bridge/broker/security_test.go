package broker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/access"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// login returns a client of cfg with short timeouts: a refused login
// must show up as an error, not as retries until the test times out.
func login(t *testing.T, cfg kit.KafkaConfig, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := cfg.NewClient(append([]kgo.Opt{kgo.ProducerLinger(0), kgo.RequestRetries(1),
		kgo.RecordDeliveryTimeout(5 * time.Second), kgo.RetryTimeout(5 * time.Second)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(ctx context.Context, cl *kgo.Client, topic string) error {
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("forged")}).FirstErr()
}

// TestSecureBrokerRefusesStrangers: a secure broker writes an admin login
// to client.properties (0600), refuses a client without login, accepts the
// admin, and keeps the same login across a restart.
func TestSecureBrokerRefusesStrangers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Secure: true}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(cfg.DataDir, kit.ClientPropertiesFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client.properties: %v, mode %v; want it with mode 0600", err, st.Mode().Perm())
	}
	props, err := kit.ReadClientProperties(cfg.ClientPropertiesPath())
	if err != nil || props.User != access.AdminUser || props.Password == "" || props.Brokers[0] != b.Addr() {
		t.Fatalf("client.properties = %+v, %v", props, err)
	}

	stranger := login(t, kit.KafkaConfig{Brokers: []string{b.Addr()}})
	if err := produce(ctx, stranger, topics.APIKeys); err == nil {
		t.Fatal("a client without login wrote _butter.apikeys")
	}
	wrong := login(t, kit.KafkaConfig{Brokers: []string{b.Addr()}, SASLMechanism: access.Mechanism, SASLUser: access.AdminUser, SASLPassword: "guess"})
	if err := produce(ctx, wrong, topics.APIKeys); err == nil {
		t.Fatal("a wrong admin password wrote _butter.apikeys")
	}
	if err := produce(ctx, login(t, b.Kafka()), topics.Events); err != nil {
		t.Fatalf("admin write: %v", err)
	}
	b.Close()

	b, err = Start(cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	admin := kit.KafkaConfig{}
	admin.UseClientProperties(props)
	admin.Brokers = []string{b.Addr()}
	if err := produce(ctx, login(t, admin), topics.Events); err != nil {
		t.Fatalf("admin write after a restart, with the login of client.properties: %v", err)
	}
	b.Close()

	// A lost client.properties gets a new admin login that works (the
	// broker's saved users must not override it: a kfake patch).
	if err := os.Remove(cfg.ClientPropertiesPath()); err != nil {
		t.Fatal(err)
	}
	b, err = Start(cfg)
	if err != nil {
		t.Fatalf("restart without client.properties: %v", err)
	}
	defer b.Close()
	if b.Kafka().SASLPassword == props.Password {
		t.Fatal("the admin password did not change")
	}
	if err := produce(ctx, login(t, b.Kafka()), topics.Events); err != nil {
		t.Fatalf("admin write with the new login: %v", err)
	}
}

// TestFunctionPrincipal: a deployment's principal can do exactly what its
// descriptor needs, and nothing an attacker would want.
func TestFunctionPrincipal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(Config{Addr: "127.0.0.1:0", Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []string{"orders", "results", "dlq", "secret-stream"} {
		if err := b.CreateTopic(topics.Stream(s)); err != nil {
			t.Fatal(err)
		}
	}
	d := &descriptor.Descriptor{Name: "shop", Functions: []descriptor.Function{{
		Name:     "on-order",
		Bindings: descriptor.Bindings{Streams: []descriptor.StreamBinding{{Name: "orders"}}, Out: "results"},
		Delivery: descriptor.Delivery{DeadLetter: "dlq"},
	}}}
	admin := login(t, b.Kafka())
	user := access.FunctionUser(d.Name)
	if err := access.SetUser(ctx, admin, user, "fn-pass"); err != nil {
		t.Fatal(err)
	}
	if err := access.Grants(ctx, admin, user, access.Function("", d)); err != nil {
		t.Fatal(err)
	}
	fn := kit.KafkaConfig{Brokers: []string{b.Addr()}, SASLMechanism: access.Mechanism, SASLUser: user, SASLPassword: "fn-pass"}
	cl := login(t, fn)

	for _, topic := range []string{"results", "dlq", topics.Logs, topics.Replies, topics.Heartbeats} {
		if err := produce(ctx, cl, topic); err != nil {
			t.Errorf("function writes %s: %v", topic, err)
		}
	}
	for _, topic := range []string{topics.APIKeys, topics.Deployments, topics.Timers, topics.Requests, "orders", "secret-stream"} {
		if err := produce(ctx, cl, topic); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("function writes %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topics.InternalPrefix+"evil"); err == nil {
		t.Error("function created an internal topic")
	}

	// Reading: its input yes, another stream or the deployments no.
	if err := produce(ctx, admin, "secret-stream"); err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{"orders": true, "secret-stream": false, topics.Deployments: false} {
		offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		allowed := err == nil && offs.Error() == nil
		if allowed != want {
			t.Errorf("function lists offsets of %s: allowed %v (%v / %v), want %v", topic, allowed, err, offs.Error(), want)
		}
	}

	// Groups: its own yes, another deployment's no (prefix "butter.shop."
	// must not cover "butter.shop-2.").
	for group, want := range map[string]bool{"butter.shop.on-order": true, "butter.shop-2.x": false, "other": false} {
		_, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
		allowed := !errors.Is(err, kerr.GroupAuthorizationFailed)
		if allowed != want {
			t.Errorf("function fetches offsets of group %s: allowed %v (%v), want %v", group, allowed, err, want)
		}
	}

	// Revoked on delete: the login stops working.
	if err := access.Revoke(ctx, admin, user); err != nil {
		t.Fatal(err)
	}
	if err := produce(ctx, login(t, fn), "results"); err == nil {
		t.Error("a revoked principal still writes")
	}
}

// TestKcatWithClientProperties: an operator's kcat logs in with the file
// the broker wrote, and without it is refused.
func TestKcatWithClientProperties(t *testing.T) {
	t.Parallel()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is needed (apt-get install kcat)")
	}
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Secure: true}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	produce := exec.Command(kcat, "-F", cfg.ClientPropertiesPath(), "-P", "-t", "_butter.events", "-k", "k")
	produce.Stdin = strings.NewReader("v\n")
	out, err := produce.CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -F produce: %v\n%s", err, out)
	}
	out, err = exec.Command(kcat, "-F", cfg.ClientPropertiesPath(), "-C", "-t", "_butter.events", "-o", "beginning", "-e", "-f", "%k\n").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "k") {
		t.Fatalf("kcat -F consume: %v\n%s", err, out)
	}
	out, err = exec.Command(kcat, "-b", b.Addr(), "-L", "-m", "5").CombinedOutput()
	if err == nil && strings.Contains(string(out), "_butter.events") {
		t.Fatalf("kcat without login listed the topics:\n%s", out)
	}
}

// TestAdminPasswordGiven: a password given by the platform (a container
// secret) is the admin's login from the first start, replaces the one in
// client.properties, and is written there for operators.
func TestAdminPasswordGiven(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Secure: true}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	made := b.Kafka().SASLPassword
	b.Close()

	cfg.AdminPassword = "given-by-the-platform"
	b, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	k := b.Kafka()
	if k.SASLPassword != cfg.AdminPassword {
		t.Fatalf("admin password %q, want the given one", k.SASLPassword)
	}
	if err := produce(ctx, login(t, k), topics.Events); err != nil {
		t.Fatalf("admin write with the given password: %v", err)
	}
	old := k
	old.SASLPassword = made
	if err := produce(ctx, login(t, old), topics.Events); err == nil {
		t.Fatal("the admin password made on the first start still works")
	}
	props, err := kit.ReadClientProperties(cfg.ClientPropertiesPath())
	if err != nil || props.Password != cfg.AdminPassword {
		t.Fatalf("client.properties = %+v, %v; want the given password", props, err)
	}
}

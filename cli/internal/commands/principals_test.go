package commands

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/access"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// TestPrincipals: `butter principals` makes the users whose passwords are
// given, with their grants and nothing more, and leaves the others alone.
func TestPrincipals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	admin := b.Kafka()
	t.Setenv("BUTTER_DATA", t.TempDir())
	t.Setenv("BUTTER_BROKERS", b.Addr())
	t.Setenv("BUTTER_SASL_MECHANISM", admin.SASLMechanism)
	t.Setenv("BUTTER_SASL_USER", admin.SASLUser)
	t.Setenv("BUTTER_SASL_PASSWORD", admin.SASLPassword)
	t.Setenv(PasswordEnv(access.GatewayUser), "gateway-secret")

	var out bytes.Buffer
	if err := Execute(ctx, []string{"principals"}, IO{In: strings.NewReader(""), Out: &out, Err: io.Discard}); err != nil {
		t.Fatalf("principals: %v", err)
	}
	if !strings.Contains(out.String(), "principal butter-gateway") || strings.Contains(out.String(), "butter-timer") {
		t.Fatalf("output %q: want butter-gateway made, and only it", out.String())
	}

	produce := func(user, password, topic string) error {
		k := kit.KafkaConfig{Brokers: []string{b.Addr()}, SASLMechanism: access.Mechanism, SASLUser: user, SASLPassword: password}
		cl, err := k.NewClient(kgo.RequestRetries(1), kgo.RecordDeliveryTimeout(5*time.Second), kgo.RetryTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	}
	if err := produce(access.GatewayUser, "gateway-secret", topics.Requests); err != nil {
		t.Errorf("the gateway writes _butter.requests: %v", err)
	}
	if err := produce(access.GatewayUser, "gateway-secret", topics.Deployments); err == nil {
		t.Error("the gateway wrote _butter.deployments")
	}
	if err := produce(access.TimerUser, "", topics.Timers); err == nil {
		t.Error("butter-timer logged in without a password given")
	}

	// No password at all is a mistake worth saying.
	for _, u := range access.Services() {
		t.Setenv(PasswordEnv(u), "")
	}
	if err := Execute(ctx, []string{"principals"}, IO{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}); err == nil || !strings.Contains(err.Error(), "BUTTER_GATEWAY_PASSWORD") {
		t.Errorf("principals without passwords: %v; want an error naming the variables", err)
	}
}

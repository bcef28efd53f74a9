package kit

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checkFor polls fn until it returns nil or timeout passes, then fails with
// fn's last error. Tests wait for conditions this way, never by sleeping.
func checkFor(t *testing.T, timeout, every time.Duration, fn func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	if Poll(ctx, every, func() bool { err = fn(); return err == nil }) != nil {
		t.Fatalf("condition not met after %s: %v", timeout, err)
	}
}

// newCluster starts an in-process single-broker Kafka on a random port and
// returns it with a KafkaConfig pointing at it.
func newCluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, KafkaConfig) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, KafkaConfig{Brokers: c.ListenAddrs(), ClientID: "kit-test"}
}

// newClient is cfg.NewClient, closed at cleanup.
func newClient(t *testing.T, cfg KafkaConfig) *kgo.Client {
	t.Helper()
	cl, err := cfg.NewClient()
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

package broker

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// TestContainerAddrAdvertisesEachClientItsAddress: a secure broker with a
// container listener (127.0.0.2 standing in for the Docker bridge
// gateway) tells each client the address it came in on, and a client of
// either address logs in, produces and reads its metadata.
func TestContainerAddrAdvertisesEachClientItsAddress(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(Config{Addr: "127.0.0.1:0", ContainerAddr: "127.0.0.2", DataDir: t.TempDir(), Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	_, port, _ := net.SplitHostPort(b.Addr())
	if want := net.JoinHostPort("127.0.0.2", port); b.ContainerAddr() != want {
		t.Fatalf("ContainerAddr = %q, want %q (Addr's port)", b.ContainerAddr(), want)
	}
	for _, addr := range []string{b.Addr(), b.ContainerAddr()} {
		cfg := b.Kafka()
		cfg.Brokers = []string{addr}
		cl := login(t, cfg)
		md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		if err != nil {
			t.Fatalf("metadata through %s: %v", addr, err)
		}
		if got := net.JoinHostPort(md.Brokers[0].Host, itoa(md.Brokers[0].Port)); got != addr {
			t.Fatalf("client of %s was advertised %s", addr, got)
		}
		if err := produce(ctx, cl, topics.Events); err != nil {
			t.Fatalf("produce through %s: %v", addr, err)
		}
	}
	// Without a login the container listener refuses like the main one.
	stranger := login(t, kit.KafkaConfig{Brokers: []string{b.ContainerAddr()}})
	if err := produce(ctx, stranger, topics.Events); err == nil {
		t.Fatal("a client without login wrote through the container listener")
	}
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

// TestContainerAddrOnWildcardListener: a broker listening on every
// address needs no second listener, and still advertises per connection.
func TestContainerAddrOnWildcardListener(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(Config{Addr: "0.0.0.0:0", ContainerAddr: "127.0.0.3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	_, port, _ := net.SplitHostPort(b.Addr())
	if want := net.JoinHostPort("127.0.0.3", port); b.ContainerAddr() != want {
		t.Fatalf("ContainerAddr = %q, want %q", b.ContainerAddr(), want)
	}
	cl := login(t, kit.KafkaConfig{Brokers: []string{b.ContainerAddr()}})
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := net.JoinHostPort(md.Brokers[0].Host, itoa(md.Brokers[0].Port)); got != b.ContainerAddr() {
		t.Fatalf("advertised %s, want %s", got, b.ContainerAddr())
	}
}

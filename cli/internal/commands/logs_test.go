package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
	tracersvc "github.com/buttercompass/butter/tracer/service"
)

// closedAddr is a host:port nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// tracerOnBroker starts an embedded broker with the internal topics and
// streams, a client of it, and a real tracer indexing it; it returns the
// broker's address, the client and the tracer's host:port.
func tracerOnBroker(t *testing.T, streams ...string) (string, *kgo.Client, string) {
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
	specs := topics.Internal()
	for _, s := range streams {
		specs = append(specs, topics.Stream(s))
	}
	if err := kit.EnsureTopics(context.Background(), cl, specs...); err != nil {
		t.Fatal(err)
	}
	cfg := tracersvc.DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.Discover = "127.0.0.1:0", t.TempDir(), 200*time.Millisecond
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{b.Addr()}}
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	tr, err := tracersvc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kittest.Serve(t, tr)
	return b.Addr(), cl, tr.Addr()
}

// TestLogsCommand: butter logs reads a failed invocation's error line (with
// its event id) from a real tracer indexing _butter.logs, without touching
// Kafka; with the tracer gone it reads the topic itself, says so once on
// stderr, and prints the same.
func TestLogsCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	brokerAddr, cl, tracer := tracerOnBroker(t)

	// What fnbox writes for an event whose invocation threw: the
	// function's own line, then fnbox's error line with the event id.
	now := time.Now().Add(-time.Minute)
	lines := []obs.Log{
		{Deployment: "shop", Function: "price", Instance: "i1", EventID: "ev-1", Level: "info", Message: "pricing order 7",
			Origin: obs.OriginContext, Time: now},
		{Deployment: "shop", Function: "price", Instance: "i1", EventID: "ev-1", Level: "error",
			Message: "dead-lettered to shop-dlq after 2 attempts: TypeError: boom", Origin: obs.OriginFnbox,
			Time: now.Add(time.Millisecond)},
		{Deployment: "shop", Function: "ship", Instance: "i2", Level: "info", Message: "another function", Time: now},
		{Deployment: "other", Function: "price", Instance: "i3", Level: "info", Message: "another deployment", Time: now},
		{Deployment: "shop", Function: "price", Instance: "i1", Level: "info", Message: "too old", Time: now.Add(-2 * time.Hour)},
	}
	for _, l := range lines {
		r, err := l.Record(topics.Logs)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// The deployer is not running: butter logs only warns about it.
	deployer, data := closedAddr(t), t.TempDir()
	run := func(brokers, tracer string, args ...string) (stdout, stderr string, err error) {
		var out, errOut bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = Execute(cctx, append(args, "--data", data, "--brokers", brokers, "--deployer", deployer, "--tracer", tracer),
			IO{In: strings.NewReader(""), Out: &out, Err: &errOut})
		return out.String(), errOut.String(), err
	}
	want := func(out string) error {
		got := strings.Split(strings.TrimSpace(out), "\n")
		if len(got) != 2 || !strings.HasSuffix(got[0], " price/i1 INFO pricing order 7 event=ev-1") ||
			!strings.HasSuffix(got[1], " price/i1 ERROR dead-lettered to shop-dlq after 2 attempts: TypeError: boom event=ev-1") {
			return fmt.Errorf("butter logs shop/price printed:\n%s", out)
		}
		return nil
	}

	// Through the tracer: the brokers given are dead, so these lines can
	// only have come from it.
	var viaTracer string
	kittest.Eventually(t, "butter logs prints the failed invocation through the tracer", func() error {
		out, stderr, err := run(closedAddr(t), tracer, "logs", "shop/price")
		if err != nil {
			return err
		}
		if strings.Contains(stderr, "Kafka") {
			return fmt.Errorf("butter logs fell back to Kafka: %s", stderr)
		}
		viaTracer = out
		return want(out)
	})
	viaTracerJSON, _, err := run(closedAddr(t), tracer, "logs", "shop/price", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l obs.Log
	if js := strings.Split(strings.TrimSpace(viaTracerJSON), "\n"); len(js) != 2 || json.Unmarshal([]byte(js[1]), &l) != nil ||
		l.Level != "error" || l.EventID != "ev-1" || l.Origin != obs.OriginFnbox || l.Instance != "i1" {
		t.Errorf("butter logs -o json through the tracer printed:\n%s", viaTracerJSON)
	}
	// The other function's line may be on another partition, which the
	// tracer may index a moment later.
	kittest.Eventually(t, "butter logs shop prints both functions' lines through the tracer", func() error {
		if out, _, err := run(closedAddr(t), tracer, "logs", "shop"); err != nil || strings.Count(out, "\n") != 3 {
			return fmt.Errorf("butter logs shop through the tracer = %v:\n%s", err, out)
		}
		return nil
	})
	// -f through the tracer: the past lines, then the ones written later.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fout, ferr kittest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Execute(fctx, []string{"logs", "shop/price", "-f", "--data", data, "--brokers", closedAddr(t), "--deployer", deployer,
			"--tracer", tracer}, IO{In: strings.NewReader(""), Out: &fout, Err: &ferr})
	}()
	later := obs.Log{Deployment: "shop", Function: "price", Instance: "i1", Level: "warn", Message: "written while following", Time: time.Now()}
	r, _ := later.Record(topics.Logs)
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "butter logs -f prints a line written while following", func() error {
		if out := fout.String(); !strings.Contains(out, "WARN written while following") || strings.Count(out, "\n") != 3 {
			return fmt.Errorf("butter logs -f printed:\n%s", out)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil || strings.Contains(ferr.String(), "Kafka") {
		t.Errorf("butter logs -f through the tracer: %v %s", err, ferr.String())
	}

	// Without the tracer: the same lines from _butter.logs, and a note.
	// (The later line is newer; compare the first two.)
	out, stderr, err := run(brokerAddr, closedAddr(t), "logs", "shop/price")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(stderr, "reading _butter.logs from Kafka") != 1 {
		t.Errorf("butter logs without a tracer: stderr %q, want one note that it reads Kafka", stderr)
	}
	if first2 := strings.Join(strings.SplitAfter(out, "\n")[:2], ""); first2 != viaTracer {
		t.Errorf("butter logs without a tracer printed:\n%s\nwant as through the tracer:\n%s", out, viaTracer)
	}
	jsOut, _, err := run(brokerAddr, closedAddr(t), "logs", "shop/price", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if first2 := strings.Join(strings.SplitAfter(jsOut, "\n")[:2], ""); first2 != viaTracerJSON {
		t.Errorf("butter logs -o json without a tracer printed:\n%s\nwant as through the tracer:\n%s", jsOut, viaTracerJSON)
	}
}

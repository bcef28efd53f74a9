package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/topics"
)

// bin is the fnbox binary under test, built once for every test.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fnbox-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "fnbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fnbox: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const killDescriptor = `
name: kill
platform: exec
functions:
  - fn: cat
    name: echo
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {ordering: none}
    scale: {concurrency: 16}
`

// TestKill9LosesNothing kills a real fnbox process with SIGKILL in the middle
// of a stream and restarts it: every input must reach out at least once.
func TestKill9LosesNothing(t *testing.T) {
	const n = 20000
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []string{"in", "out", "kill-echo-dlq"} {
		if err := b.CreateTopic(topics.Spec{Name: s, Partitions: 4}); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()),
		kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for i := range n {
		e := envelope.New("/test", "t")
		e.SetID(fmt.Sprintf("k-%d", i))
		_ = e.SetData(event.ApplicationJSON, i)
		r, _ := envelope.ToRecord("in", e)
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "butter.yaml"), []byte(killDescriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--code", dir, "--brokers", b.Addr(), "--instance", "kill-1", "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	seen := map[string]int{}
	total := 0
	readUntil := func(cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out: %d of %d inputs reached out (%d results)", len(seen), n, total)
			}
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				total++
				seen[envelope.FromRecord(r).Event.Subject()]++
			})
		}
	}

	first := start()
	readUntil(func() bool { return total >= n/4 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	t.Logf("killed after %d results", total)

	second := start()
	readUntil(func() bool { return len(seen) == n })
	t.Logf("all %d inputs reached out; %d results in all (%d redelivered)", n, total, total-n)

	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Errorf("fnbox after SIGTERM: %v, want a clean exit", err)
	}
}

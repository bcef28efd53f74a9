package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
)

// poisonID is the input the poison tests' functions crash on.
const poisonID = "k-500"

// dlqReader reads the dead-letter stream from the start.
func dlqReader(t *testing.T, k *killRig, dlq string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.b.Addr()), kgo.ConsumeTopics(dlq),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// readDLQ adds what cl has now to got (id → error extension).
func readDLQ(ctx context.Context, cl *kgo.Client, got map[string]string) {
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
		e := envelope.FromRecord(r).Event
		got[e.ID()] = stringExtension(e.Extensions()[obs.ExtDLQError])
	})
}

func stringExtension(v any) string {
	s, _ := v.(string)
	return s
}

// checkPoison waits until the other inputs all have a result and the
// poison event is dead-lettered as crashed, and checks nothing else was.
func checkPoison(t *testing.T, k *killRig, dlq *kgo.Client, while func()) {
	t.Helper()
	const n = 1000
	dead := map[string]string{}
	k.readUntil(func() bool {
		if while != nil {
			while()
		}
		readDLQ(k.ctx, dlq, dead)
		return len(k.seen) >= n-1 && len(dead) > 0
	})
	if len(dead) != 1 || dead[poisonID] != obs.ErrCrashed {
		t.Fatalf("dead letters %v, want only %s with reason %q", dead, poisonID, obs.ErrCrashed)
	}
	if k.seen[poisonID] != 0 {
		t.Fatalf("the poison event has %d results", k.seen[poisonID])
	}
}

// TestPoisonEventCrashesHost: a node function that process.exit(1)s and a
// python one that os._exit(1)s on one event among 1,000 kill their
// runtime host, which fnbox survives. After the crash limit that event is
// dead-lettered with reason crashed, the other 999 have their result, and
// the partition moved on.
func TestPoisonEventCrashesHost(t *testing.T) {
	cases := []struct{ platform, file, code string }{
		{"node", "handler.js", `exports.handle = (event) => {
  if (event.id === "` + poisonID + `") process.exit(1);
  return event.data;
};
`},
		{"python", "handler.py", `import os


def handle(event, context):
    if event.id == "` + poisonID + `":
        os._exit(1)
    return event.data
`},
	}
	for _, c := range cases {
		t.Run(c.platform, func(t *testing.T) {
			t.Parallel()
			desc := `
name: poison
platform: ` + c.platform + `
functions:
  - fn: ` + c.file + `:handle
    name: handle
    bindings:
      streams: [{name: in, offset: first}]
      out: out
    delivery: {retries: 5, backoff: 10ms, maxBackoff: 100ms}
`
			k := newKillRig(t, desc, "poison-handle-dlq", 1000, false, 5*time.Minute)
			if err := os.WriteFile(filepath.Join(k.dir, c.file), []byte(c.code), 0o644); err != nil {
				t.Fatal(err)
			}
			dlq := dlqReader(t, k, "poison-handle-dlq")
			cmd := k.start("poison-1")
			checkPoison(t, k, dlq, nil)
			k.stop(cmd)
		})
	}
}

// TestPoisonEventKillsFnbox: an exec function that SIGKILLs its fnbox on
// one event among 1,000 kills fnbox itself, each time it is restarted (as
// the deployer does). The crashes are counted across the restarts, in
// the group's commit metadata; at the crash limit the event is
// dead-lettered with reason crashed and the other 999 have their result.
func TestPoisonEventKillsFnbox(t *testing.T) {
	t.Parallel()
	desc := `
name: poison
platform: exec
functions:
  - fn: ./kill.sh
    name: handle
    bindings:
      streams: [{name: in, offset: first}]
      out: out
`
	k := newKillRig(t, desc, "poison-handle-dlq", 1000, false, 8*time.Minute)
	script := "#!/bin/sh\nv=$(cat)\ncase \"$v\" in *'\"" + poisonID + "\"'*) kill -9 $PPID; sleep 10;; esac\nprintf '%s' \"$v\"\n"
	if err := os.WriteFile(filepath.Join(k.dir, "kill.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dlq := dlqReader(t, k, "poison-handle-dlq")
	var cmd *exec.Cmd
	var exited chan struct{}
	deaths := 0
	start := func() {
		cmd = k.start("poison-1")
		exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) {
			_ = cmd.Wait()
			close(exited)
		}(cmd, exited)
	}
	start()
	checkPoison(t, k, dlq, func() {
		select {
		case <-exited:
			deaths++
			start()
		default:
		}
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-exited
	t.Logf("fnbox was killed by the poison event %d times", deaths)
	if deaths < 3 {
		t.Fatalf("fnbox died %d times, want at least the crash limit of 3 before the event is dead-lettered", deaths)
	}
}

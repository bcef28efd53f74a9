package containers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/topics"
)

// backlog is the events TestBacklogScalesZeroToFourToZero puts on the
// stream of a sleeping function: the 50,000.
const backlog = 50000

// TestBacklogScalesZeroToFourToZero: a node function with scale {min: 0,
// max: 4, idleAfter: 10s} on a 4-partition stream runs no container; a
// backlog of 50,000 events wakes it, loadmon (a container, 250 ms tick,
// 2 s cooldown) takes it to 4 containers, every event gets its result, and
// once idle it goes back to no container. Containers are counted by the
// label butter.deployment=<name>; the decisions are read from
// _butter.scale.
func TestBacklogScalesZeroToFourToZero(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	p := start(t, ctx, "deployer", "loadmon")

	f := newFn(p.deployments+"-scale", "node", "backlog", "handled")
	admin := p.follow(t)
	createStreams(t, ctx, admin, 4, f.in, f.out)
	p.deploy(t, ctx, f.files("{ min: 0, max: 4, idleAfter: 10s }"))

	// Containers, watched from before the backlog to the end.
	type sample struct {
		at time.Time
		n  int
	}
	var (
		mu      sync.Mutex
		samples []sample
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		if len(samples) == 0 {
			return -1
		}
		return samples[len(samples)-1].n
	}
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for wctx.Err() == nil {
			ids, err := running(wctx, f.deployment)
			if err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Now(), len(ids)})
				mu.Unlock()
			}
			select {
			case <-wctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { stop(); <-watched }()
	waitFor(t, ctx, time.Minute, "the first container count", func() bool { return count() >= 0 })
	if n := count(); n != 0 {
		t.Fatalf("%d containers before any event; want 0 (scale min 0)", n)
	}

	// Encoded first (slow under -race), then written at once: a backlog,
	// not a stream the first container keeps up with.
	recs, err := inputs(f.in, f.deployment, 0, backlog)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := produce(ctx, admin, recs); err != nil {
		t.Fatalf("produce: %v", err)
	}
	produced := time.Now()
	waitFor(t, ctx, 2*time.Minute, "4 containers", func() bool { return count() == 4 })
	r, err := readResults(ctx, p.follow(t), f.out, backlog, 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 2*time.Minute, "no container after idleAfter", func() bool { return count() == 0 })
	stop()
	<-watched

	// What the containers did, from the samples.
	var wake, four, zero time.Time
	peak := 0
	for _, s := range samples {
		switch {
		case s.at.Before(began):
		case wake.IsZero() && s.n > 0:
			wake = s.at
		}
		if four.IsZero() && s.n == 4 {
			four = s.at
		}
		if !four.IsZero() && zero.IsZero() && s.n == 0 {
			zero = s.at
		}
		peak = max(peak, s.n)
	}
	if peak != 4 {
		t.Errorf("peak %d containers; want 4 (max, the partition count)", peak)
	}
	t.Logf("backlog of %d produced in %v; first container running %v after the first event, 4 containers after %v",
		backlog, produced.Sub(began).Round(time.Millisecond), wake.Sub(began).Round(time.Millisecond), four.Sub(began).Round(time.Millisecond))
	took := r.last.Sub(began)
	t.Logf("every one of %d events handled %v after the first was produced (%.0f events/s; %d results, %d duplicates); no container %v after the last result (idleAfter 10s)",
		backlog, took.Round(time.Millisecond), float64(backlog)/took.Seconds(), r.records, r.records-r.distinct, zero.Sub(r.last).Round(time.Millisecond))

	// The decisions behind it, as loadmon wrote them. The backlog takes a
	// few seconds to write and loadmon ticks every 250 ms, so the wake may
	// see part of it and go to fewer than 4 first.
	cl := p.follow(t, kgo.ConsumeTopics(topics.Scale))
	var decisions []control.ScaleDecision
	var steps []string
	ends := func() bool { return len(decisions) > 0 && decisions[len(decisions)-1].To == 0 }
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	for !ends() && dctx.Err() == nil {
		cl.PollFetches(dctx).EachRecord(func(rec *kgo.Record) {
			d, err := control.DecodeScale(rec)
			if err != nil || d.Deployment != f.deployment {
				return
			}
			decisions = append(decisions, d)
			steps = append(steps, fmt.Sprintf("%d→%d %s (lag %d)", d.From, d.To, d.Reason, d.Lag))
		})
	}
	t.Logf("decisions on %s: %s", topics.Scale, strings.Join(steps, ", "))
	top := 0
	for _, d := range decisions {
		top = max(top, d.To)
	}
	if !ends() || decisions[0].From != 0 || decisions[0].Reason != control.ScaleReasonWake || top != 4 {
		t.Errorf("decisions %v; want a wake from 0 first, 4 at the top and 0 last", steps)
	}
}

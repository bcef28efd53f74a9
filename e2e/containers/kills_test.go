package containers_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit"
)

// fn is one deployment of the kill and scale tests: a function reading
// in, writing to out a result whose causationid is the input's id.
type fn struct {
	deployment, platform, file, code string
	in, out                          string
}

// handlers answer each event with its id: the result's causationid names
// the input, which is what the tests count.
var handlers = map[string][2]string{
	"python": {"handler.py", "def handle(event, context):\n    return {\"id\": event[\"id\"]}\n"},
	"node":   {"handler.js", "exports.handle = (event) => ({ id: event.id });\n"},
}

func newFn(deployment, platform, in, out string) fn {
	h := handlers[platform]
	return fn{deployment: deployment, platform: platform, file: h[0], code: h[1], in: in, out: out}
}

// files is the deployment archive of f with the given scale settings.
func (f fn) files(scale string) map[string]string {
	return map[string]string{
		"butter.yaml": fmt.Sprintf(`name: %s
platform: %s
runtime: docker
functions:
  - fn: %s:handle
    name: handle
    bindings:
      streams: [{ name: %s, offset: first }]
      out: %s
    scale: %s
`, f.deployment, f.platform, f.file, f.in, f.out, scale),
		f.file: f.code,
	}
}

// TestFunctionsSurviveKills: a python and a node function, each a
// container the deployer runs (runtime docker), each reading a stream of
// its own. While 20,000 events are produced, both function containers are
// docker-killed, and once the deployer has replaced them the broker
// container is killed and a new one started on its volume. Every input
// has its result on the function's out stream (read_committed); delivery
// is at-least-once, so duplicates are counted and logged, not refused.
func TestFunctionsSurviveKills(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	p := start(t, ctx, "deployer", "gateway", "loadmon")

	const total = 20000
	fns := []fn{
		newFn(p.deployments+"-py", "python", "in-py", "out-py"),
		newFn(p.deployments+"-node", "node", "in-node", "out-node"),
	}
	per := total / len(fns)
	admin := p.follow(t)
	createStreams(t, ctx, admin, 4, "in-py", "in-node", "out-py", "out-node")
	for _, f := range fns {
		// One instance each (loadmon keeps it there), so that killing "the
		// function's container" is one container and its replacement is
		// measured alone.
		p.deploy(t, ctx, f.files("{ min: 1, max: 1 }"))
	}
	began := time.Now()
	for _, f := range fns {
		waitFor(t, ctx, 2*time.Minute, f.deployment+"'s container", func() bool {
			ids, err := running(ctx, f.deployment)
			return err == nil && len(ids) == 1
		})
	}
	t.Logf("both function containers running %v after the deploys", time.Since(began).Round(time.Millisecond))

	// The producer writes both streams at about 2,000 events/s in steps,
	// so events keep arriving through both kills.
	var produced atomic.Int64
	prodErr := make(chan error, 1)
	prodStart := time.Now()
	go func() {
		const step = 250 // per stream
		for i := 0; i < per; i += step {
			for _, f := range fns {
				recs, err := inputs(f.in, f.deployment, i, step)
				if err == nil {
					err = produce(ctx, admin, recs)
				}
				if err != nil {
					prodErr <- fmt.Errorf("produce %s from %d: %w", f.in, i, err)
					return
				}
			}
			produced.Add(int64(step * len(fns)))
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(prodStart.Add(time.Duration(produced.Load()) * time.Millisecond / 2))):
			}
		}
		prodErr <- nil
	}()
	waitFor(t, ctx, time.Minute, "a result from each function", func() bool {
		for _, f := range fns {
			if _, err := readResults(ctx, p.follow(t), f.out, 1, time.Second); err != nil {
				return false
			}
		}
		return true
	})
	waitFor(t, ctx, 2*time.Minute, "6,000 events produced", func() bool { return produced.Load() >= 6000 })

	// docker kill both function containers; the deployer replaces each.
	killed := map[string][]string{}
	for _, f := range fns {
		ids, err := running(ctx, f.deployment)
		if err != nil || len(ids) == 0 {
			t.Fatalf("%s: containers %v, %v", f.deployment, ids, err)
		}
		killed[f.deployment] = ids
		docker(t, append([]string{"kill"}, ids...)...)
	}
	killedAt := time.Now()
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithDeadline(ctx, killedAt.Add(2*time.Minute))
			defer cancel()
			if err := kit.Poll(pctx, 100*time.Millisecond, func() bool {
				ids, _ := running(pctx, f.deployment)
				return slices.ContainsFunc(ids, func(id string) bool { return !slices.Contains(killed[f.deployment], id) })
			}); err != nil {
				t.Errorf("%s: no replacement container 2 minutes after docker kill", f.deployment)
				return
			}
			t.Logf("%s (%s): docker kill → replacement container running in %v", f.deployment, f.platform, time.Since(killedAt).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Then the broker: killed, and a new container on its volume.
	waitFor(t, ctx, 2*time.Minute, "12,000 events produced", func() bool { return produced.Load() >= 12000 })
	docker(t, "kill", p.broker.GetContainerID())
	brokerKilled := time.Now()
	p.broker = p.startBroker(t, ctx)
	t.Logf("broker killed at %d events produced; new broker ready %v after the kill", produced.Load(), time.Since(brokerKilled).Round(time.Millisecond))

	if err := <-prodErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events produced in %v", total, time.Since(prodStart).Round(time.Millisecond))
	var last time.Time
	for _, f := range fns {
		r, err := readResults(ctx, p.follow(t), f.out, per, 3*time.Minute)
		if err != nil {
			t.Fatalf("%s (%s): %v", f.deployment, f.platform, err)
		}
		if r.last.After(last) {
			last = r.last
		}
		t.Logf("%s (%s): every one of %d inputs has its result; %d results read, %d duplicates (at-least-once)", f.deployment, f.platform, per, r.records, r.records-r.distinct)
	}
	took := last.Sub(prodStart)
	t.Logf("%d events handled through two kills in %v: %.0f events/s overall", total, took.Round(time.Millisecond), float64(total)/took.Seconds())
}

package containers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// routeTimeout is the test route's deadline: no function answers it, so a
// request the gateway could queue ends in a 504 after it.
const routeTimeout = 3 * time.Second

// hang is how long past its deadline a request may take before the test
// calls it a hang: the gateway's produce to a dead broker is bounded too.
const hang = 30 * time.Second

// TestBrokerKilledAndReplaced: the broker container is SIGKILLed while
// gateway requests are in flight, then a new broker container starts on
// the same volume. Every request in flight, and every one sent while no
// broker runs, ends with an answer or a clean
// 503/504, never a hang; the gateway serves the route again; every event
// acknowledged before the kill is read back from the new broker.
func TestBrokerKilledAndReplaced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	p := start(t, ctx, "deployer", "gateway")

	// A route through the deployer, as a user would make it. Its exec
	// function cannot run in the deployer's scratch image: nobody answers.
	desc := fmt.Sprintf("name: waits\nplatform: exec\nfunctions:\n  - fn: ./absent\n    bindings:\n      route: { context: /wait, timeout: %s }\n", routeTimeout)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url(t, ctx, p.services["deployer"], 8081, "/v1/deployments"), bytes.NewBufferString(desc))
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("deploy: %s", resp.Status)
	}
	route := p.url(t, ctx, p.services["gateway"], 8080, "/wait")
	client := &http.Client{Timeout: routeTimeout + hang}
	call := func() (int, time.Duration, error) {
		began := time.Now()
		resp, err := client.Post(route, "application/json", bytes.NewBufferString(`{"n":1}`))
		if err != nil {
			return 0, time.Since(began), err
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(began), nil
	}
	// The gateway learns the route from _butter.deployments.
	waitFor(t, ctx, time.Minute, "the gateway to serve /wait with a 504", func() bool {
		code, _, _ := call()
		return code == http.StatusGatewayTimeout
	})

	// Events the broker acknowledged before it is killed.
	const events = 2000
	admin := p.kafka(t, ctx)
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 4, 1, nil, "kept"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var recs []*kgo.Record
	for i := range events {
		recs = append(recs, &kgo.Record{Topic: "kept", Key: []byte(strconv.Itoa(i % 17)), Value: []byte(strconv.Itoa(i))})
	}
	if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	admin.Close()

	// Requests in flight, then the kill.
	const inFlight = 8
	type result struct {
		code int
		took time.Duration
		err  error
	}
	results := make([]result, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, took, err := call()
			results[i] = result{code, took, err}
		}()
	}
	time.Sleep(300 * time.Millisecond) // let the requests reach the gateway
	docker(t, "kill", p.broker.GetContainerID())
	killed := time.Now()
	wg.Wait()
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("request %d in flight at the kill: no answer after %v: %v", i, r.took.Round(time.Millisecond), r.err)
		case r.code != http.StatusOK && r.code != http.StatusServiceUnavailable && r.code != http.StatusGatewayTimeout:
			t.Errorf("request %d in flight at the kill: %d after %v; want an answer, 503 or 504", i, r.code, r.took.Round(time.Millisecond))
		default:
			t.Logf("request %d in flight at the kill: %d after %v", i, r.code, r.took.Round(time.Millisecond))
		}
	}

	// Requests that arrive while no broker runs, answered or refused
	// while the new one starts.
	const whileDown = 4
	downResults := make([]result, whileDown)
	for i := range whileDown {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, took, err := call()
			downResults[i] = result{code, took, err}
		}()
	}
	time.Sleep(time.Second)

	// A new broker container on the same volume.
	p.broker = p.startBroker(t, ctx)
	t.Logf("new broker ready %v after the kill", time.Since(killed).Round(time.Millisecond))
	wg.Wait()
	for i, r := range downResults {
		switch {
		case r.err != nil:
			t.Errorf("request %d sent with the broker down: no answer after %v: %v", i, r.took.Round(time.Millisecond), r.err)
		case r.code != http.StatusOK && r.code != http.StatusServiceUnavailable && r.code != http.StatusGatewayTimeout:
			t.Errorf("request %d sent with the broker down: %d after %v; want an answer, 503 or 504", i, r.code, r.took.Round(time.Millisecond))
		default:
			t.Logf("request %d sent with the broker down: %d after %v", i, r.code, r.took.Round(time.Millisecond))
		}
	}
	waitFor(t, ctx, 2*time.Minute, "the gateway to serve /wait again", func() bool {
		code, _, _ := call()
		return code == http.StatusGatewayTimeout
	})
	t.Logf("gateway serving the route again %v after the kill", time.Since(killed).Round(time.Millisecond))

	cl := p.kafka(t, ctx, kgo.ConsumeTopics("kept"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < events {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d acknowledged events from the new broker: %v", len(seen), events, fs.Errors())
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
}

// waitFor polls cond every 200 ms until it holds, failing after limit.
func waitFor(t *testing.T, ctx context.Context, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

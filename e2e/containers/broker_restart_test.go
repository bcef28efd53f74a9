package containers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// routeTimeout is the test route's deadline: a request the function does
// not answer in time ends in a 504.
const routeTimeout = 5 * time.Second

// hang is how long past its deadline a request may take before the test
// calls it a hang: the gateway's produce to a dead broker is bounded too.
const hang = 30 * time.Second

// TestBrokerKilledAndReplaced: the broker container is SIGKILLed while
// requests flow through the gateway to a python function (a container the
// deployer started), then a new broker container starts on the same
// volume. Every request — in flight at the kill, sent while no broker runs,
// or while the new one starts — ends with the function's answer or a clean
// 503/504, never a hang; the function answers through the gateway again;
// every event acknowledged before the kill is read back from the new
// broker.
func TestBrokerKilledAndReplaced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	p := start(t, ctx, "deployer", "gateway")

	// A python function behind a route, deployed as a user would: the
	// deployer runs it in a container of its own on the network.
	name := p.deployments + "-double"
	p.deploy(t, ctx, map[string]string{
		"butter.yaml": fmt.Sprintf("name: %s\nplatform: python\nfunctions:\n  - fn: handler.py:double\n    bindings:\n      route: { context: /double, timeout: %s }\n", name, routeTimeout),
		"handler.py":  "import json\n\ndef double(event, context):\n    return {\"double\": 2 * json.loads(event[\"data\"][\"body\"])[\"n\"]}\n",
	})
	route := p.url(t, ctx, p.services["gateway"], 8080, "/double")
	client := &http.Client{Timeout: routeTimeout + hang}
	call := func() (int, time.Duration, error) {
		began := time.Now()
		resp, err := client.Post(route, "application/json", bytes.NewBufferString(`{"n":21}`))
		if err != nil {
			return 0, time.Since(began), err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !bytes.Contains(b, []byte(`"double":42`)) {
			return 0, time.Since(began), fmt.Errorf("200 with %s, want double 42", b)
		}
		return resp.StatusCode, time.Since(began), nil
	}
	waitFor(t, ctx, 2*time.Minute, "the function to answer on /double", func() bool {
		code, _, _ := call()
		return code == http.StatusOK
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

	// Requests flow without pause from before the kill until the function
	// answers again: some are in flight at the kill, some arrive while no
	// broker runs, some while the new one starts.
	type result struct {
		began time.Time
		took  time.Duration
		code  int
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				code, took, err := call()
				mu.Lock()
				results = append(results, result{began, took, code, err})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // traffic before the kill
	docker(t, "kill", p.broker.GetContainerID())
	killed := time.Now()
	time.Sleep(time.Second) // traffic with no broker at all

	// A new broker container on the same volume.
	p.broker = p.startBroker(t, ctx)
	t.Logf("new broker ready %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitFor(t, ctx, 2*time.Minute, "the function to answer on /double again", func() bool {
		code, _, _ := call()
		return code == http.StatusOK
	})
	t.Logf("the function answers through the gateway again %v after the kill", time.Since(killed).Round(time.Millisecond))
	close(stop)
	wg.Wait()

	codes := map[int]int{}
	across := 0 // requests in flight at the kill
	for _, r := range results {
		if r.began.Before(killed) && r.began.Add(r.took).After(killed) {
			across++
		}
		switch {
		case r.err != nil:
			t.Errorf("request sent %v after the kill: no answer after %v: %v", r.began.Sub(killed).Round(time.Millisecond), r.took.Round(time.Millisecond), r.err)
		case r.code != http.StatusOK && r.code != http.StatusServiceUnavailable && r.code != http.StatusGatewayTimeout:
			t.Errorf("request sent %v after the kill: %d after %v; want the answer, 503 or 504", r.began.Sub(killed).Round(time.Millisecond), r.code, r.took.Round(time.Millisecond))
		}
		codes[r.code]++
	}
	if across == 0 {
		t.Error("no request was in flight at the kill")
	}
	t.Logf("%d requests around the kill (%d in flight at it): status counts %v", len(results), across, codes)

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

package service

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/buttercompass/butter/deployer/internal/testutil"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// startPrefixed starts a deployer of e whose topics are under prefix.
func (e *env) startPrefixed(prefix string) *deployer {
	e.t.Helper()
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.FnboxBin = "127.0.0.1:0", e.data, fakeFnbox
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{e.brokers}, TopicPrefix: prefix}
	cfg.Grace = 5 * time.Second
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		s.Close()
		e.t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx) }()
	stop := func() {
		scancel()
		<-done
		s.Close()
	}
	e.t.Cleanup(stop)
	return &deployer{url: "http://" + s.Addr(), stop: stop}
}

// topicsWithPrefix lists the cluster's topics that start with prefix.
func (e *env) topicsWithPrefix(prefix string) []string {
	e.t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(context.Background(), e.kafka)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, t := range resp.Topics {
		if t.Topic != nil && strings.HasPrefix(*t.Topic, prefix) {
			out = append(out, *t.Topic)
		}
	}
	return out
}

// streamsYAML binds n streams <prefix>0..<prefix>n-1 and one more, extra,
// as its dead letter: n+1 streams.
func streamsYAML(prefix string, n int, extra string) string {
	var b strings.Builder
	b.WriteString("name: many\nplatform: node\nfunctions:\n  - fn: handler.js:f\n    bindings:\n      streams:\n")
	for i := range n {
		fmt.Fprintf(&b, "        - %s%d\n", prefix, i)
	}
	fmt.Fprintf(&b, "    delivery: { deadLetter: %s }\n", extra)
	return b.String()
}

// TestFailedDeployLeavesNoTopic: a deploy whose streams cannot all be
// made answers 503 and deletes the ones it made. The broker refuses the
// last stream here: with the deployer's topic prefix its topic name is
// over Kafka's 249 characters, though the stream name alone is valid.
func TestFailedDeployLeavesNoTopic(t *testing.T) {
	e := newEnv(t)
	prefix := strings.Repeat("p", 60) + "."
	d := e.startPrefixed(prefix)
	src := streamsYAML("fresh-", 5, strings.Repeat("x", 200))
	r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(src), "")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "cannot create streams") {
		t.Fatalf("deploy = %d %s, want 503 cannot create streams", r.code, r.body)
	}
	if left := e.topicsWithPrefix(prefix + "fresh-"); len(left) > 0 {
		t.Errorf("the failed deploy left topics behind: %v", left)
	}
	if r := d.do(t, "GET", "/v1/deployments", "", nil, ""); !strings.Contains(string(r.body), `"deployments":[]`) {
		t.Errorf("something was stored: %s", r.body)
	}
}

// TestManyStreams: a descriptor naming 3,000 streams is refused by
// validation with the field and line of the first one over the limit,
// creating nothing; one at the limit deploys with all its topics.
func TestManyStreams(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	r := d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(streamsYAML("flood-", 3000, "flood-dlq")), "")
	var p kit.Problem
	r.json(t, &p)
	want := fmt.Sprintf("butter.yaml:%d:11 functions[0].bindings.streams[%d].name: is stream number %d", 7+descriptor.MaxStreams, descriptor.MaxStreams, descriptor.MaxStreams+1)
	if r.code != http.StatusBadRequest || len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0], want) {
		t.Fatalf("3,000 streams = %d %s, want 400 with %q", r.code, r.body, want)
	}
	if left := e.topicsWithPrefix("flood-"); len(left) > 0 {
		t.Errorf("a refused descriptor made %d topics", len(left))
	}

	start := time.Now()
	r = d.do(t, "POST", "/v1/deployments", "application/yaml", []byte(streamsYAML("edge-", descriptor.MaxStreams-1, "edge-dlq")), "")
	if r.code != http.StatusCreated {
		t.Fatalf("%d streams = %d %s, want 201", descriptor.MaxStreams, r.code, r.body)
	}
	t.Logf("deployed %d streams in %s", descriptor.MaxStreams, time.Since(start).Round(time.Millisecond))
	if got := e.topicsWithPrefix("edge-"); len(got) != descriptor.MaxStreams {
		t.Errorf("%d topics made, want %d", len(got), descriptor.MaxStreams)
	}
}

// TestHugeDescriptor413: a descriptor too large is refused as a
// descriptor, not as a code archive.
func TestHugeDescriptor413(t *testing.T) {
	e := newEnv(t)
	d := e.start("")
	huge := []byte("name: huge\n# " + strings.Repeat("x", 20<<20) + "\n")
	r := d.do(t, "POST", "/v1/deployments", "application/yaml", huge, "")
	if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), "descriptor") || strings.Contains(string(r.body), "archive") {
		t.Errorf("20 MB descriptor = %d %s, want 413 about the descriptor", r.code, r.body)
	}
}

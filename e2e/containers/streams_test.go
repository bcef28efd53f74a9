package containers_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// follow is an admin client that survives a broker replacement: whatever
// address the broker advertised, it dials the current broker container
// (there is one broker, so every connection is to it). It writes without
// idempotence, whose producer state a killed broker may not keep: a batch
// retried after the kill may be written twice, which the tests count as
// duplicates, never as losses.
func (p *platform) follow(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	var d net.Dialer
	k := kit.KafkaConfig{Brokers: []string{"broker:9092"}, SASLMechanism: "SCRAM-SHA-256", SASLUser: "butter-admin", SASLPassword: adminPassword}
	cl, err := k.NewClient(append([]kgo.Opt{
		kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, *p.brokerAddr.Load())
		}),
		kgo.DisableIdempotentWrite(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createStreams makes topics of the given partition count.
func createStreams(t *testing.T, ctx context.Context, cl *kgo.Client, partitions int32, names ...string) {
	t.Helper()
	res, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, 1, nil, names...)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("create streams %v: %v", names, err)
	}
}

// deploy posts a deployment archive of files to the deployer, as `butter
// deploy` does.
func (p *platform) deploy(t *testing.T, ctx context.Context, files map[string]string) {
	t.Helper()
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	for name, text := range files {
		w, _ := zw.Create(name)
		_, _ = w.Write([]byte(text))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url(t, ctx, p.services["deployer"], 8081, "/v1/deployments"), &zipped)
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("deploy: %s: %s", resp.Status, body)
	}
}

// inputs are events with ids <prefix>-<from> … <prefix>-<from+n-1> on
// topic, keyed so they spread over its partitions.
func inputs(topic, prefix string, from, n int) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		e := envelope.New("/e2e/containers", "com.example.e2e")
		e.SetID(fmt.Sprintf("%s-%d", prefix, i))
		e.SetExtension(envelope.ExtPartitionKey, fmt.Sprint(i%64))
		if err := e.SetData("application/json", map[string]int{"n": i}); err != nil {
			return nil, err
		}
		r, err := envelope.ToRecord(topic, e)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// produce writes recs, retrying the whole batch until the broker
// acknowledged every record or ctx ends: across a broker kill a retried
// batch may be partly written twice.
func produce(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := cl.ProduceSync(pctx, recs...).FirstErr()
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		for _, r := range recs { // a retry is a new produce of the same events
			r.Partition, r.Offset, r.ProducerID, r.ProducerEpoch, r.LeaderEpoch = 0, 0, 0, 0, 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// results reads topic (read_committed) from its start and counts the
// results by the id of the input that caused each (causationid): distinct
// inputs and records in all. It returns when want inputs have a result,
// or with an error when limit passes first.
type results struct {
	distinct, records int
	// last is when the last input to get a result got it (the broker's
	// timestamp of that result).
	last time.Time
}

func readResults(ctx context.Context, cl *kgo.Client, topic string, want int, limit time.Duration) (results, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cl.AddConsumeTopics(topic)
	defer cl.PurgeTopicsFromConsuming(topic)
	seen := map[string]bool{}
	var r results
	for len(seen) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			r.distinct = len(seen)
			return r, fmt.Errorf("%s: %d of %d inputs have a result after %v (%d records)", topic, len(seen), want, limit, r.records)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			d := envelope.FromRecord(rec)
			cause, _ := d.Event.Extensions()[envelope.ExtCausationID].(string)
			if cause == "" {
				return
			}
			r.records++
			if !seen[cause] && rec.Timestamp.After(r.last) {
				r.last = rec.Timestamp
			}
			seen[cause] = true
		})
	}
	r.distinct = len(seen)
	return r, nil
}

// running lists the ids of the running containers of a deployment, by the
// label the deployer gives them.
func running(ctx context.Context, deployment string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "docker", "ps", "-q", "--no-trunc", "--filter", "label=butter.deployment="+deployment).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	ids := strings.Fields(string(out))
	slices.Sort(ids)
	return ids, nil
}

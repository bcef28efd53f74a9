package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/topics"
)

// newTestServer returns a server writing to c, its callbacks unrestricted.
func newTestServer(t *testing.T, c *testutil.Cluster) *Server {
	t.Helper()
	if err := c.Broker.CreateTopic(topics.Stream(topics.Requests)); err != nil {
		t.Fatal(err)
	}
	return New(Config{Producer: c.Client, Replica: "me", Takeover: time.Hour, Retain: time.Hour, AllowPrivateCallbacks: true})
}

// storedRecords reads every record written to _butter.requests, by id.
func storedRecords(t *testing.T, c *testutil.Cluster) map[string][]Async {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	ends, err := kadm.NewClient(c.Client).ListEndOffsets(ctx, topics.Requests)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Broker.Addr()), kgo.ConsumeTopics(topics.Requests),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string][]Async{}
	read := map[int32]int64{}
	reached := func() bool {
		for p, o := range want {
			if read[p] < o {
				return false
			}
		}
		return true
	}
	for !reached() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %v", topics.Requests, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			read[r.Partition] = r.Offset + 1
			var a Async
			if json.Unmarshal(r.Value, &a) == nil {
				out[a.ID] = append(out[a.ID], a)
			}
		})
	}
	return out
}

// TestCompleteOnce: replies racing each other and the janitor's expiry
// store one response and call back once.
func TestCompleteOnce(t *testing.T) {
	c := testutil.NewCluster(t)
	s := newTestServer(t, c)
	var calls atomic.Int32
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(cb.Close)

	ctx := context.Background()
	const ids = 20
	start := make(chan struct{})
	var wg sync.WaitGroup
	for n := range ids {
		rec := Async{ID: fmt.Sprintf("req-%d", n), State: statePending, Context: "/x", Owner: "me",
			Accepted: time.Now().UTC(), Deadline: time.Now().Add(-time.Second).UTC(), Callback: cb.URL}
		if err := s.async.store(ctx, rec); err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			wg.Go(func() {
				<-start
				s.async.complete(ctx, rec, httpevent.Response{Status: 200 + i, Body: []byte(fmt.Sprint(i))})
			})
		}
	}
	wg.Go(func() {
		<-start
		s.async.expire(ctx, time.Now())
	})
	close(start)
	wg.Wait()
	s.async.callbacks.Wait()

	if n := calls.Load(); n != ids {
		t.Errorf("%d callbacks for %d requests, want one each", n, ids)
	}
	stored := storedRecords(t, c)
	for n := range ids {
		id := fmt.Sprintf("req-%d", n)
		done := 0
		for _, a := range stored[id] {
			if a.State == stateDone {
				done++
			}
		}
		if done != 1 {
			t.Errorf("%s: %d done records stored, want 1", id, done)
		}
		if got, _ := s.async.get(id); got.State != stateDone {
			t.Errorf("%s: state %s", id, got.State)
		}
	}
}

// TestCompleteRevertsOnStoreError: a response that cannot be stored
// leaves the request pending, so a later reply or expiry completes it.
func TestCompleteRevertsOnStoreError(t *testing.T) {
	c := testutil.NewCluster(t)
	s := newTestServer(t, c)
	ctx := context.Background()
	rec := Async{ID: "other", State: statePending, Context: "/x", Owner: "me",
		Accepted: time.Now().UTC(), Deadline: time.Now().Add(time.Minute).UTC()}
	if err := s.async.store(ctx, rec); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	s.async.complete(cctx, rec, httpevent.Response{Status: 200})
	if got, _ := s.async.get(rec.ID); got.State != statePending {
		t.Fatalf("after a failed store: state %s, want pending", got.State)
	}
	s.async.complete(ctx, rec, httpevent.Response{Status: 201})
	if got, _ := s.async.get(rec.ID); got.State != stateDone || got.Response.Status != 201 {
		t.Fatalf("after a stored response: %+v", got)
	}
}

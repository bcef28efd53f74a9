package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// States of an async request.
const (
	statePending = "pending"
	stateDone    = "done"
	// stateCompleting is never stored: it marks, in memory, a pending
	// request whose response one goroutine is storing, so a racing reply,
	// a duplicate reply or the janitor's expiry do not store a second one
	// or call back twice.
	stateCompleting = "completing"
)

// Async is an accepted respond-async request: the JSON value of a
// _butter.requests record keyed by ID. It is written twice: pending when
// accepted, then done with the response.
type Async struct {
	// ID is the request event id, also the status URL's last segment.
	ID string `json:"id"`
	// State is pending or done.
	State string `json:"state"`
	// Context is the route context the request came in on; polls are
	// authenticated like that route.
	Context string `json:"context"`
	// Auth is the route's auth when the request was accepted, nil if it
	// needed none. A poll of a request that needed auth is refused unless
	// the route still exists with the same auth and the poll passes it.
	Auth *descriptor.RouteAuth `json:"auth,omitempty"`
	// Subject is the caller that made the request on an authenticated
	// route ("apikey:<key id>" or "jwt:<sub>"): only it may poll.
	Subject string `json:"subject,omitempty"`
	// Owner is the replica that accepted it; it stores the response as
	// soon as the reply comes, others only after a takeover delay.
	Owner string `json:"owner"`
	// Accepted is when it was accepted; Deadline when the gateway gives up
	// waiting and stores a 504.
	Accepted time.Time `json:"accepted"`
	Deadline time.Time `json:"deadline"`
	// ReplySource is the CloudEvents source of the function the route
	// named (obs.Source): replies from any other source are ignored.
	// Empty in records written before it existed: any source is taken.
	ReplySource string `json:"replySource,omitempty"`
	// Callback, if set, receives a POST of the response.
	Callback string `json:"callback,omitempty"`
	// Response is set once done.
	Response *httpevent.Response `json:"response,omitempty"`
}

// asyncStore is the replica's view of _butter.requests.
type asyncStore struct {
	s        *Server
	topic    string
	retain   time.Duration
	takeover time.Duration

	mu sync.Mutex
	m  map[string]*Async
	// replying holds the pending requests whose reply has been read and
	// is being (or, after the takeover delay, will be) stored: the janitor
	// does not expire them.
	replying map[string]bool
	// callbacks are the callback POSTs in flight.
	callbacks sync.WaitGroup
}

// Apply applies one _butter.requests record. A done record is never
// turned back to pending: replicas racing to complete write the same
// outcome, and a late pending record must not reopen it.
func (a *asyncStore) Apply(r *kgo.Record) {
	if r.Value == nil {
		a.mu.Lock()
		delete(a.m, string(r.Key))
		a.mu.Unlock()
		return
	}
	var rec Async
	if err := json.Unmarshal(r.Value, &rec); err != nil || rec.ID != string(r.Key) {
		a.s.log.Error("skip bad request record", kit.KeyOffset, r.Offset, "key", string(r.Key))
		return
	}
	a.put(&rec)
}

func (a *asyncStore) put(rec *Async) {
	if time.Since(rec.Accepted) > a.retain {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.m[rec.ID]; ok && (old.State == stateDone || old.State == stateCompleting && rec.State == statePending) {
		return
	}
	a.m[rec.ID] = rec
}

func (a *asyncStore) get(id string) (Async, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.m[id]
	if !ok {
		return Async{}, false
	}
	return *rec, true
}

// oldestPending returns when the oldest pending request was accepted, or
// zero when none is pending.
func (a *asyncStore) oldestPending() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var t time.Time
	for _, rec := range a.m {
		if (rec.State == statePending || rec.State == stateCompleting) && (t.IsZero() || rec.Accepted.Before(t)) {
			t = rec.Accepted
		}
	}
	return t
}

// store writes rec to the topic and, once written, applies it at once, so
// this replica answers polls for it without waiting to read it back. A
// record that could not be written is not applied.
func (a *asyncStore) store(ctx context.Context, rec Async) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode request %s: %w", rec.ID, err)
	}
	r := &kgo.Record{Topic: a.topic, Key: []byte(rec.ID), Value: v}
	if err := a.s.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("store request %s on %s: %w", rec.ID, a.topic, err)
	}
	a.put(&rec)
	return nil
}

// replied handles the reply to id if id is a pending async request
// answered by the source it expects, and reports whether it was one.
func (a *asyncStore) replied(ctx context.Context, id string, reply event.Event) bool {
	rec, ok := a.get(id)
	if !ok || rec.State != statePending {
		return false
	}
	if rec.ReplySource != "" && rec.ReplySource != reply.Source() {
		return false
	}
	resp := a.s.replyResponse(reply, rec.Context)
	a.mu.Lock()
	a.replying[id] = true
	a.mu.Unlock()
	done := func() {
		a.complete(context.WithoutCancel(ctx), rec, resp)
		a.mu.Lock()
		delete(a.replying, id)
		a.mu.Unlock()
	}
	// Another replica accepted it and will store the response itself;
	// take over only if it has not done so after a while (it may be dead).
	// A request still pending past its deadline and the takeover delay was
	// accepted by a replica that is gone (a previous incarnation of this
	// gateway, say): there is nobody to wait for.
	if rec.Owner == a.s.replica || time.Now().After(rec.Deadline.Add(a.takeover)) {
		go done()
		return true
	}
	time.AfterFunc(a.takeover, done)
	return true
}

// complete stores the response of rec if it is still pending, then POSTs
// it to the callback. Only one caller completes a request: it turns it
// from pending to completing under the lock, and back to pending if it
// cannot store the response.
func (a *asyncStore) complete(ctx context.Context, rec Async, resp httpevent.Response) {
	a.mu.Lock()
	cur, ok := a.m[rec.ID]
	if !ok || cur.State != statePending {
		a.mu.Unlock()
		return
	}
	claimed := *cur
	claimed.State = stateCompleting
	a.m[rec.ID] = &claimed
	a.mu.Unlock()
	rec.State, rec.Response = stateDone, &resp
	err := a.store(ctx, rec)
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
		// The response does not fit the topic it is kept in (its body is
		// base64 there): keep an answer saying so, not a 504 later.
		a.s.log.Warn("async response too large to store", "request", rec.ID, "body_bytes", len(resp.Body), kit.KeyError, err)
		tooLarge := problemResponse(kit.Problem{Status: http.StatusBadGateway, Title: "response too large to keep",
			Detail:   fmt.Sprintf("the function answered with %d bytes of body, more than %s can keep for polling: call the route synchronously, or return less", len(resp.Body), a.topic),
			Instance: "/_butter/requests/" + rec.ID})
		rec.Response = &tooLarge
		err = a.store(ctx, rec)
	}
	if err != nil {
		a.s.log.Error("store async response", "request", rec.ID, kit.KeyError, err)
		a.mu.Lock()
		if cur, ok := a.m[rec.ID]; ok && cur.State == stateCompleting {
			back := *cur
			back.State = statePending
			a.m[rec.ID] = &back
		}
		a.mu.Unlock()
		return
	}
	if rec.Callback != "" {
		// Not inline: a slow callback URL must not hold up the janitor's
		// other expiries, nor the reply reader.
		a.callbacks.Go(func() { a.callback(ctx, rec) })
	}
}

// Expire completes pending requests whose deadline passed with a 504:
// the owner at once, others after the takeover delay.
func (a *asyncStore) expire(ctx context.Context, now time.Time) {
	var due []Async
	a.mu.Lock()
	for _, rec := range a.m {
		if rec.State != statePending || a.replying[rec.ID] {
			continue
		}
		limit := rec.Deadline
		if rec.Owner != a.s.replica {
			limit = limit.Add(a.takeover)
		}
		if now.After(limit) {
			due = append(due, *rec)
		}
	}
	a.mu.Unlock()
	for _, rec := range due {
		a.complete(ctx, rec, problemResponse(kit.Problem{Status: http.StatusGatewayTimeout, Title: "function did not answer in time",
			Detail: fmt.Sprintf("no reply before the deadline %s", rec.Deadline.Format(time.RFC3339)), Instance: "/_butter/requests/" + rec.ID}))
	}
}

// forget drops done requests older than the retention, so memory stays
// bounded however long the gateway runs.
func (a *asyncStore) forget(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, rec := range a.m {
		if rec.State == stateDone && now.Sub(rec.Accepted) > a.retain {
			delete(a.m, id)
		}
	}
}

// RunJanitor expires and forgets async requests until ctx is done, then
// waits for the callbacks in flight. It
// expires nothing before RunReplies has caught up with the replies
// written while the gateway was down, so a request answered then is
// stored with its reply, not a 504.
func (s *Server) RunJanitor(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.async.callbacks.Wait() // each is bounded by its own timeout
			return nil
		case now := <-t.C:
			select {
			case <-s.caughtUp:
				s.async.expire(ctx, now)
			default:
			}
			s.async.forget(now)
		}
	}
}

// callbackBody is what a callback receives.
type callbackBody struct {
	ID       string            `json:"id"`
	Status   int               `json:"status"`
	Headers  map[string]string `json:"headers,omitempty"`
	Body     *string           `json:"body,omitempty"`
	Body64   string            `json:"bodyBase64,omitempty"`
	Location string            `json:"location"`
}

// callback POSTs the response of rec to its callback URL, once, best
// effort: the response stays pollable whatever the callback does.
func (a *asyncStore) callback(ctx context.Context, rec Async) {
	resp := rec.Response
	cb := callbackBody{ID: rec.ID, Status: resp.Status, Headers: map[string]string{}, Location: StatusPath(rec.ID)}
	for k := range resp.Headers {
		cb.Headers[k] = resp.Headers.Get(k)
	}
	if isText(resp) {
		b := string(resp.Body)
		cb.Body = &b
	} else {
		cb.Body64 = encodeBase64(resp.Body)
	}
	body, _ := json.Marshal(cb)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rec.Callback, bytes.NewReader(body))
	if err != nil {
		a.s.log.Warn("callback", "request", rec.ID, kit.KeyError, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Butter-Request-Id", rec.ID)
	res, err := a.s.callbacks.Do(req)
	if err != nil {
		a.s.log.Warn("callback", "request", rec.ID, "url", rec.Callback, kit.KeyError, err)
		return
	}
	_ = res.Body.Close()
	if res.StatusCode >= 300 {
		a.s.log.Warn("callback refused", "request", rec.ID, "url", rec.Callback, "status", res.StatusCode)
	} else {
		a.s.log.Debug("callback sent", slog.String("request", rec.ID))
	}
}

// Package server is the gateway's HTTP side: it matches a request to a
// route, authenticates it, writes the butter.http.request event on the
// route's stream and answers with the reply event (DESIGN §7), at once or,
// with Prefer: respond-async, through a status URL backed by
// _butter.requests.
package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/buttercompass/butter/gateway/internal/auth"
	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/gateway/internal/routes"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// Header names of the gateway's own protocol.
const (
	// HeaderCallback names a URL that receives a POST of the response of
	// an async request; it implies Prefer: respond-async.
	HeaderCallback = "X-Butter-Callback"
	// HeaderRequestID is set on every answer with the request event id.
	HeaderRequestID = "X-Butter-Request-Id"
	// StatusPrefix is where async requests are polled.
	StatusPrefix = "/_butter/requests/"
)

// StatusPath returns the status URL path of async request id.
func StatusPath(id string) string { return StatusPrefix + id }

// Config configures a Server.
type Config struct {
	// Routes is the live route table.
	Routes *routes.Table
	// Auth checks credentials.
	Auth *auth.Authenticator
	// Producer writes request events and request records; it must be
	// built with kgo.ProducerLinger(0): requests wait on every write.
	Producer *kgo.Client
	// Namespace maps streams to topics.
	Namespace topics.Namespace
	// Events records auth rejections; nil records none.
	Events *control.Recorder
	// CatchUp waits until the replica has read every request record
	// written so far, for a poll of an id it does not know yet.
	CatchUp func(ctx context.Context) error
	// Replica names this gateway process among its replicas.
	Replica string
	// Takeover is how long after a reply (or a deadline) a replica waits
	// for the accepting replica to store an async response before storing
	// it itself. Default 3s.
	Takeover time.Duration
	// Retain is how long async responses are kept. Default 24h, the
	// retention of _butter.requests.
	Retain time.Duration
	// Metrics registers the gateway's metrics; nil registers none.
	Metrics prometheus.Registerer
	// Tracer starts a span per request; nil traces nothing.
	Tracer trace.Tracer
	// Callbacks sends async callbacks; nil means a client with a 10s
	// timeout. Redirects are never followed; unless AllowPrivateCallbacks,
	// a client with no Transport of its own gets one that dials public
	// addresses only.
	Callbacks *http.Client
	// AllowPrivateCallbacks lets X-Butter-Callback name loopback, private
	// and link-local addresses; by default they are refused, so callers
	// cannot make the gateway POST into its own network.
	AllowPrivateCallbacks bool
	// Limits bounds slow clients and open connections; zero fields take
	// DefaultLimits (MaxConns 0 means no cap).
	Limits Limits
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
}

// Server answers HTTP requests on routes.
type Server struct {
	routes    *routes.Table
	auth      *auth.Authenticator
	prod      *kgo.Client
	ns        topics.Namespace
	events    *control.Recorder
	catchUp   func(ctx context.Context) error
	replica   string
	tracer    trace.Tracer
	callbacks *http.Client
	// allowPrivate lets callbacks reach non-public addresses.
	allowPrivate bool
	log          *slog.Logger
	m            *metrics
	limits       Limits

	waiters *waiters
	async   *asyncStore
	// caughtUp is closed once RunReplies has read the replies written up
	// to Provision: until then a pending async request may have a reply
	// not read yet, and is not expired.
	caughtUp chan struct{}
	// rejects bounds concurrent auth.reject recordings, so a flood of bad
	// credentials costs a counter, not a goroutine per request.
	rejects chan struct{}
}

// New returns a server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("gateway")
	}
	cfg.Callbacks = callbackClient(cfg.Callbacks, cfg.AllowPrivateCallbacks)
	if cfg.Takeover <= 0 {
		cfg.Takeover = 3 * time.Second
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 24 * time.Hour
	}
	if cfg.CatchUp == nil {
		cfg.CatchUp = func(context.Context) error { return nil }
	}
	s := &Server{routes: cfg.Routes, auth: cfg.Auth, prod: cfg.Producer, ns: cfg.Namespace, events: cfg.Events,
		catchUp: cfg.CatchUp, replica: cfg.Replica, tracer: cfg.Tracer, callbacks: cfg.Callbacks, log: cfg.Logger,
		allowPrivate: cfg.AllowPrivateCallbacks, m: newMetrics(cfg.Metrics), waiters: newWaiters(), rejects: make(chan struct{}, 16),
		caughtUp: make(chan struct{}), limits: cfg.Limits.WithDefaults()}
	s.async = &asyncStore{s: s, topic: cfg.Namespace.Topic(topics.Requests), retain: cfg.Retain,
		takeover: cfg.Takeover, m: map[string]*Async{}, replying: map[string]bool{}}
	return s
}

// ApplyRequest applies a _butter.requests record.
func (s *Server) ApplyRequest(r *kgo.Record) { s.async.Apply(r) }

// OldestPending returns when the oldest pending async request was
// accepted, zero when none is; the replies consumer starts there.
func (s *Server) OldestPending() time.Time { return s.async.oldestPending() }

// Register mounts the gateway: every path goes to the routes, except the
// async status URLs (and whatever more specific patterns the mux holds,
// like the admin endpoints).
func (s *Server) Register(handle func(pattern string, h http.Handler)) {
	handle("/", http.HandlerFunc(s.serveRoute))
	handle("GET "+StatusPrefix+"{id}", http.HandlerFunc(s.servePoll))
}

// observe wraps an answer with metrics.
func (s *Server) observe(w http.ResponseWriter, route string, start time.Time) (*statusWriter, func()) {
	s.m.inFlight.Inc()
	sw := &statusWriter{ResponseWriter: w}
	return sw, func() {
		s.m.inFlight.Dec()
		code := sw.code
		if code == 0 {
			code = 499 // client went away before an answer
		}
		s.m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		s.m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}

func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt, ok := s.routes.Match(r.URL.Path)
	label := "none"
	if ok {
		label = rt.Context
	}
	sw, done := s.observe(w, label, start)
	defer done()
	w = sw
	if !ok {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusNotFound, Title: "no route",
			Detail: "no deployed function has a route for " + r.URL.Path, Instance: r.URL.Path})
		return
	}
	if !rt.Spec.Allows(r.Method) {
		w.Header().Set("Allow", strings.Join(rt.Spec.Methods, ", "))
		kit.WriteProblem(w, kit.Problem{Status: http.StatusMethodNotAllowed, Title: "method not allowed",
			Detail: fmt.Sprintf("route %s serves %s", rt.Context, strings.Join(rt.Spec.Methods, ", ")), Instance: r.URL.Path})
		return
	}
	ctx := kit.Propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	if tp := r.Header.Get("ce-traceparent"); rt.Spec.CloudEvents() && tp != "" && r.Header.Get("traceparent") == "" {
		// A binary-mode CloudEvent carries its distributed-tracing
		// extension as ce-traceparent: the request continues that trace.
		ctx = kit.Propagator().Extract(r.Context(), propagation.MapCarrier{"traceparent": tp, "tracestate": r.Header.Get("ce-tracestate")})
	}
	ctx, span := s.tracer.Start(ctx, r.Method+" "+rt.Context, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
			attribute.String("http.route", rt.Context), attribute.String(kit.KeyDeployment, rt.Deployment), attribute.String(kit.KeyFn, rt.Function)))
	defer func() {
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		span.End()
	}()

	dec := s.auth.Check(ctx, r, rt.Spec.Auth)
	if dec.Status != 0 {
		s.reject(w, r, rt, dec)
		return
	}

	limit := int64(rt.Spec.MaxBody)
	if r.ContentLength > limit {
		tooLarge(w, r, limit)
		return
	}
	s.readBodyDeadline(w, r, time.Now(), limit)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge(w, r, limit)
			return
		}
		if isTimeout(err) {
			s.m.bodyTimeouts.Inc()
			w.Header().Set("Connection", "close")
			kit.WriteProblem(w, kit.Problem{Status: http.StatusRequestTimeout, Title: "body too slow",
				Detail: fmt.Sprintf("the body did not arrive within %s (%s plus its size at %d bytes/s)",
					s.limits.BodyTime(limit).Round(time.Second), s.limits.BodyTimeout, s.limits.MinBodyRate), Instance: r.URL.Path})
			return
		}
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "unreadable body", Detail: err.Error(), Instance: r.URL.Path})
		return
	}
	bodyRead(w)
	callback := r.Header.Get(HeaderCallback)
	if callback != "" {
		if err := checkCallback(ctx, callback, s.allowPrivate); err != nil {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "bad callback URL",
				Detail: HeaderCallback + ": " + err.Error(), Instance: r.URL.Path})
			return
		}
	}
	async := callback != "" || prefersAsync(r.Header)
	if async && rt.Spec.Auth != nil && subject(dec.Identity) == "" {
		// Only the caller that made an async request may poll it, and a
		// caller without a subject cannot be told from any other.
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "async request without a caller",
			Detail: "async requests on an authenticated route need credentials naming the caller (a JWT with a sub claim)", Instance: r.URL.Path})
		return
	}

	ev, ok := s.requestEvent(w, r, rt, body, dec.Identity, async)
	if !ok {
		return
	}
	ev.SetExtension(envelope.ExtReplyTo, topics.Replies)
	deadline := start.Add(rt.Spec.Timeout.Std())
	envelope.SetDeadline(&ev, deadline)
	envelope.InjectTrace(ctx, &ev)
	rec, err := envelope.ToRecord(s.ns.Topic(rt.Spec.Stream), ev)
	if err != nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusInternalServerError, Title: "cannot encode request event", Detail: err.Error(), Instance: r.URL.Path})
		return
	}
	w.Header().Set(HeaderRequestID, ev.ID())
	span.SetAttributes(attribute.String("butter.event.id", ev.ID()), attribute.String(kit.KeyStream, rt.Spec.Stream))

	if async {
		s.accept(ctx, w, r, rt, rec, ev.ID(), start, deadline, callback, dec.Identity)
		return
	}

	replies, cancel, ok := s.waiters.add(ev.ID(), obs.Source(rt.Deployment, rt.Function))
	if !ok {
		// Only in cloudevents mode, where the caller picks the id: two
		// requests waiting on one id could not tell their replies apart.
		kit.WriteProblem(w, kit.Problem{Status: http.StatusConflict, Title: "duplicate event id",
			Detail: "a request with event id " + ev.ID() + " is already waiting for its reply: give every event its own id", Instance: r.URL.Path})
		return
	}
	defer cancel()
	// One deadline bounds both the write and the wait for the reply (a
	// timer of its own per request showed in the profile), and ends when
	// the client goes away.
	wctx, wcancel := context.WithDeadline(ctx, deadline)
	defer wcancel()
	if err := s.prod.ProduceSync(wctx, rec).FirstErr(); err != nil {
		s.produceFailed(w, r, rt, err)
		return
	}
	select {
	case reply := <-replies:
		if rt.Spec.CloudEvents() {
			s.eventResponse(ctx, reply, r.URL.Path).Write(w)
			return
		}
		s.replyResponse(reply, r.URL.Path).Write(w)
	case <-wctx.Done():
		if r.Context().Err() != nil {
			return // the client is gone; nobody reads an answer
		}
		kit.WriteProblem(w, kit.Problem{Status: http.StatusGatewayTimeout, Title: "function did not answer in time",
			Detail: fmt.Sprintf("no reply from %s/%s within the route timeout %s", rt.Deployment, rt.Function, rt.Spec.Timeout.Std()), Instance: r.URL.Path})
	}
}

// accept stores a pending async request, sends its event and answers 202.
func (s *Server) accept(ctx context.Context, w http.ResponseWriter, r *http.Request, rt routes.Route, rec *kgo.Record, id string, start, deadline time.Time, callback string, who *httpevent.Identity) {
	ctx = context.WithoutCancel(ctx)
	pending := Async{ID: id, State: statePending, Context: rt.Context, Auth: rt.Spec.Auth, Subject: subject(who), Owner: s.replica,
		Accepted: start.UTC(), Deadline: deadline.UTC(), ReplySource: obs.Source(rt.Deployment, rt.Function), Callback: callback}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.async.store(sctx, pending); err != nil {
		s.async.drop(id)
		s.produceFailed(w, r, rt, err)
		return
	}
	if err := s.prod.ProduceSync(sctx, rec).FirstErr(); err != nil {
		// Accepted nowhere: record the failure so the id does not hang
		// pending, and tell the caller now.
		resp := problemResponse(kit.Problem{Status: http.StatusServiceUnavailable, Title: "cannot queue request", Detail: err.Error(), Instance: StatusPath(id)})
		pending.State, pending.Response = stateDone, &resp
		_ = s.async.store(sctx, pending)
		s.produceFailed(w, r, rt, err)
		return
	}
	loc := StatusPath(id)
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Preference-Applied", "respond-async")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "location": loc})
}

// drop forgets a request that was never stored.
func (a *asyncStore) drop(id string) {
	a.mu.Lock()
	delete(a.m, id)
	a.mu.Unlock()
}

func (s *Server) servePoll(w http.ResponseWriter, r *http.Request) {
	sw, done := s.observe(w, "/_butter/requests", time.Now())
	defer done()
	w = sw
	id := r.PathValue("id")
	rec, ok := s.async.get(id)
	if !ok && uuid.Validate(id) == nil {
		// Another replica may have accepted it a moment ago. (Request
		// ids are UUIDs: anything else is unknown without asking Kafka.)
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		err := s.catchUp(ctx)
		cancel()
		if err != nil {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusServiceUnavailable, Title: "cannot read requests",
				Detail: err.Error() + "; retry shortly", Instance: r.URL.Path})
			return
		}
		rec, ok = s.async.get(id)
	}
	if !ok {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusNotFound, Title: "unknown request",
			Detail: "no async request " + id + " (unknown, or older than the retention)", Instance: r.URL.Path})
		return
	}
	rt, ok := s.routes.Match(rec.Context)
	ok = ok && rt.Context == rec.Context
	if rec.Auth != nil && (!ok || !sameAuth(rt.Spec.Auth, rec.Auth)) {
		// Fail closed: the credentials the request needed can no longer
		// be checked.
		kit.WriteProblem(w, kit.Problem{Status: http.StatusNotFound, Title: "unknown request",
			Detail: "the route that accepted request " + id + " is gone or its auth changed", Instance: r.URL.Path})
		return
	}
	if ok {
		dec := s.auth.Check(r.Context(), r, rt.Spec.Auth)
		if dec.Status == 0 && rec.Subject != "" && subject(dec.Identity) != rec.Subject {
			dec = auth.Decision{Status: http.StatusForbidden, Reason: "request " + id + " was made by another caller"}
		}
		if dec.Status != 0 {
			s.reject(w, r, rt, dec)
			return
		}
	}
	w.Header().Set(HeaderRequestID, id)
	if rec.State != stateDone || rec.Response == nil {
		w.Header().Set("Location", StatusPath(id))
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "location": StatusPath(id), "state": statePending})
		return
	}
	rec.Response.Write(w)
}

// subject names the caller of an authenticated request, "" for none.
func subject(who *httpevent.Identity) string {
	if who == nil || who.Subject == "" {
		return ""
	}
	return who.Type + ":" + who.Subject
}

// sameAuth reports whether two route auth settings are the same (by value,
// as stored: nil and empty lists alike).
func sameAuth(a, b *descriptor.RouteAuth) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// requestEvent builds the request event of r: in cloudevents mode the
// CloudEvent r carries, otherwise a butter.http.request event wrapping r.
// It answers the problem itself when it reports false.
func (s *Server) requestEvent(w http.ResponseWriter, r *http.Request, rt routes.Route, body []byte, who *httpevent.Identity, async bool) (event.Event, bool) {
	if rt.Spec.CloudEvents() {
		if async {
			// The caller picks CloudEvent ids, and a status URL named
			// by a guessable id would be readable by anyone guessing it.
			kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "async request on a cloudevents route",
				Detail: "route " + rt.Context + " is in cloudevents mode, which answers synchronously: drop Prefer: respond-async and " + HeaderCallback, Instance: r.URL.Path})
			return event.Event{}, false
		}
		ev, err := httpevent.EventFromRequest(r, body)
		if err != nil {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "not a CloudEvent",
				Detail: "route " + rt.Context + " is in cloudevents mode: " + err.Error(), Instance: r.URL.Path})
			return event.Event{}, false
		}
		return ev, true
	}
	data, err := json.Marshal(httpevent.NewRequest(r, body, rt.Spec.Auth != nil, who))
	if err == nil {
		ev := envelope.New(httpevent.Source(rt.Context), httpevent.TypeRequest)
		if err = ev.SetData(event.ApplicationJSON, data); err == nil {
			return ev, true
		}
	}
	kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "unencodable request", Detail: err.Error(), Instance: r.URL.Path})
	return event.Event{}, false
}

// eventResponse answers a reply event as a CloudEvent in HTTP binary
// mode (cloudevents mode); a function failure is still a problem.
func (s *Server) eventResponse(ctx context.Context, reply event.Event, instance string) httpevent.Response {
	if reply.Type() == obs.TypeError {
		return s.replyResponse(reply, instance)
	}
	resp, err := httpevent.EventResponse(ctx, reply)
	if err != nil {
		return problemResponse(kit.Problem{Status: http.StatusBadGateway, Title: "bad function result", Detail: err.Error(), Instance: instance})
	}
	return resp
}

// replyResponse turns a reply event into the HTTP response.
func (s *Server) replyResponse(reply event.Event, instance string) httpevent.Response {
	if reply.Type() == obs.TypeError {
		var er obs.ErrorReply
		_ = json.Unmarshal(reply.Data(), &er)
		if er.Error == "" {
			er.Error = string(reply.Data())
		}
		return problemResponse(kit.Problem{Status: http.StatusBadGateway, Title: "function failed",
			Detail: fmt.Sprintf("%s (after %d attempt(s))", er.Error, er.Attempts), Instance: instance})
	}
	resp, err := httpevent.FromResult(reply.Data(), reply.DataContentType())
	if err != nil {
		return problemResponse(kit.Problem{Status: http.StatusBadGateway, Title: "bad function result", Detail: err.Error(), Instance: instance})
	}
	return resp
}

// reject answers 401/403 and records the rejection.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, rt routes.Route, dec auth.Decision) {
	s.m.rejects.WithLabelValues(rt.Context, strconv.Itoa(dec.Status)).Inc()
	if s.events != nil {
		select {
		case s.rejects <- struct{}{}:
			data := control.AuthReject{Method: r.Method, Path: r.URL.Path, Reason: dec.Reason, Remote: r.RemoteAddr}
			go func() {
				defer func() { <-s.rejects }()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := s.events.Emit(ctx, control.TypeAuthReject, control.Info{
					Resource: control.Resource(control.KindAuth, "gateway"), Actor: control.ActorAnonymous,
					Category: control.CategoryAlarm, Severity: control.SeverityWarning,
				}, data); err != nil {
					s.log.Warn("record auth rejection", kit.KeyError, err)
				}
			}()
		default:
			s.log.Warn("auth rejection not recorded: too many at once", "path", r.URL.Path, "reason", dec.Reason)
		}
	}
	w.Header().Set("WWW-Authenticate", dec.Challenge)
	title := "unauthorized"
	if dec.Status == http.StatusForbidden {
		title = "forbidden"
	}
	kit.WriteProblem(w, kit.Problem{Status: dec.Status, Title: title, Detail: dec.Reason, Instance: r.URL.Path})
}

func (s *Server) produceFailed(w http.ResponseWriter, r *http.Request, rt routes.Route, err error) {
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
		// The body fit maxBody, but its request event does not fit the
		// stream (JSON escaping and base64 grow a body): the client's to fix.
		kit.WriteProblem(w, kit.Problem{Status: http.StatusRequestEntityTooLarge, Title: "request event too large",
			Detail: fmt.Sprintf("the request, as an event, is larger than stream %s accepts (its max.message.bytes): send a smaller body", rt.Spec.Stream), Instance: r.URL.Path})
		return
	}
	s.log.Warn("write request event", kit.KeyStream, rt.Spec.Stream, kit.KeyDeployment, rt.Deployment, kit.KeyError, err)
	kit.WriteProblem(w, kit.Problem{Status: http.StatusServiceUnavailable, Title: "cannot queue request",
		Detail: fmt.Sprintf("writing to stream %s failed: %v", rt.Spec.Stream, err), Instance: r.URL.Path})
}

func tooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	kit.WriteProblem(w, kit.Problem{Status: http.StatusRequestEntityTooLarge, Title: "body too large",
		Detail: fmt.Sprintf("the route accepts bodies up to %d bytes (route maxBody)", limit), Instance: r.URL.Path})
}

// prefersAsync reports whether a Prefer header asks for respond-async.
func prefersAsync(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			tok, _, _ := strings.Cut(strings.TrimSpace(p), ";")
			if strings.EqualFold(strings.TrimSpace(tok), "respond-async") {
				return true
			}
		}
	}
	return false
}

// problemResponse renders a problem as a stored response.
func problemResponse(p kit.Problem) httpevent.Response {
	rec := &recorder{h: http.Header{}}
	kit.WriteProblem(rec, p)
	return httpevent.Response{Status: rec.code, Headers: rec.h, Body: rec.body}
}

// recorder is a minimal ResponseWriter capturing what is written.
type recorder struct {
	h    http.Header
	code int
	body []byte
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }

func isText(resp *httpevent.Response) bool {
	ct := resp.Headers.Get("Content-Type")
	return strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || len(resp.Body) == 0
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

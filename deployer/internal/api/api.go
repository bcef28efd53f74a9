// Package api is the deployer's HTTP API under /v1/deployments: deploy
// (POST), replace (PUT), inspect (GET), delete (DELETE) and replay.
//
// Every mutating call follows the same order so nothing is half-applied:
// authenticate, read and validate everything, record the action's platform
// event (no event stored → 503, nothing done), create the streams, store
// the record, reconcile, record the outcome.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/deployer/internal/reconcile"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// Desired is the store of desired state.
type Desired interface {
	Get(name string) (control.Deployment, bool)
	List() []control.Deployment
	Put(ctx context.Context, d control.Deployment) error
	Delete(ctx context.Context, name string) error
}

// Manager is the container manager.
type Manager interface {
	Sync(ctx context.Context) error
	Hold(name string)
	Release(name string)
	Status(d control.Deployment) []reconcile.FunctionStatus
	Instances(name string) []runtime.Instance
}

// Config configures the API.
type Config struct {
	Desired Desired
	Manager Manager
	Events  *control.Recorder
	// Admin creates streams and resets consumer groups; Kafka is its client.
	Admin     *kadm.Client
	Kafka     *kgo.Client
	Namespace topics.Namespace
	// Token, if set, is required as "Authorization: Bearer <token>" on
	// every mutating call.
	Token  string
	Logger *slog.Logger
	// GroupEmptyTimeout bounds how long replay waits for a consumer group
	// to empty after its instances stopped. Default 30s.
	GroupEmptyTimeout time.Duration
	// Prepare, if set, unpacks and builds a go deployment's code before it
	// is stored (the process runtime's Prepare); a *gobuild.Error it
	// returns rejects the deployment with 400.
	Prepare func(ctx context.Context, d control.Deployment) error
	// Admit, if set, refuses with 400 a descriptor the runtime cannot run
	// as written (limits it cannot enforce), before anything is stored.
	Admit func(d *descriptor.Descriptor) error
	// Secrets seals the secretEnv values of descriptors before they are
	// stored; a descriptor with secrets is refused without it.
	Secrets *secrets.Key
	// Tracer provides a server span per API call (deploy, update, delete,
	// replay, API keys), continuing a caller's traceparent. Default: the
	// global provider.
	Tracer trace.TracerProvider
}

// API serves /v1/deployments.
type API struct {
	cfg   Config
	log   *slog.Logger
	names nameLocks
}

// New returns the API; mount it with Register.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.GroupEmptyTimeout <= 0 {
		cfg.GroupEmptyTimeout = 30 * time.Second
	}
	return &API{cfg: cfg, log: cfg.Logger}
}

// Register mounts the API's routes, e.g. on a kit.Admin, each in a span
// named after its pattern.
func (a *API) Register(mount func(pattern string, h http.Handler)) {
	tp := a.cfg.Tracer
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	tracer := tp.Tracer("github.com/buttercompass/butter/deployer")
	handle := func(pattern string, h http.Handler) { mount(pattern, traced(tracer, pattern, h)) }
	handle("GET /v1/deployments", http.HandlerFunc(a.list))
	handle("GET /v1/deployments/{name}", http.HandlerFunc(a.get))
	handle("POST /v1/deployments", a.mutating(a.create))
	handle("PUT /v1/deployments/{name}", a.mutating(a.replace))
	handle("DELETE /v1/deployments/{name}", a.mutating(a.remove))
	handle("POST /v1/deployments/{name}/replay", a.mutating(a.replay))
	a.registerAPIKeys(handle)
}

// handler is a mutating handler, given the authenticated actor.
type handler func(w http.ResponseWriter, r *http.Request, actor string)

// mutating checks the bearer token and names the actor.
func (a *API) mutating(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Token == "" {
			h(w, r, control.ActorAnonymous)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.cfg.Token)) == 1 {
			h(w, r, control.ActorToken)
			return
		}
		reason := "missing bearer token"
		if ok {
			reason = "wrong bearer token"
		}
		if _, err := a.cfg.Events.Emit(r.Context(), control.TypeAuthReject, control.Info{
			Resource: control.Resource(control.KindAuth, "deployer"), Actor: control.ActorAnonymous,
			Category: control.CategoryAlarm, Severity: control.SeverityWarning,
		}, control.AuthReject{Method: r.Method, Path: r.URL.Path, Reason: reason, Remote: r.RemoteAddr}); err != nil {
			a.log.Warn("record auth rejection", kit.KeyError, err)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="butter-deployer"`)
		kit.WriteProblem(w, kit.Problem{Status: http.StatusUnauthorized, Title: "Unauthorized",
			Detail: reason + ": send Authorization: Bearer <token> with the deployer's BUTTER_TOKEN", Instance: r.URL.Path})
	})
}

// Status is a deployment as GET answers it.
type Status struct {
	Name        string                     `json:"name"`
	Version     string                     `json:"version"`
	Platform    string                     `json:"platform,omitempty"`
	Description string                     `json:"description,omitempty"`
	Functions   []reconcile.FunctionStatus `json:"functions"`
	Instances   []runtime.Instance         `json:"instances"`
	Created     time.Time                  `json:"created"`
	Updated     time.Time                  `json:"updated"`
	Actor       string                     `json:"actor"`

	// SecretEnv names the descriptor's secrets, each with the value
	// Redacted: a secret is never returned.
	SecretEnv map[string]string `json:"secretEnv,omitempty"`
}

// List is the GET /v1/deployments answer.
type List struct {
	Deployments []Status `json:"deployments"`
}

func (a *API) status(d control.Deployment) Status {
	st := Status{Name: d.Name, Version: d.Version, Created: d.Created, Updated: d.Updated, Actor: d.Actor,
		Functions: a.cfg.Manager.Status(d), Instances: a.cfg.Manager.Instances(d.Name)}
	if desc, err := d.Parse(); err == nil {
		st.Platform, st.Description = desc.Platform, desc.Description
		st.SecretEnv = secretNames(desc)
	}
	if st.Instances == nil {
		st.Instances = []runtime.Instance{}
	}
	return st
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	out := List{Deployments: []Status{}}
	for _, d := range a.cfg.Desired.List() {
		out.Deployments = append(out.Deployments, a.status(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	d, ok := a.cfg.Desired.Get(r.PathValue("name"))
	if !ok {
		notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, a.status(d))
}

func notFound(w http.ResponseWriter, r *http.Request) {
	kit.WriteProblem(w, kit.Problem{Status: http.StatusNotFound, Title: "deployment not found",
		Detail: "no deployment named " + r.PathValue("name") + ": GET /v1/deployments lists them", Instance: r.URL.Path})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// unavailable answers 503 for a failure to reach Kafka.
func unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	kit.WriteProblem(w, kit.Problem{Status: http.StatusServiceUnavailable, Title: what,
		Detail: err.Error() + "; nothing was changed, retry when Kafka is reachable", Instance: r.URL.Path})
}

// failOutcome records a .failed outcome, logging if even that fails.
func (a *API) failOutcome(ctx context.Context, act *control.Action, cause error, data any) {
	if err := act.Fail(context.WithoutCancel(ctx), cause, data); err != nil {
		a.log.Warn("record failed outcome", "type", act.Event.Type(), kit.KeyError, err)
	}
}

func (a *API) completeOutcome(ctx context.Context, act *control.Action, data any) {
	if err := act.Complete(context.WithoutCancel(ctx), data); err != nil {
		a.log.Warn("record completed outcome", "type", act.Event.Type(), kit.KeyError, err)
	}
}

// traced serves h in a server span named pattern that continues the
// caller's traceparent; a 5xx answer is an error status.
func traced(tracer trace.Tracer, pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, pattern, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", pattern)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

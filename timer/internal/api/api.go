// Package api serves the timer's HTTP API: POST, GET and DELETE
// /v1/timers. Schedules created here are stored in _butter.timers; the
// schedules of descriptors are listed too but are changed by redeploying.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/timer/internal/catalog"
	"github.com/buttercompass/butter/timer/internal/schedule"
)

// Store is what the API needs of the catalog.
type Store interface {
	// CatchUp returns once every record stored before the call is read,
	// so a check sees what another replica wrote a moment ago.
	CatchUp(ctx context.Context) error
	Defs(keep func(id string) bool) []*schedule.Def
	Def(id string) (*schedule.Def, bool)
	State(id string) (timers.State, bool)
	Put(ctx context.Context, s timers.Schedule) error
	Delete(ctx context.Context, id string) error
}

var _ Store = (*catalog.Catalog)(nil)

// Config configures the API.
type Config struct {
	// Store holds the schedules.
	Store Store
	// EnsureStream creates a tick stream, so a POST fails on a stream
	// that cannot be created rather than the first tick.
	EnsureStream func(ctx context.Context, stream string) error
	// Token, if set, is required as a bearer token on POST and DELETE.
	Token string
	// MissedAfter is the service's setting, to compute Next.
	MissedAfter time.Duration
	// Logger receives logs.
	Logger *slog.Logger
}

// API is the timer API.
type API struct {
	cfg Config
	// writes serializes this replica's creates and deletes, so the check
	// for an existing id and the write it leads to are one step.
	writes sync.Mutex
}

// New returns the API.
func New(cfg Config) *API { return &API{cfg: cfg} }

// Register mounts the routes with handle (kit.Admin.Handle).
func (a *API) Register(handle func(pattern string, h http.Handler)) {
	handle("POST /v1/timers", http.HandlerFunc(a.create))
	handle("GET /v1/timers", http.HandlerFunc(a.list))
	handle("GET /v1/timers/{id...}", http.HandlerFunc(a.get))
	handle("DELETE /v1/timers/{id...}", http.HandlerFunc(a.delete))
}

// Request is the body of POST /v1/timers.
type Request struct {
	// ID names the timer; default a random UUID. Lower-case letters,
	// digits, '.', '_' and '-', no '/' (those are descriptor timers).
	ID string `json:"id,omitempty"`
	// Schedule is cron with optional seconds or @every/@hourly...
	Schedule string `json:"schedule"`
	// Stream receives the ticks; created if missing.
	Stream string `json:"stream"`
	// Data is any JSON, copied into every tick's data.
	Data json.RawMessage `json:"data,omitempty"`
	// Timezone is the IANA zone of the schedule; default UTC.
	Timezone string `json:"timezone,omitempty"`
	// CatchUp is none, one (default) or all.
	CatchUp string `json:"catchUp,omitempty"`
}

// Timer is a timer as the API shows it.
type Timer struct {
	// ID names the timer: the API id, or "<deployment>/<function>".
	ID string `json:"id"`
	// Schedule, Timezone, Stream, CatchUp and Data are as created, with
	// defaults filled in.
	Schedule string          `json:"schedule"`
	Timezone string          `json:"timezone"`
	Stream   string          `json:"stream"`
	CatchUp  string          `json:"catchUp"`
	Data     json.RawMessage `json:"data,omitempty"`
	// Source is "api" or "deployment".
	Source string `json:"source"`
	// Deployment and Function name a descriptor timer's function.
	Deployment string `json:"deployment,omitempty"`
	Function   string `json:"function,omitempty"`
	// Created is when the timer (or its deployment) was first stored.
	Created time.Time `json:"created"`
	// LastFired is the scheduled time of the last tick fired, FiredBy the
	// replica that fired it.
	LastFired *time.Time `json:"lastFired,omitempty"`
	FiredBy   string     `json:"firedBy,omitempty"`
	// Next is the next scheduled time that will fire.
	Next *time.Time `json:"next,omitempty"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// maxBody bounds a POST body.
const maxBody = 1 << 20

// Validate checks a request and returns every problem, each naming its
// field.
func Validate(r Request) []string {
	var errs []string
	if r.ID != "" && !idPattern.MatchString(r.ID) {
		errs = append(errs, fmt.Sprintf("id: %q is not a timer id: use 1-128 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", r.ID))
	}
	switch {
	case strings.TrimSpace(r.Schedule) == "":
		errs = append(errs, `schedule: required: when to fire, like "0 * * * *" or "@every 10s"`)
	case strings.HasPrefix(r.Schedule, "TZ=") || strings.HasPrefix(r.Schedule, "CRON_TZ="):
		errs = append(errs, "schedule: put the time zone in timezone, not in the schedule")
	default:
		if err := descriptor.ValidateSchedule(r.Schedule); err != nil {
			errs = append(errs, "schedule: "+err.Error())
		}
	}
	switch {
	case r.Stream == "":
		errs = append(errs, "stream: required: the stream that receives the ticks")
	case topics.IsInternal(r.Stream):
		errs = append(errs, fmt.Sprintf("stream: %q is a platform stream; ticks go to user streams", r.Stream))
	default:
		if err := topics.ValidateStreamName(r.Stream); err != nil {
			errs = append(errs, "stream: "+err.Error())
		}
	}
	if r.Timezone != "" {
		if r.Timezone == "Local" {
			errs = append(errs, "timezone: Local depends on the machine the timer runs on: name a zone like Europe/Berlin, or UTC")
		} else if _, err := time.LoadLocation(r.Timezone); err != nil {
			errs = append(errs, fmt.Sprintf("timezone: %q is not an IANA time zone like Europe/Berlin or UTC", r.Timezone))
		}
	}
	policies := []string{descriptor.CatchUpNone, descriptor.CatchUpOne, descriptor.CatchUpAll}
	if r.CatchUp != "" && !slices.Contains(policies, r.CatchUp) {
		errs = append(errs, fmt.Sprintf("catchUp: %q is not a catch-up policy: use none, one or all", r.CatchUp))
	}
	if len(r.Data) > 0 && !json.Valid(r.Data) {
		errs = append(errs, "data: not valid JSON")
	}
	return errs
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.problem(w, r, http.StatusBadRequest, "Invalid timer", "body: "+err.Error()+`; send {"schedule": "@every 10s", "stream": "ticks"}`)
		return
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		a.problem(w, r, http.StatusBadRequest, "Invalid timer", "body: one JSON object expected")
		return
	}
	if errs := Validate(req); len(errs) > 0 {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "Invalid timer", Detail: errs[0], Errors: errs, Instance: r.URL.Path})
		return
	}
	if req.ID == "" {
		req.ID = uuid.NewString()
	}
	a.writes.Lock()
	defer a.writes.Unlock()
	if !a.caughtUp(w, r) {
		return
	}
	if _, exists := a.cfg.Store.Def(req.ID); exists {
		a.problem(w, r, http.StatusConflict, "Timer exists", fmt.Sprintf("id: timer %q exists; DELETE /v1/timers/%s first to replace it", req.ID, req.ID))
		return
	}
	if err := a.cfg.EnsureStream(r.Context(), req.Stream); err != nil {
		a.problem(w, r, http.StatusBadGateway, "Cannot create stream", "stream: "+err.Error())
		return
	}
	s := timers.Schedule{ID: req.ID, Schedule: req.Schedule, Timezone: req.Timezone, Stream: req.Stream, CatchUp: req.CatchUp,
		Data: req.Data, Created: time.Now().UTC()}
	if s.Timezone == "" {
		s.Timezone = descriptor.DefaultTimezone
	}
	if s.CatchUp == "" {
		s.CatchUp = descriptor.DefaultCatchUp
	}
	if err := a.cfg.Store.Put(r.Context(), s); err != nil {
		a.storeFailed(w, r, err)
		return
	}
	a.cfg.Logger.Info("timer created", "schedule", s.ID, kit.KeyStream, s.Stream, "spec", s.Schedule)
	d, ok := a.cfg.Store.Def(s.ID)
	if !ok {
		d = catalog.FromAPI(s)
		_ = d.Compile()
	}
	w.Header().Set("Location", "/v1/timers/"+s.ID)
	writeJSON(w, http.StatusCreated, a.view(d, time.Now()))
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	out := []Timer{}
	for _, d := range a.cfg.Store.Defs(nil) {
		out = append(out, a.view(d, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"timers": out})
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.writes.Lock()
	defer a.writes.Unlock()
	if !a.caughtUp(w, r) {
		return
	}
	d, ok := a.cfg.Store.Def(id)
	if !ok {
		a.problem(w, r, http.StatusNotFound, "No such timer", fmt.Sprintf("id: no timer %q; GET /v1/timers lists them", id))
		return
	}
	writeJSON(w, http.StatusOK, a.view(d, time.Now()))
}

// caughtUp reads what other replicas stored up to now, or answers 503.
func (a *API) caughtUp(w http.ResponseWriter, r *http.Request) bool {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := a.cfg.Store.CatchUp(ctx); err != nil {
		a.problem(w, r, http.StatusServiceUnavailable, "Cannot read timers", err.Error()+"; retry shortly")
		return false
	}
	return true
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	a.writes.Lock()
	defer a.writes.Unlock()
	if !a.caughtUp(w, r) {
		return
	}
	d, ok := a.cfg.Store.Def(id)
	if !ok {
		a.problem(w, r, http.StatusNotFound, "No such timer", fmt.Sprintf("id: no timer %q; GET /v1/timers lists them", id))
		return
	}
	if d.Source != schedule.SourceAPI {
		a.problem(w, r, http.StatusConflict, "Timer belongs to a deployment",
			fmt.Sprintf("id: timer %q is bindings.timer of function %s of deployment %s: remove it from the descriptor and redeploy", id, d.Function, d.Deployment))
		return
	}
	if err := a.cfg.Store.Delete(r.Context(), id); err != nil {
		a.storeFailed(w, r, err)
		return
	}
	a.cfg.Logger.Info("timer deleted", "schedule", id)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) view(d *schedule.Def, now time.Time) Timer {
	t := Timer{ID: d.ID, Schedule: d.Spec, Timezone: d.Timezone, Stream: d.Stream, CatchUp: d.CatchUp, Data: d.Data,
		Source: d.Source, Deployment: d.Deployment, Function: d.Function, Created: d.Created}
	var lastFired time.Time
	if st, ok := a.cfg.Store.State(d.ID); ok {
		lastFired = st.LastFired
		if !st.LastFired.Before(d.Created) {
			lf := st.LastFired
			t.LastFired, t.FiredBy = &lf, st.FiredBy
		}
	}
	if d.Sched != nil {
		if n := schedule.Wake(d.Sched, d.Anchor(lastFired), now, d.CatchUp, a.cfg.MissedAfter); !n.IsZero() {
			n = n.UTC()
			t.Next = &n
		}
	}
	return t
}

func (a *API) authorized(w http.ResponseWriter, r *http.Request) bool {
	if a.cfg.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="butter-timer"`)
	a.problem(w, r, http.StatusUnauthorized, "Unauthorized", "send Authorization: Bearer <token> (BUTTER_TOKEN)")
	return false
}

func (a *API) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, catalog.ErrNotReady) {
		w.Header().Set("Retry-After", "1")
		status = http.StatusServiceUnavailable
	}
	a.cfg.Logger.Error("store timer", kit.KeyError, err)
	a.problem(w, r, status, "Cannot store timer", err.Error())
}

func (a *API) problem(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	kit.WriteProblem(w, kit.Problem{Status: status, Title: title, Detail: detail, Instance: r.URL.Path})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Package server answers the tracer's JSON API (tracer/api) from the
// store, and serves the web UI.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/tracer/api"
	"github.com/buttercompass/butter/tracer/internal/browse"
	"github.com/buttercompass/butter/tracer/internal/store"
	"github.com/buttercompass/butter/tracer/internal/ui"
)

// Config configures the handlers.
type Config struct {
	Store *store.Store
	// Lag returns the consumer lag of functions; nil reports -1.
	Lag store.Lag
	// Browser reads streams for /v1/streams.
	Browser *browse.Browser
	// Heartbeat is how often a follow stream sends a comment to keep
	// proxies from closing it; default 15s.
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// Server holds the handlers.
type Server struct{ cfg Config }

// New returns the handlers of cfg.
func New(cfg Config) *Server {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	return &Server{cfg: cfg}
}

// Register mounts the API and the UI with handle (kit.Admin.Handle).
func (s *Server) Register(handle func(string, http.Handler)) {
	handle("GET "+api.PathTraces, s.h(s.traces))
	handle("GET "+api.PathTraces+"/{traceId}", s.h(s.trace))
	handle("GET "+api.PathLineage, s.h(s.lineage))
	handle("GET "+api.PathLogs, s.h(s.logs))
	handle("GET "+api.PathPlatformEvents, s.h(s.platformEvents))
	handle("GET "+api.PathOverview, s.h(s.overview))
	handle("GET "+api.PathStreams, s.h(s.streams))
	handle("GET "+api.PathStreams+"/{stream}/events", s.h(s.streamEvents))
	handle("GET /", ui.Handler())
}

// h adapts a handler that returns an error: a kit.Problem is written as
// is, store errors become 400 or 404, anything else 500.
func (s *Server) h(f func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := f(w, r)
		if err == nil {
			return
		}
		var p kit.Problem
		switch {
		case errors.As(err, &p):
		case errors.Is(err, store.ErrNotFound), errors.Is(err, browse.ErrNoStream):
			p = kit.Problem{Status: http.StatusNotFound, Detail: err.Error()}
		case errors.Is(err, store.ErrBadCursor), errors.Is(err, store.ErrBadLevel):
			p = kit.Problem{Status: http.StatusBadRequest, Detail: err.Error()}
		case errors.Is(err, context.Canceled):
			return
		default:
			s.cfg.Logger.Error("tracer API request failed", "path", r.URL.Path, kit.KeyError, err)
			p = kit.Problem{Status: http.StatusInternalServerError, Detail: "the tracer's index failed to answer; see its log"}
		}
		p.Instance = r.URL.RequestURI()
		kit.WriteProblem(w, p)
	})
}

func badRequest(format string, args ...any) error {
	return kit.Problem{Status: http.StatusBadRequest, Detail: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// limit reads ?limit=, default api.DefaultLimit, at most api.MaxLimit.
func limit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return api.DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > api.MaxLimit {
		return 0, badRequest("limit %q: want a number from 1 to %d", v, api.MaxLimit)
	}
	return n, nil
}

// following reports ?follow=1 (or true): answer as server-sent events.
func following(r *http.Request) bool {
	f := r.URL.Query().Get("follow")
	return f == "1" || f == "true"
}

// since reads ?since= as an RFC 3339 time or a duration back from now
// ("15m").
func since(r *http.Request) (time.Time, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, badRequest("since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (15m)", v)
}

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *Server) traces(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	n, err := limit(r)
	if err != nil {
		return err
	}
	t, err := since(r)
	if err != nil {
		return err
	}
	f := store.TraceFilter{Deployment: q.Get("deployment"), Function: q.Get("function"), Since: t, Limit: n, Cursor: q.Get("cursor")}
	switch st := q.Get("status"); st {
	case "":
	case api.StatusError:
		f.OnlyErrors = true
	default:
		return badRequest("status %q: only status=error filters traces", st)
	}
	page, err := s.cfg.Store.Traces(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, page)
}

func (s *Server) trace(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("traceId")
	if !traceIDPattern.MatchString(id) {
		return badRequest("trace id %q: want 32 lower-case hex digits, as in a traceparent", id)
	}
	tr, err := s.cfg.Store.Trace(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, tr)
}

func (s *Server) lineage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	stream, id := q.Get("stream"), q.Get("id")
	if stream == "" || id == "" {
		return badRequest("lineage needs stream= and id= (the event's stream and CloudEvents id)")
	}
	l, err := s.cfg.Store.Lineage(r.Context(), stream, id)
	if err != nil {
		return err
	}
	return writeJSON(w, l)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	n, err := limit(r)
	if err != nil {
		return err
	}
	t, err := since(r)
	if err != nil {
		return err
	}
	f := store.LogFilter{Deployment: q.Get("deployment"), Function: q.Get("function"), Since: t, Level: q.Get("level"),
		Q: q.Get("q"), Limit: n, Cursor: q.Get("cursor")}
	if following(r) {
		return follow(s, w, r, func(ctx context.Context, after int64) ([]api.Log, int64, error) {
			return s.cfg.Store.FollowLogs(ctx, f, after)
		})
	}
	page, err := s.cfg.Store.Logs(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, page)
}

func (s *Server) platformEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	n, err := limit(r)
	if err != nil {
		return err
	}
	t, err := since(r)
	if err != nil {
		return err
	}
	f := store.PEventFilter{Type: q.Get("type"), Resource: q.Get("resource"), Actor: q.Get("actor"),
		CorrelationID: q.Get("correlationid"), Since: t, Limit: n, Cursor: q.Get("cursor")}
	if following(r) {
		return follow(s, w, r, func(ctx context.Context, after int64) ([]api.PlatformEvent, int64, error) {
			return s.cfg.Store.FollowPlatformEvents(ctx, f, after)
		})
	}
	page, err := s.cfg.Store.PlatformEvents(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, page)
}

// overviewEvery is how often a followed overview is sent again.
const overviewEvery = 2 * time.Second

func (s *Server) overview(w http.ResponseWriter, r *http.Request) error {
	ov, err := s.cfg.Store.Overview(r.Context(), time.Now(), s.cfg.Lag)
	if err != nil {
		return err
	}
	if !following(r) {
		return writeJSON(w, ov)
	}
	// follow=1: the overview as a server-sent event every overviewEvery,
	// its figures being rates and counts over time rather than rows.
	fl, ok := w.(http.Flusher)
	if !ok {
		return errors.New("response writer cannot flush")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(overviewEvery)
	defer t.Stop()
	for {
		b, err := json.Marshal(ov)
		if err != nil {
			return nil
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return nil
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return nil
		case <-t.C:
		}
		if ov, err = s.cfg.Store.Overview(r.Context(), time.Now(), s.cfg.Lag); err != nil {
			if r.Context().Err() == nil {
				s.cfg.Logger.Warn("follow overview failed", kit.KeyError, err)
			}
			return nil
		}
	}
}

func (s *Server) streams(w http.ResponseWriter, r *http.Request) error {
	n, err := limit(r)
	if err != nil {
		return err
	}
	all, err := s.cfg.Browser.Streams(r.Context())
	if err != nil {
		return err
	}
	// Streams sort by name; the cursor is the last name of a page.
	after := r.URL.Query().Get("cursor")
	page := api.Page[api.Stream]{Items: []api.Stream{}}
	for _, st := range all {
		if after != "" && st.Stream <= after {
			continue
		}
		if len(page.Items) == n {
			page.Next = page.Items[n-1].Stream
			break
		}
		page.Items = append(page.Items, st)
	}
	return writeJSON(w, page)
}

// streamEvents reads ?limit= events of a partition from ?offset= (negative:
// back from the end; default -20); the cursor is the next offset.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	n, err := limit(r)
	if err != nil {
		return err
	}
	part, err := strconv.ParseInt(q.Get("partition"), 10, 32)
	if q.Get("partition") == "" {
		part, err = 0, nil
	}
	if err != nil || part < 0 {
		return badRequest("partition %q: want a partition number", q.Get("partition"))
	}
	from := q.Get("offset")
	if c := q.Get("cursor"); c != "" {
		from = c
	}
	offset := int64(-20)
	if from != "" {
		if offset, err = strconv.ParseInt(from, 10, 64); err != nil {
			return badRequest("offset %q: want an offset, or a negative count back from the end", from)
		}
	}
	evs, err := s.cfg.Browser.Read(r.Context(), r.PathValue("stream"), int32(part), offset, n)
	if err != nil {
		return err
	}
	page := api.Page[api.StreamEvent]{Items: evs}
	if len(evs) == n {
		page.Next = strconv.FormatInt(evs[n-1].Offset+1, 10)
	}
	return writeJSON(w, page)
}

// follow streams items as server-sent events (one "data:" JSON line per
// item): first the latest matching ones, then each one as the index
// stores it, until the client goes away.
func follow[T any](s *Server, w http.ResponseWriter, r *http.Request, next func(context.Context, int64) ([]T, int64, error)) error {
	ctx := r.Context()
	// Subscribe before reading, so a commit between the read and the
	// wait is not missed.
	changed := s.cfg.Store.Changed()
	// Check the filter before committing to a stream, so a bad one is a
	// 400, not an event stream that ends at once.
	items, after, err := next(ctx, -1)
	if err != nil {
		return err
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		return errors.New("response writer cannot flush")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": following\n\n")
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return nil
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return nil
			}
		}
		fl.Flush()
		items = nil
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			continue
		case <-changed:
		}
		changed = s.cfg.Store.Changed()
		if items, after, err = next(ctx, after); err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("follow failed", "path", r.URL.Path, kit.KeyError, err)
			}
			return nil
		}
	}
}

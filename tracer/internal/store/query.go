package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/buttercompass/butter/tracer/api"
)

// Errors of queries, for the API to answer 4xx.
var (
	// ErrBadCursor means a cursor that no page of this list handed out.
	ErrBadCursor = errors.New("cursor is not one this list handed out; pass back the next value of the previous page unchanged")
	// ErrNotFound means nothing indexed matches.
	ErrNotFound = errors.New("not found in the tracer's index")
)

// cursor encodes the sort key of the last item of a page.
func cursor(key ...any) string {
	b, _ := json.Marshal(key)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseCursor decodes a cursor into ptrs; "" leaves them as they are and
// reports false.
func parseCursor(c string, ptrs ...any) (bool, error) {
	if c == "" {
		return false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return false, ErrBadCursor
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != len(ptrs) {
		return false, ErrBadCursor
	}
	for i, p := range ptrs {
		if err := json.Unmarshal(raw[i], p); err != nil {
			return false, ErrBadCursor
		}
	}
	return true, nil
}

// where builds a WHERE clause from conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func ns(t time.Time) int64 { return t.UnixNano() }

func fromNs(n int64) time.Time { return time.Unix(0, n).UTC() }

func durMs(startNs, endNs int64) float64 { return float64(endNs-startNs) / float64(time.Millisecond) }

// TraceFilter selects traces.
type TraceFilter struct {
	Deployment, Function string
	OnlyErrors           bool
	Since                time.Time
	Limit                int
	Cursor               string
}

// Traces lists trace summaries, latest start first.
func (s *Store) Traces(ctx context.Context, f TraceFilter) (api.Page[api.TraceSummary], error) {
	page := api.Page[api.TraceSummary]{Items: []api.TraceSummary{}}
	var w where
	var cStart int64
	var cID string
	if ok, err := parseCursor(f.Cursor, &cStart, &cID); err != nil {
		return page, err
	} else if ok {
		w.add("(t.start_ns, t.trace_id) < (?, ?)", cStart, cID)
	}
	if !f.Since.IsZero() {
		w.add("t.start_ns >= ?", ns(f.Since))
	}
	if f.OnlyErrors {
		w.add("t.errors > 0")
	}
	if f.Deployment != "" || f.Function != "" {
		sub := "EXISTS (SELECT 1 FROM trace_tags g WHERE g.trace_id = t.trace_id"
		var args []any
		if f.Deployment != "" {
			sub += " AND g.deployment = ?"
			args = append(args, f.Deployment)
		}
		if f.Function != "" {
			sub += " AND g.function = ?"
			args = append(args, f.Function)
		}
		w.add(sub+")", args...)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT t.trace_id, t.start_ns, t.end_ns, t.root, t.root_service, t.spans, t.errors
		FROM traces t`+w.String()+` ORDER BY t.start_ns DESC, t.trace_id DESC LIMIT ?`, append(w.args, f.Limit+1)...)
	if err != nil {
		return page, fmt.Errorf("list traces: %w", err)
	}
	var starts []int64
	for rows.Next() {
		var t api.TraceSummary
		var start, end int64
		if err := rows.Scan(&t.TraceID, &start, &end, &t.Root, &t.RootService, &t.Spans, &t.Errors); err != nil {
			rows.Close()
			return page, fmt.Errorf("list traces: %w", err)
		}
		t.Start, t.DurationMs = fromNs(start), durMs(start, end)
		t.Status = api.StatusOK
		if t.Errors > 0 {
			t.Status = api.StatusError
		}
		page.Items = append(page.Items, t)
		starts = append(starts, start)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("list traces: %w", err)
	}
	if len(page.Items) > f.Limit {
		page.Items = page.Items[:f.Limit]
		last := page.Items[f.Limit-1]
		page.Next = cursor(starts[f.Limit-1], last.TraceID)
	}
	for i := range page.Items {
		it := &page.Items[i]
		svcs, err := s.strings(ctx, `SELECT DISTINCT service FROM trace_tags WHERE trace_id = ? ORDER BY service`, it.TraceID)
		if err != nil {
			return page, fmt.Errorf("list traces: %w", err)
		}
		it.Services = svcs
		if it.Root == "" {
			// The root is elsewhere (a client sent a traceparent) or not
			// here yet: name the trace by its earliest span whose parent
			// is missing.
			err := s.db.QueryRowContext(ctx, `SELECT s.name, s.service FROM spans s WHERE s.trace_id = ?
				AND NOT EXISTS (SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_id)
				ORDER BY s.start_ns LIMIT 1`, it.TraceID).Scan(&it.Root, &it.RootService)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return page, fmt.Errorf("list traces: %w", err)
			}
		}
	}
	return page, nil
}

func (s *Store) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Trace returns a trace's spans by start time.
func (s *Store) Trace(ctx context.Context, traceID string) (api.Trace, error) {
	tr := api.Trace{TraceID: traceID, Spans: []api.Span{}}
	rows, err := s.db.QueryContext(ctx, `SELECT span_id, parent_id, service, name, kind, start_ns, end_ns, status, status_msg,
		deployment, function, attrs, events FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id`, traceID)
	if err != nil {
		return tr, fmt.Errorf("read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var sp api.Span
		var start, end int64
		var attrs, events string
		if err := rows.Scan(&sp.SpanID, &sp.ParentSpanID, &sp.Service, &sp.Name, &sp.Kind, &start, &end, &sp.Status,
			&sp.StatusMessage, &sp.Deployment, &sp.Function, &attrs, &events); err != nil {
			return tr, fmt.Errorf("read trace %s: %w", traceID, err)
		}
		sp.Start, sp.DurationMs = fromNs(start), durMs(start, end)
		_ = json.Unmarshal([]byte(attrs), &sp.Attributes)
		_ = json.Unmarshal([]byte(events), &sp.Events)
		tr.Spans = append(tr.Spans, sp)
	}
	if err := rows.Err(); err != nil {
		return tr, fmt.Errorf("read trace %s: %w", traceID, err)
	}
	if len(tr.Spans) == 0 {
		return tr, fmt.Errorf("trace %s: %w", traceID, ErrNotFound)
	}
	return tr, nil
}

const eventCols = `stream, part, off, id, type, source, subject, time_ns, causation, correlation, trace_id, function, dlq, dlq_function, batch`

func scanEvents(rows *sql.Rows) ([]api.Event, error) {
	defer rows.Close()
	var out []api.Event
	for rows.Next() {
		var e api.Event
		var t int64
		var batch string
		if err := rows.Scan(&e.Stream, &e.Partition, &e.Offset, &e.ID, &e.Type, &e.Source, &e.Subject, &t,
			&e.CausationID, &e.CorrelationID, &e.TraceID, &e.Function, &e.DeadLetter, &e.DeadLetterFunction, &batch); err != nil {
			return nil, err
		}
		if batch != "" {
			_ = json.Unmarshal([]byte(batch), &e.BatchIDs)
		}
		e.Time = fromNs(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *Store) events(ctx context.Context, q string, args ...any) ([]api.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE `+q, args...)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// maxLineage bounds the events of one lineage answer, for chains that fan
// out without end.
const maxLineage = 1000

// Lineage returns the event id on stream with its ancestors and
// descendants.
func (s *Store) Lineage(ctx context.Context, stream, id string) (api.Lineage, error) {
	l := api.Lineage{Ancestors: []api.Event{}, Descendants: []api.Event{}}
	evs, err := s.events(ctx, `stream = ? AND id = ? ORDER BY dlq <> '', part, off LIMIT 1`, stream, id)
	if err != nil {
		return l, fmt.Errorf("read event %s on %s: %w", id, stream, err)
	}
	if len(evs) == 0 {
		return l, fmt.Errorf("event %s on stream %s: %w", id, stream, ErrNotFound)
	}
	l.Event = evs[0]
	seen := map[string]bool{id: true}
	for cause := l.Event.CausationID; cause != "" && !seen[cause] && len(l.Ancestors) < maxLineage; {
		seen[cause] = true
		// An id may sit on several streams (a dead letter keeps its id):
		// the original, earliest record is the ancestor.
		up, err := s.events(ctx, `id = ? ORDER BY dlq <> '', time_ns, stream, part, off LIMIT 1`, cause)
		if err != nil {
			return l, fmt.Errorf("read ancestors of %s: %w", id, err)
		}
		if len(up) == 0 {
			break
		}
		l.Ancestors = append(l.Ancestors, up[0])
		cause = up[0].CausationID
	}
	type pos struct {
		stream string
		part   int32
		off    int64
	}
	have := map[pos]bool{{l.Event.Stream, l.Event.Partition, l.Event.Offset}: true}
	add := func(evs []api.Event) []string {
		var next []string
		for _, e := range evs {
			p := pos{e.Stream, e.Partition, e.Offset}
			if have[p] || len(l.Descendants) >= maxLineage {
				continue
			}
			have[p] = true
			l.Descendants = append(l.Descendants, e)
			if !seen[e.ID] {
				seen[e.ID] = true
				next = append(next, e.ID)
			}
		}
		return next
	}
	// Dead letters of the event itself: the same id on another stream.
	copies, err := s.events(ctx, `id = ? AND dlq <> '' ORDER BY time_ns, stream, part, off`, id)
	if err != nil {
		return l, fmt.Errorf("read dead letters of %s: %w", id, err)
	}
	add(copies)
	frontier := []string{id}
	for len(frontier) > 0 && len(l.Descendants) < maxLineage {
		var next []string
		for _, parent := range frontier {
			kids, err := s.events(ctx, `(causation = ? OR (stream, part, off) IN (SELECT stream, part, off FROM causes WHERE cause = ?))
				ORDER BY time_ns, stream, part, off`, parent, parent)
			if err != nil {
				return l, fmt.Errorf("read descendants of %s: %w", id, err)
			}
			next = append(next, add(kids)...)
		}
		frontier = next
	}
	return l, nil
}

// levels ranks log levels for the minimum-level filter.
var levels = map[string]int{"debug": 0, "info": 1, "warn": 2, "error": 3}

// ErrBadLevel is returned for a level filter that is not a log level.
var ErrBadLevel = errors.New("level must be debug, info, warn or error")

// LogFilter selects log lines.
type LogFilter struct {
	Deployment, Function string
	Since                time.Time
	// Level is the lowest level shown: warn shows warn and error.
	Level string
	// Q is text the message must contain.
	Q      string
	Limit  int
	Cursor string
}

func (f LogFilter) where() (*where, error) {
	w := &where{}
	if f.Deployment != "" {
		w.add("deployment = ?", f.Deployment)
	}
	if f.Function != "" {
		w.add("function = ?", f.Function)
	}
	if !f.Since.IsZero() {
		w.add("time_ns >= ?", ns(f.Since))
	}
	if f.Level != "" {
		min, ok := levels[f.Level]
		if !ok {
			return nil, ErrBadLevel
		}
		var in []string
		for l, r := range levels {
			if r >= min {
				in = append(in, "'"+l+"'")
			}
		}
		w.add("level IN (" + strings.Join(in, ",") + ")")
	}
	if f.Q != "" {
		w.add(`message LIKE ? ESCAPE '\'`, "%"+likeEscape(f.Q)+"%")
	}
	return w, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

const logCols = `rowid, time_ns, part, off, deployment, function, instance, level, message, origin, event_id, trace_id`

type logRow struct {
	api.Log
	rowid, timeNs int64
	part          int32
	off           int64
}

func (s *Store) logs(ctx context.Context, q string, args ...any) ([]logRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+logCols+` FROM logs`+q, args...)
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	defer rows.Close()
	var out []logRow
	for rows.Next() {
		var r logRow
		if err := rows.Scan(&r.rowid, &r.timeNs, &r.part, &r.off, &r.Deployment, &r.Function, &r.Instance, &r.Level,
			&r.Message, &r.Origin, &r.EventID, &r.TraceID); err != nil {
			return nil, fmt.Errorf("read logs: %w", err)
		}
		r.Time = fromNs(r.timeNs)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Logs lists log lines, latest first.
func (s *Store) Logs(ctx context.Context, f LogFilter) (api.Page[api.Log], error) {
	w, err := f.where()
	if err != nil {
		return api.Page[api.Log]{Items: []api.Log{}}, err
	}
	return latestFirst(ctx, s.logs, w, f.Cursor, f.Limit)
}

// FollowLogs returns the lines matching f stored after position after
// (negative: the latest f.Limit lines), oldest first, and the position to
// pass next time.
func (s *Store) FollowLogs(ctx context.Context, f LogFilter, after int64) ([]api.Log, int64, error) {
	w, err := f.where()
	if err != nil {
		return nil, after, err
	}
	return follow(ctx, s, s.logs, "logs", w, after, f.Limit)
}

// PEventFilter selects platform events.
type PEventFilter struct {
	// Type matches the type and its outcomes: deployment.create also
	// selects deployment.create.completed and .failed.
	Type, Resource, Actor, CorrelationID string
	Since                                time.Time
	Limit                                int
	Cursor                               string
}

func (f PEventFilter) where() *where {
	w := &where{}
	if f.Type != "" {
		w.add("(type = ? OR type LIKE ? ESCAPE '\\')", f.Type, likeEscape(f.Type)+".%")
	}
	if f.Resource != "" {
		w.add("resource = ?", f.Resource)
	}
	if f.Actor != "" {
		w.add("actor = ?", f.Actor)
	}
	if f.CorrelationID != "" {
		w.add("correlation = ?", f.CorrelationID)
	}
	if !f.Since.IsZero() {
		w.add("time_ns >= ?", ns(f.Since))
	}
	return w
}

type peRow struct {
	api.PlatformEvent
	rowid, timeNs int64
	part          int32
}

func (s *Store) pevents(ctx context.Context, q string, args ...any) ([]peRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT rowid, part, off, id, type, source, time_ns, resource, actor, category, severity,
		causation, correlation, data FROM pevents`+q, args...)
	if err != nil {
		return nil, fmt.Errorf("read platform events: %w", err)
	}
	defer rows.Close()
	var out []peRow
	for rows.Next() {
		var r peRow
		var data string
		if err := rows.Scan(&r.rowid, &r.part, &r.Offset, &r.ID, &r.Type, &r.Source, &r.timeNs, &r.Resource, &r.Actor,
			&r.Category, &r.Severity, &r.CausationID, &r.CorrelationID, &data); err != nil {
			return nil, fmt.Errorf("read platform events: %w", err)
		}
		r.Time = fromNs(r.timeNs)
		if data != "" && json.Valid([]byte(data)) {
			r.Data = json.RawMessage(data)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PlatformEvents lists platform events, latest first.
func (s *Store) PlatformEvents(ctx context.Context, f PEventFilter) (api.Page[api.PlatformEvent], error) {
	return latestFirst(ctx, s.pevents, f.where(), f.Cursor, f.Limit)
}

// FollowPlatformEvents is FollowLogs for platform events.
func (s *Store) FollowPlatformEvents(ctx context.Context, f PEventFilter, after int64) ([]api.PlatformEvent, int64, error) {
	return follow(ctx, s, s.pevents, "pevents", f.where(), after, f.Limit)
}

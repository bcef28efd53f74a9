package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/tracer/api"
)

// Batch is what one poll of the topics adds to the index, with the next
// offset of every partition it read.
type Batch struct {
	Spans          []SpanRow
	Logs           []LogRow
	Events         []api.Event
	PlatformEvents []PEventRow
	Heartbeats     []obs.Heartbeat
	Deployments    []DeploymentRow
	// Offsets is the next offset to read, by topic and partition.
	Offsets map[string]map[int32]int64
}

// Empty reports whether b changes nothing.
func (b *Batch) Empty() bool { return len(b.Offsets) == 0 }

// SpanRow is a span and, when the decoder wrote them, its attributes and
// events as the JSON the index stores ("" to encode them from Span).
type SpanRow struct {
	api.Span
	AttrsJSON, EventsJSON string
}

// LogRow is a log line and where it was read.
type LogRow struct {
	Topic     string
	Partition int32
	Offset    int64
	obs.Log
}

// PEventRow is a platform event and its partition.
type PEventRow struct {
	Partition int32
	api.PlatformEvent
}

// DeploymentRow is a deployment's latest record; Deleted for a tombstone.
type DeploymentRow struct {
	Name      string
	Deleted   bool
	Version   string
	Actor     string
	Updated   time.Time
	Functions []api.FunctionOverview // names and bindings only
}

// Apply adds b to the index in one transaction, offsets included.
func (s *Store) Apply(ctx context.Context, b *Batch) error {
	if b.Empty() {
		return nil
	}
	// The commit must not be cut short by a shutdown: the offsets go with
	// the rows either way, but a finished batch is not read twice.
	ctx = context.WithoutCancel(ctx)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		exec, done := s.preparer(ctx, tx)
		defer done()
		if err := insertSpans(exec, b.Spans); err != nil {
			return err
		}
		for _, l := range b.Logs {
			if _, err := exec(`INSERT OR IGNORE INTO logs
				(topic, part, off, time_ns, deployment, function, instance, level, message, origin, event_id, trace_id)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
				l.Topic, l.Partition, l.Offset, l.Time.UnixNano(), l.Deployment, l.Function, l.Instance,
				l.Level, l.Message, l.Origin, l.EventID, l.TraceID); err != nil {
				return fmt.Errorf("index log line: %w", err)
			}
		}
		for _, e := range b.Events {
			if _, err := exec(`INSERT OR IGNORE INTO events
				(stream, part, off, id, type, source, subject, time_ns, causation, correlation, trace_id, function, dlq, dlq_function, batch)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
				e.Stream, e.Partition, e.Offset, e.ID, e.Type, e.Source, e.Subject, e.Time.UnixNano(),
				e.CausationID, e.CorrelationID, e.TraceID, e.Function, e.DeadLetter, e.DeadLetterFunction, batchJSON(e.BatchIDs)); err != nil {
				return fmt.Errorf("index event: %w", err)
			}
			// A batch's result descends from every event of the batch,
			// not only from the first its causationid names.
			for _, id := range e.BatchIDs {
				if id == e.CausationID {
					continue
				}
				if _, err := exec(`INSERT OR IGNORE INTO causes (cause, stream, part, off) VALUES (?,?,?,?)`,
					id, e.Stream, e.Partition, e.Offset); err != nil {
					return fmt.Errorf("index batch cause: %w", err)
				}
			}
		}
		for _, e := range b.PlatformEvents {
			if _, err := exec(`INSERT OR IGNORE INTO pevents
				(part, off, id, type, source, time_ns, resource, actor, category, severity, causation, correlation, data)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
				e.Partition, e.Offset, e.ID, e.Type, e.Source, e.Time.UnixNano(), e.Resource, e.Actor,
				e.Category, e.Severity, e.CausationID, e.CorrelationID, string(e.Data)); err != nil {
				return fmt.Errorf("index platform event: %w", err)
			}
		}
		for _, h := range b.Heartbeats {
			if _, err := exec(`INSERT INTO instances
				(deployment, function, instance, time_ns, in_flight, processed, errors, p95, stopping, prev_time_ns, prev_processed)
				VALUES (?,?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT (deployment, function, instance) DO UPDATE SET
					prev_time_ns = instances.time_ns, prev_processed = instances.processed,
					time_ns = excluded.time_ns, in_flight = excluded.in_flight, processed = excluded.processed,
					errors = excluded.errors, p95 = excluded.p95, stopping = excluded.stopping
				WHERE excluded.time_ns > instances.time_ns`,
				h.Deployment, h.Function, h.Instance, h.Time.UnixNano(), h.InFlight, h.Processed, h.Errors,
				h.P95Ms, h.Stopping, h.Time.UnixNano(), h.Processed); err != nil {
				return fmt.Errorf("index heartbeat: %w", err)
			}
		}
		for _, d := range b.Deployments {
			if d.Deleted {
				if _, err := exec(`DELETE FROM deployments WHERE name = ?`, d.Name); err != nil {
					return fmt.Errorf("index deployment deletion: %w", err)
				}
				continue
			}
			fns, err := json.Marshal(d.Functions)
			if err != nil {
				return fmt.Errorf("index deployment %s: %w", d.Name, err)
			}
			if _, err := exec(`INSERT OR REPLACE INTO deployments (name, version, actor, updated_ns, functions)
				VALUES (?,?,?,?,?)`, d.Name, d.Version, d.Actor, d.Updated.UnixNano(), string(fns)); err != nil {
				return fmt.Errorf("index deployment %s: %w", d.Name, err)
			}
		}
		for t, ps := range b.Offsets {
			for p, next := range ps {
				if _, err := exec(`INSERT INTO offsets (topic, part, next) VALUES (?,?,?)
					ON CONFLICT (topic, part) DO UPDATE SET next = excluded.next`, t, p, next); err != nil {
					return fmt.Errorf("store offset of %s/%d: %w", t, p, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply batch to tracer index: %w", err)
	}
	s.notify()
	return nil
}

func batchJSON(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	b, _ := json.Marshal(ids)
	return string(b)
}

// traceSum is what a batch adds to a trace's summary.
type traceSum struct {
	start, end        int64
	root, rootService string
	spans, errors     int
}

type traceTag struct{ trace, service, deployment, function string }

// insertSpans adds spans and folds them into their traces' summaries and
// tags, once: a span already indexed changes nothing. The summaries and
// tags are summed in memory first, so a batch writes each trace's row
// and each tag once, not once per span.
func insertSpans(exec execFunc, spans []SpanRow) error {
	if len(spans) == 0 {
		return nil
	}
	sums := map[string]*traceSum{}
	var order []string
	tags := map[traceTag]bool{}
	var tagOrder []traceTag
	for i := range spans {
		sp := &spans[i].Span
		start := sp.Start.UnixNano()
		end := start + int64(sp.DurationMs*float64(time.Millisecond))
		ok, err := insertSpan(exec, &spans[i], start, end)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		t := sums[sp.TraceID]
		if t == nil {
			t = &traceSum{start: start, end: end}
			sums[sp.TraceID] = t
			order = append(order, sp.TraceID)
		}
		t.start, t.end = min(t.start, start), max(t.end, end)
		if sp.ParentSpanID == "" {
			t.root, t.rootService = sp.Name, sp.Service
		}
		t.spans++
		if sp.Status == api.StatusError {
			t.errors++
		}
		tag := traceTag{sp.TraceID, sp.Service, sp.Deployment, sp.Function}
		if !tags[tag] {
			tags[tag] = true
			tagOrder = append(tagOrder, tag)
		}
	}
	for _, id := range order {
		t := sums[id]
		if _, err := exec(`INSERT INTO traces (trace_id, start_ns, end_ns, root, root_service, spans, errors)
			VALUES (?,?,?,?,?,?,?)
			ON CONFLICT (trace_id) DO UPDATE SET
				start_ns = min(traces.start_ns, excluded.start_ns), end_ns = max(traces.end_ns, excluded.end_ns),
				root = CASE WHEN excluded.root <> '' THEN excluded.root ELSE traces.root END,
				root_service = CASE WHEN excluded.root <> '' THEN excluded.root_service ELSE traces.root_service END,
				spans = traces.spans + excluded.spans, errors = traces.errors + excluded.errors`,
			id, t.start, t.end, t.root, t.rootService, t.spans, t.errors); err != nil {
			return fmt.Errorf("index trace summary: %w", err)
		}
	}
	for _, g := range tagOrder {
		if _, err := exec(`INSERT OR IGNORE INTO trace_tags (trace_id, service, deployment, function) VALUES (?,?,?,?)`,
			g.trace, g.service, g.deployment, g.function); err != nil {
			return fmt.Errorf("index trace tags: %w", err)
		}
	}
	return nil
}

// insertSpan adds a span; false if it was already indexed.
func insertSpan(exec execFunc, row *SpanRow, start, end int64) (bool, error) {
	sp := &row.Span
	attrs, events := row.AttrsJSON, row.EventsJSON
	if attrs == "" {
		b, err := json.Marshal(sp.Attributes)
		if err != nil {
			return false, fmt.Errorf("encode span attributes: %w", err)
		}
		attrs = string(b)
	}
	if events == "" {
		b, err := json.Marshal(sp.Events)
		if err != nil {
			return false, fmt.Errorf("encode span events: %w", err)
		}
		events = string(b)
	}
	res, err := exec(`INSERT OR IGNORE INTO spans
		(trace_id, span_id, parent_id, service, name, kind, start_ns, end_ns, status, status_msg, deployment, function, attrs, events)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		sp.TraceID, sp.SpanID, sp.ParentSpanID, sp.Service, sp.Name, sp.Kind, start, end, sp.Status,
		sp.StatusMessage, sp.Deployment, sp.Function, attrs, events)
	if err != nil {
		return false, fmt.Errorf("index span: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Retention says how long each kind of row is kept: the retention of the
// topic it came from, so the index never answers what the topics forgot.
type Retention struct {
	Spans, Logs, Events, PlatformEvents, Instances time.Duration
}

// Prune deletes rows older than r allows (a negative or zero duration
// keeps them forever).
func (s *Store) Prune(ctx context.Context, now time.Time, r Retention) error {
	cut := func(d time.Duration) int64 {
		if d <= 0 {
			return -1 << 63
		}
		return now.Add(-d).UnixNano()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stmts := []struct {
			q   string
			arg int64
		}{
			// Spans go with their trace (by its primary key), so they
			// need no index of their own on time.
			{`DELETE FROM spans WHERE trace_id IN (SELECT trace_id FROM traces WHERE end_ns < ?)`, cut(r.Spans)},
			{`DELETE FROM trace_tags WHERE trace_id IN (SELECT trace_id FROM traces WHERE end_ns < ?)`, cut(r.Spans)},
			{`DELETE FROM traces WHERE end_ns < ?`, cut(r.Spans)},
			{`DELETE FROM logs WHERE time_ns < ?`, cut(r.Logs)},
			{`DELETE FROM causes WHERE (stream, part, off) IN (SELECT stream, part, off FROM events WHERE time_ns < ?)`, cut(r.Events)},
			{`DELETE FROM events WHERE time_ns < ?`, cut(r.Events)},
			{`DELETE FROM pevents WHERE time_ns < ?`, cut(r.PlatformEvents)},
			{`DELETE FROM instances WHERE time_ns < ?`, cut(r.Instances)},
		}
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, st.q, st.arg); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune tracer index: %w", err)
	}
	return nil
}

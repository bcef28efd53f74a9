package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/tracer/api"
)

// TestPruneFollowsRetention: rows older than their topic's retention go,
// newer ones and the offsets stay.
func TestPruneFollowsRetention(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	old, recent := now.Add(-10*24*time.Hour), now.Add(-time.Hour)
	b := spanBatch(0, 3)
	for i := range b.Spans {
		b.Spans[i].Start = old
	}
	b.Spans = append(b.Spans, spanBatch(3, 3).Spans...)
	b.Logs = []LogRow{
		{Topic: "_butter.logs", Offset: 0, Log: obs.Log{Deployment: "d", Level: "info", Message: "old", Time: old}},
		{Topic: "_butter.logs", Offset: 1, Log: obs.Log{Deployment: "d", Level: "info", Message: "recent", Time: recent}},
	}
	b.Events = []api.Event{{Stream: "orders", Offset: 0, ID: "a", Time: old}, {Stream: "orders", Offset: 1, ID: "b", Time: recent}}
	if err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Prune(ctx, now, Retention{Spans: 3 * 24 * time.Hour, Logs: 7 * 24 * time.Hour, Events: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	traces, err := s.Traces(ctx, TraceFilter{Limit: 10})
	if err != nil || len(traces.Items) != 1 {
		t.Errorf("traces after prune = %+v %v, want only the recent one", traces.Items, err)
	}
	if _, err := s.Trace(ctx, b.Spans[0].TraceID); !errors.Is(err, ErrNotFound) {
		t.Errorf("old trace: %v, want it pruned", err)
	}
	logs, _ := s.Logs(ctx, LogFilter{Limit: 10})
	if len(logs.Items) != 1 || logs.Items[0].Message != "recent" {
		t.Errorf("logs after prune = %+v", logs.Items)
	}
	if _, err := s.Lineage(ctx, "orders", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old event: %v, want it pruned", err)
	}
	offs, _ := s.Offsets(ctx)
	if offs["_butter.traces"][0] != 3 {
		t.Errorf("offsets after prune = %v, want them kept", offs)
	}
	if _, err := s.Logs(ctx, LogFilter{Limit: 10, Cursor: "bm90IGEgY3Vyc29y"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a foreign cursor: %v, want ErrBadCursor", err)
	}
}

// TestOpenRebuildsAnIndexOfAnotherVersion: an index of another schema
// version is dropped (it is a cache) instead of failing the start.
func TestOpenRebuildsAnIndexOfAnotherVersion(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(context.Background(), spanBatch(0, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if offs, _ := s.Offsets(context.Background()); len(offs) != 0 {
		t.Errorf("offsets after reopening an index of version 1: %v, want none (rebuilt)", offs)
	}
}

package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/buttercompass/butter/tracer/api"
)

// listed is a stored row that lists and follows can page through: its
// rowid (the order it was stored in) and the (time, partition, offset) a
// list is ordered by, latest first.
type listed[T any] interface {
	rowID() int64
	position() (timeNs int64, part int32, off int64)
	item() T
}

func (r logRow) rowID() int64                    { return r.rowid }
func (r logRow) position() (int64, int32, int64) { return r.timeNs, r.part, r.off }
func (r logRow) item() api.Log                   { return r.Log }
func (r peRow) rowID() int64                     { return r.rowid }
func (r peRow) position() (int64, int32, int64)  { return r.timeNs, r.part, r.Offset }
func (r peRow) item() api.PlatformEvent          { return r.PlatformEvent }

// query reads the rows of one table for a WHERE/ORDER/LIMIT tail.
type query[R any] func(ctx context.Context, q string, args ...any) ([]R, error)

// latestFirst lists the rows matching w, latest first, limit to a page,
// from the cursor of the previous page.
func latestFirst[R listed[T], T any](ctx context.Context, read query[R], w *where, cur string, limit int) (api.Page[T], error) {
	page := api.Page[T]{Items: []T{}}
	var ct, co int64
	var cp int32
	if ok, err := parseCursor(cur, &ct, &cp, &co); err != nil {
		return page, err
	} else if ok {
		w.add("(time_ns, part, off) < (?, ?, ?)", ct, cp, co)
	}
	rows, err := read(ctx, w.String()+` ORDER BY time_ns DESC, part DESC, off DESC LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return page, err
	}
	for i, r := range rows {
		if i == limit {
			page.Next = cursor(rows[i-1].position())
			break
		}
		page.Items = append(page.Items, r.item())
	}
	return page, nil
}

// following returns the rows of table matching w stored after position
// after (negative: the latest limit rows), oldest first, and the position
// to pass next time.
func (s *Store) following(ctx context.Context, table string, w *where, after int64, limit int) (string, []any, int64, error) {
	if after >= 0 {
		w.add("rowid > ?", after)
		return w.String() + ` ORDER BY rowid LIMIT ?`, append(w.args, api.MaxLimit), after, nil
	}
	// The tail: the latest rows, then everything stored later.
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM `+table).Scan(&after); err != nil {
		return "", nil, 0, fmt.Errorf("read %s: %w", table, err)
	}
	w.add("rowid <= ?", after)
	return w.String() + ` ORDER BY rowid DESC LIMIT ?`, append(w.args, limit), after, nil
}

// follow runs following's query with read.
func follow[R listed[T], T any](ctx context.Context, s *Store, read query[R], table string, w *where, after int64, limit int) ([]T, int64, error) {
	tail := after < 0
	q, args, after, err := s.following(ctx, table, w, after, limit)
	if err != nil {
		return nil, after, err
	}
	rows, err := read(ctx, q, args...)
	if err != nil {
		return nil, after, err
	}
	if tail {
		slices.Reverse(rows)
	} else if len(rows) > 0 {
		after = rows[len(rows)-1].rowID()
	}
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = r.item()
	}
	return out, after, nil
}

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/tracer/api"
)

// Windows of the overview's figures.
const (
	// liveAfter is how long after its last heartbeat an instance counts as
	// running: three missed beats.
	liveAfter = 3 * obs.HeartbeatInterval
	// rateWindow is the window of EventsOutPerSec.
	rateWindow = time.Minute
	// latencyWindow is the window of the invoke-time percentiles.
	latencyWindow = 15 * time.Minute
)

// Lag returns the consumer lag of functions named deployment/function,
// -1 (or absent) when unknown.
type Lag func(ctx context.Context, functions []string) map[string]int64

// Overview returns every deployment and what its functions are doing at
// now; lag may be nil.
func (s *Store) Overview(ctx context.Context, now time.Time, lag Lag) (api.Overview, error) {
	ov := api.Overview{Time: now.UTC(), Deployments: []api.DeploymentOverview{}}
	rows, err := s.db.QueryContext(ctx, `SELECT name, version, actor, updated_ns, functions FROM deployments ORDER BY name`)
	if err != nil {
		return ov, fmt.Errorf("read deployments: %w", err)
	}
	for rows.Next() {
		var d api.DeploymentOverview
		var updated int64
		var fns string
		if err := rows.Scan(&d.Name, &d.Version, &d.Actor, &updated, &fns); err != nil {
			rows.Close()
			return ov, fmt.Errorf("read deployments: %w", err)
		}
		d.Updated = fromNs(updated)
		_ = json.Unmarshal([]byte(fns), &d.Functions)
		if d.Functions == nil {
			d.Functions = []api.FunctionOverview{}
		}
		ov.Deployments = append(ov.Deployments, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ov, fmt.Errorf("read deployments: %w", err)
	}
	var fns []string
	for _, d := range ov.Deployments {
		for _, f := range d.Functions {
			fns = append(fns, d.Name+"/"+f.Name)
		}
	}
	var lags map[string]int64
	if lag != nil && len(fns) > 0 {
		lags = lag(ctx, fns)
	}
	for i := range ov.Deployments {
		d := &ov.Deployments[i]
		for j := range d.Functions {
			f := &d.Functions[j]
			if err := s.functionFigures(ctx, now, d.Name, f); err != nil {
				return ov, err
			}
			f.Lag = -1
			if l, ok := lags[d.Name+"/"+f.Name]; ok {
				f.Lag = l
			}
		}
	}
	return ov, nil
}

func (s *Store) functionFigures(ctx context.Context, now time.Time, dep string, f *api.FunctionOverview) error {
	rows, err := s.db.QueryContext(ctx, `SELECT time_ns, processed, errors, p95, prev_time_ns, prev_processed FROM instances
		WHERE deployment = ? AND function = ? AND stopping = 0 AND time_ns >= ?`, dep, f.Name, ns(now.Add(-liveAfter)))
	if err != nil {
		return fmt.Errorf("read instances of %s/%s: %w", dep, f.Name, err)
	}
	for rows.Next() {
		var t, processed, errs, pt, pp int64
		var p95 float64
		if err := rows.Scan(&t, &processed, &errs, &p95, &pt, &pp); err != nil {
			rows.Close()
			return fmt.Errorf("read instances of %s/%s: %w", dep, f.Name, err)
		}
		f.Replicas++
		f.Errors += errs
		f.P95Ms = math.Max(f.P95Ms, p95)
		if t > pt && processed >= pp {
			f.EventsInPerSec += float64(processed-pp) / time.Duration(t-pt).Seconds()
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read instances of %s/%s: %w", dep, f.Name, err)
	}
	fn := dep + "/" + f.Name
	var out int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE function = ? AND function <> '' AND time_ns >= ? AND dlq = ''`,
		fn, ns(now.Add(-rateWindow))).Scan(&out); err != nil {
		return fmt.Errorf("count events of %s: %w", fn, err)
	}
	f.EventsOutPerSec = float64(out) / rateWindow.Seconds()
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE dlq_function = ? AND dlq_function <> ''`, fn).Scan(&f.DeadLetters); err != nil {
		return fmt.Errorf("count dead letters of %s: %w", fn, err)
	}
	if f.DeadLetters > 0 {
		_ = s.db.QueryRowContext(ctx, `SELECT dlq FROM events WHERE dlq_function = ? AND dlq_function <> '' ORDER BY time_ns DESC LIMIT 1`, fn).Scan(&f.LastDeadLetter)
	}
	drows, err := s.db.QueryContext(ctx, `SELECT end_ns - start_ns FROM spans WHERE deployment = ? AND function = ?
		AND start_ns >= ? AND name LIKE 'invoke %' LIMIT 100000`, dep, f.Name, ns(now.Add(-latencyWindow)))
	if err != nil {
		return fmt.Errorf("read invoke spans of %s: %w", fn, err)
	}
	var ds []int64
	for drows.Next() {
		var d int64
		if err := drows.Scan(&d); err != nil {
			drows.Close()
			return fmt.Errorf("read invoke spans of %s: %w", fn, err)
		}
		ds = append(ds, d)
	}
	drows.Close()
	if len(ds) > 0 {
		slices.Sort(ds)
		f.P50Ms = quantile(ds, 0.50)
		f.P99Ms = quantile(ds, 0.99)
	}
	return drows.Err()
}

// quantile returns the q-quantile of sorted nanosecond durations in ms
// (nearest rank).
func quantile(sorted []int64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

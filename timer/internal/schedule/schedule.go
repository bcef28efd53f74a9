// Package schedule holds a timer's schedule definition and the pure
// functions that decide which scheduled times fire: Due applies the
// catch-up policy to the times missed since the last fired one, and Wake
// says when to look again. Nothing here reads a clock.
package schedule

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/buttercompass/butter/proto/descriptor"
)

// Sources of a definition.
const (
	SourceAPI        = "api"        // created through POST /v1/timers
	SourceDeployment = "deployment" // a function's bindings.timer
)

// Def is one schedule the timer fires, from either source.
type Def struct {
	// ID names the schedule: "<deployment>/<function>" for a descriptor's
	// timer, the API id otherwise (which may not contain '/').
	ID string
	// Spec is the schedule as written (cron, @every, @hourly...).
	Spec string
	// Timezone is the IANA zone Spec is read in.
	Timezone string
	// Stream receives the ticks.
	Stream string
	// CatchUp is none, one or all.
	CatchUp string
	// Data is copied into every tick's data; may be nil.
	Data json.RawMessage
	// Created is when the schedule came to be; no time before it is due.
	Created time.Time
	// Since, when later than Created, is where a schedule that never
	// fired starts: a descriptor timer added by an update of its
	// deployment starts when that version was stored.
	Since time.Time
	// Source is SourceAPI or SourceDeployment.
	Source string
	// Deployment and Function name the descriptor's function, for
	// SourceDeployment.
	Deployment, Function string

	// Sched computes fire times; set by Compile.
	Sched cron.Schedule
}

// Compile parses Spec in Timezone into Sched and fills the defaults.
func (d *Def) Compile() error {
	if d.Timezone == "" {
		d.Timezone = descriptor.DefaultTimezone
	}
	if d.CatchUp == "" {
		d.CatchUp = descriptor.DefaultCatchUp
	}
	t := descriptor.Timer{Schedule: d.Spec, Timezone: d.Timezone}
	s, err := t.CronSchedule()
	if err != nil {
		return fmt.Errorf("compile schedule %s: %w", d.ID, err)
	}
	d.Sched = s
	return nil
}

// Anchor returns the point after which times are due: the last fired
// scheduled time, or Created (Since, if later) when nothing fired yet.
// Created wins over an older lastFired, so a schedule deleted and created
// again under the same id does not catch up the gap.
func (d *Def) Anchor(lastFired time.Time) time.Time {
	switch {
	case lastFired.IsZero():
		if d.Since.After(d.Created) {
			return d.Since
		}
		return d.Created
	case lastFired.After(d.Created):
		return lastFired
	}
	return d.Created
}

// next returns the first time of the schedule's sequence after x, the
// sequence being anchored at after. Cron schedules are anchored on the
// wall clock and Next from anywhere is right; an @every schedule is a grid
// after, after+d, after+2d... that Next would shift if called from a
// point off the grid, so its grid is computed instead.
func next(s cron.Schedule, after, x time.Time) time.Time {
	if x.Before(after) {
		x = after
	}
	c, ok := s.(cron.ConstantDelaySchedule)
	if !ok {
		return s.Next(x)
	}
	// robfig/cron drops the anchor's sub-second part: the first time is
	// after rounded down to the second, plus the delay.
	base := after.Truncate(time.Second)
	d := c.Delay
	if d <= 0 {
		d = time.Second
	}
	k := x.Sub(base)/d + 1
	return base.Add(k * d)
}

// Due returns the scheduled times to fire at now for a schedule whose
// sequence is anchored at after (the last fired time, see Def.Anchor),
// oldest first, at most limit of them.
//
// A time is on time while now is at most missedAfter past it, and missed
// after that. On-time times always fire. Missed times follow policy:
// all fires every one, one fires only the latest and only if no time is on
// time (the job runs now anyway), none fires none. missedAfter is above the
// handover time of a crashed replica, so failover alone never skips a tick.
func Due(s cron.Schedule, after, now time.Time, policy string, missedAfter time.Duration, limit int) []time.Time {
	if limit <= 0 {
		return nil
	}
	lateBound := now.Add(-missedAfter) // t < lateBound is missed
	var out []time.Time
	collect := func(from time.Time) {
		for t := next(s, after, from); !t.IsZero() && !t.After(now) && len(out) < limit; t = next(s, after, t) {
			out = append(out, t)
		}
	}
	switch policy {
	case descriptor.CatchUpAll:
		collect(after)
		return out
	case descriptor.CatchUpOne:
		collect(lateBound.Add(-time.Nanosecond))
		if len(out) > 0 {
			return out
		}
		if t := lastBefore(s, after, lateBound); !t.IsZero() {
			return []time.Time{t}
		}
		return nil
	default: // none
		collect(lateBound.Add(-time.Nanosecond))
		return out
	}
}

// Wake returns when Due next has something for this schedule: the first
// time after after that policy would fire once it is due. It may be in
// the past, meaning now. Zero means never (a schedule with no more times).
func Wake(s cron.Schedule, after, now time.Time, policy string, missedAfter time.Duration) time.Time {
	if policy == descriptor.CatchUpAll {
		return next(s, after, after)
	}
	if policy == descriptor.CatchUpOne && !lastBefore(s, after, now.Add(-missedAfter)).IsZero() {
		return now
	}
	return next(s, after, now.Add(-missedAfter).Add(-time.Nanosecond))
}

// lastBefore returns the latest time of the sequence anchored at after that
// is before bound, or zero. Cron has no Prev, so it looks back over
// doubling windows instead of walking from after: a once-a-second schedule
// down for a year is a few dozen calls, not thirty million.
func lastBefore(s cron.Schedule, after, bound time.Time) time.Time {
	if !bound.After(after) {
		return time.Time{}
	}
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		base := after.Truncate(time.Second)
		d := c.Delay
		if d <= 0 {
			d = time.Second
		}
		k := (bound.Sub(base) - 1) / d
		if k < 1 {
			return time.Time{}
		}
		return base.Add(k * d)
	}
	for w := time.Second; ; w *= 2 {
		from := bound.Add(-w)
		if from.Before(after) || w > 1<<62 {
			from = after
		}
		var last time.Time
		for t := next(s, after, from); !t.IsZero() && t.Before(bound); t = next(s, after, t) {
			last = t
		}
		if !last.IsZero() || !from.After(after) {
			return last
		}
	}
}

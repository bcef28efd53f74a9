// Package decide is loadmon's scaling rule: from one function's lag,
// processing rate and in-flight events it picks how many instances the
// function should run. It is pure (time comes in as an argument), so every
// rule is a table test.
//
// The rule, per function and per tick:
//
//   - byLag = ceil(lag / lagPerReplica), KEDA's lagThreshold rule.
//   - byRate = the instances needed to serve the arrival rate and drain
//     the lag within the drain window, at the rate one instance showed in
//     its heartbeats: ceil((arrival + lag/window) / perInstanceRate).
//     Arrival is the processed rate plus the lag's growth. It applies
//     only while there is a backlog (then the instances are busy and their
//     rate is their capacity), with a tenth of slack. It reacts
//     before the lag reaches a threshold when events arrive faster than
//     the instances handle them, and asks for fewer when they are fast.
//   - want = max(byLag, byRate), at least 1 while there is lag or work in
//     flight, capped at min(max, partitions) and floored at min.
//   - At zero instances only lag above activationLag (KEDA's
//     activationLagThreshold) or work in flight wakes the function.
//   - Up at once; down only when every figure over the cooldown was lower
//     (the highest of them is taken, as Kubernetes' HPA stabilization
//     window does); to zero only after idleAfter with no lag and nothing
//     in flight.
package decide

import (
	"math"
	"time"

	"github.com/buttercompass/butter/proto/control"
)

// rateSlack is the share by which the rate rule's figure may exceed the
// instances before it asks for one more.
const rateSlack = 0.1

// Spec is a function's scale settings and its streams' partition count.
type Spec struct {
	Min, Max      int
	LagPerReplica int64
	ActivationLag int64
	IdleAfter     time.Duration
	// Partitions is the partition count of the function's bound streams
	// (summed: the group spreads all of them over its members); 0 when
	// unknown, then only Max caps.
	Partitions int
}

// Load is what loadmon observed of a function at one tick.
type Load struct {
	// Lag is the group's lag summed over its bound partitions.
	Lag int64
	// Rate is the events per second the instances processed, from their
	// heartbeats; 0 when unknown.
	Rate float64
	// Running is the instances heartbeating; InFlight their events in
	// progress.
	Running  int
	InFlight int
}

// Config tunes the rule for every function.
type Config struct {
	// Cooldown is how long a lower figure must hold before scaling down.
	Cooldown time.Duration
	// Drain is the window the rate rule aims to drain the lag in.
	Drain time.Duration
}

// State is what the rule remembers of one function between ticks.
type State struct {
	// Current is the instance count in force (the last decision, else min).
	Current int
	// lastActive is when the function last had lag or work in flight.
	lastActive time.Time
	// lowerSince is when the figure first went below Current, zero when
	// it is not below; lowerPeak is the highest figure since then.
	lowerSince time.Time
	lowerPeak  int
	// prevLag and prevAt give the lag's growth for the arrival rate.
	prevLag int64
	prevAt  time.Time
}

// NewState starts the memory of a function whose current count is
// current, seen active at now (a function just taken over is not idle yet:
// its idle time starts with this replica).
func NewState(current int, now time.Time) *State {
	return &State{Current: current, lastActive: now}
}

// Result is one tick's outcome: To differs from From when the count
// changes.
type Result struct {
	From, To int
	Reason   string
	// Arrival is the estimated arrival rate, events/s.
	Arrival float64
	// Want is the raw figure before hysteresis.
	Want int
}

// Changed reports whether the tick decided a new count.
func (r Result) Changed() bool { return r.From != r.To }

// Decide runs one tick of the rule for one function and updates st.
func Decide(cfg Config, s Spec, l Load, st *State, now time.Time) Result {
	lpr := s.LagPerReplica
	if lpr <= 0 {
		lpr = 1
	}
	upper := s.Max
	if s.Partitions > 0 && s.Partitions < upper {
		upper = s.Partitions
	}
	upper = max(upper, s.Min)

	arrival := l.Rate
	if !st.prevAt.IsZero() {
		if dt := now.Sub(st.prevAt).Seconds(); dt > 0 {
			arrival = max(0, l.Rate+float64(l.Lag-st.prevLag)/dt)
		}
	}
	st.prevLag, st.prevAt = l.Lag, now

	active := l.Lag > 0 || l.InFlight > 0
	if active {
		st.lastActive = now
	}
	want := int((l.Lag + lpr - 1) / lpr)
	if l.Lag > 0 && l.Rate > 0 && l.Running > 0 && cfg.Drain > 0 {
		// With a backlog the instances are busy, so what each handled is
		// what each can handle. Without one the observed rate is only the
		// arrival rate and says nothing of capacity: the rule is off.
		per := l.Rate / float64(l.Running)
		need := (arrival + float64(l.Lag)/cfg.Drain.Seconds()) / per
		// A tenth of slack, so the few events always queued between two
		// fetches do not ask for an instance more.
		want = max(want, int(math.Ceil(need/(1+rateSlack))))
	}
	if active {
		want = max(want, 1)
	}
	if st.Current == 0 && l.Lag <= s.ActivationLag && l.InFlight == 0 {
		want = 0 // below the activation threshold a sleeping function sleeps on
	}
	if want > 0 || st.Current > 0 {
		// Not yet idle for long enough: keep one instance to catch the
		// next event without a cold start.
		if s.Min == 0 && want == 0 && now.Sub(st.lastActive) < s.IdleAfter {
			want = 1
		}
	}
	want = min(max(want, s.Min), upper)
	res := Result{From: st.Current, To: st.Current, Arrival: arrival, Want: want}

	switch {
	case st.Current < s.Min || st.Current > upper:
		res.To, res.Reason = want, control.ScaleReasonBounds
	case want > st.Current:
		res.To, res.Reason = want, control.ScaleReasonLag
		if st.Current == 0 {
			res.Reason = control.ScaleReasonWake
		}
	case want == 0 && st.Current > 0:
		// want is 0 only after idleAfter (above), itself a stabilization
		// window: no cooldown on top.
		res.To, res.Reason = 0, control.ScaleReasonIdle
	case want < st.Current:
		if st.lowerSince.IsZero() {
			st.lowerSince, st.lowerPeak = now, want
		}
		st.lowerPeak = max(st.lowerPeak, want)
		if now.Sub(st.lowerSince) >= cfg.Cooldown {
			res.To, res.Reason = st.lowerPeak, control.ScaleReasonCooldown
		}
	}
	if res.To != st.Current || want >= st.Current {
		st.lowerSince, st.lowerPeak = time.Time{}, 0
	}
	st.Current = res.To
	return res
}

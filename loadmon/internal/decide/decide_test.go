package decide

import (
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/control"
)

var (
	t0  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg = Config{Cooldown: 30 * time.Second, Drain: 10 * time.Second}
)

func spec(min, max, parts int) Spec {
	return Spec{Min: min, Max: max, LagPerReplica: 1000, IdleAfter: 5 * time.Minute, Partitions: parts}
}

// step is one tick: at t0+At with load L, the count must become To
// (with Reason when it changes).
type step struct {
	At     time.Duration
	L      Load
	To     int
	Reason string
}

func run(t *testing.T, s Spec, start int, steps []step) {
	t.Helper()
	st := NewState(start, t0)
	for i, sp := range steps {
		r := Decide(cfg, s, sp.L, st, t0.Add(sp.At))
		if r.To != sp.To {
			t.Fatalf("step %d (t+%s, %+v): %d → %d (want %d), reason %q", i, sp.At, sp.L, r.From, r.To, sp.To, r.Reason)
		}
		if r.Changed() && sp.Reason != "" && r.Reason != sp.Reason {
			t.Fatalf("step %d: reason %q, want %q", i, r.Reason, sp.Reason)
		}
		if !r.Changed() && sp.Reason != "" {
			t.Fatalf("step %d: no change, want one for %q", i, sp.Reason)
		}
	}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  Spec
		start int
		steps []step
	}{
		{"scale up on lag at once", spec(1, 8, 8), 1, []step{
			{0, Load{Lag: 500, Running: 1}, 1, ""},
			{time.Second, Load{Lag: 3500, Running: 1}, 4, control.ScaleReasonLag},
		}},
		{"capped at partitions", spec(1, 8, 4), 1, []step{
			{0, Load{Lag: 100000, Running: 1}, 4, control.ScaleReasonLag},
		}},
		{"capped at max", spec(1, 3, 12), 1, []step{
			{0, Load{Lag: 100000, Running: 1}, 3, control.ScaleReasonLag},
		}},
		{"never below min", spec(2, 8, 8), 2, []step{
			{0, Load{}, 2, ""},
			{time.Hour, Load{}, 2, ""},
		}},
		{"min above partitions wins", spec(6, 8, 4), 6, []step{
			{0, Load{Lag: 100000}, 6, ""},
		}},
		{"last decision out of bounds is corrected", spec(1, 8, 2), 4, []step{
			{0, Load{Lag: 100000}, 2, control.ScaleReasonBounds},
		}},
		{"hysteresis: down only after the cooldown, to the highest figure in it", spec(1, 8, 8), 1, []step{
			{0, Load{Lag: 6000, Running: 1}, 6, control.ScaleReasonLag},
			{time.Second, Load{Lag: 1000, Running: 6}, 6, ""},
			{10 * time.Second, Load{Lag: 2500, Running: 6}, 6, ""},
			{20 * time.Second, Load{Lag: 100, Running: 6}, 6, ""},
			{31 * time.Second, Load{Lag: 100, Running: 6}, 3, control.ScaleReasonCooldown},
		}},
		{"cooldown restarts when the figure comes back up", spec(1, 8, 8), 4, []step{
			{0, Load{Lag: 100, Running: 4}, 4, ""},
			{20 * time.Second, Load{Lag: 4000, Running: 4}, 4, ""},
			{25 * time.Second, Load{Lag: 100, Running: 4}, 4, ""},
			{35 * time.Second, Load{Lag: 100, Running: 4}, 4, ""},
			{56 * time.Second, Load{Lag: 100, Running: 4}, 1, control.ScaleReasonCooldown},
		}},
		{"idle to zero only after idleAfter", spec(0, 4, 4), 1, []step{
			{0, Load{Lag: 10, Running: 1}, 1, ""},
			{4 * time.Minute, Load{Running: 1}, 1, ""},
			{5*time.Minute - time.Second, Load{Running: 1}, 1, ""},
			{5 * time.Minute, Load{Running: 1}, 0, control.ScaleReasonIdle},
			{6 * time.Minute, Load{}, 0, ""},
		}},
		{"work in flight is not idle", spec(0, 4, 4), 1, []step{
			{4 * time.Minute, Load{Running: 1, InFlight: 1}, 1, ""},
			{5*time.Minute + time.Second, Load{Running: 1}, 1, ""},
			{9*time.Minute + time.Second, Load{Running: 1}, 0, control.ScaleReasonIdle},
		}},
		{"from many to zero: down to one by cooldown, then idle", spec(0, 4, 4), 4, []step{
			{0, Load{Running: 4}, 4, ""},
			{30 * time.Second, Load{Running: 4}, 1, control.ScaleReasonCooldown},
			{5 * time.Minute, Load{Running: 1}, 0, control.ScaleReasonIdle},
		}},
		{"wake on any lag", spec(0, 4, 4), 0, []step{
			{0, Load{}, 0, ""},
			{time.Second, Load{Lag: 1}, 1, control.ScaleReasonWake},
		}},
		{"wake straight to the lag's figure", spec(0, 4, 4), 0, []step{
			{0, Load{Lag: 2500}, 3, control.ScaleReasonWake},
		}},
		{"activation threshold", Spec{Min: 0, Max: 4, LagPerReplica: 1000, ActivationLag: 50, IdleAfter: time.Minute, Partitions: 4}, 0, []step{
			{0, Load{Lag: 50}, 0, ""},
			{time.Second, Load{Lag: 51}, 1, control.ScaleReasonWake},
		}},
		{"activation threshold only applies at zero", Spec{Min: 0, Max: 4, LagPerReplica: 1000, ActivationLag: 50, IdleAfter: time.Minute, Partitions: 4}, 1, []step{
			{0, Load{Lag: 10, Running: 1}, 1, ""},
			{59 * time.Second, Load{Lag: 10, Running: 1}, 1, ""},
			{90 * time.Second, Load{Running: 1}, 1, ""},
			{3 * time.Minute, Load{Running: 1}, 0, control.ScaleReasonIdle},
		}},
		{"the rate rule reacts before the lag threshold", spec(1, 8, 8), 1, []step{
			// 1 instance handles 200/s while the lag grows by 500/s:
			// arrival 700/s + 600/10s to drain = 760/s needs 4 instances.
			{0, Load{Lag: 100, Rate: 200, Running: 1}, 1, ""},
			{time.Second, Load{Lag: 600, Rate: 200, Running: 1}, 4, control.ScaleReasonLag},
		}},
		{"the rate rule keeps up with a steady backlog without creeping", spec(1, 8, 8), 2, []step{
			{0, Load{Lag: 5, Rate: 2000, Running: 2}, 2, ""},
			{time.Second, Load{Lag: 5, Rate: 2000, Running: 2}, 2, ""},
			{2 * time.Second, Load{Lag: 5, Rate: 2000, Running: 2}, 2, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { run(t, tc.spec, tc.start, tc.steps) })
	}
}

package schedule

import (
	"slices"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/buttercompass/butter/proto/descriptor"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func compile(t *testing.T, spec string) *Def {
	t.Helper()
	d := &Def{ID: "s", Spec: spec}
	if err := d.Compile(); err != nil {
		t.Fatal(err)
	}
	return d
}

func secs(base time.Time, ss ...int) []time.Time {
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		out[i] = base.Add(time.Duration(s) * time.Second)
	}
	return out
}

func TestDueCatchUp(t *testing.T) {
	const missedAfter = 10 * time.Second
	every := compile(t, "@every 1s").Sched
	cron5 := compile(t, "*/5 * * * * *").Sched
	hourly := compile(t, "@hourly").Sched
	cases := []struct {
		name   string
		sched  cron.Schedule
		policy string
		after  time.Time
		now    time.Time
		want   []time.Time
	}{
		{"nothing due yet", every, descriptor.CatchUpAll, t0, t0.Add(500 * time.Millisecond), nil},
		{"one on time", every, descriptor.CatchUpNone, t0, t0.Add(1200 * time.Millisecond), secs(t0, 1)},
		{"a short gap is not missed, whatever the policy", every, descriptor.CatchUpNone, t0, t0.Add(3500 * time.Millisecond), secs(t0, 1, 2, 3)},
		{"all fires every missed time", every, descriptor.CatchUpAll, t0, t0.Add(15 * time.Second), secs(t0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)},
		{"none fires only the on-time ones", every, descriptor.CatchUpNone, t0, t0.Add(15 * time.Second), secs(t0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)},
		{"one skips missed times when some are on time", every, descriptor.CatchUpOne, t0, t0.Add(15 * time.Second), secs(t0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)},
		{"one fires the latest missed time", hourly, descriptor.CatchUpOne, t0, t0.Add(5*time.Hour + 30*time.Minute), secs(t0, 5*3600)},
		{"none fires no missed time", hourly, descriptor.CatchUpNone, t0, t0.Add(5*time.Hour + 30*time.Minute), nil},
		{"all fires every missed hour", hourly, descriptor.CatchUpAll, t0, t0.Add(3*time.Hour + 30*time.Minute), secs(t0, 3600, 7200, 10800)},
		{"one with a missed and an on-time time fires the on-time one", hourly, descriptor.CatchUpOne, t0, t0.Add(2*time.Hour + 5*time.Second), secs(t0, 7200)},
		{"cron: all", cron5, descriptor.CatchUpAll, t0, t0.Add(31 * time.Second), secs(t0, 5, 10, 15, 20, 25, 30)},
		{"cron: none after a long gap", cron5, descriptor.CatchUpNone, t0, t0.Add(24*time.Hour + 12*time.Second), secs(t0, 86405, 86410)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.sched
			got := Due(s, c.after, c.now, c.policy, missedAfter, 1000)
			if !slices.Equal(got, c.want) {
				t.Fatalf("Due = %v, want %v", got, c.want)
			}
			// Wake agrees with Due: due now exactly when Due has times.
			w := Wake(s, c.after, c.now, c.policy, missedAfter)
			if due := !w.After(c.now); due != (len(c.want) > 0) {
				t.Fatalf("Wake = %v at now %v, but Due = %v", w, c.now, got)
			}
		})
	}
}

func TestDueLimitAndSequence(t *testing.T) {
	s := compile(t, "@every 2s").Sched
	after := t0.Add(300 * time.Millisecond) // anchor off the second
	got := Due(s, after, t0.Add(time.Minute), descriptor.CatchUpAll, time.Second, 3)
	if want := secs(t0, 2, 4, 6); !slices.Equal(got, want) {
		t.Fatalf("Due = %v, want %v", got, want)
	}
	// Continuing from the last fired time gives the rest of the same grid.
	got = Due(s, got[2], t0.Add(11*time.Second), descriptor.CatchUpAll, time.Second, 100)
	if want := secs(t0, 8, 10); !slices.Equal(got, want) {
		t.Fatalf("Due = %v, want %v", got, want)
	}
}

func TestDueYearLongGapIsCheap(t *testing.T) {
	s := compile(t, "* * * * * *").Sched
	now := t0.Add(365 * 24 * time.Hour)
	// Walking thirty million seconds would time the test out.
	got := Due(s, t0, now, descriptor.CatchUpOne, 10*time.Second, 1000)
	if len(got) != 11 {
		t.Fatalf("Due = %d times, want the 11 on-time ones", len(got))
	}
	hourly := compile(t, "@hourly").Sched
	if got := Due(hourly, t0, now.Add(30*time.Minute), descriptor.CatchUpOne, 10*time.Second, 1000); len(got) != 1 || !got[0].Equal(now) {
		t.Fatalf("Due = %v, want the latest missed hour %v", got, now)
	}
}

func TestTimezone(t *testing.T) {
	d := &Def{ID: "s", Spec: "0 9 * * *", Timezone: "Europe/Berlin"}
	if err := d.Compile(); err != nil {
		t.Fatal(err)
	}
	got := Due(d.Sched, t0, t0.Add(24*time.Hour), descriptor.CatchUpAll, time.Second, 10)
	want := time.Date(2030, 1, 2, 8, 0, 0, 0, time.UTC) // 09:00 CET
	if len(got) != 1 || !got[0].Equal(want) {
		t.Fatalf("Due = %v, want %v", got, want)
	}
}

func TestAnchor(t *testing.T) {
	d := &Def{Created: t0}
	if a := d.Anchor(t0.Add(-time.Hour)); !a.Equal(t0) {
		t.Fatalf("state older than the schedule: anchor %v, want created", a)
	}
	if a := d.Anchor(t0.Add(time.Hour)); !a.Equal(t0.Add(time.Hour)) {
		t.Fatalf("anchor %v, want last fired", a)
	}
	// A descriptor timer whose deployment was updated (Since) after it
	// last fired goes on from its last tick: the update drops no tick.
	upd := &Def{Created: t0, Since: t0.Add(2 * time.Hour)}
	if a := upd.Anchor(t0.Add(time.Hour)); !a.Equal(t0.Add(time.Hour)) {
		t.Fatalf("updated deployment: anchor %v, want last fired", a)
	}
	// One that never fired, added by that update, starts at it.
	if a := upd.Anchor(time.Time{}); !a.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("timer added by an update: anchor %v, want the update", a)
	}
}

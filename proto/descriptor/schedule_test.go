package descriptor

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func TestValidateSchedule(t *testing.T) {
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{"* * * * *", true},
		{"*/10 * * * * *", true},
		{"0 9 * * MON-FRI", true},
		{"0 0 29 2 *", true}, // leap days come
		{"@every 10s", true},
		{"@every 1h30m", true},
		{"@daily", true},
		{"@hourly", true},
		{"CRON_TZ=Europe/Berlin 0 9 * * *", true},
		{"TZ=UTC @every 1m", true},
		{"", false},
		{"   ", false},
		{"* * * *", false},
		{"* * * * * * *", false},
		{"0 0 30 2 *", false},
		{"0 0 31 4 *", false},
		{"@every 0s", false},
		{"@every -5s", false},
		{"@every 500ms", false},
		{"@every 1.5s", false},
		{"@every", false},
		{"@fortnightly", false},
		{"TZ=", false}, // panics in robfig/cron v3.0.1
		{"CRON_TZ=Europe/Berlin", false},
		{"TZ=Nowhere 0 * * * *", false},
		{"*/0 * * * *", false},
	} {
		err := ValidateSchedule(tc.spec)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateSchedule(%q) = %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}

// TestParserForCron checks that Parser plugs into robfig/cron, which is
// how the timer service uses it.
func TestParserForCron(t *testing.T) {
	c := cron.New(cron.WithParser(Parser), cron.WithLocation(time.UTC))
	if _, err := c.AddFunc("*/10 * * * * *", func() {}); err != nil {
		t.Fatalf("AddFunc with seconds: %v", err)
	}
	if _, err := c.AddFunc("TZ=", func() {}); err == nil {
		t.Fatalf("AddFunc(\"TZ=\") succeeded")
	}
}

func TestTimerCronSchedule(t *testing.T) {
	from := time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC) // a Monday
	for _, tc := range []struct {
		timer Timer
		want  time.Time
	}{
		{Timer{Schedule: "0 0 9 * * *"}, time.Date(2024, 6, 3, 9, 0, 0, 0, time.UTC)},
		{Timer{Schedule: "0 9 * * *", Timezone: "UTC"}, time.Date(2024, 6, 3, 9, 0, 0, 0, time.UTC)},
		// 09:00 in Berlin is 07:00 UTC in summer.
		{Timer{Schedule: "0 9 * * *", Timezone: "Europe/Berlin"}, time.Date(2024, 6, 3, 7, 0, 0, 0, time.UTC)},
		{Timer{Schedule: "CRON_TZ=Asia/Tokyo 0 9 * * *", Timezone: "Europe/Berlin"}, time.Date(2024, 6, 4, 0, 0, 0, 0, time.UTC)},
		{Timer{Schedule: "@every 10s"}, from.Add(10 * time.Second)},
	} {
		s, err := tc.timer.CronSchedule()
		if err != nil {
			t.Errorf("%+v: CronSchedule: %v", tc.timer, err)
			continue
		}
		if got := s.Next(from); !got.Equal(tc.want) {
			t.Errorf("%+v: Next(%v) = %v, want %v", tc.timer, from, got.UTC(), tc.want)
		}
	}
	for _, bad := range []Timer{{Schedule: "nope"}, {Schedule: "@daily", Timezone: "Mars/Olympus"}} {
		if _, err := bad.CronSchedule(); err == nil {
			t.Errorf("%+v: CronSchedule succeeded", bad)
		}
	}
}

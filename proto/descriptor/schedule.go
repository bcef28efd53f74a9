package descriptor

import (
	"errors"
	"fmt"
	"strings"
	"time"

	// Time zones must validate the same on every machine, including a
	// scratch container with no /usr/share/zoneinfo: a descriptor the
	// deployer accepts must not fail in the timer.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// cronParser reads cron with an optional seconds field first (DESIGN §7)
// and descriptors such as @hourly and @every 10s.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parser is the schedule parser the descriptor validates with. The timer
// service uses the same one (cron.WithParser(descriptor.Parser)) so that
// every schedule the deployer accepts runs, and only those.
var Parser cron.ScheduleParser = scheduleParser{}

type scheduleParser struct{}

// Parse parses spec with the platform's cron dialect. It guards against
// robfig/cron v3.0.1 panicking on a "TZ=" prefix with nothing after it, so
// a user's schedule can never crash a service.
func (scheduleParser) Parse(spec string) (sched cron.Schedule, err error) {
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, fmt.Errorf("schedule %q has a time zone but no schedule after it", spec)
	}
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("schedule %q cannot be parsed: %v", spec, r)
		}
	}()
	return cronParser.Parse(spec)
}

// minEvery is the shortest @every interval.
const minEvery = time.Second

// ValidateSchedule checks a schedule: cron with optional seconds, a
// descriptor like @daily or @every 10s, optionally after CRON_TZ=<zone>.
// A schedule that can never fire (30 February) is refused too.
func ValidateSchedule(spec string) error {
	if strings.TrimSpace(spec) == "" {
		return errors.New("schedule is empty")
	}
	s, err := Parser.Parse(spec)
	if err != nil {
		return fmt.Errorf("%q is not a schedule: %v; use cron with optional seconds (\"*/10 * * * * *\", \"0 9 * * MON-FRI\") or @every 10s, @hourly, @daily", spec, err)
	}
	if _, ok := s.(cron.ConstantDelaySchedule); ok {
		// robfig/cron rounds the interval to whole seconds, at least one,
		// without a word; say so rather than tick at another rate.
		d, _ := time.ParseDuration(strings.TrimPrefix(strings.TrimSpace(stripZone(spec)), "@every "))
		if d < minEvery || d%time.Second != 0 {
			return fmt.Errorf("%q: @every needs whole seconds, at least 1s", spec)
		}
		return nil
	}
	if s.Next(time.Now()).IsZero() {
		return fmt.Errorf("%q never fires", spec)
	}
	return nil
}

// hasZonePrefix reports whether a schedule names its own time zone.
func hasZonePrefix(spec string) bool {
	return strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")
}

// stripZone removes a CRON_TZ=<zone> or TZ=<zone> prefix.
func stripZone(spec string) string {
	if !hasZonePrefix(spec) {
		return spec
	}
	if i := strings.IndexByte(spec, ' '); i >= 0 {
		return spec[i+1:]
	}
	return ""
}

// CronSchedule parses the timer's schedule read in its time zone, ready
// for the timer service to compute fire times with Next.
func (t *Timer) CronSchedule() (cron.Schedule, error) {
	s, err := Parser.Parse(t.Schedule)
	if err != nil {
		return nil, fmt.Errorf("parse schedule: %w", err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok || hasZonePrefix(t.Schedule) {
		return s, nil
	}
	loc := time.UTC
	if t.Timezone != "" {
		if loc, err = time.LoadLocation(t.Timezone); err != nil {
			return nil, fmt.Errorf("load time zone: %w", err)
		}
	}
	spec.Location = loc
	return spec, nil
}

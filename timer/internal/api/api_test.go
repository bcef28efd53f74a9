package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/timers"
	"github.com/buttercompass/butter/timer/internal/catalog"
)

// FuzzValidate feeds arbitrary timer requests to Validate. It must not
// panic, every problem must name its field, and a request it accepts must
// compile into a schedule the firing side can run and whose next time is
// in the future: what the API stores, the timer can fire.
func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		`{"schedule":"@every 1s","stream":"ticks"}`,
		`{"id":"nightly","schedule":"0 3 * * *","stream":"jobs","timezone":"Europe/Berlin","catchUp":"all","data":{"job":"report"}}`,
		`{"schedule":"*/5 * * * * *","stream":"s","catchUp":"none"}`,
		`{"schedule":"@hourly","stream":"_butter.events"}`,
		`{"schedule":"TZ=UTC * * * * *","stream":"s","timezone":"Local"}`,
		`{"schedule":"61 * * * *","stream":"S!"}`,
	} {
		f.Add(seed)
	}
	fields := []string{"id:", "schedule:", "stream:", "timezone:", "catchUp:", "data:"}
	f.Fuzz(func(t *testing.T, body string) {
		var req Request
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		problems := Validate(req)
		for _, p := range problems {
			if !hasAnyPrefix(p, fields) {
				t.Errorf("problem %q names no field", p)
			}
		}
		if len(problems) > 0 {
			return
		}
		d := catalog.FromAPI(timers.Schedule{ID: "fuzz", Schedule: req.Schedule, Timezone: req.Timezone, Stream: req.Stream, CatchUp: req.CatchUp, Data: req.Data})
		if err := d.Compile(); err != nil {
			t.Fatalf("Validate accepted %s but the schedule does not compile: %v", body, err)
		}
		now := time.Now()
		if next := d.Sched.Next(now); !next.IsZero() && !next.After(now) {
			t.Fatalf("schedule %q: next fire %s is not after %s", req.Schedule, next, now)
		}
	})
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

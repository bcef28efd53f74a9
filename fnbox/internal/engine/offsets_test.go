package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
)

func TestStartOffsets(t *testing.T) {
	e := newEnv(t)
	e.stream("one", 1)
	e.stream("two", 2)
	first := events("a", "t", 500)
	e.produce("one", 1, first...)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond) // record timestamps are milliseconds
	e.produce("one", 1, events("b", "t", 500)...)
	e.produce("two", 2, events("c", "t", 200)...) // 100 per partition

	cases := []struct {
		name, stream, offset string
		want                 int
	}{
		{"first", "one", "first", 1000},
		{"at", "one", "400", 600},
		{"past-end", "one", "5000", 0},
		{"time", "one", "'" + mid.UTC().Format(time.RFC3339Nano) + "'", 500},
		{"map", "two", `{"0": 90, "1": 50}`, 10 + 50},
		{"map-unlisted", "two", `{"0": 95}`, 5},
		{"latest", "one", "latest", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := "out-" + c.name
			e.stream(out, 1)
			d := parse(t, fmt.Sprintf(`
name: off-%s
platform: go
functions:
  - fn: ./f
    name: f
    bindings:
      streams: [{name: %s, offset: %s}]
      out: %s
`, c.name, c.stream, c.offset, out))
			rec := newRecorder()
			r := e.start(d, runtime.Funcs{"f": echo(rec)})
			// A marker written after the start proves the function is
			// consuming, and that latest is "from now".
			e.produce(c.stream, 1, events("m-"+c.name, "t", 1)...)
			got := causes(e.read(out, c.want+1, false))
			if got["m-"+c.name+"-0"] != 1 {
				t.Fatalf("marker event of %s not processed", c.name)
			}
			n := 0
			for id, k := range got {
				if !strings.HasPrefix(id, "m-") {
					n += k
				}
			}
			if n != c.want {
				t.Errorf("offset %s on %s: %d results, want %d", c.offset, c.stream, n, c.want)
			}
			r.shutdown(t)
		})
	}
}

// TestAdaptPoll: a poll that takes more than half its limit (the
// configured rebalance timeout) shrinks the next to what fits in
// half of it, at least by half and never below one batch; quick polls
// double back up to the configured size.
func TestAdaptPoll(t *testing.T) {
	d := parse(t, `
name: p
platform: go
functions:
  - fn: ./f
    name: f
    bindings: {streams: [in]}
    delivery: {batch: 4}
`)
	r := &runner{e: &Engine{cfg: Config{MaxPollRecords: 500, RebalanceTimeout: DefaultRebalanceTimeout}}, fn: d.Functions[0]}
	limit := r.pollLimit()
	if limit != DefaultRebalanceTimeout {
		t.Fatalf("poll limit %s, want the rebalance timeout %s", limit, DefaultRebalanceTimeout)
	}
	steps := []struct {
		took      time.Duration
		committed bool
		polled    int
		want      int
	}{
		{limit, true, 500, 250},            // a full limit for 500: what fits in half
		{limit / 4, false, 250, 125},       // not committed: at least halved
		{limit, true, 6, 4},                // never below one batch
		{limit / 16, true, 4, 8},           // quick: doubles back
		{limit / 16, true, 8, 16},          //
		{limit / 4, true, 16, 16},          // in between: stays
		{time.Millisecond, true, 400, 32},  //
		{time.Millisecond, true, 400, 64},  //
		{time.Millisecond, true, 400, 128}, //
		{time.Millisecond, true, 400, 256}, //
		{time.Millisecond, true, 400, 500}, // up to MaxPollRecords
		{time.Millisecond, true, 500, 500}, //
	}
	for i, s := range steps {
		r.adaptPoll(s.took, s.committed, s.polled)
		if got := r.pollSizeNow(); got != s.want {
			t.Fatalf("step %d (%+v): poll size %d, want %d", i, s, got, s.want)
		}
	}
}
